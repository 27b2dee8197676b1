"""What each update is worth: a leave-one-out value over a round's valued updates, computed from
the losses the sites themselves report, signed, for candidate models built from them.

``docs/valuation.md`` is the specification; this module implements it, and the coordinator and the
auditor both run it. In short:

1. **Players.** Updates whose deltas from the base model lie within ``sybil_distance`` times the median
   delta norm of each other (single linkage) form one player: copies of one update, sent by
   several identities, share one contribution instead of each earning one.
2. **Candidates.** With ``m`` players: the base model, the model of each player alone, the model of
   all players but ``p`` for each player ``p``, and the model of all players (``2m + 2`` for three
   players or more; a round needing more than the budget is not valued). A coalition's model is
   the weighted mean of its members, each player weighing as much as one of its members.
3. **Votes.** Every validator (a node whose update was accepted) evaluates every candidate on its
   own test rows and signs the losses. Validators vote in groups, one per player (a Sybil cluster
   votes once): a group's vote is the median of its validators' relative improvements.
4. **Contributions.** Player ``p``'s leave-one-out value in group ``g`` is ``λ = r_g(N) - r_g(N - {p})``.
   A player whose own group did not answer, or sees its update alone not improve on the round's
   model (``r_p({p}) <= 0``), earns 0; otherwise it earns the mean over the other groups of ``λ``,
   clipped to ``[0, c]``, where ``c`` is the median over groups of the positive value each sees in
   all players.
5. **Scores.** Each member of a player scores its contribution divided by the square of the player's
   size: the player is paid its contribution over its size, split evenly, so that an update copied
   to other identities earns its sender less than sending it once.
"""

import math
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
from eth_utils import is_hex_address, to_checksum_address

from fedledger.aggregation import WeightedUpdate
from fedledger.contribution import delta_gram, sybil_clusters
from fedledger.encoding import model_hash
from fedledger.hashing import HASH_SIZE, from_hex, to_hex
from fedledger.signing import InvalidSignature, SigningDomain, ValuationMessage, recover_valuation_signer
from fedledger.signing import valuation_results_hash as results_hash

Arrays = dict[str, np.ndarray]

#: The most candidates a valuation request can carry: their record names have four digits.
MAX_CANDIDATES = 10_000
#: A report whose relative improvement on some candidate exceeds this in magnitude is rejected:
#: medians and sums of such figures could overflow to infinity or NaN.
MAX_RELATIVE_IMPROVEMENT = 1e100
#: The ``method`` of a run configuration's ``scoring`` record for this valuation.
METHOD = "leave-one-out"


