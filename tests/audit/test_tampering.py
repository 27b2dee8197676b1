"""An honest history passes the audit; every kind of tampering fails it at the right round and check."""

import json
from pathlib import Path

import numpy as np
import pytest

from fedledger.audit import Auditor, AuditReport
from fedledger.chain import Chain
from fedledger.encoding import encode_model
from fedledger.hashing import from_hex
from fedledger.keys import simulated_participant
from fedledger.manifest import RoundManifest
from fedledger.simulations.history import Dishonesty, SyntheticHistory
from fedledger.store import ArtifactStore

SHAPES = {"layer.weight": (6, 4), "layer.bias": (6,)}
CLIENTS = 5
ROUNDS = 3
TAMPERED_ROUND = 2


def write_history(tmp_path: Path, dishonesty: Dishonesty | None = None) -> SyntheticHistory:
    history = SyntheticHistory(
        Chain.in_process(), ArtifactStore(tmp_path / "store"), SHAPES, CLIENTS, planned_rounds=ROUNDS, seed=5
    )
    for round_number in range(1, ROUNDS + 1):
        history.add_round(dishonesty if round_number == TAMPERED_ROUND else None)
    return history


def audit(history: SyntheticHistory) -> AuditReport:
    return Auditor(history.registry, history.store).audit()


def failures(report: AuditReport) -> set[tuple[str, int | None, str | None]]:
    return {(finding.check, finding.round, finding.participant) for finding in report.problems()}


def unverifiable_without_the_update(round_number: int) -> set[tuple[str, int, None]]:
    """What cannot be recomputed once one of a round's updates is gone."""
    checks = ("anomaly", "reaggregation", "selection", "valuation-players", "valuation-candidates")
    return {(check, round_number, None) for check in checks}


def statuses(report: AuditReport, round_number: int) -> dict[str, int]:
    """How many of the round's findings have each status."""
    counts: dict[str, int] = {}
    for finding in report.runs[0].rounds[round_number - 1].findings:
        counts[finding.status] = counts.get(finding.status, 0) + 1
    return counts


def assert_counted_as_not_run(report: AuditReport, clean: AuditReport, failed: set[str]) -> None:
    """Every check of the clean audit is still counted: the ``failed`` ones fail, those left without
    their input are ``not-run`` and say which input, and no round counts fewer findings than in the
    clean audit (one can count more: a response the next round could not recompute is a not-run
    finding beside that round's anomaly pass)."""
    for tampered, untouched in zip(report.runs[0].rounds, clean.runs[0].rounds, strict=True):
        assert len(tampered.findings) >= len(untouched.findings), tampered.round
    for finding in report.problems():
        if finding.status == "not-run":
            assert finding.message.startswith("input missing: "), finding
        else:
            assert (finding.status, finding.check) in {("fail", check) for check in failed}, finding


def stored_manifest(history: SyntheticHistory, round_number: int) -> tuple[Path, RoundManifest]:
    commitment = history.registry.committed_round(history.run_id, round_number).commitment
    path = Path(history.store.path_of(commitment.manifest_hash))
    return path, RoundManifest.from_bytes(path.read_bytes())


@pytest.fixture
def honest(tmp_path: Path) -> SyntheticHistory:
    return write_history(tmp_path)


def test_an_honest_history_passes_every_check(honest: SyntheticHistory):
    report = audit(honest)
    assert report.passed, [str(finding) for finding in report.problems()]
    checks = {finding.check for finding in report.findings}
    assert checks >= {
        "manifest-hash",
        "signature",
        "registration",
        "update-hash",
        "updates-root",
        "rewards-root",
        "model-chain",
        "reaggregation",
        "rewards",
        "claims",
        "run-config",
        "model-artifact",
    }
    assert [audit.round for audit in report.runs[0].rounds] == [1, 2, 3]


