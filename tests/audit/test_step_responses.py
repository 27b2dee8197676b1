"""The audit recomputes each examined update's response to the last global step from the stored
record — the previous committed round's examined updates and base model — and fails a coordinator
that records another one; what it cannot recompute it reports as not checked."""

import json
from pathlib import Path

import pytest

from fedledger.audit import Auditor, AuditReport
from fedledger.chain import Chain, Registry
from fedledger.manifest import RoundManifest
from fedledger.simulations.history import Dishonesty, SyntheticHistory
from fedledger.simulations.runner import SimulationRequest, SimulationResult, audit_result, simulate_federation
from fedledger.store import ArtifactStore

SHAPES = {"layer.weight": (6, 4), "layer.bias": (6,)}
CLIENTS = 5
ROUNDS = 3
SIGN_FLIP = 2


def history(tmp_path: Path, tampered_round: int = 0, dishonesty: Dishonesty | None = None) -> SyntheticHistory:
    written = SyntheticHistory(
        Chain.in_process(), ArtifactStore(tmp_path / "store"), SHAPES, CLIENTS, planned_rounds=ROUNDS, seed=3
    )
    for round_number in range(1, ROUNDS + 1):
        written.add_round(dishonesty if round_number == tampered_round else None)
    return written


def committed_manifests(history: SyntheticHistory) -> list[RoundManifest]:
    return [
        RoundManifest.from_bytes(
            history.store.get(history.registry.committed_round(history.run_id, number).commitment.manifest_hash)
        )
        for number in range(1, history.round + 1)
    ]


def anomaly_findings(report: AuditReport) -> list[tuple[str, int | None, str | None]]:
    return [(f.status, f.round, f.participant) for f in report.findings if f.check == "anomaly"]


def test_a_synthetic_history_records_responses_from_its_second_round_and_audits(tmp_path: Path):
    written = history(tmp_path)
    first, *later = committed_manifests(written)
    assert all(entry.anomaly is not None and entry.anomaly.response is None for entry in first.updates)
    for manifest in later:
        responses = [entry.anomaly.response for entry in manifest.updates if entry.anomaly is not None]
        assert len(responses) == CLIENTS and all(isinstance(response, float) for response in responses)
    report = Auditor(written.registry, written.store).audit()
    assert report.passed, [str(finding) for finding in report.problems()]
    messages = [f.message for f in report.findings if f.check == "anomaly"]
    assert messages[0].startswith(f"{CLIENTS} updates examined, 0 responses to the last global step")
    assert all(message.startswith(f"{CLIENTS} updates examined, {CLIENTS} responses") for message in messages[1:])


def rewrite_response(position: int, value: object):
    """A coordinator that records ``value`` as the response of the ``position``-th entry."""

    def rewrite(data: bytes) -> bytes:
        document = json.loads(data)
        document["updates"][position]["anomaly"]["response"] = value
        return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()

    return rewrite


@pytest.mark.parametrize(
    ("tampered_round", "value"),
    [
        (2, -0.9),  # a descending response, which would spare a sign-flipper the direction flag
        (2, None),  # no response where one is due
        (2, "negated"),  # the recomputed response with its sign turned
        (1, -0.9),  # a response in the run's first round, where there is no step to answer
    ],
)
def test_a_false_response_fails_the_anomaly_check_for_that_participant(tmp_path: Path, tampered_round, value):
    honest = committed_manifests(history(tmp_path / "honest"))[tampered_round - 1]
    true_response = honest.updates[1].anomaly.response
    recorded = -true_response if value == "negated" else value
    tampered = history(
        tmp_path / "tampered", tampered_round, Dishonesty(rewrite_manifest=rewrite_response(1, recorded))
    )
    victim = honest.updates[1].participant
    assert committed_manifests(tampered)[tampered_round - 1].updates[1].anomaly.response == recorded
    report = Auditor(tampered.registry, tampered.store).audit()
    assert {(f.check, f.round, f.participant) for f in report.problems()} == {("anomaly", tampered_round, victim)}
    (failure,) = report.problems()
    assert failure.message == "the recorded statistics are not the update's"
    assert f"response={recorded!r}" in (failure.found or "")
    assert f"response={true_response!r}" in (failure.expected or "")


def test_a_lost_update_leaves_only_its_participants_next_response_unchecked(tmp_path: Path):
    written = history(tmp_path)
    victim = committed_manifests(written)[0].updates[3]
    Path(written.store.path_of(bytes.fromhex(victim.update_hash[2:]))).unlink()
    report = Auditor(written.registry, written.store).audit()
    assert anomaly_findings(report) == [
        ("not-run", 1, None),
        ("not-run", 2, victim.participant),
        ("pass", 2, None),
        ("pass", 3, None),
    ]
    (unchecked,) = [f for f in report.findings if (f.check, f.status, f.round) == ("anomaly", "not-run", 2)]
    assert unchecked.message == (
        f"input missing: {victim.participant}'s response to the last global step: "
        "its update the detector examined in the previous round is unusable"
    )
    (passed,) = [f for f in report.findings if (f.check, f.round, f.status) == ("anomaly", 2, "pass")]
    assert passed.message.startswith(f"{CLIENTS} updates examined, {CLIENTS - 1} responses to the last global step")
    assert passed.message.endswith("; 1 responses not checked")


@pytest.fixture(scope="module")
def attacked(tmp_path_factory) -> SimulationResult:
    output_dir = tmp_path_factory.mktemp("responses") / "run"
    request = SimulationRequest(
        scenario="synthetic-iid", clients=6, rounds=2, output_dir=output_dir, misbehaving={SIGN_FLIP: "sign-flip"}
    )
    return simulate_federation(request, lambda report: None)


@pytest.mark.simulation
def test_the_audit_recomputes_the_responses_of_a_real_run(attacked: SimulationResult):
    ledger = attacked.summary.ledger
    store = ArtifactStore(ledger.store)
    report = audit_result(attacked)
    assert report.passed, [str(finding) for finding in report.problems()]
    assert anomaly_findings(report) == [("pass", 1, None), ("pass", 2, None)]
    second = report.runs[0].rounds[1]
    (passed,) = [f for f in second.findings if f.check == "anomaly"]
    assert passed.message.startswith("6 updates examined, 6 responses to the last global step")
    registry = Registry(attacked.chain, ledger.registry)
    manifest = RoundManifest.from_bytes(store.get(registry.committed_round(ledger.run_id, 2).commitment.manifest_hash))
    assert all(entry.anomaly is not None and entry.anomaly.response is not None for entry in manifest.updates)
