"""Re-deriving a round's aggregate from its stored updates, bit for bit, without Flower or torch.

Each class here computes what the Flower strategy of the same name computes in ``aggregate_train``
(``flwr.serverapp.strategy``, Flower 1.41), in the arithmetic ``docs/aggregation.md`` specifies.
Floating-point addition is not associative, so the order matters: the coordinator hands the
accepted updates to the strategy sorted by participant address, each update's arrays sorted by
name (the canonical encoding's order), and records that order in the manifest; an auditor replays
it here. For most strategies the specified arithmetic is Flower's NumPy operations, step for step,
and agrees with it bit for bit. Where NumPy leaves the last bits to the machine — the order in
which FedTrimmedAvg and Bulyan sum the values they keep (``numpy.partition``), and FedAdam's float64
powers (a SIMD kernel on CPUs with AVX-512) — the specification fixes them (ascending order; the
correctly rounded power), and the coordinator commits the specified aggregate once it has checked
that Flower's differs from it only in those last bits (``settled``). A round whose aggregate could
not be reproduced says so in its manifest.

A strategy of the application's own is re-derived the same way once its NumPy aggregation is
registered under a name (``register_aggregation``, or the entry-point group ``fedledger.aggregations``
of the application's installed package) and the strategy is wrapped with that name: the run
configuration records the name, and coordinator and auditor both look the rule up by it.

Reproducible this way: FedAvg, FedProx (FedAvg on the server), FedMedian, FedTrimmedAvg, Krum,
MultiKrum, Bulyan, FedAdam, FedAdagrad, FedYogi and FedAvgM. The last four keep server
optimiser state; they are replayed from round 1, skipping rounds that failed. Not reproducible:
the differential-privacy wrappers (their Gaussian noise is drawn at random after aggregation and
is not recorded) and strategies whose updates are not arrays (XGBoost bagging and cyclic).

Krum, MultiKrum and Bulyan choose updates by comparing pairwise distances computed with a matrix
product; BLAS libraries may round that product differently, so on another machine a near-tie in
the Krum scores could in principle choose differently. The aggregate itself is then re-derived
exactly; a mismatch is reported, never hidden.
"""

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, ClassVar

import numpy as np

from fedledger.errors import FedLedgerError

Arrays = dict[str, np.ndarray]


class UnsupportedStrategy(FedLedgerError):
    """A strategy whose aggregate cannot be re-derived from the stored updates; says why."""


class NoAggregationRule(UnsupportedStrategy):
    """A strategy that neither Flower's built-in rules nor a registered aggregation covers: its
    aggregates are recorded and everything else is audited, but re-aggregation cannot be checked."""


class AggregationError(FedLedgerError, ValueError):
    """An aggregation registered under a name already taken, or asked for under a name no one registered."""


@dataclass(frozen=True)
class WeightedUpdate:
    """An accepted update and its weight (the example count it reports)."""

    arrays: Mapping[str, np.ndarray]
    weight: int | float


class Aggregator(ABC):
    """Re-derives one strategy's aggregates, round after round.

    A ``stateful`` aggregator (a server optimiser) carries state from round to round, so it must
    see every aggregated round, in order.
    """

    stateful: ClassVar[bool] = False
    #: Whether Flower's own arithmetic for this strategy leaves its last bits to the machine (NumPy's
    #: partition order, its SIMD powers): the coordinator then commits this aggregate when Flower's
    #: differs from it only there (``settled``), instead of requiring the two to be identical.
    settles_last_bits: ClassVar[bool] = False

    @abstractmethod
    def aggregate(self, round_number: int, base: Mapping[str, np.ndarray], updates: Sequence[WeightedUpdate]) -> Arrays:
        """The aggregate of ``updates`` (in the recorded order) for a round that started from ``base``.

        Stateful aggregators must see every aggregated round in order.
        """

    def selection(self, updates: Sequence[WeightedUpdate]) -> list[int]:
        """The indices (ascending) of the updates the aggregate is built from: all of them, unless
        the strategy picks some (Krum, MultiKrum, Bulyan). Updates left out earn no reward."""
        return list(range(len(updates)))


