"""``fedledger client``: what a participant can check on its own."""

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from fedledger.chain import Chain, RewardClaim
from fedledger.cli.common import (
    ChainFile,
    DeploymentFile,
    Keystore,
    RegistryAddress,
    RpcUrl,
    RunIds,
    Simulation,
    Store,
    check_address,
    console,
    interrupt_on_signals,
    open_history,
    show_table,
)
from fedledger.deployment import DEFAULT_DEPLOYMENT_FILE
from fedledger.errors import FedLedgerError
from fedledger.hashing import from_hex
from fedledger.identity import (
    KEYSTORE_FILE,
    PARTICIPANT_FILE,
    SUPERNODE_KEY_FILE,
    SUPERNODE_PUBLIC_KEY_FILE,
    create_participant,
)
from fedledger.keys import (
    KEYSTORE_PASSWORD_ENV,
    PRIVATE_KEY_ENV,
    SIMULATED_GAS_MONEY,
    load_keystore,
    load_sender,
)
from fedledger.manifest import RoundManifest
from fedledger.merkle import update_leaf
from fedledger.rewards import TOKEN_DECIMALS
from fedledger.rounds import reward_proof, updates_tree
from fedledger.signer import SignerServer, SigningPolicy
from fedledger.store import ArtifactError

#: The most rounds one claim transaction carries (about 40,000 gas each).
CLAIM_BATCH = 50

app = typer.Typer(
    help="A participant's own checks: inclusion of its updates, rewards and claims.", no_args_is_help=True
)


@app.command()
def verify(
    address: Annotated[
        str, typer.Option("--address", help="The participant's Ethereum address.", callback=check_address)
    ],
    simulation: Simulation = None,
    rpc_url: RpcUrl = None,
    chain_file: ChainFile = None,
    registry: RegistryAddress = None,
    store: Store = None,
    run: RunIds = None,
    deployment: DeploymentFile = DEFAULT_DEPLOYMENT_FILE,
) -> None:
    """Show, round by round, whether ADDRESS's update was included — its Merkle proof checked by the
    registry contract against the committed updates root — its reward and whether it was claimed, and,
    in a run with differential privacy, the ε spent after the round: ADDRESS's own under local DP, the
    run's under central DP."""
    history = open_history(simulation, rpc_url, registry, store, deployment, run, chain_file)
    handle = history.registry
    for run_id in history.run_ids or range(1, handle.run_count() + 1):
        rows: list[tuple[list[str], str | None]] = []
        private = False
        for round_number in range(1, handle.run(run_id).committed_rounds + 1):
            committed = handle.committed_round(run_id, round_number, history.store)
            commitment = committed.commitment
            try:
                manifest = RoundManifest.from_bytes(history.store.get(commitment.manifest_hash))
            except (ArtifactError, ValueError) as error:
                rows.append(([str(round_number), f"manifest unavailable: {error}", "-", "-", "-", "-"], "red"))
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
                    committed, address, from_hex(entry.update_hash), entry.num_examples, proof
                )
                status, included = "accepted", "yes (proof verified on-chain)" if on_chain else "NO"
            reward = entry.reward if entry is not None else 0
            claimed = handle.has_claimed(run_id, round_number, address)
            private = private or manifest.privacy is not None
            cells = [
                str(round_number),
                status,
                included,
                f"{reward / 10**TOKEN_DECIMALS:,.4f}",
                "yes" if claimed else ("-" if not reward else "no"),
                _epsilon_spent(manifest, address),
            ]
            rows.append((cells, "red" if included == "NO" else None))
        columns = ["round", "update", "in the committed root", "reward (tokens)", "claimed", "ε spent"]
        table = Table(*columns[: None if private else -1], title=f"run {run_id}")
        for cells, style in rows:
            table.add_row(*cells[: None if private else -1], style=style)
        show_table(table)
    console.print(f"token balance of {address}: {handle.token_balance(address) / 10**TOKEN_DECIMALS:,.4f}")


def _epsilon_spent(manifest: RoundManifest, address: str) -> str:
    """The ε spent after the round: the participant's own under local DP, the run's under central DP."""
    privacy = manifest.privacy
    if privacy is None:
        return "-"
    if privacy.participants is None:
        return f"{privacy.epsilon:.4f} (the run's)"
    own = privacy.participants.get(address)
    return "0 (no update released)" if own is None else f"{own:.4f} (yours)"


