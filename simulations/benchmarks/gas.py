"""Gas used by every registry operation, with commitRound measured for roots over 4, 100 and 1,000 clients.

Two runs are measured: one without differential privacy, and one with a privacy budget, whose
commits carry the ε spent (the "private" rows).

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
from dataclasses import dataclass

from eth_account import Account
from web3 import Web3

from fedledger.chain import Chain, Receipt, Registry, RoundCommitment
from fedledger.hashing import keccak256
from fedledger.keys import load_sender
from fedledger.merkle import MerkleTree, reward_leaf, update_leaf
from fedledger.privacy import DELTA_SCALE, EPSILON_SCALE, PrivacyBudget

CLIENT_COUNTS = (4, 100, 1_000)
REWARD_PER_ROUND = 10**21
TRANSACTION_BASE_GAS = 21_000
#: The private run's budget (ε = 8, δ = 1e-5) and what each of its commits says it has spent.
PRIVACY_BUDGET = PrivacyBudget(8 * EPSILON_SCALE, DELTA_SCALE // 100_000)
EPSILON_SPENT_PER_ROUND = 2_345_678


@dataclass(frozen=True)
class GasFigure:
    """The gas of one mined transaction, split into calldata and execution."""

    operation: str
    clients: int | None
    gas_used: int
    calldata_gas: int

    @property
    def execution_gas(self) -> int:
        return self.gas_used - TRANSACTION_BASE_GAS - self.calldata_gas


def calldata_gas(data: bytes) -> int:
    """Intrinsic calldata cost: 4 gas per zero byte, 16 per non-zero byte."""
    zeros = data.count(0)
    return 4 * zeros + 16 * (len(data) - zeros)


def figure(chain: Chain, operation: str, receipt: Receipt, clients: int | None = None) -> GasFigure:
    data = bytes(chain.w3.eth.get_transaction(receipt.tx_hash)["input"])
    return GasFigure(operation, clients, receipt.gas_used, calldata_gas(data))


def funded_account(chain: Chain, sender: str, name: bytes) -> str:
    """A deterministic account this chain can send from, given 0.1 ether by ``sender``."""
    address = chain.add_signer(Account.from_key(keccak256(b"gas benchmark " + name)))
    chain.send_value(sender, address, 10**17)
    return address


def measure(chain: Chain, sender: str, client_counts: tuple[int, ...] = CLIENT_COUNTS) -> list[GasFigure]:
    """Deploy, register, grant an allowance, start a run, commit and claim one round per client
    count, then hand the admin role over in two steps (once cancelled, once accepted)."""
    registry, receipt = Registry.deploy(chain, sender, admin_transfer_delay=0)
    figures = [figure(chain, "deploy registry + token", receipt)]

    claimant = funded_account(chain, sender, b"claimant")
    figures.append(figure(chain, "addParticipant", registry.add_participant(claimant, keccak256(b"meta"))))

    budget = 2 * REWARD_PER_ROUND * len(client_counts)
    figures.append(figure(chain, "setRunAllowance", registry.set_run_allowance(sender, budget)))
    figures.extend(_run(chain, registry, claimant, client_counts, None))
    figures.extend(_run(chain, registry, claimant, client_counts, PRIVACY_BUDGET))

    new_admin = funded_account(chain, sender, b"new admin")
    _, receipt = registry.begin_admin_transfer(new_admin)
    figures.append(figure(chain, "beginDefaultAdminTransfer", receipt))
    figures.append(figure(chain, "cancelDefaultAdminTransfer", registry.cancel_admin_transfer()))
    registry.begin_admin_transfer(new_admin)
    receipt = registry.as_sender(new_admin).accept_admin_transfer()
    figures.append(figure(chain, "acceptDefaultAdminTransfer", receipt))
    return figures


def _run(
    chain: Chain, registry: Registry, claimant: str, client_counts: tuple[int, ...], privacy: PrivacyBudget | None
) -> list[GasFigure]:
    """Start a run (with ``privacy``'s budget, if given), then commit and claim one round per client count."""
    suffix = "" if privacy is None else " (private)"
    run_id, receipt = registry.start_run(
        keccak256(b"config"), keccak256(b"initial model"), REWARD_PER_ROUND, len(client_counts), privacy
    )
    figures = [figure(chain, "startRun" + suffix, receipt)]
    for round_number, clients in enumerate(client_counts, start=1):
        addresses = [claimant] + [
            Web3.to_checksum_address(keccak256(b"client %d" % index)[-20:]) for index in range(1, clients)
        ]
        amount = REWARD_PER_ROUND // clients
        updates = MerkleTree(
            [update_leaf(run_id, round_number, address, keccak256(address.encode()), 100) for address in addresses]
        )
        rewards = MerkleTree([reward_leaf(run_id, round_number, address, amount) for address in addresses])
        commitment = RoundCommitment(
            model_hash=keccak256(b"model %d" % round_number),
            updates_root=updates.root,
            rewards_root=rewards.root,
            manifest_hash=keccak256(b"manifest %d" % round_number),
            accepted=clients,
            rejected=0,
            epsilon_spent=0 if privacy is None else round_number * EPSILON_SPENT_PER_ROUND,
        )
        receipt = registry.commit_round(run_id, round_number, commitment)
        figures.append(figure(chain, "commitRound" + suffix, receipt, clients))
        proof = rewards.proof(reward_leaf(run_id, round_number, claimant, amount))
        receipt = registry.as_sender(claimant).claim(run_id, round_number, amount, proof)
        figures.append(figure(chain, "claim" + suffix, receipt, clients))
    return figures


def format_table(figures: list[GasFigure]) -> str:
    header = f"{'operation':<28} {'clients':>7} {'gas used':>10} {'calldata':>9} {'execution':>10}"
    rows = [header, "-" * len(header)]
    for item in figures:
        clients = f"{item.clients:,}" if item.clients is not None else ""
        gas = f"{item.gas_used:>10,} {item.calldata_gas:>9,} {item.execution_gas:>10,}"
        rows.append(f"{item.operation:<28} {clients:>7} {gas}")
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
