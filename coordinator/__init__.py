"""The coordinator: ``Ledger`` wraps any Flower strategy so that every round is recorded on-chain."""

from fedledger.coordinator.api import Ledger

__all__ = ["Ledger"]
