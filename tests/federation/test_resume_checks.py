"""Before a run is resumed, the record it continues is checked: the registry's planned rounds
bound it, and a round that cannot be replayed stops the resume with a ``CannotResume`` naming it,
never with a stray error. (``test_resume.py`` resumes real simulations end to end.)"""

from dataclasses import replace
from typing import Any

import pytest
from inprocess_federation import INITIAL_MODEL, HonestSite, InProcessFederation, Ledger

from fedledger.audit.recompute import Reaggregation
from fedledger.chain import RoundCommitment
from fedledger.coordinator.config import LedgerSettings
from fedledger.coordinator.resume import (
    CannotResume,
    RunStart,
    configuration_differences,
    restore_server_optimiser,
    resumed_run,
)
from fedledger.coordinator.runs import AppRecord, describe_strategy, resume_run, run_configuration
from fedledger.encoding import model_hash
from fedledger.hashing import ZERO_HASH, from_hex
from fedledger.manifest import MANIFEST_VERSION, RoundManifest
from fedledger.runconfig import RunConfiguration
from tabular_app.settings import FederationSettings
from tabular_app.strategies import build_strategy

from helpers import participant_key

SITES = [participant_key(index) for index in range(3)]
SETTINGS = FederationSettings(strategy="FedAdam", num_server_rounds=3, min_nodes=3)
LEDGER = LedgerSettings(detector=False)


@pytest.fixture(scope="module")
def ledger(tmp_path_factory) -> Ledger:
    return Ledger.create(str(tmp_path_factory.mktemp("resume-checks") / "store"), SITES)


def run_rounds(ledger: Ledger, planned_rounds: int, rounds: int) -> int:
    federation = InProcessFederation(len(SITES))
    for node, account in zip(federation.node_ids, SITES, strict=True):
        federation.responders[node] = HonestSite(account, step=0.01 * (1 + SITES.index(account)))
    with federation:
        run_id, _ = ledger.run(federation, SETTINGS, planned_rounds=planned_rounds, rounds=rounds, detector=False)
    return run_id


def configuration(
    planned_rounds: int = SETTINGS.num_server_rounds, sealing: dict[str, Any] | None = None
) -> RunConfiguration:
    """The run configuration of the tests' runs; ``sealing`` as the coordinator's vault records it."""
    strategy = describe_strategy(build_strategy(SETTINGS))
    app = AppRecord({}, None)
    return run_configuration(LEDGER, strategy, model_hash(INITIAL_MODEL), planned_rounds, app, "", None, sealing)


def resume(ledger: Ledger, run_id: int, planned_rounds: int = SETTINGS.num_server_rounds) -> RunStart:
    session = ledger.session
    start = resumed_run(session, session.registry.run(run_id), configuration(planned_rounds, session.vault.to_json()))
    restore_server_optimiser(session, start, build_strategy(SETTINGS), Reaggregation.of(start.configuration.strategy))
    return start


def test_an_interrupted_run_resumes_after_its_last_committed_round(ledger):
    run_id = run_rounds(ledger, planned_rounds=3, rounds=1)
    start = resume(ledger, run_id)
    assert (start.run_id, start.next_round, start.planned_rounds, start.rounds_left) == (run_id, 2, 3, 2)


def test_a_run_that_committed_every_planned_round_is_not_resumed(ledger):
    run_id = run_rounds(ledger, planned_rounds=1, rounds=1)
    assert ledger.session.registry.run(run_id).planned_rounds == 1
    with pytest.raises(CannotResume, match=f"run {run_id} already committed all 1 of its rounds"):
        resume(ledger, run_id, planned_rounds=1)


def test_a_run_is_resumed_only_from_the_initial_arrays_it_started_from(ledger):
    run_id = run_rounds(ledger, planned_rounds=3, rounds=1)
    other = {name: value + 1 for name, value in INITIAL_MODEL.items()}
    settings = replace(LEDGER, resume_run=run_id, registry=ledger.session.registry.address)
    with pytest.raises(CannotResume, match=f"^the initial arrays given hash to .* but run {run_id} started from "):
        resume_run(ledger.session, settings, configuration(sealing=ledger.session.vault.to_json()), model_hash(other))


def run_whose_first_round_records(ledger: Ledger, manifest: bytes, model: bytes) -> int:
    """A run whose round 1 the registry records with ``manifest`` (stored) and ``model``."""
    session = ledger.session
    run_id, _ = session.start_run(
        configuration(sealing=session.vault.to_json()).to_bytes(),
        model_hash(INITIAL_MODEL),
        LEDGER.rewards.budget,
        SETTINGS.num_server_rounds,
    )
    commitment = RoundCommitment(model, ZERO_HASH, ZERO_HASH, session.store.put(manifest), 0, 0)
    session.registry.commit_round(run_id, 1, commitment)
    return run_id


def first_manifest(ledger: Ledger, run_id: int) -> RoundManifest:
    commitment = ledger.session.registry.committed_round(run_id, 1).commitment
    return RoundManifest.from_bytes(ledger.session.store.get(commitment.manifest_hash))


def test_a_committed_manifest_that_is_not_a_manifest_stops_the_resume_naming_the_round(ledger):
    document = b'{"version": %d}' % MANIFEST_VERSION
    run_id = run_whose_first_round_records(ledger, document, model_hash(INITIAL_MODEL))
    unreadable = r"^round 1's manifest cannot be read: the manifest's 'chain_id' must be an integer, got None$"
    with pytest.raises(CannotResume, match=unreadable):
        resume(ledger, run_id)


@pytest.mark.parametrize("field", ["update_hash", "num_examples"])
def test_an_accepted_update_recorded_without_its_hash_or_count_stops_the_resume_naming_it(ledger, field):
    recorded = first_manifest(ledger, run_rounds(ledger, planned_rounds=3, rounds=1))
    broken, *others = recorded.accepted
    manifest = replace(recorded, updates=(replace(broken, **{field: None}), *others, *recorded.rejected))
    run_id = run_whose_first_round_records(ledger, manifest.to_bytes(), from_hex(recorded.model_hash))
    with pytest.raises(
        CannotResume,
        match=f"^round 1's accepted update from node {broken.node_id} is recorded without its update hash or "
        "example count$",
    ):
        resume(ledger, run_id)


def test_a_setting_present_as_none_differs_from_one_that_is_absent():
    recorded = configuration()
    app = recorded.details["app"]
    current = replace(recorded, details={**recorded.details, "app": {**app, "extra": None}})
    assert configuration_differences(recorded, current) == "details.app.extra: (absent) -> None"
    emptied = replace(recorded, details={**recorded.details, "app": {}})
    assert configuration_differences(emptied, recorded).startswith("details.app: {} -> (absent)")
