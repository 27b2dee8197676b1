"""A site's data: schema checks that name the column, preprocessing fitted on training rows only."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tabular_app.data import check_table, load_table, read_table, train_test_split
from tabular_app.metrics import accuracy, roc_auc
from tabular_app.models import TabularClassifier, load_arrays, model_arrays
from tabular_app.preprocessing import Preprocessing
from tabular_app.schema import Column, Schema, SchemaError

SCHEMA = Schema(
    target="disease",
    columns=(
        Column("age", "numeric"),
        Column("smoker", "boolean"),
        Column("pain", "categorical", ("none", "mild", "severe")),
    ),
)


def frame(**overrides) -> pd.DataFrame:
    data = {
        "age": [40, 50, 60, 70, np.nan, 55, 45, 65],
        "smoker": [True, False, True, False, True, None, False, True],
        "pain": ["none", "mild", "severe", None, "mild", "none", "severe", "mild"],
        "disease": [0, 1, 1, 0, 1, 0, 1, 0],
        "unused": range(8),
    }
    data.update(overrides)
    return pd.DataFrame(data)


def test_a_matching_file_is_typed(tmp_path: Path):
    path = tmp_path / "site.csv"
    frame().to_csv(path, index=False)
    table = load_table(path, SCHEMA)
    assert len(table) == 8
    assert table.labels.dtype == np.float32 and table.labels.tolist() == [0, 1, 1, 0, 1, 0, 1, 0]
    assert np.isnan(table.features["age"].iloc[4]) and np.isnan(table.features["smoker"].iloc[5])
    assert "unused" not in table.features


def test_parquet_reads_like_csv(tmp_path: Path):
    frame().to_parquet(tmp_path / "site.parquet")
    frame().to_csv(tmp_path / "site.csv", index=False)
    parquet, csv = load_table(tmp_path / "site.parquet", SCHEMA), load_table(tmp_path / "site.csv", SCHEMA)
    np.testing.assert_array_equal(parquet.labels, csv.labels)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (frame().drop(columns=["pain"]), "column 'pain' required by the schema is missing"),
        (frame().drop(columns=["disease"]), "column 'disease' required by the schema is missing"),
        (frame(age=[40, "old", 60, 70, 1, 2, 3, 4]), "column 'age' is numeric but row 1 holds 'old'"),
        (frame(smoker=[True, "maybe", True, False, True, None, False, True]), "column 'smoker' is boolean"),
        (frame(pain=["none", "agony", "mild", None, "mild", "none", "mild", "mild"]), "column 'pain' holds 'agony'"),
        (frame(disease=[0, 1, None, 0, 1, 0, 1, 0]), "target column 'disease' is missing in row 2"),
        (frame(disease=[0, 1, 2, 0, 1, 0, 1, 0]), "target column 'disease' is boolean but row 2 holds 2"),
        (frame().iloc[:0], "has no rows"),
    ],
)
def test_a_mismatching_file_is_refused_naming_the_column(data: pd.DataFrame, message: str):
    with pytest.raises(SchemaError, match=message):
        check_table(data, SCHEMA, "site.csv")


def test_unreadable_files_are_refused(tmp_path: Path):
    with pytest.raises(SchemaError, match="does not exist"):
        read_table(tmp_path / "absent.csv")
    (tmp_path / "site.xlsx").write_text("x")
    with pytest.raises(SchemaError, match=r"must be \.csv or \.parquet"):
        read_table(tmp_path / "site.xlsx")


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"columns": []}, "needs a 'target'"),
        ({"target": "y", "columns": [{"name": "a", "type": "text"}]}, "has type 'text'"),
        ({"target": "y", "columns": [{"name": "a", "type": "categorical"}]}, "needs a list of string 'categories'"),
        ({"target": "y", "columns": [{"name": "a", "type": "numeric", "categories": ["x"]}]}, "only categorical"),
        ({"target": "y", "columns": [{"name": "a", "type": "numeric"}] * 2}, "listed twice"),
        ({"target": "a", "columns": [{"name": "a", "type": "numeric"}]}, "also listed as a feature"),
    ],
)
def test_invalid_schemas_are_refused(tmp_path: Path, document: dict, message: str):
    path = tmp_path / "schema.json"
    path.write_text(json.dumps(document))
    with pytest.raises(SchemaError, match=message):
        Schema.load(path)


def test_schemas_round_trip(tmp_path: Path):
    SCHEMA.save(tmp_path / "schema.json")
    assert Schema.load(tmp_path / "schema.json") == SCHEMA
    assert SCHEMA.num_features == 5
    assert SCHEMA.feature_names == ["age", "smoker", "pain=none", "pain=mild", "pain=severe"]


def test_the_split_is_stratified_and_repeatable():
    table = check_table(frame(), SCHEMA, "site.csv")
    train, test = train_test_split(table, 0.25, seed=3)
    again_train, _ = train_test_split(table, 0.25, seed=3)
    assert len(train) == 6 and len(test) == 2
    assert sorted(test.labels.tolist()) == [0.0, 1.0]
    assert train.features.equals(again_train.features)


def test_preprocessing_is_fitted_on_training_rows_only():
    table = check_table(frame(), SCHEMA, "site.csv")
    train, test = table.subset(np.arange(6)), table.subset(np.arange(6, 8))
    fitted = Preprocessing.fit(SCHEMA, train)
    observed = np.array([40, 50, 60, 70, 55.0])
    assert fitted.centre["age"] == pytest.approx(observed.mean())
    assert fitted.fill["age"] == pytest.approx(np.median(observed))
    other_test_rows = check_table(frame(age=[40, 50, 60, 70, np.nan, 55, 0, 999]), SCHEMA, "site.csv")
    assert Preprocessing.fit(SCHEMA, other_test_rows.subset(np.arange(6))) == fitted
    inputs = fitted.transform(test)
    assert inputs.shape == (2, SCHEMA.num_features) and inputs.dtype == np.float32
    assert inputs[0, 0] == pytest.approx((45 - observed.mean()) / observed.std())


def test_missing_values_are_filled_and_categories_one_hot():
    table = check_table(frame(), SCHEMA, "site.csv")
    inputs = Preprocessing.fit(SCHEMA, table).transform(table)
    assert inputs[4, 0] == pytest.approx((55 - 55) / np.nanstd([40, 50, 60, 70, 55, 45, 65]), abs=1e-6)
    assert inputs[3, 2:].tolist() == [0.0, 0.0, 0.0]
    assert inputs[2, 2:].tolist() == [0.0, 0.0, 1.0]
    assert inputs[5, 1] == pytest.approx(4 / 7)


def test_models_initialise_from_the_seed_and_round_trip_through_arrays():
    first, second = (TabularClassifier.initialised(5, 8, seed=11) for _ in range(2))
    other = TabularClassifier.initialised(5, 8, seed=12)
    arrays = model_arrays(first)
    assert all(np.array_equal(arrays[name], value) for name, value in model_arrays(second).items())
    assert not np.array_equal(arrays["hidden.weight"], model_arrays(other)["hidden.weight"])
    rebuilt = TabularClassifier.from_arrays(arrays)
    assert all(np.array_equal(arrays[name], value) for name, value in model_arrays(rebuilt).items())
    with pytest.raises(ValueError, match="do not match the model"):
        load_arrays(rebuilt, {"hidden.weight": arrays["hidden.weight"]})


def test_metrics():
    labels = np.array([0, 0, 1, 1], dtype=np.float32)
    assert roc_auc(labels, np.array([0.1, 0.2, 0.8, 0.9])) == 1.0
    assert roc_auc(labels, np.array([0.9, 0.8, 0.2, 0.1])) == 0.0
    assert roc_auc(labels, np.array([0.5, 0.5, 0.5, 0.5])) == 0.5
    assert roc_auc(labels, np.array([0.1, 0.6, 0.6, 0.9])) == 0.875
    assert np.isnan(roc_auc(np.ones(3), np.array([0.1, 0.2, 0.3])))
    assert accuracy(labels, np.array([0.1, 0.6, 0.4, 0.9])) == 0.5


def test_agreed_centre_and_scale_replace_the_sites_own_statistics():
    agreed = Schema(target="disease", columns=(Column("age", "numeric", center=50.0, scale=10.0),))
    table = check_table(frame(), agreed, "site.csv")
    inputs = Preprocessing.fit(agreed, table).transform(table)
    assert inputs[:4, 0].tolist() == [-1.0, 0.0, 1.0, 2.0]
    assert inputs[4, 0] == 0.0, "a missing value takes the agreed centre"
    with pytest.raises(SchemaError, match="'center' and 'scale' go together"):
        Schema.from_json({"target": "y", "columns": [{"name": "a", "type": "numeric", "center": 1}]})
    with pytest.raises(SchemaError, match="'scale' must be a positive number"):
        Schema.from_json({"target": "y", "columns": [{"name": "a", "type": "numeric", "center": 1, "scale": 0}]})
