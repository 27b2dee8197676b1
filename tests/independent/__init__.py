"""Implementations of FedLedger's specifications written from ``docs/`` alone.

Nothing here imports ``fedledger`` (``tests/test_layering.py`` checks it): a module agrees with the
reference only if the page it was written from specifies enough. Import them as
``from independent.<module> import ...``.
"""
