"""The registry admin's commands: coordinators' run allowances, the privacy limit on every run, and
handing the admin role over in two steps."""

import math
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from fedledger.chain import ContractRevert, Registry
from fedledger.cli.common import (
    DeploymentFile,
    Keystore,
    RegistryAddress,
    RpcUrl,
    check_address,
    console,
    open_registry,
    require_sender,
)
from fedledger.deployment import DEFAULT_DEPLOYMENT_FILE, Deployment
from fedledger.errors import FedLedgerError
from fedledger.privacy import DELTA_SCALE, EPSILON_SCALE
from fedledger.rewards import TOKEN_DECIMALS, format_tokens

#: The largest run allowance, in whole tokens, that fits the contract's uint256 in token units.
MAX_ALLOWANCE_TOKENS = (2**256 - 1) // 10**TOKEN_DECIMALS

app = typer.Typer(
    help="Hand the admin role over in two steps: the admin starts a transfer, and the new admin accepts "
    "it once the registry's admin-transfer delay has passed.",
    no_args_is_help=True,
)


def allowance(
    coordinator: Annotated[
        str, typer.Argument(help="The coordinator's account (its hot key's address).", callback=check_address)
    ],
    tokens: Annotated[
        int | None,
        typer.Argument(
            min=0,
            max=MAX_ALLOWANCE_TOKENS,
            help="The new allowance, in whole tokens. Without it, the allowance is shown.",
        ),
    ] = None,
    rpc_url: RpcUrl = None,
    registry: RegistryAddress = None,
    deployment: DeploymentFile = DEFAULT_DEPLOYMENT_FILE,
    keystore: Keystore = None,
) -> None:
    """Set what COORDINATOR may still budget for the runs it starts (admin only); without TOKENS, show it.

    Starting a run takes its budget, reward per round times planned rounds, out of the allowance,
    so a coordinator key can never make the token mint more than the admin allowed.
    """
    handle = open_registry(rpc_url, registry, deployment, keystore)
    current = handle.run_allowance(coordinator)
    if tokens is None:
        console.print(f"run allowance of {coordinator}: {format_tokens(current)} tokens")
        return
    _require_admin(handle)
    receipt = handle.set_run_allowance(coordinator, tokens * 10**TOKEN_DECIMALS, expected=current)
    console.print(
        f"run allowance of {coordinator}: {format_tokens(current)} -> {tokens:,} tokens (block {receipt.block_number})"
    )
    if not handle.is_coordinator(coordinator):
        console.print(f"[yellow]{coordinator} does not hold the coordinator role on this registry[/yellow]")


def privacy_limit(
    epsilon: Annotated[
        float | None,
        typer.Argument(min=0, help="The most ε any run may be started with; 0 (with DELTA 0) removes the limit."),
    ] = None,
    delta: Annotated[float | None, typer.Argument(min=0, max=1, help="The most δ any run may be started with.")] = None,
    rpc_url: RpcUrl = None,
    registry: RegistryAddress = None,
    deployment: DeploymentFile = DEFAULT_DEPLOYMENT_FILE,
    keystore: Keystore = None,
) -> None:
    """Set the most differential-privacy budget (ε, δ) any run may be started with (admin only);
    without EPSILON and DELTA, show it. While a limit is set, a run without a budget is refused."""
    handle = open_registry(rpc_url, registry, deployment, keystore)
    current = handle.privacy_limit()
    shown = (
        "none" if current.epsilon == 0 else f"ε={current.epsilon / EPSILON_SCALE:g}, δ={current.delta / DELTA_SCALE:g}"
    )
    if epsilon is None:
        console.print(f"privacy limit: {shown}")
        return
    if delta is None:
        raise FedLedgerError("give both EPSILON and DELTA (0 0 removes the limit)")
    _require_admin(handle)
    receipt = handle.set_privacy_limit(math.floor(epsilon * EPSILON_SCALE), math.floor(delta * DELTA_SCALE))
    new = "none" if epsilon == 0 else f"ε={epsilon:g}, δ={delta:g}"
    console.print(f"privacy limit: {shown} -> {new} (block {receipt.block_number})")