@app.command()
def claim(
    simulation: Simulation = None,
    rpc_url: RpcUrl = None,
    chain_file: ChainFile = None,
    registry: RegistryAddress = None,
    store: Store = None,
    run: RunIds = None,
    keystore: Keystore = None,
    deployment: DeploymentFile = DEFAULT_DEPLOYMENT_FILE,
) -> None:
    """Claim every reward the account has not claimed yet, each with its Merkle proof against the
    round's rewards root, up to 50 rounds in one transaction. The account is the keystore's, or the
    key in $FEDLEDGER_PRIVATE_KEY.

    On a saved in-process chain (a finished simulation's, or --chain-file), each claim transaction is
    appended to its journal as it is mined, and an account with no ether (a simulated site's) is
    first sent 0.1 ether for gas by the chain's first development account.
    """
    account = load_sender(keystore)
    if account is None:
        raise FedLedgerError(f"claiming sends transactions: pass --keystore or set ${PRIVATE_KEY_ENV}")
    history = open_history(simulation, rpc_url, registry, store, deployment, run, chain_file)
    handle = history.registry.as_sender(history.registry.chain.add_signer(account))
    if history.saved_chain is not None:
        handle.chain.journal_to(history.saved_chain)
    address = account.address
    unclaimed: list[RewardClaim] = []
    for run_id in history.run_ids or range(1, handle.run_count() + 1):
        for round_number in range(1, handle.run(run_id).committed_rounds + 1):
            commitment = handle.committed_round(run_id, round_number, history.store).commitment
            if commitment.rewards_root == bytes(32):
                continue
            manifest = RoundManifest.from_bytes(history.store.get(commitment.manifest_hash))
            amount = manifest.rewards.get(address, 0)
            if not amount or handle.has_claimed(run_id, round_number, address):
                continue
            proof = reward_proof(run_id, round_number, manifest.rewards, address)
            unclaimed.append(RewardClaim(run_id, round_number, amount, proof, commitment))
    if unclaimed and history.saved_chain is not None:
        _pay_for_gas(handle.chain, address)
    for start in range(0, len(unclaimed), CLAIM_BATCH):
        batch = unclaimed[start : start + CLAIM_BATCH]
        receipt = handle.claim(batch)
        rounds = ", ".join(f"run {claim.run_id} round {claim.round}" for claim in batch)
        console.print(
            f"claimed {sum(claim.amount for claim in batch) / 10**TOKEN_DECIMALS:,.4f} for {rounds} "
            f"(block {receipt.block_number}, gas {receipt.gas_used:,})"
        )
    total = sum(claim.amount for claim in unclaimed)
    console.print(
        f"{len(unclaimed)} rewards claimed, {total / 10**TOKEN_DECIMALS:,.4f} tokens; "
        f"balance {handle.token_balance(address) / 10**TOKEN_DECIMALS:,.4f}"
    )


def _pay_for_gas(chain: Chain, address: str) -> None:
    """Send ``address`` gas money from the in-process chain's first development account if it has no ether."""
    if chain.balance(address) == 0:
        chain.send_value(chain.signers[0], address, SIMULATED_GAS_MONEY)
        console.print(f"{address} has no ether on the in-process chain: sent it {SIMULATED_GAS_MONEY / 10**18} for gas")


@app.command()
def init(
    out: Annotated[
        Path, typer.Option("--out", file_okay=False, help="Directory for the participant's keys (created if needed).")
    ],
) -> None:
    """Create this participant's keys: an encrypted Ethereum keystore (it signs updates and claims
    rewards) and the SuperNode authentication key pair Flower's SuperLink checks. Refuses to
    overwrite existing keys.

    The keystore password comes from $FEDLEDGER_KEYSTORE_PASSWORD, or is asked for twice. Hand the
    printed address and public key (also in participant.json) to the coordinator; back up the
    keystore and its password — a lost key cannot claim its rewards.
    """
    password = os.environ.get(KEYSTORE_PASSWORD_ENV)
    if password is None:
        password = typer.prompt("Keystore password", hide_input=True, confirmation_prompt=True)
    identity = create_participant(out, password)
    console.print(f"Ethereum address      {identity.address}")
    console.print(f"SuperNode public key  {identity.supernode_public_key}")
    console.print(
        f"written to {out}: {KEYSTORE_FILE}, {SUPERNODE_KEY_FILE}, {SUPERNODE_PUBLIC_KEY_FILE}, {PARTICIPANT_FILE}"
    )


@app.command()
def signer(
    keystore: Annotated[Path, typer.Option("--keystore", dir_okay=False, help="The participant's encrypted keystore.")],
    socket_path: Annotated[
        Path,
        typer.Option(
            "--socket",
            dir_okay=False,
            help="Unix socket to listen on; name it in the SuperNode's node config as fedledger.signer.",
        ),
    ],
    registry: Annotated[
        str | None, typer.Option("--registry", callback=check_address, help="Sign only for this registry.")
    ] = None,
    chain_id: Annotated[int | None, typer.Option("--chain-id", help="Sign only for this chain.")] = None,
) -> None:
    """Hold the participant's key unlocked for the SuperNode's lifetime and sign its updates and
    valuations on a Unix socket only this user can open; stop with Ctrl-C.

    The keystore is decrypted once (password from $FEDLEDGER_KEYSTORE_PASSWORD, or asked for), instead
    of in every ClientApp process Flower starts. It signs FedLedger's update and valuation messages
    and nothing else; with --registry and --chain-id, only for that registry and chain. Start the
    SuperNode with `--node-config "fedledger.signer='SOCKET'"` (its keystore password is then not
    needed in its environment).
    """
    account = load_keystore(keystore)
    server = SignerServer(socket_path, account, SigningPolicy(registry, chain_id), on_answer=_print_refusal)
    console.print(f"signing for {account.address} at {socket_path} (Ctrl-C stops)")
    interrupt_on_signals()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        console.print("signer stopped")
    finally:
        server.server_close()


def _print_refusal(reply: dict) -> None:
    if "error" in reply:
        console.print(f"refused: {reply['error']}")
