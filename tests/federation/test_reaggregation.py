"""fedledger.aggregation re-derives every supported Flower strategy's aggregate bit for bit."""

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, Message, MessageType, MetricRecord, RecordDict

from fedledger.aggregation import UnsupportedStrategy, WeightedUpdate, aggregator_for, settled
from fedledger.coordinator.runs import describe_strategy
from fedledger.encoding import decode_model, encode_model, model_hash
from tabular_app.settings import STRATEGY_NAMES, FederationSettings
from tabular_app.strategies import build_strategy

SHAPES = {"hidden.bias": (16,), "hidden.weight": (16, 12), "output.bias": (1,), "output.weight": (1, 16)}


def random_model(rng: np.random.Generator, dtype: type = np.float32) -> dict[str, np.ndarray]:
    return {name: rng.normal(size=shape).astype(dtype) for name, shape in sorted(SHAPES.items())}


def nudged(base: dict[str, np.ndarray], rng: np.random.Generator) -> dict[str, np.ndarray]:
    """A client's update: the base model plus a little noise, in the base model's dtypes."""
    return {key: value + rng.normal(scale=0.1, size=value.shape).astype(value.dtype) for key, value in base.items()}


def reply(arrays: dict[str, np.ndarray], examples: int) -> Message:
    content = RecordDict(
        {
            "arrays": ArrayRecord({name: Array(arrays[name]) for name in sorted(arrays)}),
            "metrics": MetricRecord({"num-examples": examples}),
        }
    )
    return Message(content, dst_node_id=0, message_type=MessageType.TRAIN)


def run_flower(strategy, round_number: int, base: dict, updates: list[tuple[dict, int]]) -> dict[str, np.ndarray]:
    """What the Flower strategy itself aggregates (its server state primed as configure_train would)."""
    base_record = ArrayRecord({name: Array(base[name]) for name in sorted(base)})
    if hasattr(strategy, "m_t"):
        strategy.current_arrays = {name: array.numpy() for name, array in base_record.items()}
    elif type(strategy).__name__ == "FedAvgM" and strategy.current_arrays is None:
        strategy.current_arrays = base_record
    aggregate, _ = strategy.aggregate_train(round_number, [reply(arrays, examples) for arrays, examples in updates])
    return {name: array.numpy() for name, array in aggregate.items()}


#: Strategies whose Flower aggregate NumPy leaves to the machine in its last bits (docs/aggregation.md):
#: the specified one may differ from it there, and is what the coordinator commits.
MACHINE_DEPENDENT = {"FedTrimmedAvg", "Bulyan", "FedAdam"}


@pytest.mark.parametrize("name", STRATEGY_NAMES)
def test_every_strategy_is_re_derived_bit_for_bit_over_rounds(name):
    """Bit for bit, or, where NumPy leaves the last bits to the machine, within them."""
    rng = np.random.default_rng(7)
    settings = FederationSettings(strategy=name, num_malicious_nodes=1, num_nodes_to_select=3, min_nodes=2)
    strategy = build_strategy(settings)
    aggregator = aggregator_for(describe_strategy(strategy))
    base = random_model(rng)
    for round_number in (1, 2, 3):
        updates = [
            (
                {
                    key: value + rng.normal(scale=0.1, size=value.shape).astype(value.dtype)
                    for key, value in base.items()
                },
                int(rng.integers(10, 300)),
            )
            for _ in range(7)
        ]
        flower = run_flower(strategy, round_number, base, updates)
        stored = [WeightedUpdate(decode_model(encode_model(arrays)), examples) for arrays, examples in updates]
        derived = aggregator.aggregate(round_number, base, stored)
        if name in MACHINE_DEPENDENT:
            difference = settled(derived, flower)
            assert difference is not None and difference < 2**-20, f"{name}, round {round_number}: {difference}"
        else:
            assert model_hash(derived) == model_hash(flower), f"{name}, round {round_number}"
        for key in flower:
            assert derived[key].dtype == flower[key].dtype
        base = derived  # the committed aggregate


def test_changing_the_order_changes_the_bits():
    """Why the order is recorded: float addition is not associative."""
    rng = np.random.default_rng(1)
    updates = [WeightedUpdate(random_model(rng), int(rng.integers(1, 100))) for _ in range(9)]
    aggregator = aggregator_for({"name": "FedAvg", "params": {}})
    forward = model_hash(aggregator.aggregate(1, {}, updates))
    assert any(
        model_hash(aggregator.aggregate(1, {}, [updates[i] for i in rng.permutation(len(updates))])) != forward
        for _ in range(20)
    )


@pytest.mark.parametrize(
    ("strategy", "reason"),
    [
        ("DifferentialPrivacyServerSideFixedClipping", "random Gaussian noise"),
        ("QFedAvg", "losses"),
        ("SomethingElse", "has no registered aggregation: wrap it with aggregation=... and register it"),
    ],
)
def test_unsupported_strategies_say_why(strategy, reason):
    with pytest.raises(UnsupportedStrategy, match=reason):
        aggregator_for({"name": strategy, "params": {}})
