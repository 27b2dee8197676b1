"""Federations on Flower's Simulation Engine, checked against what the chain and the store hold."""

import re
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from fedledger.chain import Registry
from fedledger.cli import app
from fedledger.coordinator.vault import Vault
from fedledger.encoding import decode_model, model_hash
from fedledger.hashing import from_hex, keccak256, to_hex
from fedledger.keys import simulated_participant
from fedledger.manifest import RoundManifest
from fedledger.merkle import MerkleTree, reward_leaf, update_leaf
from fedledger.signing import UpdateMessage, verify_update
from fedledger.simulations.adversaries import HANG_SECONDS, garbage_layout
from fedledger.simulations.runner import SimulationRequest, SimulationResult, audit_result, simulate_federation
from fedledger.store import ArtifactStore

pytestmark = pytest.mark.simulation

FAULTS = {
    2: "nan",
    3: "wrong-shape",
    4: "bad-signature",
    5: "unregistered-key",
    6: "stale-base",
    7: "replay",
    8: "duplicate",
}
GARBAGE_SITE, HANGING_SITE = 3, 4
#: What the coordinator makes of each garbage layout (fedledger.simulations.adversaries.GARBAGE).
GARBAGE_REASONS = {
    "train": {
        "error": "client-error",
        "second-array-record": "malformed",
        "no-metric-record": "malformed",
        "example-count-list": "bad-example-count",
        "second-metric-record": "malformed",
        "nan-loss": "non-finite",
        "extra-array": "wrong-arrays",
        "float64-arrays": "wrong-arrays",
        "huge-array": "wrong-arrays",
        "corrupt-array-bytes": "malformed",
        "no-ledger-record": "malformed",
    },
    "evaluate": {
        "error": "client-error",
        "no-example-count": "bad-example-count",
        "nan-loss": "non-finite",
        "no-metric-record": "malformed",
        "example-count-list": "bad-example-count",
        "second-metric-record": "malformed",
        "no-participant": "malformed",
    },
}


def run(tmp_path_factory, name: str, **request) -> SimulationResult:
    output_dir = tmp_path_factory.mktemp(name) / "run"
    return simulate_federation(SimulationRequest(output_dir=output_dir, **request), on_round=lambda report: None)


def manifests(result: SimulationResult) -> list[tuple[bytes, RoundManifest]]:
    """Each committed round's manifest, fetched by the hash the chain holds."""
    registry = Registry(result.chain, result.summary.ledger.registry)
    store = ArtifactStore(result.ledger.store)
    found = []
    for round_number in range(1, registry.run(result.summary.ledger.run_id).committed_rounds + 1):
        committed = registry.committed_round(result.summary.ledger.run_id, round_number).commitment
        data = store.get(committed.manifest_hash)
        found.append((data, RoundManifest.from_bytes(data)))
    return found


@pytest.fixture(scope="module")
def hospitals(tmp_path_factory) -> SimulationResult:
    return run(tmp_path_factory, "hospitals", scenario="hospitals", rounds=2)


@pytest.fixture(scope="module")
def faulty(tmp_path_factory) -> SimulationResult:
    return run(tmp_path_factory, "faulty", scenario="synthetic", clients=10, rounds=2, misbehaving=FAULTS)


@pytest.fixture(scope="module")
def unruly(tmp_path_factory) -> SimulationResult:
    """Three honest sites, one sending garbage every round, one that never answers in time to train."""
    return run(
        tmp_path_factory,
        "unruly",
        scenario="synthetic",
        clients=5,
        rounds=2,
        misbehaving={GARBAGE_SITE: "garbage", HANGING_SITE: "hang"},
        overrides={"round_timeout": HANG_SECONDS - 5},
    )


def test_rounds_are_committed_in_order_and_chain_the_models(hospitals: SimulationResult):
    registry = Registry(hospitals.chain, hospitals.summary.ledger.registry)
    run = registry.run(hospitals.summary.ledger.run_id)
    assert run.committed_rounds == 2
    rounds = [registry.committed_round(run.run_id, number) for number in (1, 2)]
    assert rounds[0].committed_at_block < rounds[1].committed_at_block
    events = registry.contract.events.RoundCommitted().get_logs(from_block=0)
    assert [event["args"]["round"] for event in events] == [1, 2]
    (_, first), (_, second) = manifests(hospitals)
    assert first.base_model_hash == to_hex(run.initial_model_hash)
    assert second.base_model_hash == first.model_hash == to_hex(rounds[0].commitment.model_hash)


def test_the_on_chain_model_hash_is_the_hash_of_the_final_model(hospitals: SimulationResult):
    registry = Registry(hospitals.chain, hospitals.summary.ledger.registry)
    final_on_chain = registry.committed_round(hospitals.summary.ledger.run_id, 2).commitment.model_hash
    assert to_hex(final_on_chain) == hospitals.summary.final_model_hash
    stored = ArtifactStore(hospitals.ledger.store).get(final_on_chain)
    assert model_hash(decode_model(stored)) == final_on_chain