def test_a_flipped_byte_in_a_stored_update(tmp_path: Path, honest: SyntheticHistory):
    _, manifest = stored_manifest(honest, TAMPERED_ROUND)
    victim = manifest.accepted[1]
    path = Path(honest.store.path_of(from_hex(victim.update_hash)))
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    report = audit(honest)
    assert failures(report) == {
        ("update-hash", TAMPERED_ROUND, victim.participant),
        *unverifiable_without_the_update(TAMPERED_ROUND),
        ("anomaly", TAMPERED_ROUND + 1, victim.participant),  # its next response is measured against it
    }
    (finding,) = [f for f in report.problems() if f.check == "update-hash"]
    assert "corrupted" in finding.message and finding.expected == victim.update_hash
    (unchecked,) = [f for f in report.problems() if f.round == TAMPERED_ROUND + 1]
    assert unchecked.status == "not-run"
    assert unchecked.message.startswith(f"input missing: {victim.participant}'s response")
    assert_counted_as_not_run(report, audit(write_history(tmp_path / "clean")), {"update-hash"})


def test_a_replaced_global_model(honest: SyntheticHistory):
    committed = honest.registry.committed_round(honest.run_id, TAMPERED_ROUND).commitment
    other = {name: np.zeros(shape, np.float32) for name, shape in SHAPES.items()}
    Path(honest.store.path_of(committed.model_hash)).write_bytes(encode_model(other))
    report = audit(honest)
    assert failures(report) == {
        ("model-artifact", TAMPERED_ROUND, None),
        # the next round's deltas and candidate models start from it
        ("anomaly", TAMPERED_ROUND + 1, None),
        ("valuation-players", TAMPERED_ROUND + 1, None),
        ("valuation-candidates", TAMPERED_ROUND + 1, None),
    }


@pytest.mark.parametrize("edit", ["changed reward", "dropped entry", "added entry", "reordered entries"])
def test_a_manifest_edited_after_the_commit(tmp_path: Path, honest: SyntheticHistory, edit: str):
    path, _ = stored_manifest(honest, TAMPERED_ROUND)
    document = json.loads(path.read_bytes())
    if edit == "changed reward":
        document["updates"][0]["reward"] = str(int(document["updates"][0]["reward"]) + 1)
    elif edit == "dropped entry":
        document["updates"].pop()
    elif edit == "added entry":
        document["updates"].append(dict(document["updates"][0], node_id=99))
    else:
        document["updates"].reverse()
    path.write_bytes(json.dumps(document, sort_keys=True, separators=(",", ":")).encode())
    clean = audit(write_history(tmp_path / "clean"))
    report = audit(honest)
    (finding,) = [finding for finding in report.problems() if finding.status == "fail"]
    assert (finding.check, finding.round) == ("manifest-hash", TAMPERED_ROUND) and "corrupted" in finding.message
    assert_counted_as_not_run(report, clean, {"manifest-hash"})
    # the round's record and its model pass; every other check of the round needs the manifest, and
    # the per-update ones count once per update
    assert statuses(report, TAMPERED_ROUND) == {
        "pass": 3,
        "fail": 1,
        "not-run": len(clean.runs[0].rounds[1].findings) - 4,
    }
    # the next round's responses to the global step are measured against the updates it lists
    unchecked = [finding for finding in report.problems() if finding.round == TAMPERED_ROUND + 1]
    assert len(unchecked) == CLIENTS and {finding.status for finding in unchecked} == {"not-run"}
    assert all(finding.message.endswith(f"round {TAMPERED_ROUND}'s manifest is unusable") for finding in unchecked)


def test_a_committed_manifest_with_reordered_entries(tmp_path: Path):
    def reorder(data: bytes) -> bytes:
        document = json.loads(data)
        document["updates"].reverse()
        return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()

    report = audit(write_history(tmp_path, Dishonesty(rewrite_manifest=reorder)))
    assert ("manifest-canonical", TAMPERED_ROUND, None) in failures(report)
    assert ("reaggregation", TAMPERED_ROUND, None) in failures(report), "the order is the aggregation order"
    assert {round_number for _, round_number, _ in failures(report)} == {TAMPERED_ROUND}


