"""Options and helpers shared by the ``fedledger`` commands."""

import shutil
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Annotated
from urllib.parse import urlsplit

import click
import typer
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table
from typer.core import TyperGroup

from fedledger.addresses import checksum_address
from fedledger.chain import Chain, Registry
from fedledger.deployment import LEDGER_FILE, Deployment, LedgerLocation
from fedledger.errors import FedLedgerError
from fedledger.keys import KEYSTORE_ENV, KEYSTORE_PASSWORD_ENV, PRIVATE_KEY_ENV, load_sender
from fedledger.store import ArtifactStore

console = Console(soft_wrap=True)
error_console = Console(stderr=True, soft_wrap=True, highlight=False)


def fedledger_command() -> str:
    """What to type to run this ``fedledger`` again from here: ``fedledger`` when that is the one on PATH,
    else its path (``.venv/bin/fedledger`` after ``make run``), so that the commands a run prints work as shown."""
    running = Path(sys.argv[0])
    if running.name != "fedledger":
        return "fedledger"
    on_path = shutil.which("fedledger")
    if on_path is not None and Path(on_path).resolve() == running.resolve():
        return "fedledger"
    try:
        return str(running.absolute().relative_to(Path.cwd()))
    except ValueError:
        return str(running.absolute())


def show_table(table: Table) -> None:
    """Print ``table`` without wrapping cells: addresses and hashes must stay whole to be usable."""
    natural_width = Measurement.get(console, console.options.update_width(10_000), table).maximum
    Console(width=max(console.width, natural_width)).print(table)


class ReportingGroup(TyperGroup):
    """A command group that reports every error as one unwrapped line on stderr, never a traceback.

    FedLedger errors say what was wrong and exit 1; usage errors (an unknown option, a value out of
    range) exit 2; any other exception is reported by its type and message and exits 1. With
    ``--debug`` (a parameter of the group), FedLedger errors and other exceptions show their traceback.
    """

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        with _one_line_errors(debug=False):
            return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> object:
        with _one_line_errors(debug=bool(ctx.params.get("debug"))):
            return super().invoke(ctx)


@contextmanager
def _one_line_errors(debug: bool) -> Iterator[None]:
    """Report what the block raises as one line and exit; with ``debug``, let the exception through."""
    try:
        yield
    except (click.exceptions.Exit, click.Abort, click.exceptions.NoArgsIsHelpError, BrokenPipeError):
        raise
    except click.UsageError as error:
        hint = f" (see '{error.ctx.command_path} --help')" if error.ctx is not None else ""
        _report(f"{error.format_message().rstrip('.')}{hint}")
        raise click.exceptions.Exit(error.exit_code) from error
    except click.ClickException as error:
        _report(error.format_message())
        raise click.exceptions.Exit(error.exit_code) from error
    except FedLedgerError as error:
        if debug:
            raise
        _report(str(error))
        raise click.exceptions.Exit(1) from error
    except Exception as error:
        if debug:
            raise
        _report(f"unexpected {type(error).__name__}: {error} (run with --debug for the traceback)")
        raise click.exceptions.Exit(1) from error


def _report(message: str) -> None:
    error_console.print(f"error: {' '.join(message.split())}", style="red", markup=False)


def source_name(ctx: click.Context, param: click.Parameter) -> str:
    """How the user gave ``param``: its option name, or the environment variable it came from."""
    envvar = param.envvar if isinstance(param.envvar, str) else None
    if envvar and ctx.get_parameter_source(param.name or "") == click.core.ParameterSource.ENVIRONMENT:
        return f"${envvar}"
    return param.opts[0] if isinstance(param, click.Option) else param.human_readable_name


