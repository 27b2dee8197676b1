"""A real federation stores every update sealed: nothing a site sent is in the store in clear, an audit
with the auditor's key checks everything, one without says which checks need a key, and a corrupted
or swapped sealed update fails by name."""

from pathlib import Path

import pytest
from typer.testing import CliRunner

from fedledger.audit import Auditor
from fedledger.chain import Registry
from fedledger.cli import app
from fedledger.encoding import MAGIC as MODEL_MAGIC
from fedledger.hashing import from_hex
from fedledger.manifest import RoundManifest
from fedledger.runconfig import RunConfiguration
from fedledger.sealing import MAGIC as SEALED_MAGIC
from fedledger.sealing import SIMULATION_AUDITOR_KEY, generate_key_file, load_key_file, public_key_hex
from fedledger.simulations.runner import SimulationRequest, SimulationResult, simulate_federation
from fedledger.store import ArtifactStore

pytestmark = pytest.mark.simulation


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> SimulationResult:
    request = SimulationRequest(scenario="hospitals", rounds=2, output_dir=tmp_path_factory.mktemp("sealed") / "run")
    return simulate_federation(request, on_round=lambda report: None)


def parts(result: SimulationResult) -> tuple[Registry, ArtifactStore, list[RoundManifest]]:
    registry = Registry(result.chain, result.summary.ledger.registry)
    store = ArtifactStore(result.ledger.store)
    run_id = result.summary.ledger.run_id
    manifests = [
        RoundManifest.from_bytes(store.get(registry.committed_round(run_id, number).commitment.manifest_hash))
        for number in range(1, registry.run(run_id).committed_rounds + 1)
    ]
    return registry, store, manifests


def audit(result: SimulationResult, key_file: Path | None):
    registry, store, _ = parts(result)
    key = None if key_file is None else load_key_file(key_file)
    return Auditor(registry, store, key=key).audit([result.summary.ledger.run_id])


def test_the_store_holds_no_update_in_clear(run):
    _, store, manifests = parts(run)
    models = {manifest.model_hash for manifest in manifests} | {manifest.base_model_hash for manifest in manifests}
    heads = {digest: store.get(digest)[:8] for digest in store.digests()}
    in_clear = {"0x" + digest.hex() for digest, head in heads.items() if head == MODEL_MAGIC}
    assert in_clear == models  # global models only: they are the product
    entries = [entry for manifest in manifests for entry in manifest.updates]
    assert entries and all(entry.sealed_hash for entry in entries)
    assert all(from_hex(entry.update_hash) not in store for entry in entries)
    assert all(heads[from_hex(entry.sealed_hash)] == SEALED_MAGIC for entry in entries)


def test_the_run_configuration_lists_the_coordinator_and_the_auditor(run):
    registry, store, _ = parts(run)
    config = RunConfiguration.from_bytes(store.get(registry.run(run.summary.ledger.run_id).config_hash))
    auditor = load_key_file(Path(run.ledger.output_dir) / SIMULATION_AUDITOR_KEY)
    recipients = config.sealing["recipients"]
    assert config.sealing["scheme"] == "fedledger-seal-1" and len(recipients) == 2
    assert public_key_hex(auditor.public_key().public_bytes_raw()) in recipients


def test_with_the_auditors_key_everything_is_checked(run):
    report = audit(run, Path(run.ledger.output_dir) / SIMULATION_AUDITOR_KEY)
    assert report.verdict == "pass", report.summary()
    assert {finding.check for finding in report.findings} >= {"update-hash", "reaggregation", "valuation-candidates"}


def test_without_a_key_the_audit_says_which_checks_need_one(run):
    report = audit(run, None)
    assert report.verdict == "incomplete"
    needing = {finding.check for finding in report.findings if finding.status == "needs-key"}
    assert needing == {"update-hash", "reaggregation", "selection", "valuation-players", "valuation-candidates"}
    assert all(f.message.startswith("needs a key:") for f in report.findings if f.status == "needs-key")
    passed = {finding.check for finding in report.findings if finding.status == "pass"}
    assert {"signature", "updates-root", "rewards-root", "model-chain", "rewards", "manifest-hash"} <= passed
    assert f"{report.counts()['needs-key']} need a key" in report.summary()


def test_a_key_the_run_does_not_list_opens_nothing(run, tmp_path):
    stranger = tmp_path / "stranger.pem"
    generate_key_file(stranger)
    report = audit(run, stranger)
    assert report.verdict == "incomplete"
    finding = next(f for f in report.findings if f.status == "needs-key")
    assert "the run seals its updates for 2 keys, not for 0x" in finding.message


def test_a_corrupted_or_swapped_sealed_update_fails_by_name(run):
    _, store, manifests = parts(run)
    first, second = manifests[0].accepted[0], manifests[0].accepted[1]
    path = Path(store.path_of(from_hex(first.sealed_hash)))
    original = path.read_bytes()
    try:
        path.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
        report = audit(run, Path(run.ledger.output_dir) / SIMULATION_AUDITOR_KEY)
        failed = [f for f in report.findings if f.check == "update-hash" and f.status == "fail"]
        assert [f.participant for f in failed] == [first.participant]
        assert "is corrupted" in failed[0].message
        path.write_bytes(Path(store.path_of(from_hex(second.sealed_hash))).read_bytes())
        report = audit(run, Path(run.ledger.output_dir) / SIMULATION_AUDITOR_KEY)
        failed = [f for f in report.findings if f.check == "update-hash" and f.status == "fail"]
        assert len(failed) == 1 and "is corrupted" in failed[0].message  # the bytes no longer hash to the name
    finally:
        path.write_bytes(original)


def test_the_audit_command_uses_the_simulations_key_or_the_one_given(run, tmp_path):
    directory = Path(run.ledger.output_dir)
    result = CliRunner().invoke(app, ["audit", "--simulation", str(directory)])
    assert result.exit_code == 0, result.output
    assert f"opening sealed updates with the key {directory / SIMULATION_AUDITOR_KEY}" in (
        result.output.replace("\n", "")
    )
    stranger = tmp_path / "other.pem"
    generate_key_file(stranger)
    keyless = CliRunner().invoke(app, ["audit", "--simulation", str(directory), "--key", str(stranger)])
    assert keyless.exit_code == 3 and "need a key" in keyless.output


def test_auditor_keygen_writes_a_private_key_and_prints_the_public_one(tmp_path):
    out = tmp_path / "auditor.pem"
    result = CliRunner().invoke(app, ["auditor", "keygen", "--out", str(out)])
    assert result.exit_code == 0, result.output
    public = public_key_hex(load_key_file(out).public_key().public_bytes_raw())
    assert f"public key   {public}" in result.output
    again = CliRunner().invoke(app, ["auditor", "keygen", "--out", str(out)])
    assert again.exit_code == 1 and "already exists" in again.output
