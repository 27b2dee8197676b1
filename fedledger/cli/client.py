"""``fedledger client``: what a participant can check on its own."""

from typing import Annotated

import typer
from rich.table import Table

from fedledger.cli.common import (
    DeploymentFile,
    RegistryAddress,
    RpcUrl,
    Simulation,
    Store,
    console,
    open_history,
    show_table,
)
from fedledger.deployment import DEFAULT_DEPLOYMENT_FILE
from fedledger.errors import FedLedgerError
from fedledger.hashing import from_hex
from fedledger.manifest import RoundManifest
from fedledger.merkle import update_leaf
from fedledger.rewards import TOKEN_DECIMALS
from fedledger.rounds import updates_tree
from fedledger.store import ArtifactError

app = typer.Typer(
    help="A participant's own checks: inclusion of its updates, rewards and claims.", no_args_is_help=True
)


@app.command()
def verify(
    address: Annotated[str, typer.Option("--address", help="The participant's Ethereum address.")],
    simulation: Simulation = None,
    rpc_url: RpcUrl = None,
    registry: RegistryAddress = None,
    store: Store = None,
    run: Annotated[list[int] | None, typer.Option(help="Only this run (repeatable). Default: all runs.")] = None,
    deployment: DeploymentFile = DEFAULT_DEPLOYMENT_FILE,
) -> None:
    """Show, round by round, whether ADDRESS's update was included — its Merkle proof checked by the
    registry contract against the committed updates root — and its reward and whether it was claimed."""
    history = open_history(simulation, rpc_url, registry, store, deployment, run)
    handle = history.registry
    if not handle.chain.w3.is_address(address):
        raise FedLedgerError(f"{address!r} is not an Ethereum address")
    address = handle.chain.w3.to_checksum_address(address)
    for run_id in history.run_ids or range(1, handle.run_count() + 1):
        table = Table("round", "update", "in the committed root", "reward (tokens)", "claimed", title=f"run {run_id}")
        for round_number in range(1, handle.run(run_id).committed_rounds + 1):
            commitment = handle.committed_round(run_id, round_number).commitment
            try:
                manifest = RoundManifest.from_bytes(history.store.get(commitment.manifest_hash))
            except (ArtifactError, ValueError) as error:
                table.add_row(str(round_number), f"manifest unavailable: {error}", "-", "-", "-", style="red")
                continue
            entry = next((item for item in manifest.updates if item.participant == address), None)
            if entry is None:
                status, included = "none sent", "-"
            elif entry.status != "accepted":
                status, included = f"rejected: {entry.reason}", "-"
            else:
                leaf = update_leaf(run_id, round_number, address, from_hex(entry.update_hash), entry.num_examples)
                proof = updates_tree(run_id, round_number, manifest.accepted).proof(leaf)
                on_chain = handle.is_update_included(
                    run_id, round_number, address, from_hex(entry.update_hash), entry.num_examples, proof
                )
                status, included = "accepted", "yes (proof verified on-chain)" if on_chain else "NO"
            reward = entry.reward if entry is not None else 0
            claimed = handle.claimed_amount(run_id, round_number, address)
            table.add_row(
                str(round_number),
                status,
                included,
                f"{reward / 10**TOKEN_DECIMALS:,.4f}",
                "yes" if claimed else ("-" if not reward else "no"),
                style="red" if included == "NO" else None,
            )
        show_table(table)
    console.print(f"token balance of {address}: {handle.token_balance(address) / 10**TOKEN_DECIMALS:,.4f}")