def test_a_committed_manifest_that_drops_an_accepted_update(tmp_path: Path):
    def drop(data: bytes) -> bytes:
        document = json.loads(data)
        document["updates"].pop()
        return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()

    history = write_history(tmp_path, Dishonesty(rewrite_manifest=drop))
    _, manifest = stored_manifest(history, TAMPERED_ROUND)
    (dropped,) = {account.address for account in history.participants} - {e.participant for e in manifest.updates}
    report = audit(history)
    assert {"manifest-binding", "updates-root", "reaggregation", "requests"} <= {
        check for check, round_number, _ in failures(report) if round_number == TAMPERED_ROUND
    }
    # the next round's response of the participant whose update it hid answers an update it does not list
    assert {finding for finding in failures(report) if finding[1] != TAMPERED_ROUND} == {
        ("anomaly", TAMPERED_ROUND + 1, dropped)
    }


def test_a_committed_manifest_that_hides_a_node_that_never_answered(tmp_path: Path):
    def hide(data: bytes) -> bytes:
        document = json.loads(data)
        document["training"]["asked"].append(99)  # asked, but neither answered nor listed as silent
        return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()

    report = audit(write_history(tmp_path, Dishonesty(rewrite_manifest=hide)))
    assert failures(report) == {("requests", TAMPERED_ROUND, None)}


@pytest.mark.parametrize(
    ("field", "value"),
    [("update_hash", 7), ("participant", "0xnot-an-address"), ("node_id", None), ("reward", [1])],
)
def test_a_committed_manifest_with_a_field_of_the_wrong_type_is_a_finding_not_a_crash(
    tmp_path: Path, field: str, value: object
):
    def mistype(data: bytes) -> bytes:
        document = json.loads(data)
        document["updates"][0][field] = value
        return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()

    report = audit(write_history(tmp_path, Dishonesty(rewrite_manifest=mistype)))
    assert ("manifest-canonical", TAMPERED_ROUND, None) in failures(report)
    assert report.verdict == "fail"
    assert {round_number for _, round_number, _ in failures(report)} <= {TAMPERED_ROUND, TAMPERED_ROUND + 1}


def test_a_committed_manifest_with_an_inflated_score(tmp_path: Path):
    def inflate(data: bytes) -> bytes:
        document = json.loads(data)
        document["updates"][0]["score"] += 0.5
        return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()

    history = write_history(tmp_path, Dishonesty(rewrite_manifest=inflate))
    _, manifest = stored_manifest(history, TAMPERED_ROUND)
    favoured = manifest.updates[0].participant
    report = audit(history)
    assert ("valuation-scores", TAMPERED_ROUND, favoured) in failures(report)
    assert {check for check, _, _ in failures(report)} == {"valuation-scores", "rewards"}
    assert {round_number for _, round_number, _ in failures(report)} == {TAMPERED_ROUND}


def test_an_update_signed_by_an_unregistered_key(tmp_path: Path):
    stranger = simulated_participant(777, 0)
    report = audit(write_history(tmp_path, Dishonesty(signers={2: stranger})))
    assert failures(report) == {("registration", TAMPERED_ROUND, stranger.address)}
    (finding,) = report.problems()
    assert finding.found == "not registered"


def test_an_update_from_a_participant_deactivated_before_the_round(tmp_path: Path):
    history = SyntheticHistory(
        Chain.in_process(), ArtifactStore(tmp_path / "store"), SHAPES, CLIENTS, planned_rounds=TAMPERED_ROUND, seed=5
    )
    history.add_round()
    removed = history.participants[3].address
    block = history.registry.deactivate_participant(removed).block_number
    history.add_round()
    report = audit(history)
    assert failures(report) == {("registration", TAMPERED_ROUND, removed)}
    assert report.problems()[0].found == f"deactivated at block {block}"


def test_a_committed_model_that_is_not_the_aggregate(tmp_path: Path):
    def nudge(aggregate: dict) -> dict:
        return {name: value + np.float32(1e-6) for name, value in aggregate.items()}

    report = audit(write_history(tmp_path, Dishonesty(commit_model=nudge)))
    assert failures(report) == {("reaggregation", TAMPERED_ROUND, None)}
    (finding,) = report.problems()
    assert finding.message == "the committed model is not the aggregate of the accepted updates"
    assert finding.expected != finding.found


