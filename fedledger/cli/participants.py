"""``fedledger participants``: the registry's allow-list of participants."""

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from fedledger.cli.common import (
    DeploymentFile,
    Keystore,
    RegistryAddress,
    RpcUrl,
    check_address,
    console,
    open_registry,
    require_sender,
    show_table,
)
from fedledger.deployment import DEFAULT_DEPLOYMENT_FILE
from fedledger.errors import FedLedgerError
from fedledger.hashing import ZERO_HASH, from_hex, keccak256, to_hex

app = typer.Typer(help="Manage the allow-list of participants (admin only for changes).", no_args_is_help=True)

Address = Annotated[
    str,
    typer.Argument(help="The participant's Ethereum address (the key that signs its updates).", callback=check_address),
]


@app.command()
def add(
    address: Address,
    metadata: Annotated[
        Path | None,
        typer.Option(
            exists=True,
            dir_okay=False,
            help="File describing the participant (kept off-chain); only its Keccak-256 hash is recorded. "
            "Put no personal data in it that must not be linkable.",
        ),
    ] = None,
    metadata_hash: Annotated[str | None, typer.Option(help="The metadata hash itself, as 0x-prefixed hex.")] = None,
    supernode_key: Annotated[
        Path | None,
        typer.Option(
            help="The participant's SuperNode public key (supernode-auth-key.pub from `fedledger client init`): "
            "also registered with the SuperLink through `flwr supernode register`."
        ),
    ] = None,
    superlink: Annotated[
        str | None, typer.Option(help="The `flwr` CLI's SuperLink connection to register the SuperNode key with.")
    ] = None,
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
        try:
            digest = from_hex(metadata_hash, what="--metadata-hash")
        except ValueError as error:
            raise FedLedgerError(str(error)) from None
    else:
        digest = ZERO_HASH
    if supernode_key is not None and not supernode_key.is_file():
        raise FedLedgerError(f"SuperNode public key {supernode_key} does not exist")
    handle = open_registry(rpc_url, registry, deployment, keystore)
    require_sender(handle)
    receipt = handle.add_participant(address, digest)
    console.print(f"added {address} (metadata hash {to_hex(digest)}) in block {receipt.block_number}")
    if supernode_key is not None:
        register_supernode(supernode_key, superlink)
        console.print(f"registered its SuperNode key {supernode_key} with the SuperLink")


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


def register_supernode(public_key: Path, superlink: str | None) -> None:
    """Register a SuperNode public key with the SuperLink through the `flwr` CLI.

    Raises:
        FedLedgerError: `flwr` is not installed or refused; the message says how to retry.
    """
    flwr = shutil.which("flwr") or str(Path(sys.executable).parent / "flwr")
    command = [flwr, "supernode", "register", str(public_key), *([superlink] if superlink else [])]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    except FileNotFoundError:
        raise FedLedgerError(
            "the `flwr` CLI is not installed: pip install flwr, then register the key with it"
        ) from None
    if result.returncode != 0:
        retry = " ".join(["flwr", *command[1:]])
        output = (result.stdout + result.stderr).strip()[-500:]
        raise FedLedgerError(
            f"the participant is on the chain's allow-list, but its SuperNode key was not registered "
            f"({output}); retry with: {retry}"
        )
