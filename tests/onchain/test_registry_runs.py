"""Runs and rounds: who may start and commit, strict sequence, and immutability of the record."""

import dataclasses

import pytest

from fedledger.chain import ChainError, Registry
from fedledger.chain.registry import COORDINATOR_ROLE, RoundCommitment
from fedledger.hashing import keccak256
from fedledger.store import ArtifactStore

from helpers import reverts, sample_commitment

CONFIG = keccak256(b"run configuration")
INITIAL_MODEL = keccak256(b"initial model")
BUDGET = 1_000
ROUNDS = 5


def test_start_run_records_the_configuration(coordinator: Registry, actors):
    run_id, receipt = coordinator.start_run(CONFIG, INITIAL_MODEL, BUDGET, ROUNDS)

    run = coordinator.run(run_id)
    assert (run.run_id, run.config_hash, run.initial_model_hash) == (1, CONFIG, INITIAL_MODEL)
    assert (run.reward_per_round, run.coordinator) == (BUDGET, actors.coordinator)
    assert (run.start_block, run.committed_rounds) == (receipt.block_number, 0)
    (event,) = coordinator.contract.events.RunStarted().get_logs(from_block=receipt.block_number)
    assert event["args"]["runId"] == run_id


def test_run_ids_are_sequential(coordinator: Registry):
    ids = [coordinator.start_run(CONFIG, INITIAL_MODEL, BUDGET, ROUNDS)[0] for _ in range(3)]
    assert ids == [1, 2, 3]
    assert coordinator.run_count() == 3


def test_non_coordinator_cannot_start_a_run(registry: Registry, actors):
    for sender in (actors.outsider, actors.admin):
        with reverts("AccessControlUnauthorizedAccount", account=sender, neededRole=COORDINATOR_ROLE):
            registry.as_sender(sender).start_run(CONFIG, INITIAL_MODEL, BUDGET, ROUNDS)


def test_rounds_commit_in_sequence_and_are_stored(coordinator: Registry):
    run_id, _ = coordinator.start_run(CONFIG, INITIAL_MODEL, BUDGET, ROUNDS)
    receipts = [
        coordinator.commit_round(run_id, round_number, sample_commitment(round_number)) for round_number in (1, 2, 3)
    ]

    assert coordinator.run(run_id).committed_rounds == 3
    for round_number, receipt in zip((1, 2, 3), receipts, strict=True):
        stored = coordinator.committed_round(run_id, round_number)
        assert stored.commitment == sample_commitment(round_number)
        assert stored.committed_at_block == receipt.block_number
    events = coordinator.contract.events.RoundCommitted().get_logs(from_block=0)
    assert [event["args"]["round"] for event in events] == [1, 2, 3]


def test_non_coordinator_cannot_commit(registry: Registry, coordinator: Registry, actors):
    run_id, _ = coordinator.start_run(CONFIG, INITIAL_MODEL, BUDGET, ROUNDS)
    for sender in (actors.outsider, actors.admin):
        with reverts("AccessControlUnauthorizedAccount", account=sender, neededRole=COORDINATOR_ROLE):
            registry.as_sender(sender).commit_round(run_id, 1, sample_commitment(1))
    assert coordinator.run(run_id).committed_rounds == 0


def test_only_the_coordinator_that_started_a_run_commits_it(registry: Registry, coordinator: Registry, actors):
    run_id, _ = coordinator.start_run(CONFIG, INITIAL_MODEL, BUDGET, ROUNDS)
    registry.grant_coordinator(actors.outsider)
    with reverts("NotRunCoordinator", runId=run_id, caller=actors.outsider):
        registry.as_sender(actors.outsider).commit_round(run_id, 1, sample_commitment(1))


def test_a_revoked_coordinator_can_no_longer_commit(registry: Registry, coordinator: Registry, actors):
    run_id, _ = coordinator.start_run(CONFIG, INITIAL_MODEL, BUDGET, ROUNDS)
    registry.chain.transact(registry.contract.functions.revokeRole(COORDINATOR_ROLE, actors.coordinator), actors.admin)
    with reverts("AccessControlUnauthorizedAccount", account=actors.coordinator):
        coordinator.commit_round(run_id, 1, sample_commitment(1))


