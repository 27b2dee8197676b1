"""Gas used by every registry operation, with commitRound measured for roots over 4, 100 and 1,000 clients.

Two runs are measured: one without differential privacy, and one with a privacy budget, whose
commits carry the ε spent (the "private" rows). Registration is measured alone and in a batch of
100, and claims one round at a time and 20 rounds in one transaction; "per item" divides a batch's
gas by its size. "before" is the same operation measured by this benchmark on the registry that
stored every round's fields in five slots and registered and claimed one at a time (commit e9b36ed).

Run with ``python -m fedledger.simulations.benchmarks.gas``. The chain is the in-process EVM (Prague rules);
``--rpc-url`` measures on another node instead, with the key in $FEDLEDGER_PRIVATE_KEY. One key is
admin and coordinator here, and the registry's admin-transfer delay is 0, so that the two-step
admin transfer can be measured to its end without waiting.

A transaction's gas is 21,000, plus 4 gas per zero byte and 16 per non-zero byte of its calldata,
plus what its code executes. The table splits the calldata part out: it depends on the bytes of
the hashes sent (a hash that happens to contain a zero byte is 12 gas cheaper), never on how many
clients a root covers.
"""

import argparse
from dataclasses import dataclass, field

from eth_account import Account
from web3 import Web3

from fedledger.chain import Chain, Receipt, Registry, RewardClaim, RoundCommitment
from fedledger.hashing import keccak256
from fedledger.keys import load_sender
from fedledger.merkle import MerkleTree, reward_leaf, update_leaf
from fedledger.privacy import DELTA_SCALE, EPSILON_SCALE, PrivacyBudget

