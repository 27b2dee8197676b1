"""Checking a round's valuation: the players, plan and candidate models recomputed from the stored
updates, every validator's signed losses verified against the participant of its node's accepted
update, and the clip, contributions and scores recomputed from those signed losses.

Each step is checked from what the manifest records for the step before it, so a tampered step
fails its own check. Floating-point results are compared with ``fedledger.contribution.close``;
candidate model hashes bit for bit.
"""

import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial

import numpy as np

from fedledger.aggregation import WeightedUpdate
from fedledger.audit.findings import FindingRecorder
from fedledger.contribution import close, delta_distances, delta_gram, sybil_threshold
from fedledger.encoding import model_hash
from fedledger.hashing import from_hex, to_hex
from fedledger.manifest import UpdateEntry
from fedledger.signing import SigningDomain
from fedledger.valuation import (
    RoundValuation,
    ValidatorReport,
    ValuationSettings,
    budget_failure,
    coalition_model,
    contributions_of,
    group_improvements,
    group_values,
    member_scores,
    player_contributions,
    validator_groups,
    valuation_plan,
    verify_report,
)

Arrays = Mapping[str, np.ndarray]


@dataclass(frozen=True)
class ValuedRound:
    """What a round's valuation is checked against.

    Attributes:
        run_id, round_number, base_model_hash: the round, as the manifest binds it.
        domain: the registry's EIP-712 domain, which validators sign in.
        accepted: the manifest's accepted update entries (the validators' nodes), in manifest order.
        valued: the accepted entries the strategy selected (the updates valued), in manifest order.
        base: the round's base model (``None`` if it is not usable from the store).
        updates: the valued updates' arrays, in order (``None`` if any is not usable from the store).
    """

    run_id: int
    round_number: int
    base_model_hash: bytes
    domain: SigningDomain
    accepted: Sequence[UpdateEntry]
    valued: Sequence[UpdateEntry]
    base: Arrays | None
    updates: Sequence[Arrays] | None

    @property
    def missing_arrays(self) -> str | None:
        """Why the models cannot be recomputed, or ``None`` if they can."""
        if self.base is None:
            return "the round's base model is not usable from the store"
        if self.updates is None:
            return "a valued update is not usable from the store"
        return None

    def weighted(self) -> list[WeightedUpdate]:
        return [
            WeightedUpdate(arrays, entry.num_examples or 0)
            for arrays, entry in zip(self.updates or (), self.valued, strict=True)
        ]


def check_valuation(
    valuation: RoundValuation, settings: ValuationSettings, round_: ValuedRound, record: FindingRecorder
) -> None:
    """Check every step of a round's valuation, one finding (or more) per check."""
    players = _check_players(valuation, settings, round_, record)
    if players is None:
        for check in ("valuation-plan", "valuation-candidates", "valuation-clip", "valuation-contributions"):
            record.not_run(check, "the recorded players, which are not a partition of the valued updates")
        _check_scores(valuation, None, round_, record)
        return
    over_budget = _check_plan(valuation, settings, len(players), record)
    _check_candidates(valuation, players, round_, record)
    _check_signatures(valuation, settings, round_, over_budget, record)
    _check_clip(valuation, players, round_, over_budget, record)
    _check_contributions(valuation, players, round_, record)
    _check_scores(valuation, players, round_, record)


