"""A generated task that scales to a thousand clients: each client holds a few dozen rows of a
shared nonlinear rule, with its own shift of the feature distribution (covariate shift) — or, in
``synthetic-iid``, without one, so that every client's rows come from the same distribution."""

import numpy as np
import pandas as pd

from fedledger.simulations.scenarios.base import Scenario
from tabular_app.schema import Column, Schema
from tabular_app.training import TrainingSettings

NUM_FEATURES = 8
ROWS_PER_CLIENT = (30, 90)
LABEL_NOISE = 0.5

# The generator draws every feature from a unit normal (shifted per client): the federation agrees on
# that scale, so all clients standardise alike instead of each removing its own shift.
SCHEMA = Schema(
    target="label",
    columns=tuple(Column(f"x{index}", "numeric", center=0.0, scale=1.0) for index in range(NUM_FEATURES)),
)


class Synthetic(Scenario):
    name = "synthetic"
    description = "generated nonlinear rule, a few dozen rows per client, per-client covariate shift"
    default_clients = 20
    training = TrainingSettings(local_epochs=5)
    shift_scale = 0.5

    def split(self, clients: int, seed: int) -> tuple[Schema, list[tuple[str, pd.DataFrame]]]:
        rng = np.random.default_rng(seed)
        weights = rng.normal(size=NUM_FEATURES)
        parts = []
        for index in range(clients):
            rows = int(rng.integers(*ROWS_PER_CLIENT, endpoint=True))
            shift = rng.normal(scale=self.shift_scale, size=NUM_FEATURES)
            features = rng.normal(size=(rows, NUM_FEATURES)) + shift
            logit = features @ weights + features[:, 0] * features[:, 1] + rng.normal(scale=LABEL_NOISE, size=rows)
            frame = pd.DataFrame(features, columns=[column.name for column in SCHEMA.columns])
            frame["label"] = (logit > 0).astype(int)
            parts.append((f"client {index + 1}", frame))
        return SCHEMA, parts


class SyntheticIid(Synthetic):
    name = "synthetic-iid"
    description = "generated nonlinear rule, a few dozen rows per client, all from one distribution (IID)"
    shift_scale = 0.0
