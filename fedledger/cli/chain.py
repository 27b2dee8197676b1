"""``fedledger chain``: deploy the registry, run a local node, show what is on-chain, and the admin's commands."""

from pathlib import Path
from typing import Annotated

import typer
from eth_account.signers.local import LocalAccount
from rich.table import Table

from fedledger.chain import Chain, Registry
from fedledger.chain.anvil import AnvilNode
from fedledger.chain.registry import DEFAULT_ADMIN_TRANSFER_DELAY
from fedledger.cli import admin
from fedledger.cli.common import (
    DeploymentFile,
    Keystore,
    RegistryAddress,
    RpcUrl,
    check_address,
    check_rpc_url,
    console,
    interrupt_on_signals,
    open_registry,
    show_table,
)
from fedledger.deployment import DEFAULT_DEPLOYMENT_FILE, Deployment
from fedledger.errors import FedLedgerError
from fedledger.hashing import to_hex
from fedledger.keys import PRIVATE_KEY_ENV, load_sender
from fedledger.rewards import TOKEN_DECIMALS, format_tokens

app = typer.Typer(
    help="Deploy the registry, run a local node, show the on-chain record; the admin's allowances and transfers.",
    no_args_is_help=True,
)
app.command("allowance")(admin.allowance)
app.command("privacy-limit")(admin.privacy_limit)
app.add_typer(admin.app, name="admin")

#: What the dry run gives the deploying key, from a development account, to pay for the deployment.
DRY_RUN_FUNDS = 10**18


@app.command()
def deploy(
    rpc_url: Annotated[
        str | None,
        typer.Option(
            "--rpc-url",
            envvar="FEDLEDGER_RPC_URL",
            help="JSON-RPC URL of the node to deploy on. Without it, deploys on a throwaway "
            "in-process chain (a dry run that shows addresses and gas).",
            callback=check_rpc_url,
        ),
    ] = None,
    keystore: Keystore = None,
    admin_address: Annotated[
        str | None,
        typer.Option(
            "--admin",
            help="Account given the admin role: it manages participants, sets run allowances and hands the "
            "role over. Keep its key cold. Default: the deploying account.",
            callback=check_address,
        ),
    ] = None,
    coordinator: Annotated[
        str | None,
        typer.Option(
            help="Account given the coordinator role: the hot key on the SuperLink host that starts runs and "
            "commits rounds. On a node it must differ from the admin unless --single-key is given.",
            callback=check_address,
        ),
    ] = None,
    single_key: Annotated[
        bool,
        typer.Option(
            "--single-key",
            help="Let one key be admin and coordinator, for a development chain: whoever holds it can "
            "grant itself any run allowance.",
        ),
    ] = False,
    admin_delay: Annotated[
        int,
        typer.Option(
            min=0,
            max=2**48 - 1,
            help="Seconds between the admin starting a transfer of its role and the new admin accepting it.",
        ),
    ] = DEFAULT_ADMIN_TRANSFER_DELAY,
    allowance: Annotated[
        int,
        typer.Option(
            min=0,
            max=admin.MAX_ALLOWANCE_TOKENS,
            help="Run allowance granted to the coordinator, in whole tokens; sent by the admin, so the "
            "deploying account must be the admin. Later: `fedledger chain allowance`.",
        ),
    ] = 0,
    deployment: DeploymentFile = DEFAULT_DEPLOYMENT_FILE,
) -> None:
    """Deploy the FedLedger registry and its contribution token, with an admin (a cold key) and a
    coordinator (the hot key on the SuperLink host).

    On a node (--rpc-url) the deployment is written to the deployment file, which later commands read,
    before the allowance is granted. Without --rpc-url the same deployment is rehearsed on a throwaway
    in-process chain, from the given key (funded by a development account) or else a development account.
    """
    account = load_sender(keystore)
    chain = Chain.open(rpc_url)
    if rpc_url is None:
        sender = chain.signers[0] if account is None else _funded_on_dry_run(chain, account)
    elif account is None:
        raise FedLedgerError(f"deploying sends a transaction: pass --keystore or set ${PRIVATE_KEY_ENV}")
    else:
        sender = chain.add_signer(account)
    admin_account = admin_address or sender
    coordinator_account = coordinator or sender
    if rpc_url is not None and admin_account == coordinator_account and not single_key:
        raise FedLedgerError(
            f"refusing to make {admin_account} both admin and coordinator: pass --coordinator with the "
            "coordinator's own (hot) key and keep the admin key cold, or --single-key on a development chain"
        )
    if allowance and admin_account != sender:
        raise FedLedgerError(
            f"--allowance is granted by the admin {admin_account}, not by the deploying account {sender}: "
            "grant it after the deployment with `fedledger chain allowance` and the admin's key"
        )

    registry, receipt = Registry.deploy(chain, sender, admin_account, coordinator_account, admin_delay)
    console.print(f"registry     {registry.address}")
    console.print(f"token        {registry.token_address}")
    console.print(f"chain id     {chain.chain_id}, block {receipt.block_number}, gas {receipt.gas_used:,}")
    console.print(f"admin        {admin_account} (transfer delay {admin_delay:,} s)")
    console.print(f"coordinator  {coordinator_account}")
    if rpc_url is not None:
        Deployment(
            rpc_url=rpc_url,
            chain_id=chain.chain_id,
            registry=registry.address,
            token=registry.token_address,
            admin=admin_account,
            coordinator=coordinator_account,
            block=receipt.block_number,
        ).save(deployment)
        console.print(f"deployment written to {deployment}")
    if allowance:
        try:
            registry.set_run_allowance(coordinator_account, allowance * 10**TOKEN_DECIMALS, expected=0)
        except FedLedgerError as error:
            if rpc_url is None:
                raise
            raise FedLedgerError(
                f"registry {registry.address} is deployed and recorded in {deployment}, but granting the "
                f"coordinator's run allowance failed: {error}; grant it with `fedledger chain allowance "
                f"{coordinator_account} {allowance} --deployment {deployment}` and the admin's key"
            ) from None
    console.print(f"run allowance of the coordinator: {allowance:,} tokens")
    if rpc_url is None:
        if admin_account == coordinator_account:
            console.print(
                "[yellow]on a node, one key as admin and coordinator is refused: pass --coordinator "
                "(or --single-key on a development chain)[/yellow]"
            )
        console.print(
            "[yellow]this was the in-process chain, gone when this command exits; to keep a deployment, "
            "start a node with `fedledger chain node` and pass --rpc-url[/yellow]"
        )