CLIENT_COUNTS = (4, 100, 1_000)
REWARD_PER_ROUND = 10**21
TRANSACTION_BASE_GAS = 21_000
#: The private run's budget (ε = 8, δ = 1e-5) and what each of its commits says it has spent.
PRIVACY_BUDGET = PrivacyBudget(8 * EPSILON_SCALE, DELTA_SCALE // 100_000)
EPSILON_SPENT_PER_ROUND = 1_234_567
REGISTRATION_BATCH = 100
CLAIMED_ROUNDS = 20
#: Gas of each operation before (commit e9b36ed), with the operation it became; same benchmark.
BEFORE = {
    "addParticipants": 115_188,
    "commitRound": 149_291,
    "commitRound (private)": 149_327,
    "claim": 98_860,
    "startRun": 151_643,
    "startRun (private)": 149_727,
}


@dataclass(frozen=True)
class GasFigure:
    """The gas of one mined transaction, split into calldata and execution."""

    operation: str
    clients: int | None
    gas_used: int
    calldata_gas: int
    items: int = 1  # participants registered, or rounds claimed, by the transaction
    before: int | None = field(default=None)

    @property
    def execution_gas(self) -> int:
        return self.gas_used - TRANSACTION_BASE_GAS - self.calldata_gas

    @property
    def per_item(self) -> int:
        return round(self.gas_used / self.items)


def calldata_gas(data: bytes) -> int:
    """Intrinsic calldata cost: 4 gas per zero byte, 16 per non-zero byte."""
    zeros = data.count(0)
    return 4 * zeros + 16 * (len(data) - zeros)


def figure(
    chain: Chain, operation: str, receipt: Receipt, clients: int | None = None, items: int = 1, before: str = ""
) -> GasFigure:
    """The gas of ``receipt``; ``before`` names the :data:`BEFORE` figure it compares with."""
    data = bytes(chain.w3.eth.get_transaction(receipt.tx_hash)["input"])
    return GasFigure(operation, clients, receipt.gas_used, calldata_gas(data), items, BEFORE.get(before))


def funded_account(chain: Chain, sender: str, name: bytes) -> str:
    """A deterministic account this chain can send from, given 0.1 ether by ``sender``."""
    address = chain.add_signer(Account.from_key(keccak256(b"gas benchmark " + name)))
    chain.send_value(sender, address, 10**17)
    return address


def measure(chain: Chain, sender: str, client_counts: tuple[int, ...] = CLIENT_COUNTS) -> list[GasFigure]:
    """Deploy, register (alone and in a batch), grant an allowance, start a run, commit and claim
    one round per client count, claim many rounds at once, then hand the admin role over in two
    steps (once cancelled, once accepted)."""
    registry, receipt = Registry.deploy(chain, sender, admin_transfer_delay=0)
    figures = [figure(chain, "deploy registry + token", receipt)]

    claimant = funded_account(chain, sender, b"claimant")
    receipt = registry.add_participant(claimant, keccak256(b"meta"))
    figures.append(figure(chain, "addParticipants, 1", receipt, before="addParticipants"))
    batch = [(_address(b"site %d" % index), keccak256(b"meta %d" % index)) for index in range(REGISTRATION_BATCH)]
    (receipt,) = registry.add_participants(batch)
    figures.append(
        figure(
            chain, f"addParticipants, {REGISTRATION_BATCH}", receipt, items=REGISTRATION_BATCH, before="addParticipants"
        )
    )

    budget = REWARD_PER_ROUND * (2 * (len(client_counts) + 1) + CLAIMED_ROUNDS)
    figures.append(figure(chain, "setRunAllowance", registry.set_run_allowance(sender, budget)))
    figures.extend(_run(chain, registry, claimant, client_counts, None))
    figures.extend(_run(chain, registry, claimant, client_counts, PRIVACY_BUDGET))
    figures.append(_multi_round_claim(chain, registry, claimant))

    new_admin = funded_account(chain, sender, b"new admin")
    _, receipt = registry.begin_admin_transfer(new_admin)
    figures.append(figure(chain, "beginDefaultAdminTransfer", receipt))
    figures.append(figure(chain, "cancelDefaultAdminTransfer", registry.cancel_admin_transfer()))
    registry.begin_admin_transfer(new_admin)
    receipt = registry.as_sender(new_admin).accept_admin_transfer()
    figures.append(figure(chain, "acceptDefaultAdminTransfer", receipt))
    return figures


def _address(name: bytes) -> str:
    return Web3.to_checksum_address(keccak256(name)[-20:])


def _commit(
    registry: Registry, run_id: int, round_number: int, addresses: list[str], epsilon_spent: int
) -> tuple[Receipt, MerkleTree]:
    """Commit a round whose roots cover ``addresses``, each granted an equal share; returns the
    receipt and the rewards tree."""
    amount = REWARD_PER_ROUND // len(addresses)
    updates = MerkleTree(
        [update_leaf(run_id, round_number, address, keccak256(address.encode()), 100) for address in addresses]
    )
    rewards = MerkleTree([reward_leaf(run_id, round_number, address, amount) for address in addresses])
    commitment = RoundCommitment(
        model_hash=keccak256(b"model %d" % round_number),
        updates_root=updates.root,
        rewards_root=rewards.root,
        manifest_hash=keccak256(b"manifest %d" % round_number),
        accepted=len(addresses),
        rejected=0,
        epsilon_spent=epsilon_spent,
    )
    return registry.commit_round(run_id, round_number, commitment), rewards


def _claim_of(claimant: str, run_id: int, round_number: int, clients: int, rewards: MerkleTree) -> RewardClaim:
    amount = REWARD_PER_ROUND // clients
    return RewardClaim(run_id, round_number, amount, rewards.proof(reward_leaf(run_id, round_number, claimant, amount)))


def _run(
    chain: Chain, registry: Registry, claimant: str, client_counts: tuple[int, ...], privacy: PrivacyBudget | None
) -> list[GasFigure]:
    """Start a run (with ``privacy``'s budget, if given), commit its first round, then commit and
    claim one round per client count.

    The first round is measured apart: it is cheaper, as no previous round is read to check the
    sequence.
    """
    suffix = "" if privacy is None else " (private)"
    run_id, receipt = registry.start_run(
        keccak256(b"config"), keccak256(b"initial model"), REWARD_PER_ROUND, len(client_counts) + 1, privacy
    )
    figures = [figure(chain, "startRun" + suffix, receipt, before="startRun" + suffix)]
    for round_number, clients in enumerate((client_counts[0], *client_counts), start=1):
        addresses = [claimant] + [_address(b"client %d" % index) for index in range(1, clients)]
        spent = 0 if privacy is None else round_number * EPSILON_SPENT_PER_ROUND
        receipt, rewards = _commit(registry, run_id, round_number, addresses, spent)
        operation = ("commitRound, round 1" if round_number == 1 else "commitRound") + suffix
        figures.append(figure(chain, operation, receipt, clients, before="commitRound" + suffix))
        receipt = registry.as_sender(claimant).claim([_claim_of(claimant, run_id, round_number, clients, rewards)])
        figures.append(figure(chain, "claim, 1 round" + suffix, receipt, clients, before="claim"))
    return figures


def _multi_round_claim(chain: Chain, registry: Registry, claimant: str) -> GasFigure:
    """Commit :data:`CLAIMED_ROUNDS` rounds of 4 clients, then claim them all in one transaction."""
    run_id, _ = registry.start_run(keccak256(b"config"), keccak256(b"initial model"), REWARD_PER_ROUND, CLAIMED_ROUNDS)
    addresses = [claimant] + [_address(b"client %d" % index) for index in range(1, 4)]
    claims = []
    for round_number in range(1, CLAIMED_ROUNDS + 1):
        _, rewards = _commit(registry, run_id, round_number, addresses, 0)
        claims.append(_claim_of(claimant, run_id, round_number, len(addresses), rewards))
    receipt = registry.as_sender(claimant).claim(claims)
    return figure(chain, f"claim, {CLAIMED_ROUNDS} rounds", receipt, len(addresses), CLAIMED_ROUNDS, "claim")


def format_table(figures: list[GasFigure]) -> str:
    header = (
        f"{'operation':<32} {'clients':>7} {'gas used':>10} {'per item':>9} {'before':>9} {'calldata':>9} "
        f"{'execution':>10}"
    )
    rows = [header, "-" * len(header)]
    for item in figures:
        clients = f"{item.clients:,}" if item.clients is not None else ""
        before = f"{item.before:,}" if item.before is not None else ""
        gas = f"{item.gas_used:>10,} {item.per_item:>9,} {before:>9} {item.calldata_gas:>9,} {item.execution_gas:>10,}"
        rows.append(f"{item.operation:<32} {clients:>7} {gas}")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rpc-url", help="measure on this node instead of the in-process EVM")
    arguments = parser.parse_args()
    chain = Chain.open(arguments.rpc_url)
    if arguments.rpc_url is None:
        sender = chain.signers[0]
    else:
        account = load_sender(None)
        if account is None:
            parser.error("--rpc-url needs the sending key in $FEDLEDGER_PRIVATE_KEY")
        sender = chain.add_signer(account)
    print(f"chain: {chain.description} (chain id {chain.chain_id})")
    print(format_table(measure(chain, sender)))


if __name__ == "__main__":
    main()