def _check_players(
    valuation: RoundValuation, settings: ValuationSettings, round_: ValuedRound, record: FindingRecorder
) -> list[tuple[int, ...]] | None:
    """The recorded players as update indices, if they are a partition of the valued updates in
    canonical order; passes if single linkage at the Sybil threshold yields them, a pair at the
    threshold (within the tolerance) counting as linked or not."""
    index_of = {entry.participant: index for index, entry in enumerate(round_.valued)}
    try:
        players = [tuple(index_of[participant] for participant in player) for player in valuation.players]
    except KeyError as error:
        record.fail("valuation-players", f"a player names {error.args[0]}, which is not a valued update's participant")
        return None
    members = sorted(member for player in players for member in player)
    canonical = sorted(tuple(sorted(player)) for player in players)
    if members != list(range(len(round_.valued))) or players != canonical or not all(players):
        record.fail(
            "valuation-players",
            "the players are not the valued updates partitioned in canonical order",
            f"every one of {len(round_.valued)} valued updates in exactly one player, members and players ascending",
            str([list(player) for player in players]),
        )
        return None
    missing = round_.missing_arrays
    if missing is not None:
        record.not_run("valuation-players", f"Sybil clusters not recomputed: {missing}")
        return players
    try:
        gram = delta_gram(round_.base or {}, round_.updates or [])
    except (KeyError, ValueError) as error:
        record.fail("valuation-players", f"the valued updates do not fit the base model: {error!r}")
        return players
    distances = delta_distances(gram)
    threshold = sybil_threshold(gram, settings.sybil_distance)
    group_of = {member: number for number, player in enumerate(players) for member in player}
    split: list[str] = []
    for first in range(len(gram)):
        for second in range(first + 1, len(gram)):
            distance = float(distances[first, second])
            if distance <= threshold and not close(distance, threshold) and group_of[first] != group_of[second]:
                split.append(f"{first} and {second} (distance {distance:.9g} <= {threshold:.9g})")
    unlinked = [
        list(player)
        for player in players
        if not _connected(player, lambda a, b: distances[a, b] <= threshold or close(distances[a, b], threshold))
    ]
    if split:
        record.fail(
            "valuation-players", "updates within the Sybil distance are in different players: " + "; ".join(split)
        )
    if unlinked:
        record.fail("valuation-players", f"players not linked within the Sybil distance {threshold:.9g}: {unlinked}")
    if not split and not unlinked:
        record.ok("valuation-players", f"{len(players)} players of {len(round_.valued)} valued updates recomputed")
    return players


def _connected(members: tuple[int, ...], linked: Callable[[int, int], bool]) -> bool:
    """Whether ``linked`` joins every member to the first, directly or through other members."""
    reached = {members[0]}
    frontier = [members[0]]
    while frontier:
        current = frontier.pop()
        for other in members:
            if other not in reached and linked(current, other):
                reached.add(other)
                frontier.append(other)
    return len(reached) == len(members)


def _check_plan(
    valuation: RoundValuation, settings: ValuationSettings, players: int, record: FindingRecorder
) -> str | None:
    """The coalitions are the valuation plan for ``players``, one candidate each; a round over
    the budget has none and says so. Returns why the round is over the budget, if it is."""
    over_budget = budget_failure(players, settings.budget)
    if over_budget is not None:
        if valuation.coalitions or valuation.candidates or valuation.failure != over_budget:
            record.fail(
                "valuation-plan",
                f"a round over the budget of {settings.budget} has no candidates and records why",
                f"no coalitions, no candidates, failure {over_budget!r}",
                f"{len(valuation.coalitions)} coalitions, {len(valuation.candidates)} candidates, "
                f"failure {valuation.failure!r}",
            )
        else:
            record.ok("valuation-plan", over_budget)
        return over_budget
    plan = valuation_plan(players)
    if valuation.coalitions != plan:
        record.fail(
            "valuation-plan",
            f"the coalitions are not the valuation plan of {players} players",
            str([list(coalition) for coalition in plan]),
            str([list(coalition) for coalition in valuation.coalitions]),
        )
    elif len(valuation.candidates) != len(plan):
        record.fail(
            "valuation-plan", "not one candidate model per coalition", str(len(plan)), str(len(valuation.candidates))
        )
    else:
        record.ok("valuation-plan", f"{len(plan)} candidates: the valuation plan of {players} players")
    return None


