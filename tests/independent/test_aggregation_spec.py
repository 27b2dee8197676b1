"""An aggregation written from docs/aggregation.md alone reproduces every vector bit for bit: the
output arrays' bytes, their model hash (with the independent encoder) and the selection."""

import json
from pathlib import Path

import numpy as np
import pytest

from independent.aggregation import Strategy, Update
from independent.encoding import model_hash

VECTORS = json.loads((Path(__file__).parents[2] / "docs" / "aggregation-vectors.json").read_text())


def arrays_of(entries: list[dict]) -> dict[str, np.ndarray]:
    return {
        entry["name"]: np.frombuffer(bytes.fromhex(entry["data"]), dtype=np.dtype(entry["dtype"]).newbyteorder("<"))
        .astype(entry["dtype"])
        .reshape(entry["shape"])
        for entry in entries
    }


def test_every_strategy_of_the_page_has_vectors():
    assert {vector["strategy"]["name"] for vector in VECTORS} == {
        "FedAvg", "FedProx", "FedMedian", "FedTrimmedAvg", "Krum", "MultiKrum", "Bulyan",
        "FedAdam", "FedYogi", "FedAdagrad", "FedAvgM",
    }  # fmt: skip


@pytest.mark.parametrize("vector", VECTORS, ids=[vector["description"] for vector in VECTORS])
def test_the_vector_is_reproduced_bit_for_bit(vector: dict):
    strategy = Strategy(vector["strategy"])
    base = arrays_of(vector["rounds"][0]["base"])
    for recorded in vector["rounds"]:
        assert {name: array.tobytes() for name, array in arrays_of(recorded["base"]).items()} == {
            name: array.tobytes() for name, array in base.items()
        }, "each round starts from the previous round's output"
        updates = [Update(arrays_of(update["arrays"]), update["weight"]) for update in recorded["updates"]]
        assert strategy.selection(updates) == recorded["selection"]
        output = strategy.aggregate(recorded["round"], base, updates)
        expected = arrays_of(recorded["output"])
        assert sorted(output) == sorted(expected)
        for name, array in expected.items():
            assert output[name].dtype == array.dtype, f"round {recorded['round']} {name}"
            assert output[name].tobytes() == array.tobytes(), f"round {recorded['round']} {name}"
        assert model_hash(output) == recorded["model_hash"]
        base = output
