"""Four hospitals with their own heart-disease patients: the UCI data split by the hospital it came from."""

from pathlib import Path

import numpy as np
import pandas as pd

from fedledger.simulations.scenarios.base import Scenario
from tabular_app.schema import Column, Schema

DATA_FILE = Path(__file__).resolve().parents[1] / "data" / "heart_disease_uci.csv"

SCHEMA = Schema(
    target="disease",
    columns=(
        Column("age", "numeric"),
        Column("sex", "categorical", ("Female", "Male")),
        Column("cp", "categorical", ("asymptomatic", "atypical angina", "non-anginal", "typical angina")),
        Column("trestbps", "numeric"),
        Column("chol", "numeric"),
        Column("fbs", "boolean"),
        Column("restecg", "categorical", ("lv hypertrophy", "normal", "st-t abnormality")),
        Column("thalch", "numeric"),
        Column("exang", "boolean"),
        Column("oldpeak", "numeric"),
        Column("slope", "categorical", ("downsloping", "flat", "upsloping")),
        Column("ca", "numeric"),
        Column("thal", "categorical", ("fixed defect", "normal", "reversable defect")),
    ),
)


def load_records() -> pd.DataFrame:
    """The UCI records with the target derived (``num > 0``) and zero codes read as missing.

    Two hospitals record an unknown cholesterol or blood pressure as 0, which no living patient has.
    """
    frame = pd.read_csv(DATA_FILE)
    frame["disease"] = (frame["num"] > 0).astype(int)
    for column in ("chol", "trestbps"):
        frame[column] = frame[column].replace(0, np.nan)
    return frame


class Hospitals(Scenario):
    name = "hospitals"
    description = "UCI heart disease, split by hospital: Cleveland, Hungary, Switzerland, VA Long Beach"
    default_clients = 4
    min_clients = 4
    client_limit = "one per hospital"

    def max_clients(self) -> int:
        return self.default_clients

    def split(self, clients: int, seed: int) -> tuple[Schema, list[tuple[str, pd.DataFrame]]]:
        frame = load_records()
        columns = [column.name for column in SCHEMA.columns] + [SCHEMA.target]
        return SCHEMA, [(str(hospital), rows[columns]) for hospital, rows in frame.groupby("dataset", sort=True)]
