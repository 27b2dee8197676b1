"""Reading a participant's local records (CSV or Parquet) and checking them against the schema.

Every check happens before any training, and a mismatch names the column (and, where it helps,
the row and the value) so that a site's data team can fix the file.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from tabular_app.schema import Column, Schema, SchemaError

_TRUE = {"true", "1", "yes", "t", "y"}
_FALSE = {"false", "0", "no", "f", "n"}


@dataclass(frozen=True)
class LabeledTable:
    """Feature columns as the schema types them, and the binary target as 0.0/1.0."""

    features: pd.DataFrame
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, rows: np.ndarray) -> "LabeledTable":
        return LabeledTable(self.features.iloc[rows].reset_index(drop=True), self.labels[rows])


def read_table(path: Path) -> pd.DataFrame:
    """Read a ``.csv`` or ``.parquet`` file.

    Raises:
        SchemaError: naming the file: it is missing, empty, of another kind, or not readable as
            what its extension says.
    """
    if path.is_dir():
        raise SchemaError(f"data file {path} is a directory")
    if not path.is_file():
        raise SchemaError(f"data file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix not in {".csv", ".parquet", ".pq"}:
        raise SchemaError(f"data file {path} must be .csv or .parquet, not {suffix or 'without extension'}")
    if path.stat().st_size == 0:
        raise SchemaError(f"data file {path} is empty")
    if suffix == ".csv":
        return _read_csv(path)
    try:
        return pd.read_parquet(path)
    except (OSError, ValueError) as error:  # pyarrow's ArrowInvalid is a ValueError
        raise SchemaError(f"data file {path} is not a Parquet file: {error}") from None


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path, keep_default_na=True)
    except UnicodeDecodeError as error:
        raise SchemaError(
            f"data file {path} is not a CSV text file: byte {error.object[error.start]:#04x} at offset "
            f"{error.start} is not UTF-8 text"
        ) from None
    except pd.errors.EmptyDataError:
        raise SchemaError(f"data file {path} holds no CSV header line (only blank lines)") from None
    except pd.errors.ParserError as error:
        raise SchemaError(f"data file {path} is not well-formed CSV: {error}") from None


def check_table(frame: pd.DataFrame, schema: Schema, source: str) -> LabeledTable:
    """Check ``frame`` against ``schema`` and type its columns.

    Raises:
        SchemaError: a column is missing, holds a value of the wrong type or an unknown category,
            or the target is missing or not binary; the message names the column.
    """
    required = [*(column.name for column in schema.columns), schema.target]
    missing = [name for name in required if name not in frame]
    if len(missing) == len(required):
        raise SchemaError(
            f"{source}: its first line ({_listing(frame.columns)}) names none of the schema's columns: "
            f"the first line must be a header naming them ({_listing(required)})"
        )
    if len(missing) == 1:
        raise SchemaError(f"{source}: column {missing[0]!r} required by the schema is missing")
    if missing:
        raise SchemaError(f"{source}: columns {', '.join(map(repr, missing))} required by the schema are missing")
    if frame.empty:
        raise SchemaError(f"{source}: has no rows")
    features = pd.DataFrame({column.name: _typed(frame[column.name], column, source) for column in schema.columns})
    return LabeledTable(features=features, labels=_binary_target(frame[schema.target], schema.target, source))


def _listing(names: Iterable[object], shown: int = 5) -> str:
    """The first ``shown`` names, quoted, and ``...`` if there are more."""
    texts = [str(name) for name in names]
    return ", ".join([*map(repr, texts[:shown]), *(["..."] if len(texts) > shown else [])])


def load_table(path: Path, schema: Schema) -> LabeledTable:
    """Read ``path`` and check it against ``schema``."""
    return check_table(read_table(path), schema, str(path))


def train_test_split(table: LabeledTable, test_fraction: float, seed: int) -> tuple[LabeledTable, LabeledTable]:
    """Split rows into train and test, stratified by label, the same way for the same seed."""
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be between 0 and 1, got {test_fraction}")
    rng = np.random.default_rng(seed)
    test_rows = []
    for label in (0.0, 1.0):
        rows = np.flatnonzero(table.labels == label)
        rng.shuffle(rows)
        test_rows.extend(rows[: round(len(rows) * test_fraction)])
    is_test = np.zeros(len(table), dtype=bool)
    is_test[test_rows] = True
    return table.subset(np.flatnonzero(~is_test)), table.subset(np.flatnonzero(is_test))


def _typed(values: pd.Series, column: Column, source: str) -> pd.Series:
    present = values.notna()
    if column.type == "numeric":
        numbers = pd.to_numeric(values, errors="coerce")
        bad = present & numbers.isna()
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise SchemaError(f"{source}: column {column.name!r} is numeric but row {row} holds {values.iloc[row]!r}")
        return numbers.astype(np.float64)
    if column.type == "boolean":
        return _booleans(values, f"column {column.name!r}", source)
    text = values.astype("string")
    unknown = present & ~text.isin(column.categories)
    if unknown.any():
        row = int(np.flatnonzero(unknown.to_numpy())[0])
        raise SchemaError(
            f"{source}: column {column.name!r} holds {values.iloc[row]!r} in row {row}, "
            f"not one of its categories {list(column.categories)}"
        )
    return text


def _booleans(values: pd.Series, what: str, source: str) -> pd.Series:
    result = np.full(len(values), np.nan)
    for row, value in enumerate(values):
        if pd.isna(value):
            continue
        truth = _truth(value)
        if truth is None:
            raise SchemaError(f"{source}: {what} is boolean but row {row} holds {value!r}")
        result[row] = truth
    return pd.Series(result, index=values.index)


def _truth(value: object) -> float | None:
    """1.0 or 0.0 for the spellings of true and false (true/false, yes/no, 1/0, 1.0/0.0), else None."""
    text = str(value).strip().lower()
    if text in _TRUE:
        return 1.0
    if text in _FALSE:
        return 0.0
    try:
        number = float(text)
    except ValueError:
        return None
    return number if number in (0.0, 1.0) else None


def _binary_target(values: pd.Series, name: str, source: str) -> np.ndarray:
    if values.isna().any():
        row = int(np.flatnonzero(values.isna().to_numpy())[0])
        raise SchemaError(f"{source}: target column {name!r} is missing in row {row}")
    return _booleans(values, f"target column {name!r}", source).to_numpy().astype(np.float32)
