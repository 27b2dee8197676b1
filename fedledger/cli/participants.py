"""``fedledger participants``: the registry's allow-list of participants."""

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from fedledger.cli.common import (
    DeploymentFile,
    Keystore,
    RegistryAddress,
    RpcUrl,
    console,
    open_registry,
    require_sender,
    show_table,
)
from fedledger.deployment import DEFAULT_DEPLOYMENT_FILE
from fedledger.errors import FedLedgerError
from fedledger.hashing import ZERO_HASH, from_hex, keccak256, to_hex

app = typer.Typer(help="Manage the allow-list of participants (admin only for changes).", no_args_is_help=True)

Address = Annotated[str, typer.Argument(help="The participant's Ethereum address (the key that signs its updates).")]


@app.command()
def add(
    address: Address,
    metadata: Annotated[
        Path | None,
        typer.Option(
            help="File describing the participant (kept off-chain); only its Keccak-256 hash is recorded. "
            "Put no personal data in it that must not be linkable."
        ),
    ] = None,
    metadata_hash: Annotated[str | None, typer.Option(help="The metadata hash itself, as 0x-prefixed hex.")] = None,
    rpc_url: RpcUrl = None,
    registry: RegistryAddress = None,
    deployment: DeploymentFile = DEFAULT_DEPLOYMENT_FILE,
    keystore: Keystore = None,
) -> None:
    """Add ADDRESS to the allow-list, with the hash of its metadata."""
    if metadata is not None and metadata_hash is not None:
        raise FedLedgerError("give --metadata or --metadata-hash, not both")
    if metadata is not None:
        digest = keccak256(metadata.read_bytes())
    elif metadata_hash is not None:
        digest = from_hex(metadata_hash, what="--metadata-hash")
    else:
        digest = ZERO_HASH
    handle = open_registry(rpc_url, registry, deployment, keystore)
    require_sender(handle)
    receipt = handle.add_participant(address, digest)
    console.print(f"added {address} (metadata hash {to_hex(digest)}) in block {receipt.block_number}")


@app.command()
def deactivate(
    address: Address,
    rpc_url: RpcUrl = None,
    registry: RegistryAddress = None,
    deployment: DeploymentFile = DEFAULT_DEPLOYMENT_FILE,
    keystore: Keystore = None,
) -> None:
    """Deactivate ADDRESS for good: it can no longer take part or claim. Its record stays for audits."""
    handle = open_registry(rpc_url, registry, deployment, keystore)
    require_sender(handle)
    receipt = handle.deactivate_participant(address)
    console.print(f"deactivated {address} in block {receipt.block_number}")


@app.command("list")
def list_participants(
    rpc_url: RpcUrl = None,
    registry: RegistryAddress = None,
    deployment: DeploymentFile = DEFAULT_DEPLOYMENT_FILE,
) -> None:
    """List every participant ever registered, active or not."""
    handle = open_registry(rpc_url, registry, deployment)
    table = Table("address", "status", "registered at block", "deactivated at block", "metadata hash")
    for record in handle.participants():
        status = "active" if record.active else "deactivated"
        deactivated = str(record.deactivated_at_block) if not record.active else ""
        table.add_row(
            record.address, status, str(record.registered_at_block), deactivated, to_hex(record.metadata_hash)
        )
    show_table(table)
