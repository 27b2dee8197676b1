"""``fedledger audit``: verify a registry's round history from the chain and the artifact store."""

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from fedledger.audit import Auditor, AuditReport
from fedledger.audit.html import render_html
from fedledger.cli.common import (
    DeploymentFile,
    RegistryAddress,
    RpcUrl,
    Simulation,
    Store,
    console,
    open_history,
    show_table,
)
from fedledger.deployment import DEFAULT_DEPLOYMENT_FILE


def audit(
    simulation: Simulation = None,
    rpc_url: RpcUrl = None,
    registry: RegistryAddress = None,
    store: Store = None,
    run: Annotated[list[int] | None, typer.Option(help="Audit only this run (repeatable). Default: all runs.")] = None,
    report: Annotated[Path | None, typer.Option(help="Also write a self-contained HTML report here.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the full report as JSON instead of tables.")] = False,
    deployment: DeploymentFile = DEFAULT_DEPLOYMENT_FILE,
) -> None:
    """Verify every committed round: manifest hash, signatures and registration, update hashes, Merkle roots,
    the chain of models, re-aggregation to the committed model, rewards and claims.

    Exits 0 only if every check of every round passes; each failure names the run, round, participant
    and check, with what was expected and what was found. Needs neither torch nor Flower.
    """
    history = open_history(simulation, rpc_url, registry, store, deployment, run)
    result = Auditor(history.registry, history.store).audit(history.run_ids)
    if report is not None:
        report.write_text(render_html(result))
    if as_json:
        typer.echo(json.dumps(result.to_json(), indent=2))
    else:
        _print(result, report)
    raise typer.Exit(0 if result.passed else 1)


def _print(result: AuditReport, html_path: Path | None) -> None:
    console.print(f"registry {result.registry} on chain {result.chain_id} ({result.chain}); store {result.store}")
    for run in result.runs:
        table = Table(
            "round", "outcome", "accepted", "rejected", "accuracy", "gas", "checks", title=f"run {run.run_id}"
        )
        for audit in run.rounds:
            failed = [finding for finding in audit.findings if finding.status != "pass"]
            verdict = f"{len(audit.findings) - len(failed)}/{len(audit.findings)} pass"
            accuracy = f"{100 * audit.accuracy:.1f}%" if audit.accuracy is not None else "-"
            gas = f"{audit.gas_used:,}" if audit.gas_used is not None else "-"
            style = None if audit.passed else "red"
            table.add_row(
                str(audit.round),
                audit.outcome or "?",
                str(audit.accepted),
                str(audit.rejected),
                accuracy,
                gas,
                verdict,
                style=style,
            )
        show_table(table)
    for finding in result.problems():
        console.print(str(finding), style="red", highlight=False, markup=False)
    checked = len(result.findings)
    verdict = "[green]PASS[/green]" if result.passed else "[red]FAIL[/red]"
    console.print(f"{verdict}: {checked - len(result.problems())} of {checked} checks passed")
    if html_path is not None:
        console.print(f"report written to {html_path}")
