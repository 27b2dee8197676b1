"""The audit as one self-contained HTML page: inline CSS and SVG charts, nothing fetched from a network.

Each run has its verdict (with rounds committed against planned, and orphans), charts per round,
what each round committed (model, manifest and transaction hashes in full), each participant's
updates and rewards with the reason for a zero reward, the verdict of every check in every round,
and the run configuration.
"""

import json
import re
from collections import Counter
from decimal import Decimal

from fedledger.audit.charts import Chart, Series, escape, round_labels
from fedledger.audit.findings import CHECKS, RUN_CHECKS, AuditReport, ParticipantSummary, RoundAudit, RunAudit
from fedledger.audit.findings import STATUSES as FINDING_STATUSES
from fedledger.canonical import canonical_json
from fedledger.rewards import TOKEN_DECIMALS

_COLOURS = {
    "pass": "#2e7d32",
    "fail": "#c62828",
    "not-run": "#455a64",
    "needs-key": "#5e35b1",
    "unsupported": "#ef6c00",
    "not-checked": "#f9a825",
    "incomplete": "#fbc02d",
    "orphan": "#8e24aa",
    "none": "#e0e0e0",
}
#: Each status a finding or a grid cell can have: its colour and what it means. ``none``: no such check in the round.
STATUSES = {
    status: (colour, FINDING_STATUSES.get(status, "no such check in this round")) for status, colour in _COLOURS.items()
}
#: Which status a grid cell shows when a round has several findings of one check: the worst.
_PRECEDENCE = ("fail", "not-run", "unsupported", "needs-key", "not-checked", "incomplete", "pass")
#: The page may load nothing: no script, font, image or style from anywhere but itself.
CONTENT_SECURITY_POLICY = "default-src 'none'; style-src 'unsafe-inline'"
_ACCEPTED, _REJECTED, _NOT_COMMITTED = "#2e7d32", "#c62828", "#eceff1"

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1260px; padding: 0 1em; color: #222; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 2px solid #ddd; padding-bottom: 0.2em; margin-top: 1.6em; }
.verdict { font-size: 1.3em; font-weight: bold; padding: 0.4em 0.8em; color: white; }
.pass { background: #2e7d32; } .fail { background: #c62828; } .incomplete { background: #f9a825; color: #222; }
.badge { font-size: 0.7em; padding: 0.15em 0.5em; color: white; vertical-align: middle; }
table { border-collapse: collapse; margin: 0.6em 0 1em; font-size: 0.88em; }
td, th { border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; } td.number { text-align: right; font-variant-numeric: tabular-nums; }
.grid td.cell { width: 1.6em; height: 1.2em; padding: 0; } .grid td:first-child { white-space: nowrap; }
.charts { display: flex; flex-wrap: wrap; gap: 1em; }
svg.chart { background: #fafafa; border: 1px solid #ddd; }
code.hash { font-family: ui-monospace, monospace; white-space: nowrap; font-size: 0.92em; user-select: all; }
.hashes td:first-child { white-space: nowrap; color: #555; } .hashes { margin: 0; font-size: 1em; }
.hashes td { border: none; padding: 0 0.4em 0 0; }
.swatch { display: inline-block; width: 0.9em; height: 0.9em; border: 1px solid #333; vertical-align: middle; }
.legend-row { display: flex; flex-wrap: wrap; gap: 0.4em 1.2em; margin: 0.4em 0; font-size: 0.88em; }
tr.unpaid td { background: #fff8e1; } .participants td:last-child { min-width: 22em; }
.nodes { color: #666; font-size: 0.85em; } table.configuration th { white-space: nowrap; }
pre.json { white-space: pre-wrap; word-break: break-all; background: #f6f6f6; padding: 0.6em; font-size: 0.85em; }
"""


def _tokens(amount: int) -> str:
    """Token base units as tokens, exactly, without trailing zeros."""
    tokens = Decimal(amount).scaleb(-TOKEN_DECIMALS).normalize()
    return f"{tokens:,f}"


def _rounded(amount: int) -> str:
    """Token base units as tokens to six decimals (the exact amount is ``_tokens``)."""
    return f"{Decimal(amount).scaleb(-TOKEN_DECIMALS):,.6f}"


def _swatch(status: str) -> str:
    colour, meaning = STATUSES[status]
    return (
        f"<span title='{escape(meaning)}'><span class='swatch' style='background:{colour}'></span> "
        f"<code>{escape(status)}</code></span>"
    )


def _hash(value: str | None) -> str:
    return f"<code class='hash'>{escape(value)}</code>" if value else "<em>not recorded</em>"


def _charts(run: RunAudit) -> str:
    """Accuracy, updates and gas per round over every planned round (those never committed are
    shaded), and rewards per participant."""
    rounds = {audit.round: audit for audit in run.rounds}
    span = max([run.planned_rounds, *rounds])
    if span == 0:
        return "<p>No committed round to chart.</p>"
    numbers = list(range(1, span + 1))
    categories = [f"round {number}" for number in numbers]
    missing = [index for index, number in enumerate(numbers) if number not in rounds]
    labels = round_labels(span)

    def per_round(value: str) -> list[float | None]:
        return [getattr(rounds[number], value) if number in rounds else None for number in numbers]

    accuracy = Chart("global accuracy per round", categories, "accuracy")
    known = [value for value in per_round("accuracy") if value is not None]
    accuracy.scale(max(known, default=1.0) if max(known, default=1.0) > 1 else 1.0)
    accuracy.shade(missing, "not committed", _NOT_COMMITTED)
    accuracy.line(Series("evaluation accuracy", "#1565c0", per_round("accuracy")))

    updates = Chart("updates per round", categories, "updates")
    counts = [
        Series("accepted", _ACCEPTED, per_round("accepted")),
        Series("rejected", _REJECTED, per_round("rejected")),
    ]
    updates.scale(max(((a or 0) + (r or 0) for a, r in zip(*(one.values for one in counts), strict=True))), True)
    updates.shade(missing, "not committed", _NOT_COMMITTED)
    updates.bars(counts)

    gas = Chart("gas per round (commitRound)", categories, "gas")
    gas.scale(max((value or 0 for value in per_round("gas_used")), default=0), True)
    gas.shade(missing, "not committed", _NOT_COMMITTED)
    gas.bars([Series("gas used", "#6a1b9a", per_round("gas_used"))], " gas")

    people = run.participants
    rewards = Chart(
        "rewards per participant (all rounds)", [p.participant or "no address" for p in people], "tokens", "participant"
    )
    granted = [summary.reward / 10**TOKEN_DECIMALS for summary in people]
    claimed = [min(summary.claimed, summary.reward) / 10**TOKEN_DECIMALS for summary in people]
    rewards.scale(max(granted, default=0))
    rewards.bars(
        [
            Series("claimed", "#00838f", claimed),
            Series("granted, unclaimed", "#80deea", [g - c for g, c in zip(granted, claimed, strict=True)]),
        ],
        " tokens",
    )
    short = [f"{p.participant[:6]}…{p.participant[-4:]}" if p.participant else "no address" for p in people]
    charts = [
        accuracy.svg(labels),
        updates.svg(labels),
        gas.svg(labels),
        rewards.svg(short),
    ]
    return f"<div class='charts'>{''.join(charts)}</div>"


def _verdict(run: RunAudit) -> str:
    """The run's verdict, its rounds against its plan, and how many findings have each status."""
    counts = Counter(finding.status for finding in run.all_findings)
    rows = "".join(
        f"<tr><td>{_swatch(status)}</td><td class='number'>{counts[status]}</td><td>{escape(meaning)}</td></tr>"
        for status, (_, meaning) in STATUSES.items()
        if status != "none"
    )
    missing = run.planned_rounds - len(run.rounds)
    plan = escape(run.progress()) + (f": {missing} never committed" if missing > 0 else "")
    orphans = len(run.orphans)
    return (
        f"<p class='verdict {run.verdict}'>{run.verdict.upper()}: {plan}; {orphans} orphan"
        f"{'' if orphans == 1 else 's'}</p>"
        f"<table><tr><th>status</th><th>findings</th><th>meaning</th></tr>{rows}</table>"
    )


def _round_row(run: RunAudit, audit: RoundAudit) -> str:
    statuses = {finding.status for finding in audit.findings}
    status = next((name for name in _PRECEDENCE if name in statuses), "none")
    accuracy = "" if audit.accuracy is None else f"{audit.accuracy:.4f}"
    gas = "" if audit.gas_used is None else f"{audit.gas_used:,}"
    rerun = " (run again)" if audit.round in run.rerun_rounds else ""
    hashes = (
        "<table class='hashes'>"
        f"<tr><td>model</td><td>{_hash(audit.model_hash)}</td></tr>"
        f"<tr><td>manifest</td><td>{_hash(audit.manifest_hash)}</td></tr>"
        f"<tr><td>commit tx</td><td>{_hash(audit.commit_transaction)}</td></tr></table>"
    )
    return (
        f"<tr><td class='number'>{audit.round}{rerun}</td><td>{_swatch(status)}</td>"
        f"<td>{escape(audit.outcome or 'unknown')}</td><td class='number'>{audit.accepted}</td>"
        f"<td class='number'>{audit.rejected}</td><td class='number'>{accuracy}</td>"
        f"<td class='number'>{gas}</td><td>{hashes}</td></tr>"
    )


def _rounds(run: RunAudit) -> str:
    header = (
        "<tr><th>round</th><th>worst finding</th><th>outcome</th><th>accepted</th><th>rejected</th>"
        "<th>accuracy</th><th>gas</th><th>committed (model and manifest hash) and the commit transaction</th></tr>"
    )
    rows = "".join(_round_row(run, audit) for audit in run.rounds)
    return f"<table class='rounds'>{header}{rows}</table>"


def _participant_row(summary: ParticipantSummary) -> str:
    rejected = ", ".join(f"{count} {escape(reason)}" for reason, count in summary.rejected.items())
    total = sum(summary.rejected.values())
    name = _hash(summary.participant) if summary.participant else "<em>no address</em>"
    nodes = f"<div class='nodes'>node {', '.join(map(str, summary.node_ids))}</div>"
    return (
        f"<tr class='{'unpaid' if summary.unpaid else 'paid'}'><td>{name}{nodes}</td>"
        f"<td class='number'>{summary.accepted}</td>"
        f"<td class='number'>{total}{f' ({rejected})' if rejected else ''}</td>"
        f"<td class='number'>{summary.selected}</td><td class='number'>{summary.score:.6g}</td>"
        f"<td class='number' title='{_tokens(summary.reward)} tokens'>{_rounded(summary.reward)}</td>"
        f"<td class='number' title='{_tokens(summary.claimed)} tokens'>{_rounded(summary.claimed)}</td>"
        f"<td>{escape(summary.unpaid or '')}</td></tr>"
    )


def _participants(run: RunAudit) -> str:
    if not run.participants:
        return "<p>No update in any committed round.</p>"
    header = (
        "<tr><th>participant (Flower nodes)</th><th>accepted</th><th>rejected (reasons)</th>"
        "<th>selected by the strategy</th><th>total score</th><th>reward (tokens)</th>"
        "<th>claimed on-chain (tokens)</th><th>why nothing was granted</th></tr>"
    )
    return f"<table class='participants'>{header}{''.join(map(_participant_row, run.participants))}</table>"


def _grid(run: RunAudit) -> str:
    """The worst status of every per-round check in every committed round."""
    legend = "".join(_swatch(status) for status in STATUSES)
    rows = ["<tr><th>check</th>" + "".join(f"<th>{audit.round}</th>" for audit in run.rounds) + "</tr>"]
    for check in CHECKS:
        if check in RUN_CHECKS:
            continue
        cells = []
        for audit in run.rounds:
            statuses = {finding.status for finding in audit.findings if finding.check == check}
            status = next((name for name in _PRECEDENCE if name in statuses), "none")
            cells.append(
                f"<td class='cell' style='background:{STATUSES[status][0]}' "
                f"title='{escape(check)} round {audit.round}: {status}'></td>"
            )
        rows.append(f"<tr><td><code>{escape(check)}</code></td>{''.join(cells)}</tr>")
    rerun = "".join(
        f"<td class='cell' style='background:{STATUSES['orphan' if audit.round in run.rerun_rounds else 'none'][0]}' "
        f"title='round {audit.round} run again: {'yes' if audit.round in run.rerun_rounds else 'no'}'></td>"
        for audit in run.rounds
    )
    rows.append(f"<tr><td>run again (orphaned manifest)</td>{rerun}</tr>")
    return f"<div class='legend-row'>{legend}</div><table class='grid'>{''.join(rows)}</table>"


def _configuration(run: RunAudit) -> str:
    """The run configuration as a table of what decides the computation, and its canonical JSON."""
    config = run.configuration
    if config is None:
        return "<p>The run configuration could not be read (see the <code>run-config</code> finding).</p>"
    details = config.get("details") or {}
    app = details.get("app") or {}
    rewards = config.get("rewards") or {}
    budget = rewards.get("budget")
    budget_text = f"{_tokens(int(budget))} tokens per round" if str(budget).isdigit() else str(budget)
    scoring = config.get("scoring")
    rows = [
        ("strategy", config.get("strategy", {}).get("name"), config.get("strategy", {}).get("params")),
        ("reward rule", rewards.get("rule"), budget_text),
        ("valuation", "none: rewards follow example counts" if scoring is None else scoring.get("method"), scoring),
        ("anomaly detection", "off" if config.get("detection") is None else "on", config.get("detection")),
        ("planned rounds", details.get("num_server_rounds"), None),
        ("fewest accepted updates a round needs", details.get("min_accepted"), None),
        ("initial model", details.get("initial_model_hash"), None),
        ("app configuration", None, app.get("config")),
        ("model", None, app.get("model")),
        ("Flower App Bundle (sha256)", app.get("fab_hash") or "none: the run ran outside a bundle", None),
    ]
    cells = []
    for name, value, extra in rows:
        digest = isinstance(value, str) and re.fullmatch(r"(0x)?[0-9a-f]{40,}", value)
        shown = _hash(value) if digest else escape("" if value is None else value)
        if isinstance(extra, dict):
            extra_text = ", ".join(f"{key} = {json.dumps(item)}" for key, item in sorted(extra.items()))
        else:
            extra_text = "" if extra is None else str(extra)
        separator = "<br>" if shown and extra_text else ""
        cells.append(f"<tr><th>{escape(name)}</th><td>{shown}{separator}{escape(extra_text)}</td></tr>")
    canonical = canonical_json(config).decode()
    return (
        f"<table class='configuration'>{''.join(cells)}</table>"
        "<details><summary>the run configuration as stored (canonical JSON, hashes to the run's configHash)"
        f"</summary><pre class='json'>{escape(canonical)}</pre></details>"
    )


def _run_section(run: RunAudit) -> str:
    findings = [finding for finding in run.findings if finding.status != "orphan"]
    run_level = "".join(f"<li>{_swatch(f.status)} {escape(f)}</li>" for f in findings) or "<li>none</li>"
    orphans = "".join(f"<li>{escape(finding)}</li>" for finding in run.orphans) or "<li>none</li>"
    problems = [finding for finding in run.all_findings if finding.status not in ("pass", "orphan")]
    problem_list = "".join(f"<li>{_swatch(f.status)} {escape(f)}</li>" for f in problems) or "<li>none</li>"
    return (
        f"<h2>Run {run.run_id} <span class='badge {run.verdict}'>{run.verdict.upper()}</span></h2>"
        f"{_verdict(run)}"
        f"<h3>Per round</h3>{_charts(run)}{_rounds(run)}"
        f"<h3>Participants</h3>{_participants(run)}"
        f"<h3>Checks per round</h3>{_grid(run)}"
        f"<h3>Run-level checks</h3><ul>{run_level}</ul>"
        f"<h3>Problems</h3><ul>{problem_list}</ul>"
        f"<h3>Store artifacts no committed round points to</h3><ul>{orphans}</ul>"
        f"<h3>Run configuration</h3>{_configuration(run)}"
    )


def render_html(report: AuditReport) -> str:
    """The whole report as a standalone HTML document."""
    legend = "".join(
        f"<tr><td><code>{escape(name)}</code></td><td>{escape(text)}</td></tr>" for name, text in CHECKS.items()
    )
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<meta http-equiv='Content-Security-Policy' content=\"{CONTENT_SECURITY_POLICY}\">"
        "<title>FedLedger audit</title>"
        f"<style>{_STYLE}</style></head><body>"
        f"<h1>FedLedger audit</h1><p class='verdict {report.verdict}'>{escape(report.summary())}</p>"
        f"<p>registry {_hash(report.registry)} on chain {report.chain_id} "
        f"({escape(report.chain)}); store <code>{escape(report.store)}</code></p>"
        + "".join(_run_section(run) for run in report.runs)
        + f"<h2>What each check establishes</h2><table>{legend}</table></body></html>"
    )
