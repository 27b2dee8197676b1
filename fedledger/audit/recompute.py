"""The audit's recomputations: what the coordinator computed from the updates — anomaly flags,
scores (from the validators' signed losses), rewards, the strategy's selection and the aggregate —
computed again from the stored artifacts."""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from fedledger.aggregation import Aggregator, NoAggregationRule, UnsupportedStrategy, WeightedUpdate, aggregator_for
from fedledger.audit.findings import FindingRecorder
from fedledger.audit.valuation import ValuedRound, check_valuation
from fedledger.contribution import DetectorSettings, delta_gram, detect, step_responses
from fedledger.encoding import model_hash
from fedledger.hashing import to_hex
from fedledger.manifest import RoundManifest
from fedledger.privacy import PrivacySettings, add_noise, clip_update
from fedledger.rewards import RewardRule
from fedledger.rounds import grant_rewards
from fedledger.valuation import ValuationSettings

Arrays = dict[str, np.ndarray]


class RoundUpdates:
    """A round's base model and its intact stored updates (by manifest entry index), with the Gram
    matrix of their deltas computed once for the checks that share it."""

    def __init__(self, manifest: RoundManifest, base: Arrays | None, stored: dict[int, Arrays]) -> None:
        self.base = base
        self.stored = stored
        self.accepted_indices = [index for index, entry in enumerate(manifest.updates) if entry.status == "accepted"]
        self.valued_indices = [
            index for index in self.accepted_indices if manifest.updates[index].selected is not False
        ]
        self._cached: tuple[list[int], np.ndarray] | None = None

    def accepted(self) -> list[Arrays] | None:
        """The accepted updates' arrays, in manifest order; ``None`` if any of them is unusable."""
        if any(index not in self.stored for index in self.accepted_indices):
            return None
        return [self.stored[index] for index in self.accepted_indices]

    def valued(self) -> list[Arrays] | None:
        """The arrays of the accepted updates the strategy aggregated, in manifest order; ``None``
        if any of them is unusable."""
        if any(index not in self.stored for index in self.valued_indices):
            return None
        return [self.stored[index] for index in self.valued_indices]

    def gram(self, indices: list[int]) -> np.ndarray | None:
        """The ``delta_gram`` of the updates at ``indices``; ``None`` if the base or one of them is unusable.

        The anomaly check asks for every examined update, the score check for the accepted ones
        among them: the second is read off the first, not a second pass over the arrays.
        """
        if self.base is None or any(index not in self.stored for index in indices):
            return None
        if self._cached is not None:
            cached_indices, gram = self._cached
            if set(indices) <= set(cached_indices):
                positions = [cached_indices.index(index) for index in indices]
                return gram[np.ix_(positions, positions)]
        gram = delta_gram(self.base, [self.stored[index] for index in indices])
        self._cached = (indices, gram)
        return gram


def examined_entries(manifest: RoundManifest) -> list[int]:
    """The indices of the entries whose updates the anomaly detector examined: every update that
    passed validation (accepted, rejected as ``anomalous``, or rejected only because the round
    failed). In a round with too few of them for the detector to judge, none carries statistics,
    yet they are what the next round's responses to the global step are measured against."""
    return [
        index
        for index, entry in enumerate(manifest.updates)
        if entry.anomaly is not None or entry.status == "accepted" or entry.reason == "round-failed"
    ]