def _funded_on_dry_run(chain: Chain, account: LocalAccount) -> str:
    """Let the in-process chain send from ``account``, funded by its first development account."""
    sender = chain.add_signer(account)
    chain.send_value(chain.signers[0], sender, DRY_RUN_FUNDS)
    return sender


@app.command()
def node(
    state_dir: Annotated[
        Path,
        typer.Option(file_okay=False, help="Directory that keeps the chain (blocks, receipts, logs) across restarts."),
    ] = Path(".fedledger") / "anvil",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to serve JSON-RPC on.")] = 8545,
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
    interrupt_on_signals()
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


@app.command()
def status(
    rpc_url: RpcUrl = None,
    registry: RegistryAddress = None,
    deployment: DeploymentFile = DEFAULT_DEPLOYMENT_FILE,
) -> None:
    """Show the chain, the registry, its admin, its participants and every run with its committed rounds."""
    handle = open_registry(rpc_url, registry, deployment)
    chain = handle.chain
    participants = handle.participants()
    active = sum(record.active for record in participants)
    pending = handle.pending_admin()
    console.print(f"node       {chain.description} (chain id {chain.chain_id}, block {chain.block_number})")
    console.print(f"registry   {handle.address}")
    console.print(f"token      {handle.token_address}")
    console.print(f"admin      {handle.admin()} (transfer delay {handle.admin_transfer_delay():,} s)")
    if pending is not None:
        console.print(
            f"admin transfer to {pending.new_admin} under way, to be accepted after {admin.utc(pending.accept_after)}"
        )
    console.print(f"participants {active} active of {len(participants)} registered")
    runs = Table("run", "coordinator", "started at block", "rounds", "budget (tokens)", "latest model hash")
    for run_id in range(1, handle.run_count() + 1):
        run = handle.run(run_id)
        latest = (
            handle.committed_round(run_id, run.committed_rounds).commitment.model_hash
            if run.committed_rounds
            else run.initial_model_hash
        )
        runs.add_row(
            str(run_id),
            run.coordinator,
            str(run.start_block),
            f"{run.committed_rounds} of {run.planned_rounds}",
            format_tokens(run.budget),
            to_hex(latest),
        )
    show_table(runs)
