"""The coordinator's Flower ServerApp: the ledger strategy, validation and round commits."""
