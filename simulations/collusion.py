"""The arithmetic of the adaptive attacks: updates crafted to stay inside the honest spread.

All of it works on *deltas* (update minus global model) flattened into one vector (arrays in name
order), with the benign deltas as the rows of a matrix: what every site would send this round if it
were honest, which the colluders know in full (the strongest setting of both papers).

- ALIE ("A Little Is Enough", Baruch et al. 2019): ``mean - z * std``, per coordinate, with the
  largest ``z`` that still leaves the colluders' update closer to the mean than enough honest ones.
- Min-max and min-sum (Shejwalkar and Houmansadr 2021, aggregation-agnostic): ``mean - gamma * std``
  with the largest ``gamma`` that keeps the update's distances to the benign deltas within what
  the benign deltas have among themselves.
- A Sybil copy: another identity's update plus a little Gaussian noise, so that it is not
  byte-identical.
"""

from collections.abc import Mapping
from statistics import NormalDist

import numpy as np

Arrays = Mapping[str, np.ndarray]

#: ALIE's ``z`` when the paper's formula gives none above 0 (e.g. 1 of 10 sites): the colluders'
#: update then still leans a little against the mean.
MIN_ALIE_Z = 0.1
#: The bisection stops when the bracket around the largest ``gamma`` is this narrow, relative to it.
GAMMA_PRECISION = 1e-6
#: ``gamma`` beyond this is not searched: the constraint cannot bind along the direction.
MAX_GAMMA = 1e6
#: A Sybil copy's noise, as a share of the copied delta's norm.
SYBIL_NOISE = 1e-3
OBJECTIVES = ("min-max", "min-sum")


def flatten(arrays: Arrays) -> np.ndarray:
    """The arrays, in name order, as one float64 vector."""
    return np.concatenate([np.asarray(arrays[name], np.float64).ravel() for name in sorted(arrays)])


def unflatten(vector: np.ndarray, like: Arrays) -> dict[str, np.ndarray]:
    """``vector`` cut back into arrays of the names, shapes and dtypes of ``like``."""
    arrays, start = {}, 0
    for name in sorted(like):
        template = np.asarray(like[name])
        arrays[name] = vector[start : start + template.size].reshape(template.shape).astype(template.dtype)
        start += template.size
    if start != vector.size:
        raise ValueError(f"a vector of {vector.size} values does not fit arrays of {start} values")
    return arrays


def alie_z(sites: int, colluders: int) -> float:
    """ALIE's ``z_max`` for ``colluders`` of ``sites``: ``s = floor(n/2 + 1) - m`` honest sites must
    be further from the mean than the colluders' update, so ``z = Phi^-1((n - s) / n)``; at least
    ``MIN_ALIE_Z``.

    Raises:
        ValueError: no colluder, or so many that they are a majority (the formula has no ``z``).
    """
    if not 0 < colluders < sites:
        raise ValueError(f"ALIE needs between 1 and {sites - 1} colluders of {sites} sites, not {colluders}")
    needed = (sites // 2 + 1) - colluders
    if needed <= 0:
        raise ValueError(f"{colluders} colluders of {sites} sites are a majority: ALIE's z is unbounded")
    return max(NormalDist().inv_cdf((sites - needed) / sites), MIN_ALIE_Z)


def spread(benign: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per coordinate, the mean and the sample standard deviation of the benign deltas (rows)."""
    if benign.ndim != 2 or len(benign) < 2:
        raise ValueError(f"the spread needs at least two benign deltas as rows, got shape {benign.shape}")
    return benign.mean(axis=0), benign.std(axis=0, ddof=1)


def alie_delta(benign: np.ndarray, z: float) -> np.ndarray:
    """``mean - z * std`` of the benign deltas: ALIE's delta, sent by every colluder."""
    mean, std = spread(benign)
    return mean - z * std


def _squared_distances(points: np.ndarray, to: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances from each row of ``points`` to each row of ``to``."""
    return np.sum((points[:, None, :] - to[None, :, :]) ** 2, axis=2)


def within_spread(candidate: np.ndarray, benign: np.ndarray, objective: str) -> bool:
    """Whether ``candidate`` satisfies the objective's constraint.

    ``min-max``: its largest distance to a benign delta is at most the largest distance between two
    benign deltas. ``min-sum``: its sum of squared distances to the benign deltas is at most the
    largest such sum of a benign delta.
    """
    benign_distances = _squared_distances(benign, benign)
    distances = _squared_distances(candidate[None, :], benign)[0]
    if objective == "min-max":
        return bool(distances.max() <= benign_distances.max())
    if objective == "min-sum":
        return bool(distances.sum() <= benign_distances.sum(axis=1).max())
    raise ValueError(f"unknown objective {objective!r}: choose one of {', '.join(OBJECTIVES)}")


def largest_gamma(benign: np.ndarray, objective: str) -> float:
    """The largest ``gamma`` for which ``mean - gamma * std`` stays ``within_spread``.

    The constraint holds at ``gamma = 0`` (the mean is within the benign deltas' hull) and, being
    convex in ``gamma``, on an interval from there: as in the paper, a binary search finds its end,
    here after doubling an upper bracket from 1 until the constraint fails.
    """
    mean, std = spread(benign)
    if not np.any(std):
        return 0.0

    def holds(gamma: float) -> bool:
        return within_spread(mean - gamma * std, benign, objective)

    low, high = 0.0, 1.0
    while holds(high):
        low, high = high, 2 * high
        if high > MAX_GAMMA:
            return low
    while high - low > GAMMA_PRECISION * high:
        middle = (low + high) / 2
        low, high = (middle, high) if holds(middle) else (low, middle)
    return low


def agr_agnostic_delta(benign: np.ndarray, objective: str) -> np.ndarray:
    """Min-max's or min-sum's delta: ``mean + gamma * p`` with ``p = -std`` and ``largest_gamma``."""
    mean, std = spread(benign)
    return mean - largest_gamma(benign, objective) * std


def sybil_copy(delta: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``delta`` plus Gaussian noise whose norm is ``SYBIL_NOISE`` times the delta's."""
    noise = rng.standard_normal(delta.shape)
    scale = np.linalg.norm(delta) / np.linalg.norm(noise) if np.any(noise) else 0.0
    return delta + SYBIL_NOISE * scale * noise