def weighted_average(updates: Sequence[WeightedUpdate]) -> Arrays:
    """Flower's ``aggregate_arrayrecords``: example-weighted mean, accumulated in update order."""
    total = sum(update.weight for update in updates)
    factors = [update.weight / total for update in updates]
    result: Arrays = {}
    for update, factor in zip(updates, factors, strict=True):
        for name, value in update.arrays.items():
            if name not in result:
                result[name] = value * factor
            else:
                result[name] += value * factor
    return {name: np.asarray(value) for name, value in result.items()}


def _stacked(updates: Sequence[WeightedUpdate], name: str) -> np.ndarray:
    return np.stack([update.arrays[name] for update in updates])


def sequential_mean(rows: np.ndarray) -> np.ndarray:
    """The mean along the first axis: the rows summed left to right in their dtype, then divided by
    their count (``numpy.mean`` sums 1-D input pairwise, so it is not used here)."""
    total = rows[0].copy()
    for row in rows[1:]:
        total += row
    return np.asarray(total / rows.dtype.type(len(rows)))


#: How far, relative to an array's largest magnitude, Flower's aggregate may lie from the specified
#: one and still differ only in the last bits NumPy leaves to the machine (2**-16: 128 float32 ulps).
LAST_BITS = 2.0**-16


def settled(specified: Mapping[str, np.ndarray], flower: Mapping[str, np.ndarray]) -> float | None:
    """How far ``flower``'s aggregate lies from the ``specified`` one, relative to each array's
    largest magnitude, if it differs only in its last bits (same names, shapes and dtypes, within
    ``LAST_BITS``); ``None`` if it differs otherwise."""
    if sorted(specified) != sorted(flower):
        return None
    largest = 0.0
    for name, expected in specified.items():
        found = flower[name]
        if found.dtype != expected.dtype or found.shape != expected.shape:
            return None
        if expected.size == 0:
            continue
        scale = float(np.max(np.abs(expected.astype(np.float64))))
        difference = float(np.max(np.abs(expected.astype(np.float64) - found.astype(np.float64))))
        if not difference <= LAST_BITS * scale:
            return None
        largest = max(largest, difference / scale if scale else 0.0)
    return largest


class FedAvg(Aggregator):
    def aggregate(self, round_number: int, base: Mapping[str, np.ndarray], updates: Sequence[WeightedUpdate]) -> Arrays:
        return weighted_average(updates)


class FedMedian(Aggregator):
    def aggregate(self, round_number: int, base: Mapping[str, np.ndarray], updates: Sequence[WeightedUpdate]) -> Arrays:
        return {name: np.asarray(np.median(_stacked(updates, name), axis=0)) for name in updates[0].arrays}


class FedTrimmedAvg(Aggregator):
    settles_last_bits = True

    def __init__(self, beta: float) -> None:
        self.beta = beta

    def aggregate(self, round_number: int, base: Mapping[str, np.ndarray], updates: Sequence[WeightedUpdate]) -> Arrays:
        return {name: np.asarray(trimmed_mean(_stacked(updates, name), self.beta)) for name in updates[0].arrays}


def trimmed_mean(stacked: np.ndarray, cut_fraction: float) -> np.ndarray:
    """Flower's ``trim_mean`` along the first axis, with the kept values summed in ascending order."""
    count = stacked.shape[0]
    lower = int(cut_fraction * count)
    return sequential_mean(np.sort(stacked, axis=0)[lower : count - lower])


def multikrum_selection(updates: Sequence[WeightedUpdate], num_malicious: int, num_to_select: int) -> list[int]:
    """Flower's ``select_multikrum``: indices of the updates with the lowest Krum scores, best first."""
    flat = np.stack([np.concatenate(list(update.arrays.values()), axis=None).ravel() for update in updates], axis=0)
    norms = np.square(flat).sum(axis=1)
    distances = norms[:, None] + norms[None, :] - 2 * flat @ flat.T
    num_closest = max(1, len(updates) - num_malicious - 2)
    closest = [np.argsort(row)[1 : num_closest + 1].tolist() for row in distances]
    scores = [np.sum(distances[index, closest[index]]) for index in range(len(distances))]
    return [int(index) for index in np.argsort(scores)[:num_to_select]]


class MultiKrum(Aggregator):
    """MultiKrum; Krum is MultiKrum selecting one update."""

    def __init__(self, num_malicious: int, num_to_select: int) -> None:
        self.num_malicious = num_malicious
        self.num_to_select = num_to_select

    def aggregate(self, round_number: int, base: Mapping[str, np.ndarray], updates: Sequence[WeightedUpdate]) -> Arrays:
        chosen = multikrum_selection(updates, self.num_malicious, self.num_to_select)
        return weighted_average([updates[index] for index in chosen])

    def selection(self, updates: Sequence[WeightedUpdate]) -> list[int]:
        return sorted(multikrum_selection(updates, self.num_malicious, self.num_to_select))