@dataclass(frozen=True)
class ValuationSettings:
    """How a run values updates (part of the run configuration, recorded in its ``scoring``).

    Attributes:
        metric: the metric key each validator reports for each candidate (lower is better).
        budget: the most candidate models per round; a round that needs more is not valued.
        sybil_distance: updates closer than this share of the median delta norm form one player.
    """

    metric: str = "eval-loss"
    budget: int = 1024
    sybil_distance: float = 0.1

    def __post_init__(self) -> None:
        if not isinstance(self.metric, str) or not self.metric:
            raise ValueError(f"the valuation metric must be a non-empty string, got {self.metric!r}")
        if not isinstance(self.budget, int) or isinstance(self.budget, bool) or not 2 <= self.budget <= MAX_CANDIDATES:
            raise ValueError(
                f"the valuation budget must be an integer from 2 to {MAX_CANDIDATES} candidate models, "
                f"got {self.budget!r}"
            )
        distance = self.sybil_distance
        if isinstance(distance, bool) or not isinstance(distance, int | float) or not math.isfinite(distance):
            raise ValueError(f"the Sybil distance must be a finite number, got {distance!r}")
        if distance < 0:
            raise ValueError(f"the Sybil distance must not be negative, got {distance!r}")

    def to_json(self) -> dict[str, Any]:
        return {
            "method": METHOD,
            "metric": self.metric,
            "budget": self.budget,
            "sybil_distance": self.sybil_distance,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "ValuationSettings":
        """Raises:
        ValueError: ``data`` is not a ``leave-one-out`` scoring record, or a setting is out of range.
        """
        if not isinstance(data, Mapping) or data.get("method") != METHOD:
            raise ValueError(f"not a {METHOD} scoring record: {data!r}")
        missing = [key for key in ("metric", "budget", "sybil_distance") if key not in data]
        if missing:
            raise ValueError(f"the {METHOD} scoring record lacks {', '.join(missing)}: {data!r}")
        return cls(metric=data["metric"], budget=data["budget"], sybil_distance=data["sybil_distance"])


def valuation_plan(players: int) -> tuple[tuple[int, ...], ...]:
    """The candidates' coalitions of a round with ``players`` players: the empty coalition, every
    player alone ``{p}``, every player's complement ``N - {p}`` and all players ``N``, distinct, by
    size and then lexicographically (so the empty coalition is first and ``N`` last; with one
    player ``{0}`` is ``N``, and with two the singletons are the complements).

    Raises:
        ValueError: no players.
    """
    if players < 1:
        raise ValueError(f"a valuation needs at least one player, got {players}")
    everyone = tuple(range(players))
    singletons = {(player,) for player in everyone}
    complements = {everyone[:player] + everyone[player + 1 :] for player in everyone}
    coalitions = {(), everyone, *singletons, *complements}
    return tuple(sorted(coalitions, key=lambda coalition: (len(coalition), coalition)))


def candidate_count(players: int) -> int:
    """How many candidates ``valuation_plan(players)`` lists: 2 for one player, 4 for two, else
    ``2 * players + 2``."""
    if players <= 2:
        return 2 * players
    return 2 * players + 2


def budget_failure(players: int, budget: int) -> str | None:
    """Why a round with ``players`` players is not valued under ``budget``, or ``None`` if it is."""
    candidates = candidate_count(players)
    if candidates <= budget:
        return None
    return f"not valued: {players} players need {candidates} candidate models, more than the budget of {budget}"


def coalition_model(
    base: Mapping[str, np.ndarray],
    updates: Sequence[WeightedUpdate],
    players: Sequence[tuple[int, ...]],
    coalition: tuple[int, ...],
) -> Arrays:
    """The candidate model of ``coalition`` (player indices): the base model for the empty one;
    else per array (names sorted), ``Σ c_i x_i`` accumulated in float64 from zeros over the members
    in ascending order, cast to the base array's dtype, with ``c_i = w_i / (|p| · W_S)`` and
    ``W_S = Σ_{p ∈ S} W_p / |p|``: each player weighs as much as one of its members, on average.

    Raises:
        ValueError: a member's weight is not positive, or it lacks one of the base's arrays or has
            another shape.
    """
    names = sorted(base)
    if not coalition:
        return {name: base[name] for name in names}
    for player in coalition:
        for member in players[player]:
            if not updates[member].weight > 0:
                raise ValueError(f"update {member}'s weight must be positive, got {updates[member].weight!r}")
    total = 0.0
    for player in coalition:
        total += sum(updates[member].weight for member in players[player]) / len(players[player])
    coefficients = {
        member: updates[member].weight / (len(players[player]) * total)
        for player in coalition
        for member in players[player]
    }
    model: Arrays = {}
    for name in names:
        accumulated = np.zeros(base[name].shape, dtype=np.float64)
        for member in sorted(coefficients):
            values = updates[member].arrays.get(name)
            if values is None or values.shape != base[name].shape:
                found = "nothing" if values is None else f"shape {values.shape}"
                raise ValueError(f"update {member}'s array {name!r} must have shape {base[name].shape}, got {found}")
            accumulated += coefficients[member] * values.astype(np.float64)
        model[name] = accumulated.astype(base[name].dtype)
    return model


def group_improvements(losses: Sequence[Sequence[float]], groups: Sequence[int]) -> dict[int, np.ndarray]:
    """Each group's vote on every candidate, by group number ascending, from the validators'
    reported losses (``losses[v][k]``: validator ``v``, candidate ``k``; candidate 0 is the empty
    coalition): the median over the group's validators of their relative improvements
    ``(L(∅) - L(S)) / |L(∅)|`` (``/ 1`` if ``L(∅) = 0``).

    Raises:
        ValueError: no validator, not one group number per validator, or rows of unequal length.
    """
    if not losses:
        raise ValueError("a valuation needs at least one validator's losses")
    if len(groups) != len(losses):
        raise ValueError(f"{len(losses)} validators but {len(groups)} group numbers")
    if len({len(row) for row in losses}) != 1:
        raise ValueError("every validator must report one loss per candidate")
    table = np.array(losses, dtype=np.float64)
    empty = table[:, :1]
    improvements = (empty - table) / np.where(empty == 0, 1.0, np.abs(empty))
    labels = np.array(groups)
    return {group: np.median(improvements[labels == group], axis=0) for group in sorted(set(groups))}


@dataclass(frozen=True)
class GroupValues:
    """What one group's vote says about each player, in player order.

    Attributes:
        alone: ``r_g({p})``, how much player ``p``'s model alone improves on the round's model.
        leave_one_out: ``λ[g][p] = r_g(N) - r_g(N - {p})``, what the round's model loses without ``p``.
    """

    alone: tuple[float, ...]
    leave_one_out: tuple[float, ...]


def group_values(players: int, votes: Mapping[int, np.ndarray]) -> dict[int, GroupValues]:
    """Each group's ``GroupValues``, from the groups' votes on the candidates of
    ``valuation_plan(players)``, in that order.

    Raises:
        ValueError: a vote that is not one figure per candidate.
    """
    plan = valuation_plan(players)
    index = {coalition: number for number, coalition in enumerate(plan)}
    everyone = tuple(range(players))
    singletons = [index[(player,)] for player in everyone]
    complements = [index[everyone[:player] + everyone[player + 1 :]] for player in everyone]
    values: dict[int, GroupValues] = {}
    for group, vote in votes.items():
        if len(vote) != len(plan):
            raise ValueError(f"group {group} votes on {len(vote)} candidates, not {len(plan)}")
        full = float(vote[-1])
        values[group] = GroupValues(
            alone=tuple(float(vote[singleton]) for singleton in singletons),
            leave_one_out=tuple(full - float(vote[complement]) for complement in complements),
        )
    return values


def contribution_clip(values: Mapping[int, GroupValues]) -> float:
    """``c``: the median over groups of the positive value each group sees in all the players,
    ``Σ_p max(0, λ[g][p])`` (summed from 0.0 in player order).

    Raises:
        ValueError: no group.
    """
    if not values:
        raise ValueError("the clip needs at least one group")
    totals = []
    for group in sorted(values):
        total = 0.0
        for value in values[group].leave_one_out:
            total += max(0.0, value)
        totals.append(total)
    return float(np.median(totals))


def player_contributions(players: int, values: Mapping[int, GroupValues], clip: float) -> list[float]:
    """Each player's contribution from the groups' values (player ``p``'s own group is group
    ``p``) and the clip ``c``: 0 when its own group did not vote or sees its update alone not
    improve on the round's model (``r_p({p}) <= 0``); else the mean over the other groups
    (ascending, summed from 0.0) of ``min(max(0, λ[g][p]), c)``, or, when there is no other
    group, its own group's ``min(max(0, λ[p][p]), c)`` — in either case at most ``r_p({p})``, what
    its own site sees its update alone do (a free-rider's noise that happens to point the site's
    way gains it a hair, and earns it at most that hair)."""
    contributions = []
    for player in range(players):
        own = values.get(player)
        if own is None or not own.alone[player] > 0:
            contributions.append(0.0)
            continue
        judges = [group for group in sorted(values) if group != player] or [player]
        total = 0.0
        for group in judges:
            total += min(max(0.0, values[group].leave_one_out[player]), clip)
        contributions.append(min(total / len(judges), own.alone[player]))
    return contributions


def contributions_of(
    players: int, losses: Sequence[Sequence[float]], groups: Sequence[int]
) -> tuple[float, list[float]]:
    """The clip ``c`` and each player's contribution, from the counted validators' losses on the
    candidates of ``valuation_plan(players)`` and the group each validator votes in.

    Raises:
        ValueError: no validator, not one group per validator, or not one loss per candidate.
    """
    values = group_values(players, group_improvements(losses, groups))
    clip = contribution_clip(values)
    return clip, player_contributions(players, values, clip)


def member_scores(players: Sequence[tuple[int, ...]], contributions: Sequence[float], count: int) -> list[float]:
    """One score per update (``count`` of them): ``contribution(p) / |p|²`` for each member of player ``p``."""
    scores = [0.0] * count
    for player, contribution in zip(players, contributions, strict=True):
        for member in player:
            scores[member] = contribution / len(player) ** 2
    return scores


@dataclass(frozen=True)
class ValidatorReport:
    """One validator's answer to a valuation request, as received and judged.

    Attributes:
        node_id: the Flower node asked (its update was accepted this round).
        participant: the address the reply names (``None`` if none).
        values: the metric reported for each candidate, in order (``None`` if none, or not all finite).
        signature: the EIP-712 valuation signature, ``0x`` hex (``None`` if none).
        reason: why the report was not counted (``None`` when it was).
        detail: what exactly was wrong, for people.
    """

    node_id: int
    participant: str | None
    values: tuple[float, ...] | None
    signature: str | None
    reason: str | None = None
    detail: str | None = None

    @property
    def accepted(self) -> bool:
        return self.reason is None and self.values is not None and self.signature is not None

    def to_json(self) -> dict[str, Any]:
        """JSON has no NaN or infinity: values that are not all finite are recorded as ``None``."""
        finite = self.values is not None and all(math.isfinite(value) for value in self.values)
        return {
            "node_id": self.node_id,
            "participant": self.participant,
            "values": [float(value) for value in self.values] if finite and self.values is not None else None,
            "signature": self.signature,
            "reason": self.reason,
            "detail": self.detail,
        }

    @classmethod
    def from_json(cls, data: object) -> "ValidatorReport":
        """Raises:
        ValueError: a field is missing or of the wrong type.
        """
        fields = _Fields(data, "a validator report")
        values = fields.optional("values", list)
        if values is not None and not all(_is_number(value) for value in values):
            raise ValueError(f"a validator report's 'values' must be a list of numbers, got {values!r}")
        return cls(
            node_id=fields.required("node_id", int),
            participant=fields.optional("participant", str),
            values=None if values is None else tuple(float(value) for value in values),
            signature=fields.optional("signature", str),
            reason=fields.optional("reason", str),
            detail=fields.optional("detail", str),
        )


def verify_report(
    domain: SigningDomain,
    run_id: int,
    round_number: int,
    metric: str,
    candidate_hashes: Sequence[bytes],
    report: ValidatorReport,
    expected_signer: str,
) -> str | None:
    """``None`` if ``report`` holds one finite value per candidate and ``expected_signer`` (the
    participant of the node's accepted update) signed them; else what is wrong, in one line."""
    if report.values is None or report.signature is None:
        return "the report carries no values or no signature"
    if len(report.values) != len(candidate_hashes):
        return f"{len(report.values)} values reported for {len(candidate_hashes)} candidates"
    for index, value in enumerate(report.values):
        if not _is_number(value) or not math.isfinite(value):
            return f"the value for candidate {index} is not a finite number: {value!r}"
    empty = report.values[0]
    scale = abs(empty) if empty != 0 else 1.0
    for index, value in enumerate(report.values):
        if not abs(empty - value) / scale <= MAX_RELATIVE_IMPROVEMENT:
            return f"the value for candidate {index} ({value!r}) is out of range against {empty!r} for candidate 0"
    if report.participant is None or not is_hex_address(report.participant):
        return f"the report names no valid participant address: {report.participant!r}"
    if to_checksum_address(report.participant) != to_checksum_address(expected_signer):
        return f"the report names participant {report.participant}, not the node's {expected_signer}"
    message = ValuationMessage(run_id, round_number, metric, results_hash(candidate_hashes, report.values))
    try:
        signer = recover_valuation_signer(domain, message, from_hex(report.signature, what="signature", size=None))
    except (InvalidSignature, ValueError) as error:
        return f"bad signature: {error}"
    if signer != to_checksum_address(expected_signer):
        return f"the signature is {signer}'s, not {expected_signer}'s"
    return None


def validator_groups(
    players: Sequence[tuple[int, ...]], participants: Sequence[str], reports: Sequence[ValidatorReport]
) -> list[int]:
    """The group each report's validator votes in: the number of the player its update belongs to
    (``participants``: one per valued update, in order), or, for a validator whose update was not
    valued, a group of its own numbered ``len(players) + node_id``."""
    player_of = {participants[member].lower(): number for number, player in enumerate(players) for member in player}
    return [player_of.get((report.participant or "").lower(), len(players) + report.node_id) for report in reports]


@dataclass(frozen=True)
class RoundValuation:
    """A round's valuation as its manifest records it: enough for an auditor to recompute it.

    Attributes:
        players: the participant addresses of each player, in player order.
        coalitions: the candidates' coalitions of player indices, in candidate order (none when the
            round is over the budget).
        candidates: the candidate models' hashes, ``0x`` hex.
        validators: every validator's report, by node id (none when the round is over the budget).
        contributions: each player's contribution (empty if the valuation failed).
        clip: the most any player's contribution can be, ``c`` (``None`` if the valuation failed).
        failure: why the round was not valued (over the budget, or no validator report counted),
            else ``None``.
    """

    players: tuple[tuple[str, ...], ...]
    coalitions: tuple[tuple[int, ...], ...]
    candidates: tuple[str, ...]
    validators: tuple[ValidatorReport, ...]
    contributions: tuple[float, ...]
    clip: float | None = None
    failure: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "players": [list(player) for player in self.players],
            "coalitions": [list(coalition) for coalition in self.coalitions],
            "candidates": list(self.candidates),
            "validators": [report.to_json() for report in self.validators],
            "contributions": list(self.contributions),
            "clip": self.clip,
            "failure": self.failure,
        }

    @classmethod
    def from_json(cls, data: object) -> "RoundValuation":
        """Raises:
        ValueError: a field is missing or of the wrong type, or a figure is not finite.
        """
        fields = _Fields(data, "the valuation")
        clip = fields.optional("clip", float)
        return cls(
            players=fields.nested("players", str),
            coalitions=fields.nested("coalitions", int),
            candidates=tuple(fields.list_of("candidates", str)),
            validators=tuple(ValidatorReport.from_json(report) for report in fields.required("validators", list)),
            contributions=tuple(float(value) for value in fields.list_of("contributions", float)),
            clip=None if clip is None else float(clip),
            failure=fields.optional("failure", str),
        )


