"""The audit sees what is missing: rounds planned but never committed, and store artifacts of the
run that no committed round points to (a round run again, a round stored but never committed)."""

import dataclasses
from pathlib import Path

from fedledger.audit import Auditor, AuditReport, Finding
from fedledger.chain import Chain
from fedledger.encoding import encode_model
from fedledger.hashing import from_hex, to_hex
from fedledger.rewards import RewardRule
from fedledger.runconfig import RunConfiguration
from fedledger.simulations.history import STRATEGY, SyntheticHistory
from fedledger.store import ArtifactStore

SHAPES = {"layer.weight": (4, 3), "layer.bias": (4,)}
CLIENTS = 3


def new_history(store: ArtifactStore, planned_rounds: int, chain: Chain | None = None) -> SyntheticHistory:
    return SyntheticHistory(chain or Chain.in_process(), store, SHAPES, CLIENTS, planned_rounds=planned_rounds, seed=3)


def audit(history: SyntheticHistory) -> AuditReport:
    return Auditor(history.registry, history.store).audit([history.run_id])


def findings_of(report: AuditReport, check: str) -> list[Finding]:
    return [finding for finding in report.findings if finding.check == check]


def named(finding: Finding) -> str:
    """The hash an orphan finding names: ``update 0x... is stored, ...``."""
    return finding.message.split()[1]


def committed_manifest(history: SyntheticHistory, round_number: int) -> str:
    return to_hex(history.registry.committed_round(history.run_id, round_number).commitment.manifest_hash)


def test_a_run_that_committed_every_planned_round_passes_with_no_orphans(tmp_path: Path):
    history = new_history(ArtifactStore(tmp_path), planned_rounds=2)
    history.add_round()
    history.add_round()
    report = audit(history)
    assert report.verdict == "pass" and report.passed
    (rounds,) = findings_of(report, "rounds")
    assert (rounds.status, rounds.message) == ("pass", "2 of 2 planned rounds committed")
    (orphans,) = findings_of(report, "orphans")
    assert orphans.status == "pass"
    assert report.runs[0].planned_rounds == 2 and report.runs[0].rerun_rounds == []


def test_a_run_that_stops_short_of_its_plan_is_incomplete_not_passed(tmp_path: Path):
    history = new_history(ArtifactStore(tmp_path), planned_rounds=5)
    history.add_round()
    history.add_round()
    report = audit(history)
    assert report.verdict == "incomplete" and not report.passed
    assert report.runs[0].verdict == "incomplete"
    (rounds,) = findings_of(report, "rounds")
    assert rounds.status == "incomplete"
    assert (rounds.expected, rounds.found) == ("5 rounds", "2 rounds")
    assert rounds.message == "2 of 5 planned rounds committed: rounds 3 to 5 never committed"
    assert [finding.status for finding in report.problems()] == ["incomplete"], "every committed round passes"
    assert "INCOMPLETE" in report.summary() and "run 1: 2 of 5 planned rounds committed" in report.summary()
    assert report.to_json()["verdict"] == "incomplete"
    details = {"findings": None, "rounds": None, "configuration": None, "participants": None}
    assert report.to_json()["runs"][0] | details == {
        "run_id": 1,
        "verdict": "incomplete",
        "planned_rounds": 5,
        "committed_rounds": 2,
        "rerun_rounds": [],
        **details,
    }


def test_a_failed_check_wins_over_an_incomplete_run(tmp_path: Path):
    history = new_history(ArtifactStore(tmp_path), planned_rounds=3)
    manifest = history.add_round()
    Path(history.store.path_of(from_hex(manifest.model_hash))).write_bytes(b"not the model")
    report = audit(history)
    assert {finding.status for finding in report.problems()} >= {"fail", "incomplete"}
    assert report.verdict == "fail" and report.runs[0].verdict == "fail"


def start_run(history: SyntheticHistory, details: dict, planned_rounds: int) -> int:
    """A second run on the history's registry, its configuration recording ``details``."""
    config = RunConfiguration(STRATEGY, RewardRule("score", 0), details=details)
    run_id, _ = history.registry.start_run(history.store.put(config.to_bytes()), history.model_hash, 0, planned_rounds)
    return run_id


def test_a_configuration_that_plans_otherwise_than_the_registry_is_a_failure(tmp_path: Path):
    history = new_history(ArtifactStore(tmp_path), planned_rounds=1)
    run_id = start_run(history, {"num_server_rounds": 1}, planned_rounds=2)
    report = Auditor(history.registry, history.store).audit([run_id])
    (planned,) = findings_of(report, "planned-rounds")
    assert planned.status == "fail"
    assert (planned.expected, planned.found) == ("2 rounds (registry)", "1 rounds (run configuration)")
    assert report.verdict == "fail"


