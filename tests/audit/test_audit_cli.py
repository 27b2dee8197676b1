"""`fedledger audit` and `fedledger client verify` on a saved history, and the audit path without torch."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from typer.testing import CliRunner

from fedledger.audit.findings import Finding, RoundAudit
from fedledger.cli import app
from fedledger.cli.audit import round_style
from fedledger.hashing import from_hex
from fedledger.manifest import RoundManifest

runner = CliRunner()


def test_an_honest_run_passes_with_exit_code_zero_and_an_html_report(finished_run):
    directory, _ = finished_run
    report = directory / "audit.html"
    result = runner.invoke(app, ["audit", "--simulation", str(directory), "--report", str(report)])
    assert result.exit_code == 0, result.output
    assert "PASS:" in result.output
    page = report.read_text()
    assert page.startswith("<!DOCTYPE html>") and page.count("<svg") == 4
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "global accuracy per round" in page and "rewards per participant" in page


def test_json_output_lists_every_check(finished_run):
    directory, _ = finished_run
    result = runner.invoke(app, ["audit", "--simulation", str(directory), "--json"])
    assert result.exit_code == 0
    document = json.loads(result.output)
    assert document["verdict"] == "pass"
    (run,) = document["runs"]
    assert [entry["round"] for entry in run["rounds"]] == [1, 2, 3]
    assert {finding["check"] for entry in run["rounds"] for finding in entry["findings"]} >= {"reaggregation", "claims"}


def test_a_tampered_run_fails_with_exit_code_one_naming_what_failed(finished_run):
    directory, history = finished_run
    commitment = history.registry.committed_round(history.run_id, 2).commitment
    manifest = RoundManifest.from_bytes(history.store.get(commitment.manifest_hash))
    victim = manifest.accepted[0]
    Path(history.store.path_of(from_hex(victim.update_hash))).write_bytes(b"not the update")
    result = runner.invoke(app, ["audit", "--simulation", str(directory)])
    assert result.exit_code == 1
    assert f"run 1 round 2 participant {victim.participant} [update-hash] FAIL" in result.output
    assert "FAIL: " in result.output


def test_the_store_can_be_given_directly(finished_run, tmp_path: Path):
    directory, _ = finished_run
    (tmp_path / "empty").mkdir()
    result = runner.invoke(app, ["audit", "--simulation", str(directory), "--store", str(tmp_path / "empty")])
    assert result.exit_code == 1
    assert "[manifest-hash] FAIL" in result.output and "missing" in result.output


def test_a_participant_verifies_its_inclusion_on_chain(finished_run):
    directory, history = finished_run
    address = history.participants[1].address
    result = runner.invoke(app, ["client", "verify", "--simulation", str(directory), "--address", address])
    assert result.exit_code == 0, result.output
    assert result.output.count("yes (proof verified on-chain)") == 3
    outsider = "0x" + "12" * 20
    result = runner.invoke(app, ["client", "verify", "--simulation", str(directory), "--address", outsider])
    assert result.output.count("none sent") == 3


def test_missing_inputs_are_named(tmp_path: Path):
    result = runner.invoke(app, ["audit", "--simulation", str(tmp_path)])
    assert result.exit_code == 1 and "ledger.json is missing" in result.output
    result = runner.invoke(app, ["audit", "--rpc-url", "http://127.0.0.1:9", "--registry", "0x" + "11" * 20])
    assert result.exit_code == 1 and "pass --store" in result.output


def test_the_audit_runs_where_torch_and_flower_cannot_be_imported(finished_run):
    directory, _ = finished_run
    script = textwrap.dedent(
        f"""
        import importlib.abc, sys

        class Forbidden(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in {{"torch", "flwr", "ray"}}:
                    raise ImportError(f"blocked import of {{name}}")
                return None

        sys.meta_path.insert(0, Forbidden())
        sys.argv = ["fedledger", "audit", "--simulation", {str(directory)!r}]
        from fedledger.cli import main
        try:
            main()
        finally:
            assert not any(name.split(".")[0] in {{"torch", "flwr", "ray"}} for name in sys.modules)
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "PASS:" in result.stdout


def test_a_round_is_styled_by_its_verdict_so_one_only_not_checked_is_not_red():
    def round_with(*statuses: str) -> RoundAudit:
        return RoundAudit(1, 2, findings=[Finding("reaggregation", status, 1, 2) for status in statuses])  # type: ignore[arg-type]

    assert round_style(round_with("pass", "not-checked"), run_again=False) == "yellow"
    assert round_style(round_with("not-checked", "fail"), run_again=False) == "red"
    assert round_style(round_with("unsupported"), run_again=True) == "red"
    assert round_style(round_with("pass"), run_again=True) == "magenta"
    assert round_style(round_with("pass"), run_again=False) is None
