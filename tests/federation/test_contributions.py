"""Attackers are caught and paid nothing, free-riders earn nothing, honest sites are paid by the
value the sites' own signed validation gives their updates, updates a robust strategy leaves out
earn nothing, claims match the manifest, and the audit recomputes all of it."""

from fractions import Fraction
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fedledger.chain import Chain, Registry, RewardClaim
from fedledger.cli import app
from fedledger.keys import PRIVATE_KEY_ENV, simulated_participant
from fedledger.manifest import RoundManifest
from fedledger.merkle import reward_leaf
from fedledger.rounds import rewards_tree
from fedledger.simulations.runner import SimulationRequest, SimulationResult, audit_result, simulate_federation
from fedledger.store import ArtifactStore

from helpers import reverts

pytestmark = pytest.mark.simulation

SIGN_FLIP, SCALING, FREE_RIDER, HONEST = 2, 5, 8, 0
ATTACKS = {SIGN_FLIP: "sign-flip", SCALING: "scaling", FREE_RIDER: "free-rider"}


def run(tmp_path_factory, name: str, **request) -> SimulationResult:
    output_dir = tmp_path_factory.mktemp(name) / "run"
    return simulate_federation(
        SimulationRequest(scenario="synthetic-iid", clients=10, output_dir=output_dir, **request), lambda report: None
    )


def manifests(result: SimulationResult) -> list[RoundManifest]:
    ledger = result.summary.ledger
    registry, store = Registry(result.chain, ledger.registry), ArtifactStore(ledger.store)
    return [
        RoundManifest.from_bytes(store.get(registry.committed_round(ledger.run_id, number).commitment.manifest_hash))
        for number in range(1, registry.run(ledger.run_id).committed_rounds + 1)
    ]


def address(partition: int) -> str:
    return simulated_participant(0, partition).address


@pytest.fixture(scope="module")
def attacked(tmp_path_factory) -> SimulationResult:
    return run(tmp_path_factory, "attacked", rounds=3, misbehaving=ATTACKS)


def test_sign_flip_and_scaling_attackers_are_flagged_and_paid_nothing(attacked: SimulationResult):
    """Both are paid nothing in every round. The scaling attacker is always flagged; the sign-flipped
    update is flagged unless its response to the last global step happens to look like descent
    (on this IID task that response is noisy: one round in three or so), and then the valuation's
    own-evaluation gate still pays it nothing."""
    for manifest in manifests(attacked):
        entries = {entry.participant: entry for entry in manifest.updates}
        for attacker in (SIGN_FLIP, SCALING):
            assert entries[address(attacker)].reward == 0, manifest.round
        scaling, sign_flip = entries[address(SCALING)], entries[address(SIGN_FLIP)]
        assert (scaling.status, scaling.reason) == ("rejected", "anomalous"), manifest.round
        assert "norm" in scaling.anomaly.flags and "robust z-score" in scaling.detail
        if sign_flip.anomaly.descends():
            assert sign_flip.score == 0.0, manifest.round
        else:
            assert (sign_flip.status, sign_flip.reason) == ("rejected", "anomalous"), manifest.round
            assert "direction" in sign_flip.anomaly.flags and "robust z-score" in sign_flip.detail


def test_a_free_rider_earns_at_most_a_hair_and_honest_sites_take_the_rewards(attacked: SimulationResult):
    """Its update alone is the round's model plus noise, which does not improve its own rows, so its
    own validation does not vouch for it; where its noise happens to, it earns at most that hair (or
    the detector rejects its noise outright)."""
    paid_honest = paid_free_rider = paid = 0
    for manifest in manifests(attacked):
        for entry in manifest.updates:
            paid += entry.reward
            if entry.participant == address(FREE_RIDER):
                assert entry.reason == "anomalous" or entry.score < 1e-3, manifest.round
                paid_free_rider += entry.reward
            elif entry.participant not in {address(partition) for partition in ATTACKS}:
                paid_honest += entry.reward
    assert paid_free_rider <= 0.01 * paid
    assert paid_honest >= 0.98 * paid


def test_every_round_records_the_validators_signed_losses(attacked: SimulationResult):
    for manifest in manifests(attacked):
        valuation = manifest.valuation
        assert valuation is not None and valuation.failure is None
        accepted = {entry.node_id: entry.participant for entry in manifest.accepted}
        assert {report.node_id: report.participant for report in valuation.validators} == accepted
        assert all(
            report.accepted and len(report.values or ()) == len(valuation.candidates) for report in valuation.validators
        )
        assert sorted(member for player in valuation.players for member in player) == sorted(
            entry.participant for entry in manifest.valued
        )


