"""Which updates look poisoned — computed from the stored updates and the round's base model
alone, so an auditor can recompute it. (What each update contributed is ``fedledger.valuation``.)

The detector works on the updates' deltas from the base model, flattened (arrays in name order) to
float64, through their Gram matrix: one matrix product gives every norm, pairwise distance and
cosine (the valuation's Sybil clusters use the same matrix).

**Anomaly detection** (``robust-z``): for each update, three statistics — its *norm*; its *spread*,
the median of its distances to the other updates; and its *agreement*, the cosine between it and
the sum of all the other updates. Each is turned into a robust z-score, ``(x - median(x)) / s``
with ``s = 1.4826 * MAD(x)``, but never less than a quarter of the median norm (for norms and
spreads, which are both lengths) or 0.1 (for agreement), so that a round whose updates are nearly
identical does not make a small difference look extreme. An update is flagged when its norm or
spread z-score exceeds the threshold (scaling and model-replacement attacks are large, noise is far
from everyone), or when it opposes the others (agreement below 0), its agreement z-score is below
minus the threshold, and it does not *descend* (sign flips and other updates that push against
the rest). Sites whose data differ (non-IID) send updates that differ too, which is why every test
is relative to the round's own spread and why a site is not flagged merely for being less aligned
than the rest. A small update is a free-rider problem, which the valuation handles. With fewer than
``min_updates`` updates nothing is flagged: robust statistics need a majority to stand on.

A site whose labels run against everyone else's (a bank that mostly refuses, among banks that
mostly approve) pushes against the rest round after round, just as a sign-flipped update does, and
no statistic of one round tells the two apart. What does is how the update *answers the last
global step* (its ``response``, from ``step_responses``): the cosine between the step the global
model took, ``base - previous_base``, and the change in the site's delta since the valid update it
sent the round before (examined by the detector, flagged or not). A site that trains on its own
loss answers a step with a change against it (for a convex loss the change is minus the curvature
times the step, so their product is negative), wherever its data put its optimum; a sign-flipped
update negates that change and answers along the step. An update *descends* when its response is
below ``-0.2``; an update without a response (the run's first round, a site that sent no valid
update the round before, a round after which the model did not move) is judged on the round alone.

Floating-point results may differ in the last bits between BLAS libraries, so the auditor compares
recomputed statistics with a relative tolerance (``TOLERANCE``).
"""

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from itertools import combinations

import numpy as np

TOLERANCE = 1e-9
_MAD_TO_SIGMA = 1.4826
_RELATIVE_FLOOR = 0.25  # least scale of the norm and spread z-scores, as a share of the median norm
_AGREEMENT_FLOOR = 0.1  # least scale of the agreement z-score
_DESCENT_MARGIN = 0.2  # a response below minus this shows a site training on its own loss
_BLOCK_VALUES = 1 << 21  # float64 deltas held at once by delta_gram: 16 MiB


@dataclass(frozen=True)
class DetectorSettings:
    """Anomaly detection thresholds (part of the run configuration).

    Attributes:
        threshold: robust z-score above which an update's norm or spread flags it.
        min_updates: fewest distinct updates in a round for detection to run.
        sybil_distance: updates closer than this share of the median update norm count once in
            the round's statistics (``sybil_clusters``).
    """

    threshold: float = 5.0
    min_updates: int = 5
    sybil_distance: float = 0.1

    def to_json(self) -> dict:
        return {
            "method": "robust-z",
            "threshold": self.threshold,
            "min_updates": self.min_updates,
            "sybil_distance": self.sybil_distance,
        }

    @classmethod
    def from_json(cls, data: Mapping) -> "DetectorSettings":
        return cls(
            threshold=float(data["threshold"]),
            min_updates=int(data["min_updates"]),
            sybil_distance=float(data["sybil_distance"]),
        )