def test_committing_twice_reverts_and_keeps_the_first_record(coordinator: Registry):
    run_id, _ = coordinator.start_run(CONFIG, INITIAL_MODEL, BUDGET, ROUNDS)
    coordinator.commit_round(run_id, 1, sample_commitment(1))
    coordinator.commit_round(run_id, 2, sample_commitment(2))
    again = sample_commitment(99)
    for round_number in (1, 2):
        call = coordinator.contract.functions.commitRound(run_id, round_number, dataclasses.astuple(again))
        with reverts("RoundAlreadyCommitted", runId=run_id, round=round_number):
            coordinator.chain.transact(call, coordinator.sender)
        assert coordinator.committed_round(run_id, round_number).commitment == sample_commitment(round_number)


def test_skipping_a_round_reverts(coordinator: Registry):
    run_id, _ = coordinator.start_run(CONFIG, INITIAL_MODEL, BUDGET, ROUNDS)
    with reverts("RoundOutOfSequence", runId=run_id, expected=1, given=2):
        coordinator.commit_round(run_id, 2, sample_commitment(2))
    coordinator.commit_round(run_id, 1, sample_commitment(1))
    with reverts("RoundOutOfSequence", runId=run_id, expected=2, given=4):
        coordinator.commit_round(run_id, 4, sample_commitment(4))


def test_round_zero_does_not_exist(coordinator: Registry):
    run_id, _ = coordinator.start_run(CONFIG, INITIAL_MODEL, BUDGET, ROUNDS)
    coordinator.commit_round(run_id, 1, sample_commitment(1))
    with reverts("RoundOutOfSequence", runId=run_id, expected=2, given=0):
        coordinator.commit_round(run_id, 0, sample_commitment(0))


def test_committing_to_a_run_that_was_not_started_reverts(coordinator: Registry):
    with reverts("RunNotStarted", runId=7):
        coordinator.commit_round(7, 1, sample_commitment(1))


def test_reading_what_does_not_exist_reverts_by_name(coordinator: Registry):
    with reverts("RunNotStarted", runId=1):
        coordinator.run(1)
    run_id, _ = coordinator.start_run(CONFIG, INITIAL_MODEL, BUDGET, ROUNDS)
    with reverts("RoundNotCommitted", runId=run_id, round=1):
        coordinator.committed_round(run_id, 1)
    with reverts("RunNotStarted", runId=2):
        coordinator.committed_round(2, 1)


def test_a_round_stores_the_hash_of_its_record_and_its_block(coordinator: Registry):
    run_id, _ = coordinator.start_run(CONFIG, INITIAL_MODEL, BUDGET, ROUNDS)
    commitment = sample_commitment(1)
    receipt = coordinator.commit_round(run_id, 1, commitment)

    record_hash, block = coordinator.contract.functions.getRoundCommitment(run_id, 1).call()
    assert bytes(record_hash) == keccak256(commitment.encode(run_id, 1))[:24]
    assert block == receipt.block_number
    assert RoundCommitment.decode(commitment.encode(run_id, 1)) == (run_id, 1, commitment)
    with pytest.raises(ValueError, match="a round record is 288 bytes"):
        RoundCommitment.decode(commitment.encode(run_id, 1)[:-1])


def test_the_number_of_committed_rounds_is_found_for_every_count(coordinator: Registry):
    run_id, _ = coordinator.start_run(CONFIG, INITIAL_MODEL, BUDGET, ROUNDS)
    assert coordinator.run(run_id).committed_rounds == 0
    for round_number in range(1, ROUNDS + 1):
        coordinator.commit_round(run_id, round_number, sample_commitment(round_number))
        assert coordinator.run(run_id).committed_rounds == round_number


def test_a_record_is_read_from_the_store_when_the_node_keeps_no_logs(coordinator: Registry, tmp_path, monkeypatch):
    """A node that prunes logs cannot be run here, so the log lookup is made to find nothing."""
    run_id, _ = coordinator.start_run(CONFIG, INITIAL_MODEL, BUDGET, ROUNDS)
    commitment = sample_commitment(1)
    receipt = coordinator.commit_round(run_id, 1, commitment)
    store = ArtifactStore(tmp_path / "store")
    store.put(sample_commitment(2).encode(run_id, 1))  # another record, never committed
    monkeypatch.setattr(Registry, "_commit_logs", lambda *_: [])

    with pytest.raises(ChainError, match="no record with that hash is in its RoundCommitted log or the store"):
        coordinator.committed_round(run_id, 1, store)
    store.put(commitment.encode(run_id, 1))
    stored = coordinator.committed_round(run_id, 1, store)
    assert (stored.commitment, stored.committed_at_block) == (commitment, receipt.block_number)
