"""Gas used by every registry operation, with commitRound measured for roots over 4, 100 and 1,000 clients.

Run with ``python -m simulations.benchmarks.gas``. The chain is the in-process EVM (Prague rules);
``--rpc-url`` measures on another node instead, with the key in $FEDLEDGER_PRIVATE_KEY.

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

CLIENT_COUNTS = (4, 100, 1_000)
REWARD_PER_ROUND = 10**21
TRANSACTION_BASE_GAS = 21_000


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


def measure(chain: Chain, sender: str, client_counts: tuple[int, ...] = CLIENT_COUNTS) -> list[GasFigure]:
    """Deploy, register, start a run, then commit and claim one round per client count."""
    registry, receipt = Registry.deploy(chain, sender)
    figures = [figure(chain, "deploy registry + token", receipt)]

    claimant = Account.from_key(keccak256(b"gas benchmark claimant"))
    chain.add_signer(claimant)
    chain.send_value(sender, claimant.address, 10**17)
    figures.append(figure(chain, "addParticipant", registry.add_participant(claimant.address, keccak256(b"meta"))))

    run_id, receipt = registry.start_run(keccak256(b"config"), keccak256(b"initial model"), REWARD_PER_ROUND)
    figures.append(figure(chain, "startRun", receipt))

    for round_number, clients in enumerate(client_counts, start=1):
        addresses = [claimant.address] + [
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
        )
        figures.append(figure(chain, "commitRound", registry.commit_round(run_id, round_number, commitment), clients))
        proof = rewards.proof(reward_leaf(run_id, round_number, claimant.address, amount))
        receipt = registry.as_sender(claimant.address).claim(run_id, round_number, amount, proof)
        figures.append(figure(chain, "claim", receipt, clients))
    return figures


def format_table(figures: list[GasFigure]) -> str:
    header = f"{'operation':<24} {'clients':>7} {'gas used':>10} {'calldata':>9} {'execution':>10}"
    rows = [header, "-" * len(header)]
    for item in figures:
        clients = f"{item.clients:,}" if item.clients is not None else ""
        gas = f"{item.gas_used:>10,} {item.calldata_gas:>9,} {item.execution_gas:>10,}"
        rows.append(f"{item.operation:<24} {clients:>7} {gas}")
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
