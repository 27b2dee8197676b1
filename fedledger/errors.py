"""The base of every error FedLedger reports to its user."""


class FedLedgerError(Exception):
    """A failure with a message meant for the user: what went wrong and, where known, what to do."""
