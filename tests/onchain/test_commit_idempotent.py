"""A round commit sent again (after a crash or an outage) is the same commit, never a second one."""

import pytest

from fedledger.chain import ChainError, Registry
from fedledger.hashing import keccak256, to_hex

from helpers import sample_commitment


def started_run(coordinator: Registry) -> int:
    run_id, _ = coordinator.start_run(keccak256(b"config"), keccak256(b"model 0"), 100, 10)
    return run_id


def test_committing_an_already_committed_round_again_returns_that_commit(coordinator: Registry):
    run_id = started_run(coordinator)
    first = coordinator.commit_round(run_id, 1, sample_commitment(1))
    coordinator.commit_round(run_id, 2, sample_commitment(2))
    nonce = coordinator.chain.w3.eth.get_transaction_count(coordinator.sender)

    again = coordinator.commit_round(run_id, 1, sample_commitment(1))

    assert again == first
    assert again.gas_used is not None and again.gas_used > 21_000
    assert coordinator.chain.w3.eth.get_transaction_count(coordinator.sender) == nonce
    assert coordinator.run(run_id).committed_rounds == 2


def test_a_different_commitment_for_a_committed_round_is_refused_naming_both_manifests(coordinator: Registry):
    run_id = started_run(coordinator)
    coordinator.commit_round(run_id, 1, sample_commitment(1))
    nonce = coordinator.chain.w3.eth.get_transaction_count(coordinator.sender)

    with pytest.raises(ChainError) as caught:
        coordinator.commit_round(run_id, 1, sample_commitment(7))

    assert str(caught.value) == (
        f"run {run_id} round 1 is already committed with manifest {to_hex(sample_commitment(1).manifest_hash)}, "
        f"not {to_hex(sample_commitment(7).manifest_hash)}"
    )
    assert coordinator.chain.w3.eth.get_transaction_count(coordinator.sender) == nonce
    assert coordinator.committed_round(run_id, 1).commitment == sample_commitment(1)


def test_the_same_hashes_with_other_counts_are_a_different_commitment(coordinator: Registry):
    run_id = started_run(coordinator)
    coordinator.commit_round(run_id, 1, sample_commitment(1, accepted=4))
    with pytest.raises(ChainError, match=f"run {run_id} round 1 is already committed"):
        coordinator.commit_round(run_id, 1, sample_commitment(1, accepted=3))


def test_a_round_not_yet_committed_is_sent(coordinator: Registry):
    run_id = started_run(coordinator)
    receipt = coordinator.commit_round(run_id, 1, sample_commitment(1))
    assert receipt.tx_hash is not None
    assert coordinator.committed_round(run_id, 1).committed_at_block == receipt.block_number