@dataclass(frozen=True)
class AnomalyStatistics:
    """One update's statistics in its round, and the reasons it was flagged (empty if it was not)."""

    norm: float
    spread: float
    agreement: float
    norm_z: float
    spread_z: float
    agreement_z: float
    flags: tuple[str, ...]
    response: float | None = None

    def to_json(self) -> dict:
        return {
            "norm": self.norm,
            "spread": self.spread,
            "agreement": self.agreement,
            "norm_z": self.norm_z,
            "spread_z": self.spread_z,
            "agreement_z": self.agreement_z,
            "flags": list(self.flags),
            "response": self.response,
        }

    @classmethod
    def from_json(cls, data: Mapping) -> "AnomalyStatistics":
        return cls(
            data["norm"],
            data["spread"],
            data["agreement"],
            data["norm_z"],
            data["spread_z"],
            data["agreement_z"],
            tuple(data["flags"]),
            data.get("response"),
        )

    def values(self) -> tuple[float, ...]:
        return (self.norm, self.spread, self.agreement, self.norm_z, self.spread_z, self.agreement_z)

    def matches(self, other: "AnomalyStatistics") -> bool:
        """Whether ``other`` holds the same statistics up to ``TOLERANCE`` (flags aside)."""
        if (self.response is None) != (other.response is None):
            return False
        responses = () if self.response is None else ((self.response, other.response),)
        pairs = (*zip(self.values(), other.values(), strict=True), *responses)
        return all(close(recorded, recomputed) for recorded, recomputed in pairs)

    def flagged_by(self, threshold: float) -> tuple[str, ...]:
        """The flags these statistics call for at ``threshold``."""
        flags = []
        if self.norm_z > threshold:
            flags.append("norm")
        if self.spread_z > threshold:
            flags.append("spread")
        if self.agreement < 0 and self.agreement_z < -threshold and not self.descends():
            flags.append("direction")
        return tuple(flags)

    def descends(self) -> bool:
        """Whether the update answered the last global step as training on the site's own loss does."""
        return self.response is not None and self.response < -_DESCENT_MARGIN

    def describe(self, threshold: float) -> str:
        parts = []
        if "norm" in self.flags:
            parts.append(f"update norm {self.norm:.4g} has robust z-score {self.norm_z:.1f} > {threshold}")
        if "spread" in self.flags:
            parts.append(f"median distance to the others {self.spread:.4g} has robust z-score {self.spread_z:.1f}")
        if "direction" in self.flags:
            parts.append(
                f"cosine with the others' sum {self.agreement:.3f} has robust z-score {self.agreement_z:.1f}"
                + ("" if self.response is None else f", and its response to the last step is {self.response:.3f}")
            )
        return "; ".join(parts)