@dataclass(frozen=True)
class ExaminedRound:
    """A round's base model and the updates its anomaly detector examined, by participant: what
    the next round's responses to the global step (``step_responses``) are measured against.

    Attributes:
        base: the round's base model; ``None`` when the round cannot serve, and ``unusable`` says why.
        updates: participant -> its examined update (``None``: its stored update is unusable).
        unusable: why the round cannot serve at all (its manifest or base model is unusable).
    """

    base: Arrays | None
    updates: Mapping[str, Arrays | None]
    unusable: str = ""

    @classmethod
    def of(cls, manifest: RoundManifest, updates: RoundUpdates) -> "ExaminedRound":
        if updates.base is None:
            return cls.lost(f"round {manifest.round}'s base model is unusable")
        examined = {
            manifest.updates[index].participant or "": updates.stored.get(index) for index in examined_entries(manifest)
        }
        return cls(updates.base, examined)

    @classmethod
    def lost(cls, why: str) -> "ExaminedRound":
        """A round none of whose responses can be recomputed from, because ``why``."""
        return cls(None, {}, why)

    def responses(
        self, base: Arrays, participants: list[str], updates: list[Arrays]
    ) -> tuple[list[float | None], dict[int, str]]:
        """The responses of the next round's ``updates`` (from ``base``, sent by ``participants``)
        to the step from this round's base to ``base``, and, by position, why those that cannot be
        recomputed cannot (their response is then ``None`` here)."""
        if self.base is None:
            return [None] * len(updates), dict.fromkeys(range(len(updates)), self.unusable)
        previous = [self.updates.get(participant) for participant in participants]
        unchecked = {
            position: "its update the detector examined in the previous round is unusable"
            for position, participant in enumerate(participants)
            if participant in self.updates and previous[position] is None
        }
        return step_responses(self.base, base, previous, updates), unchecked


def check_anomalies(
    manifest: RoundManifest,
    settings: DetectorSettings | None,
    updates: RoundUpdates,
    previous: ExaminedRound | None,
    record: FindingRecorder,
) -> None:
    """Recompute the detector's statistics over the updates it examined, each update's response to
    the last global step included; check its decisions.

    ``settings`` are the run configuration's (``None``: no detector); ``previous`` is the previous
    round's ``ExaminedRound`` (``None`` in the run's first round: there is no step to answer). A
    response that cannot be recomputed is reported as not checked, and the recorded one stands in
    for it so that the other statistics are still checked.
    """
    flagged = [entry for entry in manifest.updates if entry.reason == "anomalous"]
    examined = [index for index, entry in enumerate(manifest.updates) if entry.anomaly is not None]
    if settings is None:
        if flagged or examined:
            record.fail("anomaly", "the run has no anomaly detector, yet updates carry its verdicts")
        else:
            record.ok("anomaly", "no detector in this run")
        return
    if not examined:
        valid = [entry for entry in manifest.updates if entry.status == "accepted" or entry.reason == "round-failed"]
        if len(valid) >= settings.min_updates or flagged:
            record.fail("anomaly", f"{len(valid)} valid updates, yet the detector's statistics are missing")
        else:
            record.ok("anomaly", f"{len(valid)} valid updates: too few for the detector to run")
        return
    gram = updates.gram(examined)
    if gram is None or updates.base is None:
        record.not_run("anomaly", "an examined update or the round's base model is not usable from the store")
        return
    entries = [manifest.updates[index] for index in examined]
    recorded_statistics = [entry.anomaly for entry in entries if entry.anomaly is not None]
    participants = [entry.participant or "" for entry in entries]
    if previous is None:
        responses: list[float | None] = [None] * len(examined)
        unchecked: dict[int, str] = {}
    else:
        arrays = [updates.stored[index] for index in examined]
        responses, unchecked = previous.responses(updates.base, participants, arrays)
    responded = sum(response is not None for response in responses)
    for position, why in unchecked.items():
        responses[position] = recorded_statistics[position].response
        record.not_run(
            "anomaly", f"{participants[position]}'s response to the last global step: {why}", participants[position]
        )
    recomputed = detect(gram, settings, responses)
    if recomputed is None:
        record.fail("anomaly", f"{len(examined)} updates carry the detector's statistics, fewer than it runs on")
        return
    problems = 0
    for entry, recorded, again in zip(entries, recorded_statistics, recomputed, strict=True):
        if not recorded.matches(again):
            problems += 1
            record.fail(
                "anomaly",
                "the recorded statistics are not the update's",
                str(again),
                str(recorded),
                entry.participant,
            )
            continue
        should_flag = bool(recorded.flagged_by(settings.threshold))
        if should_flag != (entry.reason == "anomalous") or recorded.flags != recorded.flagged_by(settings.threshold):
            problems += 1
            verdict = "flagged" if should_flag else "not flagged"
            record.fail(
                "anomaly",
                f"the statistics say {verdict}, the manifest says {entry.status}",
                verdict,
                entry.reason or entry.status,
                entry.participant,
            )
    if not problems:
        record.ok(
            "anomaly",
            f"{len(examined)} updates examined, {responded} responses to the last global step, "
            f"{len(flagged)} flagged, as the statistics say"
            + (f"; {len(unchecked)} responses not checked" if unchecked else ""),
        )


