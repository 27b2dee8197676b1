"""The coordinator: ``Ledger`` wraps any Flower strategy so that every round is recorded on-chain.

``Ledger`` is loaded on first use, so that the settings modules can be read without Flower.
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fedledger.coordinator.api import Ledger

__all__ = ["Ledger"]


def __getattr__(name: str) -> Any:
    if name == "Ledger":
        from fedledger.coordinator.api import Ledger

        return Ledger
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