def check_address(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """Option and argument callback: an Ethereum address, checksummed (see ``fedledger.addresses``)."""
    return None if value is None else checksum_address(value, source_name(ctx, param))


def check_node_access(rpc_url: str) -> None:
    """Fail before the federation starts when the coordinator could not record on the node at ``rpc_url``.

    Raises:
        FedLedgerError: no coordinator key is set, or no node answers at ``rpc_url``.
    """
    if load_sender(None) is None:
        raise FedLedgerError(
            f"recording on {rpc_url} needs the coordinator's key: set ${PRIVATE_KEY_ENV} or ${KEYSTORE_ENV}"
        )
    Chain.connect(rpc_url)


def check_rpc_url(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """Option callback: an HTTP(S) URL with a host, the only kind of node URL FedLedger connects to."""
    if value is None:
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise FedLedgerError(
            f"{source_name(ctx, param)} {value!r} is not an HTTP(S) URL of a JSON-RPC node "
            "(for example http://127.0.0.1:8545)"
        )
    return value


RpcUrl = Annotated[
    str | None,
    typer.Option(
        "--rpc-url",
        envvar="FEDLEDGER_RPC_URL",
        help="JSON-RPC URL of the Ethereum node. Default: the one in the deployment file.",
        callback=check_rpc_url,
    ),
]
RegistryAddress = Annotated[
    str | None,
    typer.Option(
        "--registry",
        envvar="FEDLEDGER_REGISTRY",
        help="Address of the FedLedger registry contract. Default: the one in the deployment file.",
        callback=check_address,
    ),
]
DeploymentFile = Annotated[
    Path,
    typer.Option(
        "--deployment",
        envvar="FEDLEDGER_DEPLOYMENT",
        help="Deployment file written by `fedledger chain deploy` (node URL and registry address).",
    ),
]
Keystore = Annotated[
    Path | None,
    typer.Option(
        "--keystore",
        help=f"Encrypted keystore of the account that sends transactions; its password comes from "
        f"${KEYSTORE_PASSWORD_ENV} or a prompt. Without it, the key in ${PRIVATE_KEY_ENV} is used.",
    ),
]


def locate_registry(rpc_url: str | None, registry: str | None, deployment_file: Path) -> tuple[str, str]:
    """The node URL and registry address: as given, else from the deployment file."""
    if rpc_url is not None and registry is not None:
        return rpc_url, registry
    if not deployment_file.exists():
        missing = " and ".join(
            option for option, value in (("--rpc-url", rpc_url), ("--registry", registry)) if value is None
        )
        raise FedLedgerError(f"no deployment file at {deployment_file}: pass {missing}, or deploy first")
    deployment = Deployment.load(deployment_file)
    return rpc_url or deployment.rpc_url, registry or deployment.registry


def open_registry(
    rpc_url: str | None, registry: str | None, deployment_file: Path, keystore: Path | None = None
) -> Registry:
    """Connect to the registry; with a sending key (keystore or environment) when one is set.

    The key is loaded first, so that a bad keystore or password is reported before any node is asked.
    """
    sender = load_sender(keystore)
    url, address = locate_registry(rpc_url, registry, deployment_file)
    chain = Chain.connect(url)
    if sender is None:
        return Registry(chain, address)
    return Registry(chain, address, chain.add_signer(sender))


Simulation = Annotated[
    Path | None,
    typer.Option(
        "--simulation",
        help="Output directory of a finished run (`fedledger simulate`, `flwr run`): its chain (node or saved "
        "in-process chain), registry, run and store are read from its ledger.json.",
    ),
]
RunIds = Annotated[
    list[int] | None, typer.Option("--run", min=1, help="Only this run (repeatable). Default: all runs.")
]
Store = Annotated[
    str | None,
    typer.Option(
        "--store",
        help="The artifact store: a directory or an fsspec URL (e.g. s3://bucket/x).",
    ),
]
ChainFile = Annotated[
    Path | None,
    typer.Option(
        "--chain-file",
        dir_okay=False,
        help="A saved in-process chain (a run's chain.jsonl), replayed instead of connecting to a node; "
        "not with --rpc-url.",
    ),
]


@dataclass(frozen=True)
class History:
    """A registry and the artifact store beside it, the runs asked about (``None``: all), and the
    saved chain the registry was replayed from (``None`` on a node)."""

    registry: Registry
    store: ArtifactStore
    run_ids: list[int] | None
    saved_chain: Path | None


def open_history(
    simulation: Path | None,
    rpc_url: str | None,
    registry: str | None,
    store: str | None,
    deployment_file: Path,
    run_ids: list[int] | None,
    chain_file: Path | None = None,
) -> History:
    """The record to read: a finished run's directory (options given override its ledger.json), or
    a node or saved chain, a registry and a store given directly. Reading creates nothing.

    Raises:
        FedLedgerError: an input is missing, contradicts another, or names nothing that exists.
    """
    if rpc_url is not None and chain_file is not None:
        raise FedLedgerError("pass --rpc-url (a node, also read from $FEDLEDGER_RPC_URL) or --chain-file, not both")
    if simulation is not None:
        location = LedgerLocation.load(simulation)
        if rpc_url is not None and location.saved_chain and chain_file is None:
            raise FedLedgerError(
                f"the run in {simulation} was recorded on an in-process chain, saved in {location.saved_chain}: "
                "drop --rpc-url (also read from $FEDLEDGER_RPC_URL)"
            )
        artifacts = ArtifactStore.existing(store or location.store)
        saved = chain_file or (Path(location.saved_chain) if location.saved_chain else None)
        node = rpc_url or location.rpc_url
        if saved is not None:
            chain = Chain.restore(saved)
        elif node is not None:
            chain = Chain.connect(node)
        else:
            raise FedLedgerError(
                f"{simulation / LEDGER_FILE} names neither a node nor a saved chain: pass --rpc-url or --chain-file"
            )
        return History(Registry(chain, registry or location.registry), artifacts, run_ids or [location.run_id], saved)
    if store is None:
        raise FedLedgerError("pass --store (the artifact store), or --simulation with a finished run's directory")
    artifacts = ArtifactStore.existing(store)
    if chain_file is not None:
        if registry is None:
            raise FedLedgerError("pass --registry: the registry's address on the saved chain")
        return History(Registry(Chain.restore(chain_file), registry), artifacts, run_ids or None, chain_file)
    url, address = locate_registry(rpc_url, registry, deployment_file)
    return History(Registry(Chain.connect(url), address), artifacts, run_ids or None, None)


def require_sender(registry: Registry) -> None:
    """Fail with a clear message when a write is asked for and no key was given."""
    if registry.sender is None:
        raise FedLedgerError(f"this command sends a transaction: pass --keystore or set ${PRIVATE_KEY_ENV}")


def interrupt_on_signals() -> None:
    """Make SIGINT and SIGTERM raise KeyboardInterrupt in the main thread.

    Explicitly for SIGINT too: a process started with SIGINT ignored (a shell's background job,
    nohup, a test runner's worker) gets no KeyboardInterrupt from Python, and would never stop on it.
    """
    for stop in (signal.SIGINT, signal.SIGTERM):
        signal.signal(stop, _interrupt)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt
