"""The task ``fedledger simulate`` runs by default: the hospitals and banks tabular app.

It is an example app (``examples/tabular``), installed as the package ``tabular_app``, and
``fedledger.simulations`` imports it from there. This module lets the command line name its
strategies, and say how to install it, without loading it or failing when it is missing.
"""

from importlib.util import find_spec

from fedledger.errors import FedLedgerError

#: The package of the tabular app, and how to install it from a clone of the repository.
PACKAGE = "tabular_app"
INSTALL = "pip install -e examples/tabular"


class TabularAppMissing(FedLedgerError):
    """The tabular app is not installed; the message says how to install it."""

    def __init__(self) -> None:
        super().__init__(
            f"the hospitals and banks task is the example app {PACKAGE}, which is not installed: {INSTALL}"
        )


def installed() -> bool:
    """Whether the tabular app's package can be imported here (found without importing it)."""
    return find_spec(PACKAGE) is not None


def strategy_names() -> tuple[str, ...]:
    """The Flower strategies the tabular app can run (none when it is not installed)."""
    if not installed():
        return ()
    from tabular_app.settings import STRATEGY_NAMES

    return STRATEGY_NAMES