def _check_candidates(
    valuation: RoundValuation, players: list[tuple[int, ...]], round_: ValuedRound, record: FindingRecorder
) -> None:
    missing = round_.missing_arrays
    if missing is not None:
        record.not_run("valuation-candidates", f"candidate models not recomputed: {missing}")
        return
    updates = round_.weighted()
    rebuild = partial(_candidate_hash, round_.base or {}, updates, players)
    known = [coalition for coalition in valuation.coalitions if max(coalition, default=-1) < len(players)]
    # Candidates are rebuilt and hashed on every core at once (NumPy and Keccak-256 release the GIL).
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        rebuilt = dict(zip(map(tuple, known), [pool.submit(rebuild, coalition) for coalition in known], strict=True))
    wrong = 0
    for index, (coalition, recorded) in enumerate(zip(valuation.coalitions, valuation.candidates, strict=False)):
        if max(coalition, default=-1) >= len(players):
            record.fail("valuation-candidates", f"candidate {index}'s coalition {list(coalition)} names no player")
            wrong += 1
            continue
        try:
            derived = rebuilt[tuple(coalition)].result()
        except ValueError as error:
            wrong += 1
            record.fail("valuation-candidates", f"candidate {index} cannot be rebuilt: {error}")
            continue
        if derived != recorded:
            wrong += 1
            record.fail("valuation-candidates", f"candidate {index} is not its coalition's model", derived, recorded)
    if not wrong:
        record.ok("valuation-candidates", f"{len(valuation.candidates)} candidate models recomputed bit for bit")


def _candidate_hash(
    base: Mapping[str, np.ndarray],
    updates: Sequence[WeightedUpdate],
    players: Sequence[tuple[int, ...]],
    coalition: tuple[int, ...],
) -> str:
    """The model hash of ``coalition``'s candidate model, rebuilt from the updates.

    Raises:
        ValueError: the coalition's model cannot be built.
    """
    return to_hex(model_hash(coalition_model(base, updates, players, coalition)))


def _check_signatures(
    valuation: RoundValuation,
    settings: ValuationSettings,
    round_: ValuedRound,
    over_budget: str | None,
    record: FindingRecorder,
) -> None:
    """Every validator is an accepted update's node, reported once (none when the round is over the
    budget: no one was asked); a counted report is signed by that update's participant, and a
    report not counted for what it carries is indeed invalid."""
    participant_of = {entry.node_id: entry.participant for entry in round_.accepted}
    asked = [] if over_budget is not None else sorted(participant_of)
    reported = [report.node_id for report in valuation.validators]
    problems = 0
    if sorted(reported) != asked:
        problems += 1
        record.fail(
            "valuation-signatures",
            "the validators are not the nodes whose updates were accepted, each once"
            + (" (none: the round is over the budget)" if over_budget is not None else ""),
            str(asked),
            str(sorted(reported)),
        )
    try:
        hashes = [from_hex(candidate, what="candidate hash") for candidate in valuation.candidates]
    except ValueError as error:
        record.fail("valuation-signatures", f"cannot verify the reports: {error}")
        return
    for report in valuation.validators:
        expected = participant_of.get(report.node_id)
        if expected is None:
            continue
        why = verify_report(
            round_.domain, round_.run_id, round_.round_number, settings.metric, hashes, report, expected
        )
        if report.accepted and why is not None:
            problems += 1
            record.fail("valuation-signatures", f"node {report.node_id}'s report counted: {why}", participant=expected)
        elif not report.accepted and report.values is not None and report.signature is not None and why is None:
            problems += 1
            record.fail(
                "valuation-signatures",
                f"node {report.node_id}'s valid report was left out ({report.reason}: {report.detail})",
                participant=expected,
            )
    if not problems:
        counted = sum(report.accepted for report in valuation.validators)
        record.ok("valuation-signatures", f"{counted} of {len(valuation.validators)} validator reports counted, signed")


def _counted(
    valuation: RoundValuation, players: list[tuple[int, ...]], round_: ValuedRound
) -> tuple[list[ValidatorReport], list[int]]:
    """The counted reports and the group each votes in."""
    counted = [report for report in valuation.validators if report.accepted]
    participants = [entry.participant or "" for entry in round_.valued]
    return counted, validator_groups(players, participants, counted)