def test_a_run_whose_configuration_plans_no_rounds_cannot_pass(tmp_path: Path):
    history = new_history(ArtifactStore(tmp_path), planned_rounds=1)
    run_id = start_run(history, {"model": "unplanned"}, planned_rounds=1)
    report = Auditor(history.registry, history.store).audit([run_id])
    (planned,) = findings_of(report, "planned-rounds")
    assert planned.status == "unsupported" and "details.num_server_rounds" in planned.message
    assert report.runs[0].planned_rounds == 1 and report.verdict == "fail"


def test_a_round_run_again_is_listed_with_its_round_and_marked_but_does_not_fail_the_run(tmp_path: Path):
    history = new_history(ArtifactStore(tmp_path), planned_rounds=3)
    history.add_round()
    abandoned = history.add_round(commit=False)
    history.add_round()
    history.add_round()
    abandoned_hash = to_hex(abandoned.manifest_hash)
    report = audit(history)
    assert report.verdict == "pass", [str(finding) for finding in report.problems()]
    run = report.runs[0]
    assert run.rerun_rounds == [2]
    manifests = [finding for finding in run.orphans if "manifest" in finding.message and "run again" in finding.message]
    (rerun,) = manifests
    assert (rerun.round, rerun.expected, rerun.found) == (2, committed_manifest(history, 2), abandoned_hash)
    assert committed_manifest(history, 2) != abandoned_hash
    updates = {named(finding): finding for finding in run.orphans if finding.message.startswith("update ")}
    assert set(updates) == {entry.update_hash for entry in abandoned.updates}
    assert all(finding.round == 2 and finding.status == "orphan" for finding in run.orphans)
    assert {finding.participant for finding in updates.values()} == {entry.participant for entry in abandoned.updates}
    models = [finding for finding in run.orphans if finding.message.startswith("model ")]
    assert [named(finding) for finding in models] == [abandoned.model_hash]
    assert len(run.orphans) == 1 + CLIENTS + 1
    assert "round 2 was run again" in report.summary()
    document = report.to_json()["runs"][0]
    assert document["rerun_rounds"] == [2] and [entry["rerun"] for entry in document["rounds"]] == [False, True, False]


def test_a_round_stored_but_never_committed_is_listed_and_the_run_is_incomplete(tmp_path: Path):
    history = new_history(ArtifactStore(tmp_path), planned_rounds=3)
    history.add_round()
    history.add_round()
    uncommitted = history.add_round(commit=False)
    uncommitted_hash = to_hex(uncommitted.manifest_hash)
    report = audit(history)
    assert report.verdict == "incomplete"
    run = report.runs[0]
    assert run.rerun_rounds == []
    (manifest,) = [finding for finding in run.orphans if finding.message.startswith("manifest ")]
    assert manifest.round == 3
    assert manifest.message == f"manifest {uncommitted_hash} is stored, but round 3 was never committed"
    assert {finding.round for finding in run.orphans} == {3}
    assert len(run.orphans) == 1 + CLIENTS + 1


def test_orphans_are_listed_and_never_counted_as_checks(tmp_path: Path):
    history = new_history(ArtifactStore(tmp_path), planned_rounds=1)
    history.add_round()
    history.add_round(commit=False)
    report = audit(history)
    checks = len(report.findings) - len(report.runs[0].orphans)
    assert report.runs[0].orphans
    assert report.summary().startswith(f"PASS: {checks} of {checks} checks passed; run 1: ")
    assert all(finding.status == "orphan" for finding in report.problems())


def test_other_runs_in_a_shared_store_are_not_attributed_to_this_one(tmp_path: Path):
    """Another registry on the same chain, and another run id on this registry, write to the same store."""
    store, chain = ArtifactStore(tmp_path), Chain.in_process()
    audited = new_history(store, planned_rounds=2, chain=chain)
    other = new_history(store, planned_rounds=2, chain=chain)
    assert other.registry.address != audited.registry.address
    for history in (audited, other):
        history.add_round()
        history.add_round()
    other.add_round(commit=False)
    stray = other.add_round(commit=False)
    store.put(dataclasses.replace(stray, registry=audited.registry.address, run_id=audited.run_id + 1).to_bytes())
    store.put(encode_model({"unrelated": other.model["layer.bias"] * 0}))
    report = audit(audited)
    assert report.verdict == "pass" and report.runs[0].orphans == []
    (orphans,) = findings_of(report, "orphans")
    assert orphans.status == "pass"
    assert {finding.round for finding in audit(other).runs[0].orphans} == {3}