class Bulyan(Aggregator):
    settles_last_bits = True

    def __init__(self, num_malicious: int) -> None:
        self.num_malicious = num_malicious

    def aggregate(self, round_number: int, base: Mapping[str, np.ndarray], updates: Sequence[WeightedUpdate]) -> Arrays:
        beta = len(updates) - 4 * self.num_malicious
        selected = [updates[index] for index in multikrum_selection(updates, self.num_malicious, self._theta(updates))]
        names = list(selected[0].arrays)
        result = {}
        for name in names:
            layers = np.stack([update.arrays[name] for update in selected])
            reference = np.median(layers, axis=0)
            nearest = np.argsort(np.abs(layers - reference), axis=0, kind="stable")[:beta]
            result[name] = sequential_mean(np.take_along_axis(layers, nearest, axis=0))
        return result

    def selection(self, updates: Sequence[WeightedUpdate]) -> list[int]:
        """The updates MultiKrum hands to the coordinate-wise trimmed mean."""
        return sorted(multikrum_selection(updates, self.num_malicious, self._theta(updates)))

    def _theta(self, updates: Sequence[WeightedUpdate]) -> int:
        return len(updates) - 2 * self.num_malicious


class ServerOptimiser(Aggregator):
    """The FedOpt family: FedAvg of the updates, then a server optimiser step from the base model."""

    stateful = True

    def __init__(self, eta: float, beta_1: float, beta_2: float, tau: float) -> None:
        self.eta, self.beta_1, self.beta_2, self.tau = eta, beta_1, beta_2, tau
        self.m_t: Arrays | None = None
        self.v_t: Arrays | None = None

    def aggregate(self, round_number: int, base: Mapping[str, np.ndarray], updates: Sequence[WeightedUpdate]) -> Arrays:
        averaged = weighted_average(updates)
        delta = {name: value - base[name] for name, value in averaged.items()}
        m_t = self.m_t or {name: np.zeros_like(value) for name, value in averaged.items()}
        m_t = {name: self.beta_1 * value + (1 - self.beta_1) * delta[name] for name, value in m_t.items()}
        v_t = self.v_t or {name: np.zeros_like(value) for name, value in averaged.items()}
        v_t = {name: self._second_moment(value, delta[name]) for name, value in v_t.items()}
        self.m_t, self.v_t = m_t, v_t
        return {name: np.asarray(value) for name, value in self._step(round_number, base, m_t, v_t).items()}

    @abstractmethod
    def _second_moment(self, previous: np.ndarray, delta: np.ndarray) -> np.ndarray: ...

    def _step(self, round_number: int, base: Mapping[str, np.ndarray], m_t: Arrays, v_t: Arrays) -> Arrays:
        return {name: value + self.eta * m_t[name] / (np.sqrt(v_t[name]) + self.tau) for name, value in base.items()}


class FedAdam(ServerOptimiser):
    settles_last_bits = True

    def _second_moment(self, previous: np.ndarray, delta: np.ndarray) -> np.ndarray:
        return self.beta_2 * previous + (1 - self.beta_2) * (delta**2)

    def _step(self, round_number: int, base: Mapping[str, np.ndarray], m_t: Arrays, v_t: Arrays) -> Arrays:
        exponent = round_number + 1.0
        # A NumPy float64 scalar, as Flower's is (it makes the model float64); the powers correctly
        # rounded, as NumPy's are not on every CPU.
        eta_norm = np.float64(
            self.eta * math.sqrt(1 - math.pow(self.beta_2, exponent)) / (1 - math.pow(self.beta_1, exponent))
        )
        return {name: value + eta_norm * m_t[name] / (np.sqrt(v_t[name]) + self.tau) for name, value in base.items()}


class FedYogi(ServerOptimiser):
    def _second_moment(self, previous: np.ndarray, delta: np.ndarray) -> np.ndarray:
        return previous - (1.0 - self.beta_2) * (delta**2) * np.sign(previous - delta**2)