def _check_clip(
    valuation: RoundValuation,
    players: list[tuple[int, ...]],
    round_: ValuedRound,
    over_budget: str | None,
    record: FindingRecorder,
) -> None:
    """The valuation failed exactly when the round is over the budget or no report counted, and
    otherwise its clip recomputes from the counted reports."""
    counted, groups = _counted(valuation, players, round_)
    if over_budget is not None or not counted:
        why = over_budget or "no validator report counted"
        if valuation.failure is None or valuation.clip is not None or valuation.contributions:
            record.fail("valuation-clip", f"{why}, yet the valuation records a clip or contributions")
        else:
            record.ok("valuation-clip", f"not valued: {valuation.failure}")
        return
    if valuation.failure is not None:
        record.fail("valuation-clip", f"reports counted, yet the valuation failed: {valuation.failure}")
        return
    try:
        clip, _ = contributions_of(len(players), [report.values or () for report in counted], groups)
    except ValueError as error:
        record.fail("valuation-clip", f"cannot recompute the clip: {error}")
        return
    if valuation.clip is None or not close(valuation.clip, clip):
        record.fail(
            "valuation-clip",
            "the clip is not the median over groups of their positive leave-one-out values",
            f"{clip:.9g}",
            str(valuation.clip),
        )
    else:
        record.ok("valuation-clip", f"clip {clip:.9g} recomputed from {len(counted)} signed reports")


def _check_contributions(
    valuation: RoundValuation, players: list[tuple[int, ...]], round_: ValuedRound, record: FindingRecorder
) -> None:
    """Each player's contribution recomputes from the counted reports and the recorded clip."""
    if valuation.failure is not None:
        if valuation.contributions:
            record.fail("valuation-contributions", "a valuation that failed records contributions")
        else:
            record.ok("valuation-contributions", "a valuation that failed has no contributions")
        return
    counted, groups = _counted(valuation, players, round_)
    if not counted or valuation.clip is None:
        record.not_run("valuation-contributions", "a counted report and the clip, to recompute them from")
        return
    try:
        values = group_values(len(players), group_improvements([r.values or () for r in counted], groups))
    except ValueError as error:
        record.fail("valuation-contributions", f"cannot recompute the contributions: {error}")
        return
    contributions = player_contributions(len(players), values, valuation.clip)
    if len(contributions) != len(valuation.contributions) or not all(
        close(old, new) for old, new in zip(valuation.contributions, contributions, strict=True)
    ):
        record.fail(
            "valuation-contributions",
            "the contributions do not follow from the signed reports and the clip",
            _numbers(contributions),
            _numbers(valuation.contributions),
        )
    else:
        paid = sum(contribution > 0 for contribution in contributions)
        record.ok("valuation-contributions", f"{len(contributions)} contributions recomputed, {paid} above 0")


def _check_scores(
    valuation: RoundValuation, players: list[tuple[int, ...]] | None, round_: ValuedRound, record: FindingRecorder
) -> None:
    """Each valued update scores its share of its player's contribution (0 if the valuation
    failed); every other accepted update scores 0."""
    if valuation.failure is not None:
        expected = [0.0] * len(round_.valued)
    elif players is None or len(valuation.contributions) != len(players):
        record.not_run("valuation-scores", "the recorded players or contributions, which cannot be used")
        return
    else:
        expected = member_scores(players, valuation.contributions, len(round_.valued))
    owed = {entry.node_id: score for entry, score in zip(round_.valued, expected, strict=True)}
    wrong = 0
    for entry in round_.accepted:
        score = owed.get(entry.node_id, 0.0)
        if entry.score is None or not close(entry.score, score):
            wrong += 1
            record.fail(
                "valuation-scores",
                "the recorded score is not the update's share of its player's contribution",
                f"{score:.9g}",
                str(entry.score),
                entry.participant,
            )
    if not wrong:
        record.ok("valuation-scores", f"{len(round_.accepted)} scores follow from the contributions")


def _numbers(values: Sequence[float]) -> str:
    return "[" + ", ".join(f"{value:.9g}" for value in values) + "]"
