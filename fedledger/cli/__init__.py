"""The ``fedledger`` command line."""

from collections.abc import Callable
from importlib.metadata import EntryPoint, entry_points
from typing import Annotated

import typer

from fedledger.cli import audit, auditor, certs, chain, client, contracts, participants
from fedledger.cli.common import ReportingGroup
from fedledger.errors import FedLedgerError

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
app.add_typer(auditor.app, name="auditor")
app.command("audit")(audit.audit)
app.command("certs")(certs.certs)


def unloadable(command: EntryPoint, error: Exception) -> Callable[[], None]:
    """A stand-in for a command whose entry point fails to load: running it reports why in one line,
    and every other command still works."""
    distribution = command.dist.name if command.dist is not None else "the package that declares it"

    def report() -> None:
        raise FedLedgerError(
            f"command {command.name} (from {distribution}) cannot be loaded: {type(error).__name__}: {error}; "
            f"reinstall {distribution}, or uninstall it to drop the command"
        )

    report.__doc__ = f"(cannot be loaded: run it to see why; declared by {distribution})"
    return report


# Commands that need the training stack (``simulate``) live outside this package; they are found
# through entry points, so the core, and an auditor's install, never import them. A plugin that
# fails to load (a stale install, a missing module) breaks only its own command.
for command in entry_points(group="fedledger.commands"):
    try:
        app.command(command.name)(command.load())
    except Exception as error:  # a plugin's import may fail in any way
        app.command(command.name, context_settings={"ignore_unknown_options": True, "allow_extra_args": True})(
            unloadable(command, error)
        )


def main() -> None:
    """Entry point of the ``fedledger`` console script."""
    app()
