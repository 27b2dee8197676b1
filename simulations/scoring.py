"""Data-based contribution scores: leave-one-out on a validation set the coordinator holds.

Update *i* scores ``max(0, loss(aggregate without i) - loss(aggregate))`` on the validation rows:
how much worse the round's model would be without it. The aggregates are FedAvg re-weightings of
the accepted updates. An auditor can recompute the scores only with the validation set (its hash is
in the manifest and the run configuration) and the model's evaluation (``client.models``), so the
audit reports them as unsupported and checks the rewards from the recorded scores.
"""

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from fedledger.aggregation import WeightedUpdate, weighted_average
from fedledger.hashing import keccak256, to_hex
from fedledger.simulations.scenarios import PreparedData
from tabular_app.data import load_table
from tabular_app.models import TabularClassifier
from tabular_app.preprocessing import Preprocessing
from tabular_app.schema import Schema
from tabular_app.training import evaluate

Arrays = Mapping[str, np.ndarray]


class LeaveOneOutScorer:
    """Scores each update by how much the validation loss rises when it is left out."""

    def __init__(self, inputs: np.ndarray, labels: np.ndarray, validation_hash: bytes) -> None:
        self.inputs, self.labels = inputs, labels
        self.description: dict[str, Any] = {
            "method": "leave-one-out",
            "validation_set_hash": to_hex(validation_hash),
            "metric": "validation log-loss of the FedAvg aggregate without the update, minus with it (at least 0)",
            "recompute_with": "the validation set (by its hash), client.models.TabularClassifier, FedAvg",
        }

    def _loss(self, arrays: Arrays) -> float:
        return evaluate(TabularClassifier.from_arrays(dict(arrays)), self.inputs, self.labels).loss

    def scores(self, base: Arrays, updates: Sequence[Arrays], weights: Sequence[int]) -> list[float]:
        weighted = [WeightedUpdate(arrays, weight) for arrays, weight in zip(updates, weights, strict=True)]
        with_all = self._loss(weighted_average(weighted))
        if len(weighted) < 2:
            return [0.0] * len(weighted)
        return [
            max(0.0, self._loss(weighted_average(weighted[:index] + weighted[index + 1 :])) - with_all)
            for index in range(len(weighted))
        ]


def leave_one_out_scorer(data: PreparedData) -> LeaveOneOutScorer:
    """A scorer over the prepared data's held-out validation rows, preprocessed on themselves."""
    schema = Schema.load(data.schema_path)
    validation = load_table(data.validation_path, schema)
    inputs = Preprocessing.fit(schema, validation).transform(validation)
    return LeaveOneOutScorer(inputs, validation.labels, keccak256(data.validation_path.read_bytes()))