@app.command()
def transfer(
    new_admin: Annotated[str, typer.Argument(help="The account to hand the admin role to.", callback=check_address)],
    rpc_url: RpcUrl = None,
    registry: RegistryAddress = None,
    deployment: DeploymentFile = DEFAULT_DEPLOYMENT_FILE,
    keystore: Keystore = None,
) -> None:
    """Start handing the admin role to NEW_ADMIN (admin only), replacing any transfer under way.

    NEW_ADMIN takes it with `fedledger chain admin accept` once the delay has passed; until then the
    admin can cancel it.
    """
    handle = open_registry(rpc_url, registry, deployment, keystore)
    _require_admin(handle)
    pending, receipt = handle.begin_admin_transfer(new_admin)
    console.print(f"admin transfer to {pending.new_admin} started in block {receipt.block_number}")
    console.print(f"it can be accepted after {utc(pending.accept_after)}, with `fedledger chain admin accept`")


@app.command()
def accept(
    rpc_url: RpcUrl = None,
    registry: RegistryAddress = None,
    deployment: DeploymentFile = DEFAULT_DEPLOYMENT_FILE,
    keystore: Keystore = None,
) -> None:
    """Take the admin role, as the account a transfer was started to, once its delay has passed.

    Whether it has passed is decided by the registry, against the time of the block that takes the
    role. The deployment file, when it names this registry, is updated with the new admin.
    """
    handle = open_registry(rpc_url, registry, deployment, keystore)
    require_sender(handle)
    pending = handle.pending_admin()
    if pending is None:
        raise FedLedgerError(f"no admin transfer is under way on registry {handle.address}")
    if pending.new_admin != handle.sender:
        raise FedLedgerError(f"the admin transfer under way is to {pending.new_admin}, not to {handle.sender}")
    try:
        receipt = handle.accept_admin_transfer()
    except ContractRevert as revert:
        if revert.name != "AccessControlEnforcedDefaultAdminDelay":
            raise
        raise FedLedgerError(
            f"the admin transfer to {pending.new_admin} can be accepted after {utc(pending.accept_after)} "
            f"by the chain's clock, not yet: the registry refused it ({revert})"
        ) from None
    console.print(f"{handle.sender} is the admin of registry {handle.address} (block {receipt.block_number})")
    _record_admin(deployment, handle)


@app.command()
def cancel(
    rpc_url: RpcUrl = None,
    registry: RegistryAddress = None,
    deployment: DeploymentFile = DEFAULT_DEPLOYMENT_FILE,
    keystore: Keystore = None,
) -> None:
    """Cancel the admin transfer under way (admin only)."""
    handle = open_registry(rpc_url, registry, deployment, keystore)
    _require_admin(handle)
    pending = handle.pending_admin()
    if pending is None:
        raise FedLedgerError(f"no admin transfer is under way on registry {handle.address}")
    receipt = handle.cancel_admin_transfer()
    console.print(f"admin transfer to {pending.new_admin} cancelled in block {receipt.block_number}")


def _require_admin(handle: Registry) -> None:
    """Fail before sending when the sending key is not the registry's admin."""
    require_sender(handle)
    admin = handle.admin()
    if handle.sender != admin:
        raise FedLedgerError(f"only the admin of registry {handle.address} ({admin}) may do this, not {handle.sender}")


def _record_admin(deployment_file: Path, handle: Registry) -> None:
    if not deployment_file.exists():
        return
    record = Deployment.load(deployment_file)
    if record.registry == handle.address:
        replace(record, admin=handle.sender).save(deployment_file)
        console.print(f"{deployment_file} updated")


def utc(timestamp: int) -> str:
    """A chain timestamp (Unix seconds) as a UTC date and time."""
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
