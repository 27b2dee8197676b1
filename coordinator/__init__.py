"""The coordinator: ``Ledger`` wraps any Flower strategy so that every round is recorded on-chain.

Public API: ``Ledger``, and ``SettingsError``, the error ``Ledger.from_context`` raises for a
``fedledger.*`` setting no run can use (a ``ValueError``; the ``fedledger`` command reports it in
one line). An app may raise it, or a subclass, for its own settings too.

Both are loaded on first use, so that the settings modules can be read without Flower.
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fedledger.coordinator.api import Ledger
    from fedledger.coordinator.config import SettingsError

__all__ = ["Ledger", "SettingsError"]


def __getattr__(name: str) -> Any:
    if name == "Ledger":
        from fedledger.coordinator.api import Ledger

        return Ledger
    if name == "SettingsError":
        from fedledger.coordinator.config import SettingsError

        return SettingsError
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
