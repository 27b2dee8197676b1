"""A round's record is read from its log or, on a node that keeps no logs, from the store; a record
found in neither fails ``round-record`` and leaves the round's other checks unrun."""

from pathlib import Path

import pytest

from fedledger.audit import Auditor
from fedledger.chain import Chain, Registry
from fedledger.hashing import keccak256
from fedledger.simulations.history import SyntheticHistory
from fedledger.store import ArtifactStore

SHAPES = {"layer.weight": (3, 2), "layer.bias": (3,)}
ROUNDS = 2


@pytest.fixture
def history(tmp_path: Path) -> SyntheticHistory:
    history = SyntheticHistory(
        Chain.in_process(), ArtifactStore(tmp_path / "store"), SHAPES, 3, planned_rounds=ROUNDS, seed=3
    )
    for _ in range(ROUNDS):
        history.add_round()
    return history


@pytest.fixture
def no_logs(monkeypatch: pytest.MonkeyPatch) -> None:
    """A node that prunes logs cannot be run here, so the registry's log lookup is made to find nothing
    (also in the last test)."""
    monkeypatch.setattr(Registry, "_commit_logs", lambda *_: [])


def record_digest(history: SyntheticHistory, round_number: int) -> bytes:
    commitment = history.registry.committed_round(history.run_id, round_number).commitment
    return keccak256(commitment.encode(history.run_id, round_number))


def test_every_round_record_is_in_the_store_and_referenced(history: SyntheticHistory):
    report = Auditor(history.registry, history.store).audit()
    assert report.verdict == "pass"
    for round_number in range(1, ROUNDS + 1):
        assert record_digest(history, round_number) in history.store
    (audit,) = report.runs
    assert [finding.status for finding in audit.findings if finding.check == "orphans"] == ["pass"]


def test_without_logs_the_records_come_from_the_store(history: SyntheticHistory, no_logs: None):
    report = Auditor(history.registry, history.store).audit()
    assert report.verdict == "pass"
    checks = [finding for finding in report.runs[0].rounds[0].findings if finding.check == "round-record"]
    assert [finding.status for finding in checks] == ["pass"]


def test_a_record_in_neither_place_fails_its_round(history: SyntheticHistory, monkeypatch: pytest.MonkeyPatch):
    Path(history.store.path_of(record_digest(history, 2))).unlink()
    monkeypatch.setattr(Registry, "_commit_logs", lambda *_: [])
    report = Auditor(history.registry, history.store).audit()
    assert report.verdict == "fail"
    (round_two,) = [audit for audit in report.runs[0].rounds if audit.round == 2]
    (finding,) = round_two.findings
    assert (finding.check, finding.status) == ("round-record", "fail")
    assert "no record with that hash is in its RoundCommitted log or the store" in finding.message
