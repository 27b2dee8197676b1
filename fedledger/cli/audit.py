"""``fedledger audit``: verify a registry's round history from the chain and the artifact store."""

import hashlib
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from fedledger.audit import Auditor, AuditReport
from fedledger.audit.findings import RoundAudit, Verdict, verdict_of
from fedledger.audit.html import render_html
from fedledger.cli.common import (
    ChainFile,
    DeploymentFile,
    RegistryAddress,
    RpcUrl,
    RunIds,
    Simulation,
    Store,
    console,
    open_history,
    show_table,
)
from fedledger.deployment import DEFAULT_DEPLOYMENT_FILE
from fedledger.sealing import COORDINATOR_KEY_FILE, SIMULATION_AUDITOR_KEY, load_key_file

#: The exit code of each verdict. 1 is also every input error; 2 is a usage error.
EXIT_CODES: dict[Verdict, int] = {"pass": 0, "fail": 1, "incomplete": 3}

_STYLES = {
    "fail": "red",
    "not-run": "red",
    "needs-key": "yellow",
    "unsupported": "red",
    "not-checked": "yellow",
    "incomplete": "yellow",
    "orphan": "magenta",
}
_VERDICT_STYLES: dict[Verdict, str] = {"pass": "green", "fail": "red", "incomplete": "yellow"}


def audit(
    simulation: Simulation = None,
    rpc_url: RpcUrl = None,
    chain_file: ChainFile = None,
    registry: RegistryAddress = None,
    store: Store = None,
    run: RunIds = None,
    report: Annotated[Path | None, typer.Option(help="Also write a self-contained HTML report here.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the full report as JSON instead of tables.")] = False,
    deployment: DeploymentFile = DEFAULT_DEPLOYMENT_FILE,
    app_bundle: Annotated[
        Path | None,
        typer.Option(
            exists=True,
            dir_okay=False,
            help="A Flower App Bundle (.fab, from `flwr build`) you approved: every run must have run exactly it.",
        ),
    ] = None,
    key: Annotated[
        Path | None,
        typer.Option(
            "--key",
            dir_okay=False,
            help="The auditor's X25519 private key (fedledger auditor keygen): it opens the updates and noise "
            "a run stores sealed for it. Without it, the checks that need them are reported as needing a key. "
            f"With --simulation, defaults to the run directory's {SIMULATION_AUDITOR_KEY} (a simulation's "
            f"auditor), else its {COORDINATOR_KEY_FILE} (the coordinator's own key).",
        ),
    ] = None,
) -> None:
    """Verify every committed round: manifest hash, signatures and registration, update hashes, Merkle roots,
    the chain of models, re-aggregation to the committed model, rewards and claims; compare the committed
    rounds with the planned ones, and list the run's artifacts in the store that no committed round points to.
    With --app-bundle, also check that each run recorded the hash of exactly that Flower App Bundle.

    Exits 0 (pass) only if every check passes and every planned round is committed; 1 (fail) if a check
    fails or cannot be made, or on bad input; 3 (incomplete) if every check passes but rounds the run
    planned were never committed, the run's strategy has no aggregation to re-derive its rounds with, or
    a check needs the plaintext of sealed updates and no key that opens them was given.
    Each problem names the run, round, participant and check, with what was expected and what was found.
    Needs neither torch nor Flower.
    """
    history = open_history(simulation, rpc_url, registry, store, deployment, run, chain_file)
    approved = hashlib.sha256(app_bundle.read_bytes()).hexdigest() if app_bundle is not None else None
    key_file = key or _run_directory_key(simulation)
    if key_file is not None and key is None and not as_json:
        console.print(f"opening sealed updates with the key {key_file}", highlight=False)
    auditor_key = None if key_file is None else load_key_file(key_file)
    result = Auditor(history.registry, history.store, approved, auditor_key).audit(history.run_ids)
    if report is not None:
        report.write_text(render_html(result))
    if as_json:
        typer.echo(json.dumps(result.to_json(), indent=2))
    else:
        _print(result, report)
    raise typer.Exit(EXIT_CODES[result.verdict])


def _run_directory_key(directory: Path | None) -> Path | None:
    """The key a run directory holds: a simulation's auditor key, else the coordinator's own."""
    if directory is None:
        return None
    return next(
        (directory / name for name in (SIMULATION_AUDITOR_KEY, COORDINATOR_KEY_FILE) if (directory / name).is_file()),
        None,
    )


def _print(result: AuditReport, html_path: Path | None) -> None:
    console.print(f"registry {result.registry} on chain {result.chain_id} ({result.chain}); store {result.store}")
    for run in result.runs:
        table = Table(
            "round",
            "outcome",
            "answered",
            "accepted",
            "rejected",
            "accuracy",
            "gas",
            "checks",
            title=f"run {run.run_id}: {run.progress()}, {run.verdict.upper()}",
        )
        for audit in run.rounds:
            failed = [finding for finding in audit.findings if finding.status != "pass"]
            checks = f"{len(audit.findings) - len(failed)}/{len(audit.findings)} pass"
            if audit.round in run.rerun_rounds:
                checks += ", run again"
            accuracy = f"{100 * audit.accuracy:.1f}%" if audit.accuracy is not None else "-"
            gas = f"{audit.gas_used:,}" if audit.gas_used is not None else "-"
            style = round_style(audit, audit.round in run.rerun_rounds)
            table.add_row(
                str(audit.round),
                audit.outcome or "?",
                f"{audit.asked - audit.silent}/{audit.asked}",
                str(audit.accepted),
                str(audit.rejected),
                accuracy,
                gas,
                checks,
                style=style,
            )
        stored = {finding.round for finding in run.orphans}
        for missing in range(len(run.rounds) + 1, run.planned_rounds + 1):
            note = "manifest stored" if missing in stored else "-"
            table.add_row(str(missing), "not committed", "-", "-", "-", "-", "-", note, style="yellow")
        show_table(table)
    print_verdict(result)
    if html_path is not None:
        console.print(f"report written to {html_path}")


def round_style(audit: RoundAudit, run_again: bool) -> str | None:
    """A round's row style: its verdict's (a failure red; only what could not be checked, yellow),
    else magenta for a round run again, else none."""
    verdict = verdict_of(audit.findings)
    if verdict != "pass":
        return _VERDICT_STYLES[verdict]
    return "magenta" if run_again else None


def print_verdict(result: AuditReport) -> None:
    """Every problem (failures, what could not be checked, missing rounds, orphans), then the one-line verdict."""
    for finding in result.problems():
        console.print(str(finding), style=_STYLES[finding.status], highlight=False, markup=False)
    console.print(result.summary(), style=_VERDICT_STYLES[result.verdict], highlight=False, markup=False)
