"""The coordinator's run budget: granted to itself on a registry it deployed, asked of the admin otherwise."""

from dataclasses import replace
from pathlib import Path

import pytest

from fedledger.chain import Chain, ChainError, Registry
from fedledger.coordinator.config import LedgerSettings
from fedledger.coordinator.session import LedgerSession
from fedledger.hashing import keccak256
from fedledger.rewards import TOKEN_DECIMALS

from helpers import participant_key

TOKEN = 10**TOKEN_DECIMALS
INITIAL_MODEL = keccak256(b"initial model")


def test_a_coordinator_that_deploys_its_registry_grants_itself_the_runs_budget(tmp_path: Path):
    settings = LedgerSettings(store=str(tmp_path / "store"), output_dir=str(tmp_path / "run"))
    session = LedgerSession.open(settings, Chain.in_process())
    coordinator = session.registry.sender
    assert session.deployed and session.registry.admin() == coordinator

    run_id, _ = session.start_run(b"configuration", INITIAL_MODEL, 100 * TOKEN, 10)

    run = session.registry.run(run_id)
    assert (run.reward_per_round, run.planned_rounds, run.budget) == (100 * TOKEN, 10, 1_000 * TOKEN)
    assert session.registry.run_allowance(coordinator) == 0


def test_a_coordinator_attached_to_a_registry_is_told_who_must_grant_how_much(tmp_path: Path):
    chain = Chain.in_process()
    coordinator, admin = chain.signers[:2]
    registry, _ = Registry.deploy(chain, admin, coordinator=coordinator)
    registry.set_run_allowance(coordinator, 250 * TOKEN)
    settings = LedgerSettings(
        store=str(tmp_path / "store"), output_dir=str(tmp_path / "run"), registry=registry.address
    )
    session = LedgerSession.open(settings, chain)
    assert not session.deployed

    with pytest.raises(ChainError) as caught:
        session.start_run(b"configuration", INITIAL_MODEL, 100 * TOKEN // 3, 10)
    assert str(caught.value) == (
        f"the run's budget of 333.33333333333333333 tokens is more than the run allowance of coordinator "
        f"{coordinator} on registry {registry.address} (250 tokens): its admin {admin} must raise it to at least "
        f"334 tokens with `fedledger chain allowance {coordinator} 334`"
    )
    assert registry.run_count() == 0 and registry.run_allowance(coordinator) == 250 * TOKEN

    run_id, _ = session.start_run(b"configuration", INITIAL_MODEL, 25 * TOKEN, 10)
    assert registry.run(run_id).budget == 250 * TOKEN
    assert registry.run_allowance(coordinator) == 0


def test_a_new_run_keeps_the_chain_of_an_earlier_run_in_its_output_directory(tmp_path: Path):
    settings = LedgerSettings(store=str(tmp_path / "store"), output_dir=str(tmp_path / "run"))
    first = LedgerSession.open(settings)
    run_id, _ = first.start_run(b"configuration", INITIAL_MODEL, 0, 10)
    journal = tmp_path / "run" / "chain.jsonl"
    kept = journal.read_bytes()

    with pytest.raises(ChainError, match="holds another chain"):
        LedgerSession.open(settings)

    assert journal.read_bytes() == kept
    resuming = replace(settings, registry=first.registry.address, resume_run=run_id)
    again = LedgerSession.open(resuming)
    assert again.registry.address == first.registry.address
    assert again.registry.run(run_id).planned_rounds == 10


def test_a_participants_status_is_read_once_per_block_and_again_after_any_transaction(tmp_path: Path):
    settings = LedgerSettings(store=str(tmp_path / "store"), output_dir=str(tmp_path / "run"))
    session = LedgerSession.open(settings, Chain.in_process())
    participant = participant_key(3).address
    session.registry.add_participant(participant, keccak256(b"site"))
    reads: list[str] = []
    read = session.registry.participant
    session.registry.participant = lambda address, block="latest": reads.append(address) or read(address, block)

    assert [session.participant_status(participant) for _ in range(3)] == [None, None, None]
    assert session.participant_status(participant_key(4).address) == "unregistered"
    assert reads == [participant, participant_key(4).address]

    session.registry.deactivate_participant(participant)
    assert session.participant_status(participant) == "inactive"
    assert reads[-1] == participant and len(reads) == 3