def check_scores(
    manifest: RoundManifest,
    settings: ValuationSettings | None,
    round_: ValuedRound,
    record: FindingRecorder,
) -> None:
    """Check the scores of an aggregated round: with the ``examples`` reward rule nothing is valued
    and no update may carry a score; otherwise the round's valuation is re-derived
    (``fedledger.audit.valuation``)."""
    if manifest.outcome != "aggregated":
        return
    if settings is None:
        scored = [entry for entry in manifest.accepted if entry.score is not None]
        for entry in scored:
            record.fail(
                "scores",
                "an update is scored in a run that values nothing",
                "no score",
                str(entry.score),
                entry.participant,
            )
        if manifest.valuation is not None:
            record.fail("scores", "a valuation is recorded in a run that values nothing", "none", "a valuation")
        if not scored and manifest.valuation is None:
            record.ok("scores", "rewards follow example counts: nothing is valued")
        return
    if manifest.valuation is None:
        record.fail("scores", "the round records no valuation", "a valuation", "none")
        return
    record.ok("scores", "the round records its valuation")
    check_valuation(manifest.valuation, settings, round_, record)


def check_rewards(manifest: RoundManifest, rule: RewardRule, record: FindingRecorder) -> None:
    """Recompute the rewards from the recorded scores (or example counts) with the run's rule."""
    granted = grant_rewards(rule, manifest)
    for entry in manifest.updates:
        expected = granted.get(entry.participant or "", 0) if entry.status == "accepted" else 0
        if entry.reward != expected:
            record.fail(
                "rewards",
                "the reward is not what the rule grants",
                str(expected),
                str(entry.reward),
                entry.participant,
            )
    total = sum(entry.reward for entry in manifest.updates)
    if total > rule.budget:
        record.fail("rewards", "the round grants more than its budget", str(rule.budget), str(total))
    elif all(entry.reward == granted.get(entry.participant or "", 0) for entry in manifest.accepted):
        record.ok("rewards", f"{rule.rule} rule, {total} granted of {rule.budget}")


