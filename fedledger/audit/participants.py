"""What became of each participant's updates, and why one granted nothing was granted nothing.

The reasons are read from the manifests alone: a rejection's code, the strategy's selection, and
for an aggregated update scored 0 the round's valuation — whether the round was valued at all, and
if it was, whether its own site's vote saw its update alone improve on the round's model
(``fedledger.valuation``: a player earns nothing otherwise) or the other sites saw it add nothing.
"""

from collections import Counter, defaultdict

from fedledger.audit.findings import ParticipantSummary, RoundAudit, UpdateOutcome
from fedledger.manifest import RoundManifest, UpdateEntry
from fedledger.valuation import RoundValuation, group_improvements, group_values


def update_outcomes(manifest: RoundManifest) -> list[UpdateOutcome]:
    """One outcome per training reply of ``manifest``, in manifest order."""
    return [
        UpdateOutcome(
            node_id=entry.node_id,
            participant=entry.participant,
            status=entry.status,
            reason=entry.reason,
            selected=entry.selected,
            score=entry.score,
            reward=entry.reward,
            unpaid=_unpaid(manifest, entry) if entry.status == "accepted" and entry.reward == 0 else None,
        )
        for entry in manifest.updates
    ]


def _unpaid(manifest: RoundManifest, entry: UpdateEntry) -> str:
    """Why the accepted ``entry`` was granted nothing."""
    if entry.selected is False:
        return "not selected by the strategy"
    if manifest.outcome != "aggregated":
        return f"the round failed: {manifest.failure or 'no aggregate'}"
    if entry.score is None:
        return "granted 0 by the reward rule"
    if entry.score > 0:
        return "its score was too small to earn a base unit"
    valuation = manifest.valuation
    if valuation is None:
        return "scored 0: the round was not valued"
    if valuation.failure is not None:
        return f"scored 0: the round was not valued ({valuation.failure})"
    return "scored 0: " + _valuation_verdict(valuation, entry.participant or "")


def _valuation_verdict(valuation: RoundValuation, participant: str) -> str:
    """Why the valuation gave ``participant``'s player nothing, from the counted reports."""
    player_of = {member.lower(): number for number, player in enumerate(valuation.players) for member in player}
    player = player_of.get(participant.lower())
    counted = [report for report in valuation.validators if report.reason is None and report.values is not None]
    groups = [
        player_of.get((report.participant or "").lower(), len(valuation.players) + report.node_id) for report in counted
    ]
    if player is None or player not in groups:
        return "its own site sent no counted valuation report"
    votes = group_improvements([report.values or () for report in counted], groups)
    values = group_values(len(valuation.players), votes)
    if not values[player].alone[player] > 0:
        return "its own evaluation saw no improvement from its update alone"
    return "the other sites saw no improvement it added to the round's model"


def summarise_participants(rounds: list[RoundAudit]) -> list[ParticipantSummary]:
    """Each participant's totals over ``rounds``, by address (replies naming none: by node)."""
    summaries: dict[str, ParticipantSummary] = {}
    unpaid: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    rejected: dict[str, Counter[str]] = defaultdict(Counter)
    for audit in rounds:
        for outcome in audit.updates:
            key = outcome.participant or f"node {outcome.node_id}"
            summary = summaries.setdefault(key, ParticipantSummary(outcome.participant))
            if outcome.node_id not in summary.node_ids:
                summary.node_ids.append(outcome.node_id)
            if outcome.status == "rejected":
                rejected[key][outcome.reason or "unspecified"] += 1
                continue
            summary.accepted += 1
            summary.selected += outcome.selected is not False
            summary.score += outcome.score or 0.0
            summary.reward += outcome.reward
            if outcome.unpaid is not None:
                unpaid[key][outcome.unpaid].append(audit.round)
        for participant, amount in audit.claimed.items():
            if participant in summaries:
                summaries[participant].claimed += amount
    for key, summary in summaries.items():
        summary.rejected = dict(sorted(rejected[key].items()))
        summary.node_ids.sort()
        if summary.reward == 0:
            summary.unpaid = _why_unpaid(summary, unpaid[key])
    return [summaries[key] for key in sorted(summaries)]


def _why_unpaid(summary: ParticipantSummary, reasons: dict[str, list[int]]) -> str:
    """A participant granted nothing over the run, in words."""
    rejections = ", ".join(f"{count} {reason}" for reason, count in summary.rejected.items())
    if summary.accepted == 0:
        total = sum(summary.rejected.values())
        codes = rejections if len(summary.rejected) > 1 else next(iter(summary.rejected), "unspecified")
        return f"no update accepted: {total} rejected ({codes})"
    if summary.selected == 0:
        return f"never selected by the strategy ({summary.accepted} accepted, none aggregated)"
    prefix = "scored 0: "
    if all(reason.startswith(prefix) for reason in reasons):
        scored = "; ".join(f"{reason.removeprefix(prefix)} ({_rounds(numbers)})" for reason, numbers in reasons.items())
        return f"every update scored 0: {scored}"
    granted = "; ".join(f"{reason} ({_rounds(numbers)})" for reason, numbers in reasons.items())
    return f"every accepted update was granted 0: {granted}"


def _rounds(numbers: list[int]) -> str:
    return ("round " if len(numbers) == 1 else "rounds ") + ", ".join(map(str, numbers))
