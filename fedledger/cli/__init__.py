"""The ``fedledger`` command line."""

from importlib.metadata import entry_points
from typing import Annotated

import typer

from fedledger.cli import audit, certs, chain, client, contracts, participants
from fedledger.cli.common import ReportingGroup

app = typer.Typer(
    name="fedledger",
    cls=ReportingGroup,
    help="Federated learning whose every round is recorded on an EVM chain and can be audited.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def options(
    debug: Annotated[
        bool, typer.Option("--debug", help="Show an error's traceback instead of its one-line message.")
    ] = False,
) -> None:
    """Options of every command; ``ReportingGroup`` reads ``--debug`` when it reports an error."""


app.add_typer(contracts.app, name="contracts")
app.add_typer(chain.app, name="chain")
app.add_typer(participants.app, name="participants")
app.add_typer(client.app, name="client")
app.command("audit")(audit.audit)
app.command("certs")(certs.certs)

# Commands that need the training stack (``simulate``) live outside this package; they are found
# through entry points, so the core, and an auditor's install, never import them.
for command in entry_points(group="fedledger.commands"):
    app.command(command.name)(command.load())


def main() -> None:
    """Entry point of the ``fedledger`` console script."""
    app()
