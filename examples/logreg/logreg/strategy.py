"""logreg: FedAvg with clipped updates, a strategy of the app's own."""

from collections.abc import Iterable
from typing import Any

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg

from fedledger.aggregation import WeightedUpdate
from logreg.aggregation import clipped_average


class ClippedFedAvg(FedAvg):
    """FedAvg whose update deltas are clipped to an L2 norm of at most ``clip_norm`` before averaging.

    One site, honest or not, can then move the global model by at most ``clip_norm`` times its share of
    the examples. The other parameters are FedAvg's.
    """

    def __init__(self, clip_norm: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not clip_norm > 0:
            raise ValueError(f"clip_norm must be positive, not {clip_norm}")
        self.clip_norm = clip_norm
        self._base: dict[str, np.ndarray] = {}

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """FedAvg's, remembering the model the round starts from: the deltas are taken from it."""
        self._base = {name: array.numpy() for name, array in arrays.items()}
        return super().configure_train(server_round, arrays, config, grid)

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """The clipped average of the valid replies, in the order they come, and FedAvg's metrics."""
        valid_replies, _ = self._check_and_log_replies(replies, is_train=True)
        if not valid_replies:
            return None, None
        updates = [
            WeightedUpdate(
                arrays={name: array.numpy() for name, array in next(iter(msg.content.array_records.values())).items()},
                weight=next(iter(msg.content.metric_records.values()))[self.weighted_by_key],
            )
            for msg in valid_replies
        ]
        aggregate = clipped_average(self._base, updates, self.clip_norm)
        arrays = ArrayRecord({name: Array(value) for name, value in aggregate.items()})
        metrics = self.train_metrics_aggr_fn([msg.content for msg in valid_replies], self.weighted_by_key)
        return arrays, metrics