class Reaggregation:
    """Re-derives each round's aggregate, carrying a stateful strategy's state from round to round:
    the auditor checks each committed round with it, the coordinator each round before committing.

    Without an ``aggregator``, ``unsupported`` says why; ``no_rule`` says the strategy simply has no
    rule (the check is then ``not-checked``, not ``unsupported``)."""

    def __init__(
        self,
        aggregator: Aggregator | None,
        unsupported: str,
        no_rule: bool = False,
        privacy: PrivacySettings | None = None,
    ) -> None:
        self.aggregator = aggregator
        self.privacy = privacy
        self.unsupported = unsupported
        self.no_rule = no_rule
        self.lost: str | None = None  # what a stateful strategy's lost state was rebuilt from

    @classmethod
    def of(cls, strategy: Mapping[str, Any], privacy: PrivacySettings | None = None) -> "Reaggregation":
        """The re-aggregation of ``strategy``, described as a run configuration records it; under
        central DP (``privacy``) of the clipped updates, each weighing 1, plus the recorded noise."""
        central = privacy if privacy is not None and privacy.mode == "central" else None
        try:
            return cls(aggregator_for(strategy), "", privacy=central)
        except UnsupportedStrategy as error:
            return cls(None, str(error), isinstance(error, NoAggregationRule), central)

    @property
    def not_reproduced(self) -> str:
        """What a manifest records when there is no aggregator: ``not checked: why`` for a strategy
        without a rule, ``unsupported: why`` for one whose rule cannot be applied."""
        return f"{'not checked' if self.no_rule else 'unsupported'}: {self.unsupported}"

    def check(
        self,
        manifest: RoundManifest,
        base_hash: bytes,
        committed_hash: bytes,
        updates: RoundUpdates,
        record: FindingRecorder,
        noise: Arrays | None = None,
    ) -> None:
        """Check that the committed model is the aggregate of the accepted updates (a failed round: the
        base); under central DP, of the clipped updates plus ``noise``, the round's recorded noise
        (``None``: it could not be read, and the model is not re-derived)."""
        committed = to_hex(committed_hash)
        if manifest.outcome == "failed":
            record.compare(
                "reaggregation",
                to_hex(base_hash),
                committed,
                "a failed round keeps the model",
                "a failed round changed the model",
            )
            return
        if self.lost is not None:
            for check in ("selection", "reaggregation"):
                record.not_run(check, self.lost)
            return
        if self.aggregator is None:
            if self.no_rule:
                record.not_checked("reaggregation", f"re-aggregation not checked: {self.unsupported}")
                record.not_checked("selection", f"the strategy's selection not checked: {self.unsupported}")
            else:
                record.unsupported("reaggregation", f"cannot re-derive the aggregate: {self.unsupported}")
                record.unsupported("selection", f"cannot re-derive the strategy's selection: {self.unsupported}")
            return
        accepted, base = updates.accepted(), updates.base
        if accepted is None or (self.aggregator.stateful and base is None):
            missing = "an accepted update or the round's base model is not usable from the store"
            for check in ("selection", "reaggregation"):
                record.not_run(check, missing)
            if self.aggregator.stateful:
                self.lost = f"the server optimiser's state, lost at round {manifest.round}: {missing}"
            return
        if self.privacy is None:
            weighted = [
                WeightedUpdate(arrays, entry.num_examples)
                for arrays, entry in zip(accepted, manifest.accepted, strict=True)
            ]
        else:
            weighted = [
                WeightedUpdate(clip_update(base or {}, arrays, self.privacy.clip_norm), 1) for arrays in accepted
            ]
        self._check_selection(manifest, self.aggregator.selection(weighted), record)
        aggregate = self.aggregator.aggregate(manifest.round, base or {}, weighted)
        if self.privacy is not None:
            if noise is None:
                record.not_run("reaggregation", "the round's recorded noise is not usable (see privacy-noise)")
                return
            aggregate = add_noise(aggregate, noise)
        derived = to_hex(model_hash(aggregate))
        record.compare(
            "reaggregation",
            committed,
            derived,
            f"{manifest.strategy['name']} of the accepted updates reproduces the committed model",
            "the committed model is not the aggregate of the accepted updates",
        )

    @staticmethod
    def _check_selection(manifest: RoundManifest, selection: list[int], record: FindingRecorder) -> None:
        """Check the manifest's ``selected`` flags against the updates the strategy picks."""
        chosen = set(selection)
        wrong = [
            (entry, position in chosen)
            for position, entry in enumerate(manifest.accepted)
            if entry.selected is not (position in chosen)
        ]
        for entry, expected in wrong:
            record.fail(
                "selection",
                "the update's selection differs from the strategy's",
                "selected" if expected else "left out",
                "selected" if entry.selected else "left out" if entry.selected is False else "not recorded",
                entry.participant,
            )
        if not wrong:
            left_out = len(manifest.accepted) - len(chosen)
            record.ok(
                "selection",
                f"{manifest.strategy['name']} aggregates {len(chosen)} accepted updates, {left_out} left out",
            )
