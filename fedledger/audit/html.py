"""The audit as one self-contained HTML page: inline CSS and SVG charts, nothing fetched from a network."""

import html
from collections import defaultdict

from fedledger.audit.findings import CHECKS, RUN_CHECKS, AuditReport, RunAudit
from fedledger.rewards import TOKEN_DECIMALS

_WIDTH, _HEIGHT, _PAD = 560, 220, 44
_COLOURS = {
    "pass": "#2e7d32",
    "fail": "#c62828",
    "unsupported": "#ef6c00",
    "not-checked": "#f9a825",
    "incomplete": "#f9a825",
    "orphan": "#8e24aa",
    "none": "#e0e0e0",
}

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
h1 { margin-bottom: 0.2em; } .verdict { font-size: 1.4em; font-weight: bold; padding: 0.4em 0.8em; color: white; }
.pass { background: #2e7d32; } .fail { background: #c62828; } .incomplete { background: #f9a825; }
.badge { font-size: 0.7em; padding: 0.15em 0.5em; color: white; vertical-align: middle; }
.grid td:first-child { width: auto; white-space: nowrap; padding: 0 0.5em; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
td, th { border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: left; }
.grid td { width: 1.6em; height: 1.2em; padding: 0; } .charts { display: flex; flex-wrap: wrap; gap: 1em; }
svg { background: #fafafa; border: 1px solid #ddd; } code { font-size: 0.95em; }
"""


def _escape(value: object) -> str:
    return html.escape(str(value))


def _axes(title: str, y_max: float, y_label: str) -> list[str]:
    parts = [
        f'<text x="{_WIDTH / 2}" y="16" text-anchor="middle" font-weight="bold">{_escape(title)}</text>',
        f'<line x1="{_PAD}" y1="{_HEIGHT - _PAD}" x2="{_WIDTH - 10}" y2="{_HEIGHT - _PAD}" stroke="#555"/>',
        f'<line x1="{_PAD}" y1="28" x2="{_PAD}" y2="{_HEIGHT - _PAD}" stroke="#555"/>',
        f'<text x="{_PAD - 4}" y="32" text-anchor="end" font-size="10">{_tick(y_max)}</text>',
        f'<text x="{_PAD - 4}" y="{_HEIGHT - _PAD}" text-anchor="end" font-size="10">0</text>',
        f'<text x="12" y="{_HEIGHT / 2}" font-size="10" transform="rotate(-90 12 {_HEIGHT / 2})" '
        f'text-anchor="middle">{_escape(y_label)}</text>',
    ]
    return parts


def _tick(value: float) -> str:
    if value >= 10_000:
        return f"{value / 1000:,.0f}k"
    return f"{value:.3g}"


def _svg(parts: list[str]) -> str:
    return f'<svg width="{_WIDTH}" height="{_HEIGHT}" xmlns="http://www.w3.org/2000/svg">{"".join(parts)}</svg>'


def _y(value: float, y_max: float) -> float:
    return _HEIGHT - _PAD - (value / y_max if y_max else 0) * (_HEIGHT - _PAD - 30)


def bar_chart(title: str, labels: list[str], series: list[tuple[str, str, list[float]]], y_label: str) -> str:
    """Stacked bars: ``series`` is (name, colour, values per label)."""
    totals = [sum(values[index] for _, _, values in series) for index in range(len(labels))]
    y_max = max(totals, default=0) or 1
    parts = _axes(title, y_max, y_label)
    step = (_WIDTH - _PAD - 20) / max(len(labels), 1)
    for index, label in enumerate(labels):
        x, base = _PAD + 5 + index * step, 0.0
        for name, colour, values in series:
            top = base + values[index]
            parts.append(
                f'<rect x="{x:.1f}" y="{_y(top, y_max):.1f}" width="{max(step - 4, 1):.1f}" '
                f'height="{_y(base, y_max) - _y(top, y_max):.1f}" fill="{colour}"><title>{_escape(label)} '
                f"{_escape(name)}: {values[index]:,.4g}</title></rect>"
            )
            base = top
        if len(labels) <= 30:
            parts.append(
                f'<text x="{x + step / 2 - 2:.1f}" y="{_HEIGHT - _PAD + 12}" font-size="9" '
                f'text-anchor="middle">{_escape(label)}</text>'
            )
    for position, (name, colour, _) in enumerate(series):
        parts.append(f'<rect x="{_WIDTH - 150}" y="{30 + 14 * position}" width="10" height="10" fill="{colour}"/>')
        parts.append(f'<text x="{_WIDTH - 136}" y="{39 + 14 * position}" font-size="10">{_escape(name)}</text>')
    return _svg(parts)


def line_chart(title: str, labels: list[str], values: list[float | None], y_label: str) -> str:
    known = [value for value in values if value is not None]
    y_max = max(known, default=0) or 1
    parts = _axes(title, y_max, y_label)
    step = (_WIDTH - _PAD - 20) / max(len(labels) - 1, 1)
    points = [
        (_PAD + 5 + index * step, _y(value, y_max), label, value)
        for index, (label, value) in enumerate(zip(labels, values, strict=True))
        if value is not None
    ]
    if points:
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y, _, _ in points)
        parts.append(f'<polyline points="{path}" fill="none" stroke="#1565c0" stroke-width="2"/>')
    for x, y, label, value in points:
        parts.append(
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="#1565c0"><title>round {_escape(label)}: '
            f"{value:.4f}</title></circle>"
        )
    return _svg(parts)


def _run_section(run: RunAudit) -> str:
    rounds = run.rounds
    labels = [str(audit.round) for audit in rounds]
    charts = [
        line_chart("global accuracy per round", labels, [audit.accuracy for audit in rounds], "accuracy"),
        bar_chart(
            "updates per round",
            labels,
            [
                ("accepted", "#2e7d32", [float(audit.accepted) for audit in rounds]),
                ("rejected", "#c62828", [float(audit.rejected) for audit in rounds]),
            ],
            "updates",
        ),
        bar_chart(
            "gas per round (commitRound)",
            labels,
            [("gas", "#6a1b9a", [float(audit.gas_used or 0) for audit in rounds])],
            "gas",
        ),
    ]
    rewards: dict[str, int] = defaultdict(int)
    for audit in rounds:
        for participant, amount in audit.rewards.items():
            rewards[participant] += amount
    participants = sorted(rewards)
    charts.append(
        bar_chart(
            "rewards per participant (tokens, all rounds)",
            [participant[:8] for participant in participants],
            [("rewards", "#00838f", [rewards[participant] / 10**TOKEN_DECIMALS for participant in participants])],
            "tokens",
        )
    )
    grid = ["<table class='grid'><tr><th>check</th>" + "".join(f"<th>{label}</th>" for label in labels) + "</tr>"]
    for check in CHECKS:
        if check in RUN_CHECKS:
            continue
        cells = []
        for audit in rounds:
            statuses = {finding.status for finding in audit.findings if finding.check == check}
            status = next((name for name in ("fail", "unsupported", "not-checked", "pass") if name in statuses), "none")
            cells.append(
                f"<td style='background:{_COLOURS[status]}' title='{check} round {audit.round}: {status}'></td>"
            )
        grid.append(f"<tr><td>{_escape(check)}</td>{''.join(cells)}</tr>")
    rerun = [(audit.round, "orphan" if audit.round in run.rerun_rounds else "pass") for audit in rounds]
    grid.append(
        "<tr><td>run again</td>"
        + "".join(
            f"<td style='background:{_COLOURS[status]}' title='round {number} run again: "
            f"{'yes' if status == 'orphan' else 'no'}'></td>"
            for number, status in rerun
        )
        + "</tr></table>"
    )
    run_level = "".join(f"<li>{_escape(finding)}</li>" for finding in run.findings if finding.status != "orphan")
    orphans = "".join(f"<li>{_escape(finding)}</li>" for finding in run.orphans) or "<li>none</li>"
    problems = [finding for finding in run.all_findings if finding.status not in ("pass", "orphan")]
    problem_list = "".join(f"<li>{_escape(finding)}</li>" for finding in problems) or "<li>none</li>"
    return (
        f"<h2>Run {run.run_id} <span class='badge {run.verdict}'>{run.verdict.upper()}</span></h2>"
        f"<p>{_escape(run.progress())}</p>"
        f"<div class='charts'>{''.join(charts)}</div>"
        f"<h3>Checks per round</h3>{''.join(grid)}"
        f"<h3>Run-level checks</h3><ul>{run_level}</ul>"
        f"<h3>Problems</h3><ul>{problem_list}</ul>"
        f"<h3>Store artifacts no committed round points to</h3><ul>{orphans}</ul>"
    )


def render_html(report: AuditReport) -> str:
    """The whole report as a standalone HTML document."""
    legend = "".join(
        f"<tr><td><code>{_escape(name)}</code></td><td>{_escape(text)}</td></tr>" for name, text in CHECKS.items()
    )
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>FedLedger audit</title>"
        f"<style>{_STYLE}</style></head><body>"
        f"<h1>FedLedger audit</h1><p class='verdict {report.verdict}'>{_escape(report.summary())}</p>"
        f"<p>registry <code>{_escape(report.registry)}</code> on chain {report.chain_id} "
        f"({_escape(report.chain)}); store <code>{_escape(report.store)}</code></p>"
        + "".join(_run_section(run) for run in report.runs)
        + f"<h2>What each check establishes</h2><table>{legend}</table></body></html>"
    )
