"""Private federations on Flower's Simulation Engine, checked against the chain, the store and the audit:
central DP's recorded noise re-derives the model, every ε recomputes, the registry holds the budget,
and an edited noise vector or an understated ε fails the audit with the check that caught it."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from fedledger.audit import Auditor
from fedledger.audit.findings import FindingRecorder, RoundAudit
from fedledger.audit.privacy import PrivacyLedger
from fedledger.chain import Registry
from fedledger.cli import app
from fedledger.coordinator.vault import Vault
from fedledger.encoding import decode_model, encode_model
from fedledger.hashing import from_hex, keccak256, to_hex
from fedledger.manifest import RoundManifest
from fedledger.privacy import EPSILON_SCALE, NoiseTest, PrivacySettings, local_parameters, to_fixed_epsilon
from fedledger.runconfig import RunConfiguration
from fedledger.simulations.runner import SimulationRequest, SimulationResult, audit_result, simulate_federation
from fedledger.store import ArtifactStore

pytestmark = pytest.mark.simulation

EPSILON = 8.0


def run(tmp_path_factory, mode: str) -> SimulationResult:
    overrides = {"dp": mode, "dp_epsilon": EPSILON, "dp_clip": 0.3, "reward_rule": "examples"}
    request = SimulationRequest(
        scenario="hospitals", rounds=2, output_dir=tmp_path_factory.mktemp(mode) / "run", overrides=overrides
    )
    return simulate_federation(request, on_round=lambda report: None)


def records(result: SimulationResult) -> tuple[Registry, ArtifactStore, RunConfiguration, list]:
    ledger = result.summary.ledger
    registry = Registry(result.chain, ledger.registry)
    store = ArtifactStore(result.ledger.store)
    run = registry.run(ledger.run_id)
    config = RunConfiguration.from_bytes(store.get(run.config_hash))
    rounds = [registry.committed_round(ledger.run_id, number) for number in range(1, run.committed_rounds + 1)]
    return registry, store, config, rounds


def coordinator_vault(result: SimulationResult) -> Vault:
    """The vault the run sealed its updates and noise with (the coordinator's key opens them)."""
    return Vault.open(result.ledger)


@pytest.fixture(scope="module")
def central(tmp_path_factory) -> SimulationResult:
    return run(tmp_path_factory, "central")


@pytest.fixture(scope="module")
def local(tmp_path_factory) -> SimulationResult:
    return run(tmp_path_factory, "local")


def test_a_central_dp_run_records_its_budget_noise_and_epsilon_and_audits_pass(central):
    registry, store, config, rounds = records(central)
    privacy = config.privacy
    assert privacy is not None and privacy.mode == "central" and privacy.sampling_rate == 1.0
    run = registry.run(central.summary.ledger.run_id)
    assert (run.epsilon_budget, run.delta_budget) == (8 * EPSILON_SCALE, privacy.to_budget().delta)
    spent = []
    for committed in rounds:
        manifest = RoundManifest.from_bytes(store.get(committed.commitment.manifest_hash))
        record = manifest.privacy
        assert record is not None and record.aggregated == 4
        assert record.noise_stddev == pytest.approx(privacy.noise_multiplier * 0.3 / 4)
        sealed, listed = from_hex(record.noise_sealed_hash), from_hex(record.noise_hash)
        noise = decode_model(coordinator_vault(central).get(store, sealed, listed))
        assert NoiseTest.of(noise, record.noise_stddev).passed
        assert listed not in store  # the noise is stored sealed only
        assert committed.commitment.epsilon_spent == record.epsilon_spent == to_fixed_epsilon(record.epsilon)
        spent.append(record.epsilon_spent)
    assert spent[0] < spent[1] <= run.epsilon_budget
    audit = audit_result(central)
    assert audit.verdict == "pass", audit.summary()
    checks = {finding.check for finding in audit.findings}
    assert {"privacy-budget", "privacy-epsilon", "privacy-noise", "reaggregation"} <= checks


def test_the_calibrated_noise_spends_the_budget_over_the_planned_rounds(central):
    _, _, config, _ = records(central)
    privacy = config.privacy
    assert to_fixed_epsilon(privacy.epsilon_after(2)) <= 8 * EPSILON_SCALE
    assert privacy.epsilon_after(2) > 0.95 * EPSILON


def test_an_edited_noise_vector_fails_the_audit(central, tmp_path):
    _, store, _, rounds = records(central)
    manifest = RoundManifest.from_bytes(store.get(rounds[0].commitment.manifest_hash))
    path = store.path_of(from_hex(manifest.privacy.noise_sealed_hash))
    original = Path(path).read_bytes()
    edited = bytearray(original)
    edited[-20] ^= 0x40
    try:
        Path(path).write_bytes(bytes(edited))
        audit = audit_result(central)
    finally:
        Path(path).write_bytes(original)
    failed = {(finding.round, finding.check) for finding in audit.findings if finding.status == "fail"}
    assert (1, "privacy-noise") in failed and audit.verdict == "fail"
    noise_finding = next(f for f in audit.findings if f.check == "privacy-noise" and f.round == 1)
    assert "corrupted" in noise_finding.message
    not_run = {(f.round, f.check) for f in audit.findings if f.status == "not-run"}
    assert (1, "reaggregation") in not_run


def test_noise_smaller_than_promised_fails_the_noise_test(central):
    """A coordinator that adds half the noise and records it consistently (store and manifest)."""
    _, store, config, rounds = records(central)
    manifest = RoundManifest.from_bytes(store.get(rounds[0].commitment.manifest_hash))
    vault = coordinator_vault(central)
    recorded = manifest.privacy
    noise = decode_model(vault.get(store, from_hex(recorded.noise_sealed_hash), from_hex(recorded.noise_hash)))
    halved = encode_model({name: (values * np.float32(0.5)).astype(values.dtype) for name, values in noise.items()})
    sealed = to_hex(vault.put(store, halved))
    lying = replace(manifest, privacy=replace(recorded, noise_hash=to_hex(keccak256(halved)), noise_sealed_hash=sealed))
    ledger = PrivacyLedger(config.privacy, store, vault.key)
    audit = RoundAudit(manifest.run_id, 1)
    assert ledger.check_round(lying, rounds[0], FindingRecorder(audit)) is None
    finding = next(f for f in audit.findings if f.check == "privacy-noise")
    assert finding.status == "fail" and "not Gaussian of the promised size" in finding.message


def test_a_manifest_that_understates_epsilon_fails_the_audit(central):
    _, store, config, rounds = records(central)
    manifest = RoundManifest.from_bytes(store.get(rounds[1].commitment.manifest_hash))
    first = RoundManifest.from_bytes(store.get(rounds[0].commitment.manifest_hash))
    understated = replace(manifest.privacy, epsilon=first.privacy.epsilon, epsilon_spent=first.privacy.epsilon_spent)
    ledger = PrivacyLedger(config.privacy, store, coordinator_vault(central).key)
    ledger.check_round(first, rounds[0], FindingRecorder(RoundAudit(manifest.run_id, 1)))
    audit = RoundAudit(manifest.run_id, 2)
    ledger.check_round(replace(manifest, privacy=understated), rounds[1], FindingRecorder(audit))
    failed = [f for f in audit.findings if f.check == "privacy-epsilon" and f.status == "fail"]
    messages = " | ".join(f.message for f in failed)
    assert "the round's ε is not what the accountant gives" in messages
    assert "the round's ε spent committed on-chain is not what the accountant gives" in messages


def test_a_local_dp_run_charges_each_participant_and_audits_pass(local):
    _, store, config, rounds = records(local)
    privacy = config.privacy
    assert privacy is not None and privacy.mode == "local"
    parameters = local_parameters(privacy)
    for number, committed in enumerate(rounds, start=1):
        manifest = RoundManifest.from_bytes(store.get(committed.commitment.manifest_hash))
        assert manifest.privacy.releases == number and manifest.privacy.noise_hash is None
        assert set(manifest.privacy.participants) == {entry.participant for entry in manifest.accepted}
        assert all(
            value == pytest.approx(privacy.epsilon_after(number)) for value in manifest.privacy.participants.values()
        )
        assert all((e.signed.clip_norm, e.signed.noise_multiplier) == parameters for e in manifest.accepted)
        assert committed.commitment.epsilon_spent == to_fixed_epsilon(privacy.epsilon_after(number))
    audit = audit_result(local)
    assert audit.verdict == "pass", audit.summary()
    assert any(finding.check == "privacy-local" for finding in audit.findings)


def test_local_noise_is_calibrated_like_central_noise_but_without_sampling(local):
    _, _, config, _ = records(local)
    expected = PrivacySettings.calibrated("local", EPSILON, 1e-5, 0.3, 1.0, 2)
    assert config.privacy.noise_multiplier == expected.noise_multiplier


class CoordinatorCrash(Exception):
    """Stands for the coordinator's process dying right after a commit."""


def test_a_private_run_resumes_with_its_releases_and_audits_as_one_run(tmp_path):
    def crash_after_round_1(report) -> None:
        if report.round == 1:
            raise CoordinatorCrash("crashed after round 1")

    overrides = {"dp": "local", "dp_epsilon": EPSILON, "dp_clip": 0.3, "reward_rule": "examples"}
    request = SimulationRequest(scenario="hospitals", rounds=3, output_dir=tmp_path / "run", overrides=overrides)
    with pytest.raises(CoordinatorCrash):
        simulate_federation(request, on_round=crash_after_round_1)
    resumed = simulate_federation(SimulationRequest.load(request.output_dir), on_round=lambda report: None, resume=True)
    _, store, config, rounds = records(resumed)
    assert len(rounds) == 3
    last = RoundManifest.from_bytes(store.get(rounds[-1].commitment.manifest_hash))
    assert last.privacy.releases == 3
    assert rounds[-1].commitment.epsilon_spent == to_fixed_epsilon(config.privacy.epsilon_after(3))
    audit = audit_result(resumed)
    assert audit.verdict == "pass", audit.summary()


@pytest.mark.parametrize("mode", ["central", "local"])
def test_without_a_key_a_private_run_says_which_checks_need_one_and_still_checks_every_epsilon(mode, central, local):
    result = central if mode == "central" else local
    registry, store, _, _ = records(result)
    report = Auditor(registry, store).audit([result.summary.ledger.run_id])
    assert report.verdict == "incomplete" and report.counts()["fail"] == 0
    needing = {finding.check for finding in report.findings if finding.status == "needs-key"}
    assert {"update-hash", "reaggregation"} <= needing
    assert ("privacy-noise" in needing) == (mode == "central")
    passed = {finding.check for finding in report.findings if finding.status == "pass"}
    assert {"privacy-budget", "privacy-epsilon", "signature", "updates-root", "rewards"} <= passed


def test_a_participant_sees_its_own_epsilon_with_client_verify(local):
    _, store, config, rounds = records(local)
    participant = RoundManifest.from_bytes(store.get(rounds[0].commitment.manifest_hash)).accepted[0].participant
    directory = str(local.ledger.output_dir)
    shown = CliRunner().invoke(app, ["client", "verify", "--simulation", directory, "--address", participant])
    assert shown.exit_code == 0, shown.output
    for releases in (1, 2):
        assert f"{config.privacy.epsilon_after(releases):.4f} (yours)" in shown.output