def test_rewards_are_split_by_score_within_the_budget(attacked: SimulationResult):
    budget = attacked.ledger.rewards.budget
    for manifest in manifests(attacked):
        total_score = sum(Fraction(entry.score) for entry in manifest.accepted)
        for entry in manifest.accepted:
            assert entry.reward == int(budget * Fraction(entry.score) / total_score)
        assert sum(entry.reward for entry in manifest.accepted) <= budget


def test_honest_sites_are_not_flagged_in_a_clean_run(tmp_path_factory):
    clean = run(tmp_path_factory, "clean", rounds=2)
    for manifest in manifests(clean):
        assert manifest.rejected == ()
        assert all(entry.anomaly is not None and entry.anomaly.flags == () for entry in manifest.accepted)


def test_claims_pay_exactly_the_manifest_and_only_once(attacked: SimulationResult, monkeypatch):
    directory = attacked.ledger.output_dir
    honest = simulated_participant(0, HONEST)
    monkeypatch.setenv(PRIVATE_KEY_ENV, honest.key.to_0x_hex())
    saved_chain = Path(attacked.summary.ledger.saved_chain)
    assert Chain.restore(saved_chain).balance(honest.address) == 0, "registering a simulated site sends it nothing"
    first = CliRunner().invoke(app, ["client", "claim", "--simulation", directory])
    assert first.exit_code == 0, first.output
    assert f"{honest.address} has no ether on the in-process chain: sent it 0.1 for gas" in first.output
    assert "3 rewards claimed" in first.output
    again = CliRunner().invoke(app, ["client", "claim", "--simulation", directory])
    assert "0 rewards claimed" in again.output and "for gas" not in again.output

    chain = Chain.restore(saved_chain)
    registry = Registry(chain, attacked.summary.ledger.registry)
    granted = [
        next(e.reward for e in manifest.accepted if e.participant == honest.address) for manifest in manifests(attacked)
    ]
    assert registry.token_balance(honest.address) == sum(granted)
    for round_number, amount in enumerate(granted, start=1):
        assert registry.has_claimed(attacked.summary.ledger.run_id, round_number, honest.address) == (amount > 0)

    manifest = manifests(attacked)[0]
    rewards = {entry.participant: entry.reward for entry in manifest.accepted}
    proof = rewards_tree(manifest.run_id, 1, rewards).proof(reward_leaf(manifest.run_id, 1, honest.address, granted[0]))
    chain.add_signer(honest)
    with reverts("RewardAlreadyClaimed", participant=honest.address):
        registry.as_sender(honest.address).claim([RewardClaim(manifest.run_id, 1, granted[0], proof)])


def test_the_audit_recomputes_scores_detection_and_rewards(attacked: SimulationResult):
    report = audit_result(attacked)
    assert report.passed, [str(finding) for finding in report.problems()]
    for check in (
        "scores",
        "valuation-players",
        "valuation-candidates",
        "valuation-signatures",
        "anomaly",
        "rewards",
        "claims",
    ):
        assert sum(finding.check == check and finding.status == "pass" for finding in report.findings) == 3, check


def test_updates_krum_leaves_out_earn_nothing_and_the_audit_re_derives_the_selection(tmp_path_factory):
    result = run(
        tmp_path_factory,
        "krum",
        rounds=2,
        strategy="MultiKrum",
        overrides={"num_malicious_nodes": 2, "num_nodes_to_select": 5},
    )
    for manifest in manifests(result):
        selected = [entry for entry in manifest.accepted if entry.selected]
        left_out = [entry for entry in manifest.accepted if entry.selected is False]
        assert (len(selected), len(left_out)) == (5, 5)
        assert all((entry.score, entry.reward) == (0.0, 0) for entry in left_out)
        assert manifest.valuation is not None
        assert sorted(member for player in manifest.valuation.players for member in player) == sorted(
            entry.participant for entry in selected
        )
    report = audit_result(result)
    assert report.passed, [str(finding) for finding in report.problems()]
    assert sum(finding.check == "selection" and finding.status == "pass" for finding in report.findings) == 2
