"""FedLedger's client side: ``ledger_mod``, the Flower mod that signs any ClientApp's updates for the
ledger, and the tabular task's ClientApp (``fedledger.client.app``, imported only on demand: it
needs torch)."""

from fedledger.client.mod import ledger_mod

__all__ = ["ledger_mod"]