@dataclass(frozen=True, eq=False)
class PreparedValuation:
    """A round's valuation before the validators answer: its players and candidate models.

    A round whose candidates would exceed the budget has none and a ``failure``: it is not valued,
    and no valuation request is sent. Candidate models are built on demand (``candidate``,
    ``candidates``), one at a time, so that memory holds one model however many candidates there
    are; their hashes are computed once.
    """

    settings: ValuationSettings
    run_id: int
    round_number: int
    base: Mapping[str, np.ndarray]
    updates: tuple[WeightedUpdate, ...]
    players: tuple[tuple[int, ...], ...]
    coalitions: tuple[tuple[int, ...], ...]
    failure: str | None = None

    def candidate(self, index: int) -> Arrays:
        """Candidate model number ``index``: the model of coalition ``index``."""
        return coalition_model(self.base, self.updates, self.players, self.coalitions[index])

    def candidates(self) -> Iterator[Arrays]:
        """The candidate models in order, built one at a time."""
        for index in range(len(self.coalitions)):
            yield self.candidate(index)

    @cached_property
    def candidate_hashes(self) -> tuple[bytes, ...]:
        """Each candidate model's canonical ``model_hash``, in order."""
        return tuple(model_hash(model) for model in self.candidates())


def prepare_valuation(
    settings: ValuationSettings,
    run_id: int,
    round_number: int,
    base: Mapping[str, np.ndarray],
    base_model_hash: bytes,
    updates: Sequence[WeightedUpdate],
) -> PreparedValuation:
    """The players and candidates of a round's valued ``updates`` (in manifest order) that
    trained from ``base`` (whose hash is ``base_model_hash``). Its candidate hashes are computed
    on first use. A round with more candidates than the budget gets none, and its ``failure``.

    Raises:
        ValueError: no updates, an update that does not fit the base model, or a base model hash
            that is not 32 bytes.
    """
    if len(base_model_hash) != HASH_SIZE:
        raise ValueError(f"the base model hash must be {HASH_SIZE} bytes, got {len(base_model_hash)}")
    if not updates:
        raise ValueError("a valuation needs at least one player, got no update")
    for index, update in enumerate(updates):
        for name, array in base.items():
            if name not in update.arrays or update.arrays[name].shape != array.shape:
                raise ValueError(f"update {index} does not fit the base model's array {name!r} of shape {array.shape}")
    gram = delta_gram(base, [update.arrays for update in updates])
    players = tuple(sybil_clusters(gram, settings.sybil_distance))
    failure = budget_failure(len(players), settings.budget)
    coalitions = () if failure is not None else valuation_plan(len(players))
    return PreparedValuation(settings, run_id, round_number, base, tuple(updates), players, coalitions, failure)


