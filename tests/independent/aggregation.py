"""The re-derivable strategies' aggregation, written from ``docs/aggregation.md`` alone.

It shares no code with ``fedledger``: plain NumPy element-wise arithmetic in the dtypes the page
gives for each step. Sorting replaces the page's "sort the values"; the Krum distances are computed
in float64, which the page allows (the vectors hold no near-ties). Python's ``math.pow`` and
``math.sqrt`` are the correctly rounded power and square root the page asks for.
"""

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

Arrays = dict[str, np.ndarray]


@dataclass
class Update:
    arrays: Arrays
    weight: int


def scaled(coefficient: float, array: np.ndarray) -> np.ndarray:
    """Rule 1: a Python number meets an array in the array's dtype (integers: in float64)."""
    if array.dtype.kind != "f":
        return array.astype(np.float64) * np.float64(coefficient)
    return array * array.dtype.type(coefficient)


def wider(first: np.ndarray, second: np.ndarray) -> np.dtype:
    """Rule 2: two float arrays meet in the wider dtype."""
    return first.dtype if first.dtype.itemsize >= second.dtype.itemsize else second.dtype


def plus(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    dtype = wider(first, second)
    return first.astype(dtype) + second.astype(dtype)


def minus(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    dtype = wider(first, second)
    return first.astype(dtype) - second.astype(dtype)


def weighted_mean(updates: Sequence[Update]) -> Arrays:
    total = sum(update.weight for update in updates)
    result: Arrays = {}
    for update in updates:
        factor = update.weight / total
        for name, array in update.arrays.items():
            term = scaled(factor, array)
            result[name] = term if name not in result else result[name] + term
    return result


def median_of(values: np.ndarray) -> np.ndarray:
    """Per position along axis 0: the middle value, or (a + b) / 2 in the dtype."""
    ordered = np.sort(values, axis=0)
    count = len(ordered)
    if count % 2:
        return ordered[count // 2]
    return (ordered[count // 2 - 1] + ordered[count // 2]) / values.dtype.type(2)


def sequential_mean(values: np.ndarray) -> np.ndarray:
    """Left-to-right sum along axis 0 in the dtype, then divided by the count."""
    total = values[0].copy()
    for row in values[1:]:
        total = total + row
    return total / values.dtype.type(len(values))


def stacked(updates: Sequence[Update], name: str) -> np.ndarray:
    return np.stack([update.arrays[name] for update in updates])


def krum_selection(updates: Sequence[Update], malicious: int, keep: int) -> list[int]:
    """The ``keep`` updates with the lowest Krum scores, best first."""
    flat = [
        np.concatenate([update.arrays[name].ravel() for name in update.arrays]).astype(np.float64) for update in updates
    ]
    count = len(flat)
    distances = [[float(np.sum((flat[i] - flat[j]) ** 2)) for j in range(count)] for i in range(count)]
    closest = max(1, count - malicious - 2)
    scores = [sum(sorted(distances[i])[1 : closest + 1]) for i in range(count)]
    return sorted(range(count), key=lambda index: scores[index])[:keep]


def bulyan(updates: Sequence[Update], malicious: int) -> Arrays:
    selected = [updates[index] for index in krum_selection(updates, malicious, len(updates) - 2 * malicious)]
    kept = len(updates) - 4 * malicious
    result: Arrays = {}
    for name in selected[0].arrays:
        layers = stacked(selected, name)
        reference = median_of(layers)
        distance = np.abs(layers - reference)
        nearest = np.argsort(distance, axis=0, kind="stable")[:kept]  # ascending distance
        result[name] = sequential_mean(np.take_along_axis(layers, nearest, axis=0))
    return result


@dataclass
class ServerOptimiser:
    """FedAdam, FedYogi or FedAdagrad, with its moments carried from round to round."""

    kind: str
    eta: float
    tau: float
    beta_1: float = 0.0
    beta_2: float = 0.0
    first: Arrays = field(default_factory=dict)
    second: Arrays = field(default_factory=dict)

    def step(self, round_number: int, base: Arrays, updates: Sequence[Update]) -> Arrays:
        averaged = weighted_mean(updates)
        result: Arrays = {}
        for name, mean in averaged.items():
            delta = minus(mean, base[name])
            m = self.first.get(name, np.zeros_like(mean))
            v = self.second.get(name, np.zeros_like(mean))
            m = plus(scaled(self.beta_1, m), scaled(1 - self.beta_1, delta))
            squared = delta * delta
            if self.kind == "FedAdam":
                v = plus(scaled(self.beta_2, v), scaled(1 - self.beta_2, squared))
            elif self.kind == "FedYogi":
                v = minus(v, scaled(1 - self.beta_2, squared) * np.sign(minus(v, squared)))
            else:
                v = plus(v, squared)
            self.first[name], self.second[name] = m, v
            denominator = np.sqrt(v) + v.dtype.type(self.tau)
            if self.kind == "FedAdam":
                eta_t = self.eta * math.sqrt(1 - math.pow(self.beta_2, round_number + 1.0))
                eta_t = eta_t / (1 - math.pow(self.beta_1, round_number + 1.0))
                step = (np.float64(eta_t) * m.astype(np.float64)) / denominator.astype(np.float64)
            else:
                step = scaled(self.eta, m) / denominator
            result[name] = plus(base[name], step)
        return result


@dataclass
class ServerMomentum:
    """FedAvgM, with its momentum vector carried from round to round."""

    learning_rate: float
    momentum: float
    vector: Arrays | None = None

    def step(self, base: Arrays, updates: Sequence[Update]) -> Arrays:
        averaged = weighted_mean(updates)
        if self.momentum == 0.0 and self.learning_rate == 1.0:
            return averaged
        gradient = {name: minus(base[name], mean) for name, mean in averaged.items()}
        if self.momentum > 0.0:
            if self.vector is None:
                self.vector = gradient
            else:
                self.vector = {
                    name: plus(scaled(self.momentum, self.vector[name]), gradient[name]) for name in gradient
                }
            gradient = self.vector
        return {name: minus(base[name], scaled(self.learning_rate, gradient[name])) for name in gradient}


class Strategy:
    """One run's aggregation under a strategy recorded as ``{"name": ..., "params": {...}}``."""

    def __init__(self, strategy: Mapping[str, Any]) -> None:
        self.name, self.params = strategy["name"], strategy["params"]
        params = self.params
        self.optimiser: ServerOptimiser | None = None
        self.momentum: ServerMomentum | None = None
        if self.name in ("FedAdam", "FedYogi"):
            self.optimiser = ServerOptimiser(
                self.name, params["eta"], params["tau"], params["beta_1"], params["beta_2"]
            )
        elif self.name == "FedAdagrad":
            self.optimiser = ServerOptimiser(self.name, params["eta"], params["tau"])
        elif self.name == "FedAvgM":
            self.momentum = ServerMomentum(params["server_learning_rate"], params["server_momentum"])

    def selection(self, updates: Sequence[Update]) -> list[int]:
        malicious = self.params.get("num_malicious_nodes", 0)
        if self.name == "Krum":
            return sorted(krum_selection(updates, malicious, 1))
        if self.name == "MultiKrum":
            return sorted(krum_selection(updates, malicious, self.params["num_nodes_to_select"]))
        if self.name == "Bulyan":
            return sorted(krum_selection(updates, malicious, len(updates) - 2 * malicious))
        return list(range(len(updates)))

    def aggregate(self, round_number: int, base: Arrays, updates: Sequence[Update]) -> Arrays:
        if self.optimiser is not None:
            return self.optimiser.step(round_number, base, updates)
        if self.momentum is not None:
            return self.momentum.step(base, updates)
        if self.name in ("FedAvg", "FedProx"):
            return weighted_mean(updates)
        if self.name == "FedMedian":
            return {name: median_of(stacked(updates, name)) for name in updates[0].arrays}
        if self.name == "FedTrimmedAvg":
            count = len(updates)
            lower = int(self.params["beta"] * count)
            return {
                name: sequential_mean(np.sort(stacked(updates, name), axis=0)[lower : count - lower])
                for name in updates[0].arrays
            }
        if self.name in ("Krum", "MultiKrum"):
            keep = 1 if self.name == "Krum" else self.params["num_nodes_to_select"]
            return weighted_mean(
                [updates[index] for index in krum_selection(updates, self.params["num_malicious_nodes"], keep)]
            )
        if self.name == "Bulyan":
            return bulyan(updates, self.params["num_malicious_nodes"])
        raise ValueError(f"no rule for {self.name}")