class FedAdagrad(ServerOptimiser):
    def _second_moment(self, previous: np.ndarray, delta: np.ndarray) -> np.ndarray:
        return previous + (delta**2)


class FedAvgM(Aggregator):
    """FedAvg with server momentum (and a server learning rate)."""

    stateful = True

    def __init__(self, server_learning_rate: float, server_momentum: float) -> None:
        self.server_learning_rate = server_learning_rate
        self.server_momentum = server_momentum
        self.momentum_vector: Arrays | None = None

    def aggregate(self, round_number: int, base: Mapping[str, np.ndarray], updates: Sequence[WeightedUpdate]) -> Arrays:
        averaged = weighted_average(updates)
        if self.server_momentum == 0.0 and self.server_learning_rate == 1.0:
            return averaged
        pseudo_gradient = {name: base[name] - value for name, value in averaged.items()}
        if self.server_momentum > 0.0:
            if self.momentum_vector is None:
                self.momentum_vector = pseudo_gradient
            else:
                self.momentum_vector = {
                    name: self.server_momentum * self.momentum_vector[name] + pseudo_gradient[name]
                    for name in pseudo_gradient
                }
            pseudo_gradient = self.momentum_vector
        return {
            name: np.asarray(base[name] - self.server_learning_rate * pseudo_gradient[name]) for name in pseudo_gradient
        }


#: Strategies whose aggregates cannot be re-derived, and why.
NOT_REPRODUCIBLE = {
    "DifferentialPrivacyServerSideFixedClipping": "adds random Gaussian noise after aggregation",
    "DifferentialPrivacyClientSideFixedClipping": "adds random Gaussian noise after aggregation",
    "DifferentialPrivacyServerSideAdaptiveClipping": "adds random Gaussian noise after aggregation",
    "DifferentialPrivacyClientSideAdaptiveClipping": "adds random Gaussian noise after aggregation",
    "FedXgbBagging": "aggregates serialised trees, not arrays",
    "FedXgbCyclic": "aggregates serialised trees, not arrays",
    "QFedAvg": "weights updates by losses the clients report but do not sign",
}


#: Builds the aggregator of a registered aggregation from the strategy's recorded parameters.
AggregationFactory = Callable[[Mapping[str, Any]], Aggregator]

#: Flower's strategies whose aggregates the rules here re-derive, each built from the strategy's recorded parameters.
BUILT_IN_RULES: dict[str, AggregationFactory] = {
    "FedAvg": lambda params: FedAvg(),
    "FedProx": lambda params: FedAvg(),
    "FedMedian": lambda params: FedMedian(),
    "FedTrimmedAvg": lambda params: FedTrimmedAvg(params["beta"]),
    "Krum": lambda params: MultiKrum(params["num_malicious_nodes"], 1),
    "MultiKrum": lambda params: MultiKrum(params["num_malicious_nodes"], params["num_nodes_to_select"]),
    "Bulyan": lambda params: Bulyan(params["num_malicious_nodes"]),
    "FedAdam": lambda params: FedAdam(params["eta"], params["beta_1"], params["beta_2"], params["tau"]),
    "FedYogi": lambda params: FedYogi(params["eta"], params["beta_1"], params["beta_2"], params["tau"]),
    "FedAdagrad": lambda params: FedAdagrad(params["eta"], 0.0, 0.0, params["tau"]),
    "FedAvgM": lambda params: FedAvgM(params["server_learning_rate"], params["server_momentum"]),
}


#: The entry-point group where an installed application names its aggregations (``name = "module:factory"``).
ENTRY_POINT_GROUP = "fedledger.aggregations"

_registered: dict[str, AggregationFactory] = {}


def register_aggregation(name: str, factory: AggregationFactory) -> None:
    """Register the NumPy aggregation of an application's own strategy under ``name``.

    The coordinator records ``name`` in the run configuration when the strategy is wrapped with
    ``aggregation=name``, and re-derives every aggregate with ``factory(params)(...)`` before it
    commits the round; an auditor does the same, finding ``name`` here or in the entry-point
    group ``fedledger.aggregations`` of the application's installed package. The aggregator must
    repeat the strategy's computation with the same operations in the same order: the updates
    arrive sorted by participant address, each update's arrays sorted by name.

    Args:
        name: The name recorded in the run configuration.
        factory: Builds the aggregator from the strategy's recorded scalar attributes (``params``).

    Raises:
        AggregationError: ``name`` is empty, names a built-in rule, or is already registered with
            another factory.
    """
    if not name:
        raise AggregationError("an aggregation needs a name")
    if name in BUILT_IN_RULES:
        raise AggregationError(
            f"{name!r} is a built-in rule: wrap with aggregation={name!r} without registering it, "
            "or choose another name"
        )
    registered = _registered.get(name)
    if registered is not None and registered is not factory:
        raise AggregationError(
            f"aggregation {name!r} is already registered with {_qualified(registered)}, "
            f"not {_qualified(factory)}: choose another name"
        )
    _registered[name] = factory