def test_manifests_are_stored_and_match_their_committed_hashes(hospitals: SimulationResult):
    registry = Registry(hospitals.chain, hospitals.summary.ledger.registry)
    store = ArtifactStore(hospitals.ledger.store)
    domain = registry.signing_domain()
    for data, manifest in manifests(hospitals):
        committed = registry.committed_round(manifest.run_id, manifest.round).commitment
        assert keccak256(data) == committed.manifest_hash == manifest.manifest_hash
        assert (committed.accepted, committed.rejected) == (4, 0)
        assert manifest.reproduction == "verified"
        assert manifest.strategy["name"] == "FedAvg"
        accepted = manifest.accepted
        assert [entry.participant for entry in accepted] == sorted(entry.participant for entry in accepted)
        vault = Vault.open(hospitals.ledger)
        for entry in accepted:
            update = from_hex(entry.update_hash)
            assert model_hash(decode_model(vault.get(store, from_hex(entry.sealed_hash), update))) == update
            message = UpdateMessage(
                manifest.run_id, manifest.round, from_hex(manifest.base_model_hash), update, entry.num_examples
            )
            assert verify_update(domain, message, from_hex(entry.signature, size=None), entry.participant)
        leaves = [
            update_leaf(manifest.run_id, manifest.round, e.participant, from_hex(e.update_hash), e.num_examples)
            for e in accepted
        ]
        assert MerkleTree(leaves).root == committed.updates_root
        rewards = [reward_leaf(manifest.run_id, manifest.round, e.participant, e.reward) for e in accepted if e.reward]
        assert MerkleTree(rewards).root == committed.rewards_root
        assert 0 < sum(entry.reward for entry in accepted) <= hospitals.ledger.rewards.budget


def test_the_summary_reports_every_round_and_the_site_figures(hospitals: SimulationResult):
    assert [report.round for report in hospitals.summary.rounds] == [1, 2]
    assert all(report.gas_used < 150_000 for report in hospitals.summary.rounds)
    assert [site.name for site in hospitals.sites] == ["Cleveland", "Hungary", "Switzerland", "VA Long Beach"]
    assert 0.5 < hospitals.pooled_accuracy <= 1.0
    assert Path(hospitals.ledger.output_dir, "federation.json").is_file()


def test_each_bad_reply_is_rejected_with_its_reason_and_the_round_goes_on(faulty: SimulationResult):
    (_, first), (_, second) = manifests(faulty)
    expected = {
        "non-finite": 1,
        "wrong-arrays": 1,
        "bad-signature": 1,
        "unregistered": 1,
        "stale-base-model": 1,
        "duplicate-participant": 2,
    }
    for manifest, extra in ((first, {}), (second, {"wrong-round": 1})):
        reasons: dict[str, int] = {}
        for entry in manifest.rejected:
            reasons[entry.reason] = reasons.get(entry.reason, 0) + 1
            assert entry.detail
        assert reasons == {**expected, **extra}, manifest.round
        assert manifest.outcome == "aggregated"
        assert manifest.reproduction == "verified"
    assert len(first.accepted) == 3  # partitions 0, 1 and the replaying 7, which had nothing to replay yet
    assert len(second.accepted) == 2
    replayed = next(entry for entry in second.rejected if entry.reason == "wrong-round")
    assert replayed.detail == "signed for round 1, this is round 2"


def test_rejected_updates_are_kept_in_the_store_sealed(faulty: SimulationResult):
    store = ArtifactStore(faulty.ledger.store)
    vault = Vault.open(faulty.ledger)
    (_, first), _ = manifests(faulty)
    for entry in first.rejected:
        assert entry.update_hash is not None and entry.sealed_hash is not None
        listed = from_hex(entry.update_hash)
        assert keccak256(vault.get(store, from_hex(entry.sealed_hash), listed)) == listed


def test_a_round_with_too_few_valid_updates_fails_cleanly(tmp_path_factory):
    result = run(
        tmp_path_factory,
        "failing",
        scenario="synthetic",
        clients=3,
        rounds=1,
        misbehaving={2: "nan"},
        overrides={"min_accepted": 3},
    )
    ((_, manifest),) = manifests(result)
    assert manifest.outcome == "failed"
    assert manifest.failure == "2 valid updates, at least 3 needed"
    assert manifest.model_hash == manifest.base_model_hash
    assert sorted(entry.reason for entry in manifest.rejected) == ["non-finite", "round-failed", "round-failed"]
    assert result.summary.final_model_hash == result.summary.initial_model_hash