def delta_gram(base: Mapping[str, np.ndarray], updates: Sequence[Mapping[str, np.ndarray]]) -> np.ndarray:
    """The Gram matrix of the updates' deltas from ``base`` (flattened in name order, in float64):
    entry ``(i, j)`` is ``delta_i . delta_j``. Every statistic below is computed from it.

    It works through the parameters a block at a time, so memory stays at one block of float64
    deltas however large the model or the round.
    """
    count = len(updates)
    gram = np.zeros((count, count))
    width = max(1, _BLOCK_VALUES // max(count, 1))
    for name in sorted(base):
        reference = base[name].ravel()
        flat = [update[name].ravel() for update in updates]
        for start in range(0, reference.size, width):
            stop = min(start + width, reference.size)
            block = np.empty((count, stop - start))
            for row, values in zip(block, flat, strict=True):
                np.subtract(values[start:stop], reference[start:stop], out=row, dtype=np.float64)
            gram += block @ block.T
    return gram


def _robust_z(values: np.ndarray, floor: float) -> np.ndarray:
    centre = np.median(values)
    scale = max(_MAD_TO_SIGMA * float(np.median(np.abs(values - centre))), floor)
    if scale == 0:
        return np.zeros_like(values)
    return (values - centre) / scale


def step_responses(
    previous_base: Mapping[str, np.ndarray],
    base: Mapping[str, np.ndarray],
    previous_updates: Sequence[Mapping[str, np.ndarray] | None],
    updates: Sequence[Mapping[str, np.ndarray]],
) -> list[float | None]:
    """How each update answered the last global step: the cosine between the step,
    ``base - previous_base``, and the change in the site's delta, ``(update_i - base) -
    (previous_i - previous_base)``, where ``previous_i`` is the same participant's valid update of
    the previous round, from the base ``previous_base`` (``None``: it sent none, and its response is
    ``None``; so is every response when the step or the change is zero).

    A site that trains on its own loss answers a step with a change against it (for a convex loss
    the change is minus the loss's curvature times the step), wherever its data put its optimum; a
    sign-flipped update answers with a change along the step.
    """
    step = {name: base[name].astype(np.float64) - previous_base[name] for name in sorted(base)}
    step_norm = math.sqrt(sum(float(np.vdot(values, values)) for values in step.values()))
    responses: list[float | None] = []
    for previous, update in zip(previous_updates, updates, strict=True):
        if previous is None or step_norm == 0:
            responses.append(None)
            continue
        along = change_squared = 0.0
        for name, values in step.items():
            change = (update[name].astype(np.float64) - base[name]) - (
                previous[name].astype(np.float64) - previous_base[name]
            )
            along += float(np.vdot(change, values))
            change_squared += float(np.vdot(change, change))
        responses.append(along / (math.sqrt(change_squared) * step_norm) if change_squared > 0 else None)
    return responses


def sybil_clusters(gram: np.ndarray, sybil_distance: float) -> list[tuple[int, ...]]:
    """The players of a round: the connected components of the updates whose deltas lie within
    ``sybil_distance`` times the median delta norm of each other, from their ``delta_gram``.

    Each player is a tuple of update indices, ascending; players are ordered by their first member.
    """
    count = len(gram)
    if count == 0:
        return []
    distances = delta_distances(gram)
    threshold = sybil_threshold(gram, sybil_distance)
    parent = list(range(count))

    def root(index: int) -> int:
        while parent[index] != index:
            parent[index] = parent[parent[index]]
            index = parent[index]
        return index

    for first, second in combinations(range(count), 2):
        if distances[first, second] <= threshold:
            first_root, second_root = root(first), root(second)
            parent[max(first_root, second_root)] = min(first_root, second_root)
    members: dict[int, list[int]] = {}
    for index in range(count):
        members.setdefault(root(index), []).append(index)
    return sorted(tuple(group) for group in members.values())


def delta_distances(gram: np.ndarray) -> np.ndarray:
    """Pairwise distances between the deltas: ``sqrt(max(G_ii + G_jj - 2 G_ij, 0))``."""
    squared_norms = np.diag(gram)
    return np.sqrt(np.maximum(squared_norms[:, None] + squared_norms[None, :] - 2 * gram, 0.0))


def sybil_threshold(gram: np.ndarray, sybil_distance: float) -> float:
    """The linking distance: ``sybil_distance`` times the median of the delta norms ``sqrt(G_ii)``."""
    return sybil_distance * float(np.median(np.sqrt(np.diag(gram))))


def detect(
    gram: np.ndarray, settings: DetectorSettings, responses: Sequence[float | None] | None = None
) -> list[AnomalyStatistics] | None:
    """Statistics and flags for each update of the ``delta_gram``; ``None`` when there are too few
    distinct updates to judge.

    Near-identical updates (``sybil_clusters`` at ``settings.sybil_distance``) count once: the
    statistics are computed over one update of each cluster, and every member of a cluster gets its
    cluster's, so that copies cannot shrink the round's spread and make honest updates look far.
    ``responses`` are the updates' ``step_responses`` (``None``: no earlier round to answer).
    """
    if responses is None:
        responses = [None] * len(gram)
    if len(responses) != len(gram):
        raise ValueError(f"{len(responses)} step responses for {len(gram)} updates")
    clusters = sybil_clusters(gram, settings.sybil_distance)
    if len(clusters) < settings.min_updates:
        return None
    representatives = [cluster[0] for cluster in clusters]
    distinct = _distinct_statistics(gram[np.ix_(representatives, representatives)])
    statistics: list[AnomalyStatistics | None] = [None] * len(gram)
    for values, cluster in zip(distinct, clusters, strict=True):
        for member in cluster:
            unflagged = AnomalyStatistics(*values, flags=(), response=responses[member])
            statistics[member] = replace(unflagged, flags=unflagged.flagged_by(settings.threshold))
    return [stats for stats in statistics if stats is not None]


def _distinct_statistics(gram: np.ndarray) -> list[list[float]]:
    """Norm, spread, agreement and their robust z-scores for each update of ``gram``."""
    count = len(gram)
    squared_norms = np.diag(gram)
    squared_distances = np.maximum(squared_norms[:, None] + squared_norms[None, :] - 2 * gram, 0.0)
    distances = np.sqrt(squared_distances)
    norms = np.sqrt(squared_norms)
    spreads = np.array([np.median(np.delete(distances[index], index)) for index in range(count)])
    # The other updates' sum, S - d_i, from the Gram matrix: (S - d_i).d_i and |S - d_i|^2.
    row_sums, total = gram.sum(axis=1), gram.sum()
    towards_others = row_sums - squared_norms
    others_norms = np.sqrt(np.maximum(total - 2 * row_sums + squared_norms, 0.0))
    lengths = norms * others_norms
    agreements = np.divide(towards_others, lengths, out=np.zeros(count), where=lengths > 0)
    norm_z = _robust_z(norms, _RELATIVE_FLOOR * float(np.median(norms)))
    spread_z = _robust_z(spreads, _RELATIVE_FLOOR * float(np.median(norms)))
    agreement_z = _robust_z(agreements, _AGREEMENT_FLOOR)
    columns = (norms, spreads, agreements, norm_z, spread_z, agreement_z)
    return [[float(column[index]) for column in columns] for index in range(count)]


def close(recorded: float, recomputed: float) -> bool:
    """Whether a recomputed statistic matches the recorded one up to ``TOLERANCE`` (relative)."""
    return math.isclose(recorded, recomputed, rel_tol=TOLERANCE, abs_tol=TOLERANCE)