def test_missing_artifacts_are_reported_as_missing(tmp_path: Path, honest: SyntheticHistory):
    _, manifest = stored_manifest(honest, TAMPERED_ROUND)
    victim = manifest.accepted[0]
    Path(honest.store.path_of(from_hex(victim.update_hash))).unlink()
    manifest_path, _ = stored_manifest(honest, 3)
    manifest_path.unlink()
    clean = audit(write_history(tmp_path / "clean"))
    report = audit(honest)
    assert {(check, number, participant) for check, number, participant in failures(report) if number != 3} == {
        ("update-hash", TAMPERED_ROUND, victim.participant),
        *unverifiable_without_the_update(TAMPERED_ROUND),
    }
    assert all(
        "missing" in finding.message
        for finding in report.problems()
        if finding.check in {"update-hash", "manifest-hash"}
    )
    assert_counted_as_not_run(report, clean, {"update-hash", "manifest-hash"})
    assert statuses(report, 3) == {"pass": 3, "fail": 1, "not-run": len(clean.runs[0].rounds[2].findings) - 4}
    assert report.summary().startswith(
        f"FAIL: {len(clean.findings) - 2 - report.counts()['not-run']} of {len(clean.findings)} checks passed, "
        f"2 failed, {report.counts()['not-run']} not run (input missing)"
    )


def test_a_claim_larger_than_the_manifest_grants(tmp_path: Path):
    """The coordinator puts a larger amount in the rewards root than in the manifest; the participant claims it."""
    _, honest_manifest = stored_manifest(write_history(tmp_path / "honest"), TAMPERED_ROUND)
    rewards = {entry.participant: entry.reward for entry in honest_manifest.accepted}
    history = SyntheticHistory(
        Chain.in_process(), ArtifactStore(tmp_path / "store"), SHAPES, CLIENTS, planned_rounds=TAMPERED_ROUND, seed=5
    )
    greedy = history.participants[0].address
    inflated = {**rewards, greedy: rewards[greedy] * 2}
    history.add_round()
    manifest = history.add_round(Dishonesty(inflate_rewards=inflated))
    assert {entry.participant: entry.reward for entry in manifest.accepted} == rewards
    history.claim(0, TAMPERED_ROUND, inflated[greedy], inflated)
    report = audit(history)
    assert failures(report) == {("claims", TAMPERED_ROUND, greedy), ("rewards-root", TAMPERED_ROUND, None)}
    claim = next(finding for finding in report.problems() if finding.check == "claims")
    assert (claim.expected, claim.found) == (str(rewards[greedy]), str(inflated[greedy]))


def test_a_claim_by_a_participant_the_manifest_grants_nothing(tmp_path: Path):
    """The coordinator slips a registered outsider into the rewards root; the outsider claims."""
    _, honest_manifest = stored_manifest(write_history(tmp_path / "honest"), TAMPERED_ROUND)
    rewards = {entry.participant: entry.reward for entry in honest_manifest.accepted}
    history = SyntheticHistory(
        Chain.in_process(), ArtifactStore(tmp_path / "store"), SHAPES, CLIENTS, planned_rounds=TAMPERED_ROUND, seed=5
    )
    outsider = simulated_participant(5, CLIENTS)
    slipped = {**rewards, outsider.address: 10**18}
    history.add_round()
    history.add_round(Dishonesty(inflate_rewards=slipped))
    history.registry.add_participant(outsider.address, bytes(32))
    history.participants.append(outsider)
    history.claim(CLIENTS, TAMPERED_ROUND, slipped[outsider.address], slipped)
    report = audit(history)
    assert failures(report) == {("claims", TAMPERED_ROUND, outsider.address), ("rewards-root", TAMPERED_ROUND, None)}
    claim = next(finding for finding in report.problems() if finding.check == "claims")
    assert (claim.expected, claim.found) == ("0", str(10**18))
