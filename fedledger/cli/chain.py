"""``fedledger chain``: deploy the registry, run a local node, show what is on-chain."""

import signal
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer
from rich.table import Table

from fedledger.chain import Chain, Registry
from fedledger.chain.anvil import AnvilNode
from fedledger.cli.common import (
    DeploymentFile,
    Keystore,
    RegistryAddress,
    RpcUrl,
    console,
    open_registry,
    show_table,
)
from fedledger.deployment import DEFAULT_DEPLOYMENT_FILE, Deployment
from fedledger.errors import FedLedgerError
from fedledger.hashing import to_hex
from fedledger.keys import PRIVATE_KEY_ENV, load_sender

app = typer.Typer(help="Deploy the registry, run a local node, show the on-chain record.", no_args_is_help=True)


@app.command()
def deploy(
    rpc_url: Annotated[
        str | None,
        typer.Option(
            "--rpc-url",
            envvar="FEDLEDGER_RPC_URL",
            help="JSON-RPC URL of the node to deploy on. Without it, deploys on a throwaway "
            "in-process chain (a dry run that shows addresses and gas).",
        ),
    ] = None,
    keystore: Keystore = None,
    coordinator: Annotated[
        str | None,
        typer.Option(help="Account granted the coordinator role. Default: the deploying account."),
    ] = None,
    deployment: DeploymentFile = DEFAULT_DEPLOYMENT_FILE,
) -> None:
    """Deploy the FedLedger registry and its contribution token; the deploying account becomes admin.

    On a node (--rpc-url) the deployment is written to the deployment file, which later commands read.
    """
    chain = Chain.open(rpc_url)
    if rpc_url is None:
        sender = chain.signers[0]
    else:
        account = load_sender(keystore)
        if account is None:
            raise FedLedgerError(f"deploying sends a transaction: pass --keystore or set ${PRIVATE_KEY_ENV}")
        sender = chain.add_signer(account)
    registry, receipt = Registry.deploy(chain, sender, coordinator=coordinator)
    console.print(f"registry  {registry.address}")
    console.print(f"token     {registry.token_address}")
    console.print(f"chain id  {chain.chain_id}, block {receipt.block_number}, gas {receipt.gas_used:,}")
    if rpc_url is None:
        console.print(
            "[yellow]this was the in-process chain, gone when this command exits; to keep a deployment, "
            "start a node with `fedledger chain node` and pass --rpc-url[/yellow]"
        )
        return
    Deployment(
        rpc_url=rpc_url,
        chain_id=chain.chain_id,
        registry=registry.address,
        token=registry.token_address,
        admin=sender,
        coordinator=coordinator or sender,
        block=receipt.block_number,
    ).save(deployment)
    console.print(f"deployment written to {deployment}")


@app.command()
def node(
    state_dir: Annotated[
        Path, typer.Option(help="Directory that keeps the chain (blocks, receipts, logs) across restarts.")
    ] = Path(".fedledger") / "anvil",
    port: Annotated[int, typer.Option(help="Port to serve JSON-RPC on.")] = 8545,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
) -> None:
    """Run a local anvil node whose chain persists in STATE_DIR, until Ctrl-C or SIGTERM.

    Every request that can change the chain is saved to STATE_DIR/state.json before it is
    answered, so a transaction whose receipt a client has seen survives anvil being killed.
    anvil comes from the project's npm install (`npm ci`), the PATH, or $FEDLEDGER_ANVIL.
    Its funded development accounts and their keys are listed in STATE_DIR/anvil.json.
    """
    anvil = AnvilNode(state_dir, port=port, host=host)
    restart = f"fedledger chain node --state-dir {state_dir} --port {port} --host {host}"
    resumed = "resumed" if anvil.state_file.exists() else "new chain"
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    try:
        anvil.start()
        console.print(f"anvil serving {anvil.rpc_url} ({resumed}, state in {anvil.state_file})")
        console.print(f"development accounts and keys: {anvil.accounts_file}")
        console.print("press Ctrl-C to stop (every change is saved as it happens)")
        exit_code: int | None = anvil.wait()
    except KeyboardInterrupt:
        exit_code = None
    finally:
        anvil.stop()
    if exit_code is not None:
        ended = f"was killed by signal {-exit_code}" if exit_code < 0 else f"exited with code {exit_code}"
        raise FedLedgerError(
            f"anvil {ended} (its output is in {anvil.log_file}); the chain is saved up to its last "
            f"answered request: restart it with `{restart}`"
        )
    console.print("anvil stopped; chain saved")


def _stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


@app.command()
def status(
    rpc_url: RpcUrl = None,
    registry: RegistryAddress = None,
    deployment: DeploymentFile = DEFAULT_DEPLOYMENT_FILE,
) -> None:
    """Show the chain, the registry, its participants and every run with its committed rounds."""
    handle = open_registry(rpc_url, registry, deployment)
    chain = handle.chain
    participants = handle.participants()
    active = sum(record.active for record in participants)
    console.print(f"node       {chain.description} (chain id {chain.chain_id}, block {chain.block_number})")
    console.print(f"registry   {handle.address}")
    console.print(f"token      {handle.token_address}")
    console.print(f"participants {active} active of {len(participants)} registered")
    runs = Table("run", "coordinator", "started at block", "rounds", "latest model hash")
    for run_id in range(1, handle.run_count() + 1):
        run = handle.run(run_id)
        latest = (
            handle.committed_round(run_id, run.committed_rounds).commitment.model_hash
            if run.committed_rounds
            else run.initial_model_hash
        )
        runs.add_row(str(run_id), run.coordinator, str(run.start_block), str(run.committed_rounds), to_hex(latest))
    show_table(runs)
