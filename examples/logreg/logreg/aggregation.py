"""logreg: the clipped federated average, in NumPy only, so that an auditor re-derives it without Flower.

The ServerApp's strategy aggregates with :func:`clipped_average`; the same function, registered with
FedLedger under :data:`AGGREGATION_NAME` (and declared as an entry point in ``pyproject.toml``),
is what the coordinator and the auditor re-run, in the recorded order of the updates.
"""

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from fedledger.aggregation import Aggregator, Arrays, WeightedUpdate

AGGREGATION_NAME = "clipped-fedavg"


def clipped_average(base: Mapping[str, np.ndarray], updates: Sequence[WeightedUpdate], clip_norm: float) -> Arrays:
    """``base`` plus the example-weighted mean of the updates' deltas from ``base``, each delta scaled
    down to an L2 norm (over all its arrays) of at most ``clip_norm``, so no site moves the model far."""
    total = sum(update.weight for update in updates)
    mean = {name: np.zeros_like(value) for name, value in base.items()}
    for update in updates:
        delta = {name: update.arrays[name] - base[name] for name in base}
        norm = float(np.sqrt(sum(np.sum(value * value) for value in delta.values())))
        scale = min(1.0, clip_norm / norm) if norm > 0 else 1.0
        for name, value in delta.items():
            mean[name] += value * (scale * update.weight / total)
    return {name: base[name] + mean[name] for name in base}


class ClippedAverage(Aggregator):
    """Re-derives :func:`clipped_average` for FedLedger, round after round."""

    def __init__(self, clip_norm: float) -> None:
        self.clip_norm = clip_norm

    def aggregate(self, round_number: int, base: Mapping[str, np.ndarray], updates: Sequence[WeightedUpdate]) -> Arrays:
        return clipped_average(base, updates, self.clip_norm)


def clipped_fedavg(params: Mapping[str, Any]) -> Aggregator:
    """The aggregation of a ``ClippedFedAvg`` from its recorded attributes."""
    return ClippedAverage(float(params["clip_norm"]))