def conclude_valuation(
    prepared: PreparedValuation, participants: Sequence[str], reports: Sequence[ValidatorReport]
) -> tuple[RoundValuation, list[float]]:
    """The round's valuation record and one score per valued update, from every validator's
    report (verified already: a report that is not to be counted carries its ``reason``).

    A round over the budget (``prepared.failure``) takes no reports. It, and a round with no
    report counted, fails: the record says why, and every score is 0.

    Raises:
        ValueError: not one participant per update, or reports for a round over the budget.
    """
    if len(participants) != len(prepared.updates):
        raise ValueError(f"{len(prepared.updates)} valued updates but {len(participants)} participants")
    players = tuple(tuple(participants[member] for member in player) for player in prepared.players)
    unpaid = [0.0] * len(prepared.updates)
    if prepared.failure is not None:
        if reports:
            raise ValueError(f"a round that is not valued takes no reports ({prepared.failure}), got {len(reports)}")
        return RoundValuation(players, (), (), (), (), None, prepared.failure), unpaid
    validators = tuple(sorted(reports, key=lambda report: report.node_id))
    candidates = tuple(to_hex(digest) for digest in prepared.candidate_hashes)
    counted = [report for report in validators if report.accepted]
    if not counted:
        failure = valuation_failure(validators)
        return RoundValuation(players, prepared.coalitions, candidates, validators, (), None, failure), unpaid
    groups = validator_groups(prepared.players, participants, counted)
    clip, contributions = contributions_of(len(players), [report.values or () for report in counted], groups)
    valuation = RoundValuation(players, prepared.coalitions, candidates, validators, tuple(contributions), clip)
    return valuation, member_scores(prepared.players, contributions, len(prepared.updates))