def test_a_run_whose_final_model_is_not_evaluated_has_no_site_figures_and_is_still_recorded(tmp_path_factory):
    request = SimulationRequest(
        scenario="synthetic", clients=3, rounds=1, output_dir=tmp_path_factory.mktemp("unevaluated") / "run"
    )
    result = simulate_federation(request, on_round=lambda report: None, evaluate_final=False)
    assert result.sites == [] and np.isnan(result.pooled_accuracy)
    assert [report.round for report in result.summary.rounds] == [1]
    assert audit_result(result).passed


def test_the_finished_simulation_passes_the_audit_from_its_saved_chain(hospitals: SimulationResult):
    result = CliRunner().invoke(app, ["audit", "--simulation", hospitals.ledger.output_dir])
    assert result.exit_code == 0, result.output
    assert "PASS: " in result.output


def test_a_run_with_rejected_updates_passes_the_audit(faulty: SimulationResult):
    report = audit_result(faulty)
    assert report.passed, [str(finding) for finding in report.problems()]
    checked = {finding.participant for finding in report.findings if finding.check == "update-hash"}
    assert len(checked) >= 9, "rejected updates are checked in the store too"


def unruly_nodes(manifest: RoundManifest, result: SimulationResult) -> tuple[set[int], int, int]:
    """The honest sites' nodes, the garbage site's and the hanging site's, from one round's record."""
    honest = {simulated_participant(result.ledger.key_seed, index).address for index in range(3)}
    honest_nodes = {entry.node_id for entry in manifest.accepted if entry.participant in honest}
    assert len(honest_nodes) == 3
    (garbage,) = {entry.node_id for entry in manifest.updates} - honest_nodes
    (hanging,) = set(manifest.training.asked) - honest_nodes - {garbage}
    return honest_nodes, garbage, hanging


def test_a_site_sending_garbage_every_round_is_rejected_with_a_reason_each_time(unruly: SimulationResult):
    rounds = manifests(unruly)
    assert [manifest.round for _, manifest in rounds] == [1, 2]
    layouts = set()
    for _, manifest in rounds:
        _, garbage, _ = unruly_nodes(manifest, unruly)
        assert manifest.outcome == "aggregated" and manifest.reproduction == "verified"
        (entry,) = [entry for entry in manifest.updates if entry.node_id == garbage]
        layout = garbage_layout("train", manifest.round, GARBAGE_SITE)
        layouts.add(layout)
        assert (entry.status, entry.reason) == ("rejected", GARBAGE_REASONS["train"][layout]), layout
        assert entry.detail
        if layout == "huge-array":
            assert entry.update_hash is None, "arrays far larger than the model are not stored"
        (rejected,) = manifest.rejected_evaluations
        layout = garbage_layout("evaluate", manifest.round, GARBAGE_SITE)
        assert (rejected.node_id, rejected.reason) == (garbage, GARBAGE_REASONS["evaluate"][layout]), layout
        assert rejected.detail
        assert len(manifest.metrics["evaluate"]["participants"]) == 4
    assert len(layouts) == 2, "the garbage changes every round"


def test_a_node_that_never_answers_in_time_is_recorded_as_silent_each_round(unruly: SimulationResult):
    for _, manifest in manifests(unruly):
        honest, garbage, hanging = unruly_nodes(manifest, unruly)
        assert manifest.training.asked == tuple(sorted({*honest, garbage, hanging}))
        assert manifest.training.silent == (hanging,)
        assert manifest.evaluation.asked == manifest.training.asked and manifest.evaluation.silent == ()
        assert hanging not in {entry.node_id for entry in manifest.updates}


def test_a_run_with_garbage_and_a_silent_node_passes_the_audit(unruly: SimulationResult):
    report = audit_result(unruly)
    assert report.passed, [str(finding) for finding in report.problems()]
    assert [audit.outcome for audit in report.runs[0].rounds] == ["aggregated"] * 2


def test_with_too_few_nodes_connected_every_round_is_committed_as_failed(tmp_path_factory):
    result = run(
        tmp_path_factory,
        "too-few",
        scenario="synthetic",
        clients=3,
        rounds=2,
        overrides={"min_nodes": 4, "connect_timeout": 1.0},
    )
    rounds = manifests(result)
    assert [manifest.round for _, manifest in rounds] == [1, 2]
    for _, manifest in rounds:
        assert manifest.outcome == "failed"
        for shortage in (manifest.failure, manifest.evaluation.skipped):  # each phase waits on its own
            waited = re.fullmatch(r"too few nodes connected: 3 connected, 4 needed; waited (\d+\.\d) s", shortage or "")
            assert waited is not None, shortage
            assert float(waited.group(1)) >= 1.0  # the whole connect-timeout; a busy machine may take longer
        assert manifest.training.skipped == manifest.failure
        assert manifest.training.asked == manifest.evaluation.asked == ()
    assert result.summary.final_model_hash == result.summary.initial_model_hash
    assert audit_result(result).passed
