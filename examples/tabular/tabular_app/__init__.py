"""The hospitals and banks tabular task: a binary classifier trained by sites on their own records,
as a Flower app whose rounds FedLedger records.

``server_app`` builds the Flower strategy its run config names and wraps it with
``fedledger.coordinator.Ledger``; ``client_app`` trains on the site's data file and signs with
``fedledger.client.ledger_mod``. ``fedledger check-data`` (``cli``) checks a site's file against
the federation's schema before it joins.
"""
