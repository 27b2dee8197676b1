"""The coordinator: ``Ledger`` wraps any Flower strategy so that every round is recorded on-chain.

Public API: ``Ledger``; ``SettingsError``, the error ``Ledger.from_context`` raises for a
``fedledger.*`` setting no run can use (a ``ValueError``; the ``fedledger`` command reports it in
one line), which an app may raise, or subclass, for its own settings too; and
``run_config_value``, which reads a typed run-config value with the same refusals.

They are loaded on first use, so that the settings modules can be read without Flower.
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fedledger.coordinator.api import Ledger
    from fedledger.coordinator.config import SettingsError, run_config_value

__all__ = ["Ledger", "SettingsError", "run_config_value"]


def __getattr__(name: str) -> Any:
    if name == "Ledger":
        from fedledger.coordinator.api import Ledger

        return Ledger
    if name in ("SettingsError", "run_config_value"):
        from fedledger.coordinator import config

        return getattr(config, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
