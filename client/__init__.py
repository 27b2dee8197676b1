"""FedLedger's client side: ``ledger_mod``, the Flower mod that signs any ClientApp's updates for the
ledger, and the participant's key it signs with (``fedledger.client.identity``).

``ledger_mod`` is imported on first use, so that importing this package loads no Flower.
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fedledger.client.mod import ledger_mod

__all__ = ["ledger_mod"]


def __getattr__(name: str) -> Any:
    if name == "ledger_mod":
        from fedledger.client.mod import ledger_mod

        return ledger_mod
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
