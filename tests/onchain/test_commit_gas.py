"""commitRound costs the same whatever the number of clients behind its roots, and at most 60,000 gas;
a private run's commit (its ε spent checked against its budget) costs no more to execute. A batch
registers each participant for less than one registration alone, and a multi-round claim claims
each round for less than a claim of one round."""

from fedledger.chain import Chain
from fedledger.simulations.benchmarks.gas import CLIENT_COUNTS, calldata_gas, measure

COMMIT_GAS_CEILING = 60_000


def test_commit_round_gas_does_not_depend_on_the_number_of_clients(chain: Chain):
    commits = [item for item in measure(chain, chain.signers[0]) if item.operation == "commitRound"]

    assert [item.clients for item in commits] == list(CLIENT_COUNTS)
    assert len({item.execution_gas for item in commits}) == 1, commits
    assert all(item.gas_used <= COMMIT_GAS_CEILING for item in commits), commits
    # What remains is calldata, which depends on the bytes of the hashes sent, not on the clients.
    assert max(item.gas_used for item in commits) - min(item.gas_used for item in commits) <= 12 * 4 * 32


def test_a_private_commit_executes_the_same_as_one_without_a_budget(chain: Chain):
    figures = measure(chain, chain.signers[0])
    plain = {item.execution_gas for item in figures if item.operation == "commitRound"}
    private = [item for item in figures if item.operation == "commitRound (private)"]
    assert [item.clients for item in private] == list(CLIENT_COUNTS)
    assert {item.execution_gas for item in private} == plain
    assert all(item.gas_used <= COMMIT_GAS_CEILING for item in private), private


def test_the_first_round_costs_less_than_the_others_and_no_more_than_the_ceiling(chain: Chain):
    figures = measure(chain, chain.signers[0])
    first = [item for item in figures if item.operation.startswith("commitRound, round 1")]
    later = [item for item in figures if item.operation.startswith("commitRound") and item not in first]
    assert len(first) == 2
    assert max(item.gas_used for item in first) < min(item.gas_used for item in later)


def test_batches_cost_less_per_item_than_one_at_a_time(chain: Chain):
    figures = {item.operation: item for item in measure(chain, chain.signers[0])}
    single, batch = figures["addParticipants, 1"], figures["addParticipants, 100"]
    assert batch.items == 100
    assert batch.per_item < 0.65 * single.gas_used
    one_round = figures["claim, 1 round (private)"]  # the claimant's token balance already exists
    many = figures["claim, 20 rounds"]
    assert many.items == 20
    assert many.per_item < 0.5 * one_round.gas_used


def test_calldata_gas_follows_the_yellow_paper():
    assert calldata_gas(b"") == 0
    assert calldata_gas(b"\x00\x00") == 8
    assert calldata_gas(b"\x01\x00\xff") == 36