def valuation_failure(validators: Sequence[ValidatorReport]) -> str:
    """Why no report counted: the rejection reasons and how many validators gave each."""
    if not validators:
        return "no validator was asked"
    reasons = Counter(report.reason or "no values" for report in validators)
    summary = ", ".join(f"{count} {reason}" for reason, count in sorted(reasons.items()))
    return f"no validator report counted ({summary})"


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


class _Fields:
    """Typed reads of one JSON object; every failure is a ``ValueError`` naming the field."""

    def __init__(self, document: object, what: str) -> None:
        if not isinstance(document, dict):
            raise ValueError(f"{what} must be a JSON object, got {type(document).__name__}")
        self.document = document
        self.what = what

    def _fail(self, key: str, expected: str) -> ValueError:
        return ValueError(f"{self.what}'s {key!r} must be {expected}, got {self.document.get(key)!r}")

    @staticmethod
    def _matches(value: object, kind: type) -> bool:
        """Whether ``value`` is a ``kind``; a float is any finite number, and no bool is anything."""
        if kind is float:
            return _is_number(value) and math.isfinite(value)  # type: ignore[arg-type]
        return isinstance(value, kind) and not isinstance(value, bool)

    def required(self, key: str, kind: type) -> Any:
        value = self.document.get(key)
        if not self._matches(value, kind):
            raise self._fail(key, "a finite number" if kind is float else kind.__name__)
        return value

    def optional(self, key: str, kind: type) -> Any:
        return None if self.document.get(key) is None else self.required(key, kind)

    def list_of(self, key: str, kind: type) -> list:
        values = self.required(key, list)
        if not all(self._matches(value, kind) for value in values):
            raise self._fail(key, f"a list of {kind.__name__}")
        return values

    def nested(self, key: str, kind: type) -> tuple[tuple, ...]:
        rows = self.required(key, list)
        if not all(isinstance(row, list) and all(self._matches(item, kind) for item in row) for row in rows):
            raise self._fail(key, f"a list of lists of {kind.__name__}")
        return tuple(tuple(row) for row in rows)
