"""The pinned aggregation vectors of ``docs/aggregation-vectors.json``: for every strategy FedLedger
re-derives, one or more rounds of inputs and the reference implementation's output, byte for byte.

``test_aggregation_vectors.py`` checks that the reference reproduces the stored file and that this
module still writes it; ``tests/independent/`` reproduces it from ``docs/aggregation.md`` alone.
After a deliberate change, rewrite it with ``.venv/bin/python tests/protocol/aggregation_vectors.py``.
"""

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from fedledger.aggregation import WeightedUpdate, aggregator_for
from fedledger.encoding import model_hash
from fedledger.hashing import to_hex

PATH = Path(__file__).parents[2] / "docs" / "aggregation-vectors.json"

Arrays = dict[str, np.ndarray]
#: The model every vector starts from: two float32 arrays.
SHAPES = {"layer.bias": (3,), "layer.weight": (3, 2)}


def random_values(rng: np.random.Generator, shape: tuple[int, ...], dtype: str) -> np.ndarray:
    return rng.standard_normal(shape).astype(dtype)


Values = Callable[[np.random.Generator, tuple[int, ...], str], np.ndarray]


def model(rng: np.random.Generator, values: Values, dtype: str = "float32") -> Arrays:
    return {name: values(rng, shape, dtype) for name, shape in SHAPES.items()}


def encoded(arrays: Arrays) -> list[dict[str, Any]]:
    return [
        {
            "name": name,
            "dtype": str(arrays[name].dtype),
            "shape": list(arrays[name].shape),
            "data": np.ascontiguousarray(arrays[name]).astype(arrays[name].dtype.newbyteorder("<")).tobytes().hex(),
        }
        for name in sorted(arrays)
    ]


def vector(
    description: str,
    strategy: dict[str, Any],
    seed: int,
    weights: list[int],
    rounds: int = 1,
    values: Values = random_values,
    extra: Callable[[np.random.Generator, int], Arrays] | None = None,
) -> dict[str, Any]:
    """``rounds`` rounds of ``strategy`` over updates weighted ``weights``; each round's updates are
    its base plus draws of ``values`` (cast to the base's dtypes), and its base the previous output."""
    rng = np.random.default_rng(seed)
    aggregator = aggregator_for(strategy)
    base = model(rng, values)
    if extra is not None:
        base |= extra(rng, -1)
    recorded = []
    for number in range(1, rounds + 1):
        updates = []
        for index, weight in enumerate(weights):
            arrays = {
                name: (base[name] + values(rng, base[name].shape, "float32")).astype(base[name].dtype)
                for name in SHAPES
            }
            if extra is not None:
                arrays |= extra(rng, index)
            updates.append(WeightedUpdate({name: arrays[name] for name in sorted(arrays)}, weight))
        selection = aggregator.selection(updates)
        output = aggregator.aggregate(number, base, updates)
        recorded.append(
            {
                "round": number,
                "base": encoded(base),
                "updates": [{"weight": update.weight, "arrays": encoded(dict(update.arrays))} for update in updates],
                "output": encoded(output),
                "model_hash": to_hex(model_hash(output)),
                "selection": selection,
            }
        )
        base = output
    return {"description": description, "strategy": strategy, "rounds": recorded}


def counter(rng: np.random.Generator, index: int) -> Arrays:
    """An int64 array such as a batch-norm layer's batch counter."""
    return {"norm.batches": np.array([10 + max(index, 0) * 3], dtype=np.int64)}


def build() -> list[dict[str, Any]]:
    fedadam = {"eta": 0.1, "eta_l": 0.1, "beta_1": 0.9, "beta_2": 0.99, "tau": 0.001}
    return [
        vector("FedAvg, three updates", {"name": "FedAvg", "params": {}}, 1, [120, 35, 7]),
        vector(
            "FedAvg with an int64 array: it averages to float64",
            {"name": "FedAvg", "params": {}},
            2,
            [3, 5],
            extra=counter,
        ),
        vector(
            "FedProx aggregates as FedAvg", {"name": "FedProx", "params": {"proximal_mu": 0.1}}, 3, [10, 20, 30, 40]
        ),
        vector("FedMedian, odd count", {"name": "FedMedian", "params": {}}, 4, [1, 1, 1, 1, 1]),
        vector(
            "FedMedian, even count: mean of the two middle values", {"name": "FedMedian", "params": {}}, 5, [5, 6, 7, 8]
        ),
        vector(
            "FedTrimmedAvg, 5 updates, beta 0.2: 3 kept",
            {"name": "FedTrimmedAvg", "params": {"beta": 0.2}},
            6,
            [4, 4, 4, 4, 4],
        ),
        vector(
            "FedTrimmedAvg, 8 updates, beta 0.25: 4 kept, summed in ascending order",
            {"name": "FedTrimmedAvg", "params": {"beta": 0.25}},
            7,
            [2] * 8,
        ),
        vector(
            "Krum, 5 updates, 1 malicious",
            {"name": "Krum", "params": {"num_malicious_nodes": 1}},
            8,
            [30, 10, 20, 50, 40],
        ),
        vector(
            "MultiKrum, 6 updates, 1 malicious, 3 selected: averaged best first",
            {"name": "MultiKrum", "params": {"num_malicious_nodes": 1, "num_nodes_to_select": 3}},
            9,
            [30, 10, 20, 50, 40, 60],
        ),
        vector(
            "Bulyan, 7 updates, 1 malicious: 5 selected, 3 kept",
            {"name": "Bulyan", "params": {"num_malicious_nodes": 1}},
            10,
            [1, 2, 3, 4, 5, 6, 7],
        ),
        vector(
            "Bulyan, 9 updates, 1 malicious: 7 selected, 5 kept",
            {"name": "Bulyan", "params": {"num_malicious_nodes": 1}},
            11,
            [9, 8, 7, 6, 5, 4, 3, 2, 1],
        ),
        vector(
            "FedAdam, three rounds: float64 from round 1",
            {"name": "FedAdam", "params": fedadam},
            12,
            [10, 20, 30],
            rounds=3,
        ),
        vector("FedYogi, three rounds", {"name": "FedYogi", "params": fedadam}, 13, [10, 20, 30], rounds=3),
        vector(
            "FedAdagrad, two rounds",
            {"name": "FedAdagrad", "params": {"eta": 0.1, "eta_l": 0.1, "tau": 0.001}},
            14,
            [5, 15],
            rounds=2,
        ),
        vector(
            "FedAvgM, momentum 0.9, three rounds",
            {"name": "FedAvgM", "params": {"server_learning_rate": 1.0, "server_momentum": 0.9}},
            15,
            [10, 20, 30],
            rounds=3,
        ),
        vector(
            "FedAvgM, no momentum, learning rate 0.5",
            {"name": "FedAvgM", "params": {"server_learning_rate": 0.5, "server_momentum": 0.0}},
            16,
            [10, 20],
            rounds=2,
        ),
        vector(
            "FedAvgM, no momentum, learning rate 1: FedAvg",
            {"name": "FedAvgM", "params": {"server_learning_rate": 1.0, "server_momentum": 0.0}},
            17,
            [10, 20],
        ),
    ]


if __name__ == "__main__":
    PATH.write_text(json.dumps(build(), indent=1) + "\n")
    print(f"wrote {PATH}")