def registered_aggregation(name: str) -> AggregationFactory:
    """The factory registered under ``name`` in this process, else the one an installed package
    names in the entry-point group ``fedledger.aggregations`` (then registered here too).

    Raises:
        AggregationError: no one registered ``name``, installed entry points define it with different
            values, or its entry point cannot be loaded.
    """
    if name in _registered:
        return _registered[name]
    found = entry_points(group=ENTRY_POINT_GROUP, name=name)
    if not found:
        raise AggregationError(
            f"no aggregation named {name!r} is registered in this process or installed under the "
            f"entry-point group {ENTRY_POINT_GROUP!r}: install the application that defines it"
        )
    values = sorted({entry.value for entry in found})
    if len(values) > 1:
        raise AggregationError(
            f"aggregation {name!r} is defined by more than one installed entry point ({', '.join(values)}): "
            f"uninstall all but the one the run needs"
        )
    entry = next(iter(found))
    try:
        factory = entry.load()
    except Exception as error:  # an installed package's code: whatever it raises is reported, not fatal
        raise AggregationError(
            f"aggregation {name!r} ({entry.value}) cannot be loaded: {type(error).__name__}: {error}"
        ) from None
    if not callable(factory):
        raise AggregationError(f"aggregation {name!r} ({entry.value}) is not callable")
    register_aggregation(name, factory)
    return factory


def _qualified(factory: AggregationFactory) -> str:
    return f"{getattr(factory, '__module__', '?')}.{getattr(factory, '__qualname__', repr(factory))}"


def aggregator_for(strategy: Mapping[str, Any]) -> Aggregator:
    """The aggregator that re-derives ``strategy`` (``{"name": ..., "params": {...}}``, as in a
    manifest, with ``"aggregation": name`` when it was wrapped with one).

    A strategy is re-derived by the aggregation it was wrapped with — a built-in rule's name
    (``BUILT_IN_RULES``) or a registered aggregation's — or else by the built-in rule of its
    recorded name, which only Flower's own strategies are recorded under.

    Raises:
        NoAggregationRule: neither a built-in rule nor a registered aggregation covers the strategy.
        UnsupportedStrategy: the strategy cannot be re-derived otherwise (a parameter is missing,
            a registered aggregation cannot be found or built); says why.
    """
    name, params = strategy["name"], strategy.get("params", {})
    aggregation = strategy.get("aggregation")
    if aggregation is not None and aggregation not in BUILT_IN_RULES:
        return _registered_aggregator(str(aggregation), params)
    rule = name if aggregation is None else aggregation
    if rule in NOT_REPRODUCIBLE:
        raise NoAggregationRule(f"{name} cannot be re-derived: it {NOT_REPRODUCIBLE[rule]}")
    if rule not in BUILT_IN_RULES:
        raise NoAggregationRule(
            f"{name} has no registered aggregation: wrap it with aggregation=... and register it (docs/ledger-api.md)"
        )
    try:
        return BUILT_IN_RULES[rule](params)
    except KeyError as missing:
        raise UnsupportedStrategy(f"{name} is recorded without its parameter {missing}") from None


def _registered_aggregator(name: str, params: Mapping[str, Any]) -> Aggregator:
    try:
        factory = registered_aggregation(name)
    except AggregationError as error:
        raise UnsupportedStrategy(str(error)) from None
    try:
        aggregator = factory(params)
    except Exception as error:  # the application's factory: whatever it raises is reported, not fatal
        raise UnsupportedStrategy(
            f"aggregation {name!r} cannot be built from the recorded parameters: {type(error).__name__}: {error}"
        ) from None
    if not isinstance(aggregator, Aggregator):
        raise UnsupportedStrategy(f"aggregation {name!r} built a {type(aggregator).__name__}, not an Aggregator")
    return aggregator
