"""A coordinator that dies mid-run is resumed under the same run id, and ends where an uninterrupted
run ends: the same final model, bit for bit, with FedAdam's optimiser state rebuilt from the record."""

import json
from dataclasses import replace
from pathlib import Path

import pytest

from fedledger.chain import Chain, Registry, RunRecord
from fedledger.coordinator.config import app_config
from fedledger.coordinator.recorder import ROUNDS_FILE, RoundReport
from fedledger.coordinator.resume import CannotResume, resumed_run
from fedledger.coordinator.runs import AppRecord, describe_strategy, run_configuration
from fedledger.coordinator.session import LedgerSession
from fedledger.deployment import LedgerLocation
from fedledger.runconfig import RunConfiguration
from fedledger.simulations.runner import (
    CHAIN_FILE,
    SimulationRequest,
    SimulationResult,
    audit_result,
    run_config_of,
    simulate_federation,
)
from tabular_app.server_app import model_description
from tabular_app.strategies import build_strategy

pytestmark = pytest.mark.simulation

ROUNDS = 4
CRASH_AFTER_ROUND = 2


class CoordinatorCrash(Exception):
    """Stands for the coordinator's process dying right after a commit."""


def crash_after(round_number: int):
    def on_round(report: RoundReport) -> None:
        if report.round == round_number:
            raise CoordinatorCrash(f"crashed after round {round_number}")

    return on_round


def request(output_dir: Path) -> SimulationRequest:
    return SimulationRequest(scenario="hospitals", output_dir=output_dir, rounds=ROUNDS, strategy="FedAdam")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """One directory for both runs, so that they share their sites' data files (and so their training)."""
    return tmp_path_factory.mktemp("resume")


@pytest.fixture(scope="module")
def uninterrupted(workdir: Path) -> SimulationResult:
    return simulate_federation(request(workdir / "uninterrupted"), on_round=lambda report: None)


@pytest.fixture(scope="module")
def interrupted(workdir: Path) -> SimulationRequest:
    crashed = request(workdir / "interrupted")
    with pytest.raises(CoordinatorCrash):
        simulate_federation(crashed, on_round=crash_after(CRASH_AFTER_ROUND))
    return crashed


@pytest.fixture(scope="module")
def resumed(interrupted: SimulationRequest) -> SimulationResult:
    return simulate_federation(
        SimulationRequest.load(interrupted.output_dir), on_round=lambda report: None, resume=True
    )


def test_the_crash_left_two_acknowledged_rounds_on_the_saved_chain(interrupted: SimulationRequest):
    location = LedgerLocation.load(interrupted.output_dir)
    registry = Registry(Chain.restore(interrupted.output_dir / CHAIN_FILE), location.registry)
    assert registry.run(location.run_id).committed_rounds == CRASH_AFTER_ROUND


def test_the_resumed_run_keeps_its_run_id_and_commits_the_rest(interrupted: SimulationRequest, resumed):
    assert resumed.summary.ledger.run_id == LedgerLocation.load(interrupted.output_dir).run_id
    assert [report.round for report in resumed.summary.rounds] == list(range(CRASH_AFTER_ROUND + 1, ROUNDS + 1))
    registry = Registry(resumed.chain, resumed.summary.ledger.registry)
    assert registry.run_count() == 1
    assert registry.run(resumed.summary.ledger.run_id).committed_rounds == ROUNDS
    acknowledged = [
        json.loads(line)["round"] for line in (interrupted.output_dir / ROUNDS_FILE).read_text().splitlines()
    ]
    assert acknowledged == list(range(1, ROUNDS + 1))


def test_the_resumed_run_ends_with_the_uninterrupted_runs_model(resumed, uninterrupted: SimulationResult):
    assert resumed.summary.final_model_hash == uninterrupted.summary.final_model_hash
    assert all(report.reproduction.startswith("verified") for report in resumed.summary.rounds)


def test_the_resumed_run_audits_as_one_run(resumed):
    report = audit_result(resumed)
    assert report.passed, [str(finding) for finding in report.problems()]
    assert [audit.round for audit in report.runs[0].rounds] == list(range(1, ROUNDS + 1))


def open_run(result: SimulationResult, **changes) -> tuple[LedgerSession, RunRecord, RunConfiguration]:
    """The resumed run's registry and store, as a coordinator with ``changes`` to its settings sees them."""
    settings = replace(result.settings, **changes)
    ledger = replace(result.ledger, registry=result.summary.ledger.registry)
    session = LedgerSession.open(ledger, Chain.restore(Path(result.summary.ledger.saved_chain)))
    run = session.registry.run(result.summary.ledger.run_id)
    app = AppRecord(app_config(run_config_of(settings, ledger)), model_description(settings))
    strategy = describe_strategy(build_strategy(settings))
    configuration = run_configuration(
        ledger, strategy, run.initial_model_hash, settings.num_server_rounds, app, "", None, session.vault.to_json()
    )
    return session, run, configuration


def test_a_complete_run_has_nothing_to_resume(resumed):
    session, run, configuration = open_run(resumed)
    with pytest.raises(CannotResume, match=f"already committed all {ROUNDS} of its rounds"):
        resumed_run(session, run, configuration)


def test_resuming_with_other_settings_is_refused_and_names_them(resumed):
    session, run, configuration = open_run(resumed, learning_rate=0.5)
    with pytest.raises(CannotResume, match=r"details\.app\.config\.learning-rate: \S+ -> 0\.5"):
        resumed_run(session, run, configuration)
