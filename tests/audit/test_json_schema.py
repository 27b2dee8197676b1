"""`fedledger audit --json` follows its published, versioned schema (docs/audit-report.schema.json)
for a clean, an incomplete and a tampered run, and counts every check, not-run ones included."""

import json
from collections.abc import Callable
from pathlib import Path

import jsonschema
import pytest
from typer.testing import CliRunner

from fedledger.audit.findings import JSON_SCHEMA, STATUSES, Finding, verdict_of
from fedledger.cli import app
from fedledger.hashing import from_hex
from fedledger.manifest import RoundManifest
from fedledger.simulations.history import SyntheticHistory

SCHEMA = json.loads((Path(__file__).parents[2] / "docs" / "audit-report.schema.json").read_text())
runner = CliRunner()


def audit_json(directory: Path, exit_code: int) -> dict:
    result = runner.invoke(app, ["audit", "--simulation", str(directory), "--json"])
    assert result.exit_code == exit_code, result.output
    document = json.loads(result.output)
    jsonschema.validate(document, SCHEMA, cls=jsonschema.Draft202012Validator)
    return document


def findings_of(document: dict) -> list[dict]:
    return [
        finding
        for run in document["runs"]
        for finding in run["findings"] + [finding for entry in run["rounds"] for finding in entry["findings"]]
    ]


def test_the_schema_is_valid_and_names_the_version_and_every_status():
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    assert SCHEMA["properties"]["schema"]["const"] == JSON_SCHEMA == "fedledger-audit/1"
    assert SCHEMA["$defs"]["status"]["enum"] == list(STATUSES)


def test_a_clean_run_follows_the_schema(finished_run):
    directory, _ = finished_run
    document = audit_json(directory, 0)
    assert document["schema"] == JSON_SCHEMA and document["verdict"] == "pass"
    assert document["counts"]["pass"] == len(findings_of(document)) > 0


def test_an_incomplete_run_follows_the_schema(tmp_path: Path, write_run: Callable[..., SyntheticHistory]):
    write_run(tmp_path, planned_rounds=3, committed=2, uncommitted=1)
    document = audit_json(tmp_path, 3)
    assert document["verdict"] == "incomplete"
    assert document["counts"]["incomplete"] == 1 and document["counts"]["orphan"] > 0


def test_a_run_missing_a_manifest_and_an_update_counts_what_could_not_run(finished_run):
    directory, history = finished_run
    clean = audit_json(directory, 0)
    committed = [history.registry.committed_round(history.run_id, number).commitment for number in (2, 3)]
    Path(history.store.path_of(committed[0].manifest_hash)).unlink()
    victim = RoundManifest.from_bytes(history.store.get(committed[1].manifest_hash)).accepted[0]
    Path(history.store.path_of(from_hex(victim.update_hash or ""))).unlink()

    document = audit_json(directory, 1)
    counts = document["counts"]
    assert document["verdict"] == "fail"
    assert counts["fail"] == 2, "the manifest's and the update's hash checks"
    assert counts["not-run"] > 0 and counts["pass"] + counts["fail"] + counts["not-run"] == len(findings_of(document))
    assert all(f["message"].startswith("input missing: ") for f in findings_of(document) if f["status"] == "not-run")
    tampered_round, clean_round = document["runs"][0]["rounds"][1], clean["runs"][0]["rounds"][1]
    assert len(tampered_round["findings"]) == len(clean_round["findings"]), "nothing dropped from the round"
    assert len(findings_of(document)) >= len(findings_of(clean))

    summary = runner.invoke(app, ["audit", "--simulation", str(directory)]).output
    total = sum(count for status, count in counts.items() if status != "orphan")
    assert (
        f"FAIL: {counts['pass']} of {total} checks passed, 2 failed, {counts['not-run']} not run (input missing)"
        in summary
    )


@pytest.mark.parametrize("status", ["fail", "not-run", "unsupported"])
def test_a_finding_that_did_not_pass_fails_the_verdict(status):
    assert verdict_of([Finding("scores", "pass", 1, 1), Finding("scores", status, 1, 1)]) == "fail"
