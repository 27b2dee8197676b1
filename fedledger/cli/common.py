"""Options and helpers shared by the ``fedledger`` commands."""

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import click
import typer
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table
from typer.core import TyperGroup
from web3 import Web3

from fedledger.chain import Chain, Registry
from fedledger.deployment import LEDGER_FILE, Deployment, LedgerLocation
from fedledger.errors import FedLedgerError
from fedledger.keys import KEYSTORE_PASSWORD_ENV, PRIVATE_KEY_ENV, load_sender
from fedledger.store import ArtifactStore

console = Console(soft_wrap=True)
error_console = Console(stderr=True, soft_wrap=True, highlight=False)


def show_table(table: Table) -> None:
    """Print ``table`` without wrapping cells: addresses and hashes must stay whole to be usable."""
    natural_width = Measurement.get(console, console.options.update_width(10_000), table).maximum
    Console(width=max(console.width, natural_width)).print(table)


class ReportingGroup(TyperGroup):
    """A command group that reports FedLedger errors as one unwrapped line and exit code 1."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except FedLedgerError as error:
            error_console.print(f"error: {error}", style="red", markup=False)
            raise click.exceptions.Exit(1) from error


RpcUrl = Annotated[
    str | None,
    typer.Option(
        "--rpc-url",
        envvar="FEDLEDGER_RPC_URL",
        help="JSON-RPC URL of the Ethereum node. Default: the one in the deployment file.",
    ),
]
RegistryAddress = Annotated[
    str | None,
    typer.Option(
        "--registry",
        envvar="FEDLEDGER_REGISTRY",
        help="Address of the FedLedger registry contract. Default: the one in the deployment file.",
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
    """Connect to the registry; with a sending key (keystore or environment) when one is set."""
    url, address = locate_registry(rpc_url, registry, deployment_file)
    chain = Chain.connect(url)
    sender = load_sender(keystore)
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
Store = Annotated[
    str | None, typer.Option("--store", help="The artifact store: a directory or an fsspec URL (e.g. s3://bucket/x).")
]
ChainFile = Annotated[
    Path | None,
    typer.Option(
        "--chain-file",
        dir_okay=False,
        help="A saved in-process chain (a run's chain.json), replayed instead of connecting to a node; "
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


def checksum_address(value: str, what: str) -> str:
    """``value`` as a checksummed Ethereum address; a clear error naming ``what`` when it is not one."""
    if not Web3.is_address(value):
        raise FedLedgerError(f"{what} {value!r} is not an Ethereum address")
    return Web3.to_checksum_address(value)
