"""The schema of a participant's tabular data file: its columns, their types and the target.

A schema is a small JSON file agreed by the federation, so that every site turns its records
into the same features in the same order:

    {
      "target": "disease",
      "columns": [
        {"name": "age", "type": "numeric"},
        {"name": "cholesterol", "type": "numeric", "center": 200, "scale": 40},
        {"name": "smoker", "type": "boolean"},
        {"name": "chest_pain", "type": "categorical", "categories": ["typical", "atypical", "none"]}
      ]
    }

The target is a binary column (0/1 or true/false). Missing values are allowed in the feature
columns, never in the target. A numeric column may carry the ``center`` and ``scale`` the
federation agreed on; then every site standardises it the same way (and fills missing values
with the centre) instead of fitting its own statistics.
"""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from fedledger.coordinator import SettingsError

ColumnType = Literal["numeric", "boolean", "categorical"]
COLUMN_TYPES: tuple[ColumnType, ...] = ("numeric", "boolean", "categorical")


class SchemaError(SettingsError):
    """A schema file is malformed, or a data file does not match its schema.

    The files are named by settings (``schema-path``, ``data-path``, ``data-dir``), so this is the
    ledger's ``SettingsError``: the ``fedledger`` command reports it in one line.
    """


@dataclass(frozen=True)
class Column:
    """One feature column."""

    name: str
    type: ColumnType
    categories: tuple[str, ...] = ()
    center: float | None = None
    scale: float | None = None

    @property
    def width(self) -> int:
        """How many model inputs this column becomes."""
        return len(self.categories) if self.type == "categorical" else 1


@dataclass(frozen=True)
class Schema:
    """The columns a data file must have, in the order they become model inputs, and the target."""

    target: str
    columns: tuple[Column, ...]

    @property
    def num_features(self) -> int:
        return sum(column.width for column in self.columns)

    @property
    def feature_names(self) -> list[str]:
        names = []
        for column in self.columns:
            if column.type == "categorical":
                names.extend(f"{column.name}={category}" for category in column.categories)
            else:
                names.append(column.name)
        return names

    def to_json(self) -> dict:
        columns = []
        for column in self.columns:
            entry: dict = {"name": column.name, "type": column.type}
            if column.type == "categorical":
                entry["categories"] = list(column.categories)
            if column.center is not None:
                entry["center"], entry["scale"] = column.center, column.scale
            columns.append(entry)
        return {"target": self.target, "columns": columns}

    @classmethod
    def from_json(cls, data: object, source: str = "schema") -> "Schema":
        """Build a schema from parsed JSON.

        Raises:
            SchemaError: naming what is wrong and where.
        """
        if not isinstance(data, dict) or not isinstance(data.get("target"), str):
            raise SchemaError(f"{source}: needs a 'target' column name and a 'columns' list")
        raw_columns = data.get("columns")
        if not isinstance(raw_columns, list) or not raw_columns:
            raise SchemaError(f"{source}: 'columns' must be a non-empty list")
        columns = []
        for index, raw in enumerate(raw_columns):
            if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
                raise SchemaError(f"{source}: column {index} needs a 'name'")
            name, kind = raw["name"], raw.get("type")
            if kind not in COLUMN_TYPES:
                raise SchemaError(f"{source}: column {name!r} has type {kind!r}; expected one of {COLUMN_TYPES}")
            categories = raw.get("categories", [])
            if kind == "categorical":
                if not categories or not all(isinstance(category, str) for category in categories):
                    raise SchemaError(f"{source}: categorical column {name!r} needs a list of string 'categories'")
                if len(set(categories)) != len(categories):
                    raise SchemaError(f"{source}: categorical column {name!r} lists a category twice")
            elif categories:
                raise SchemaError(f"{source}: only categorical columns have 'categories' ({name!r} is {kind})")
            center, scale = raw.get("center"), raw.get("scale")
            if (center is None) != (scale is None) or (center is not None and kind != "numeric"):
                raise SchemaError(f"{source}: column {name!r}: 'center' and 'scale' go together, on numeric columns")
            if scale is not None and not (isinstance(scale, int | float) and scale > 0):
                raise SchemaError(f"{source}: column {name!r}: 'scale' must be a positive number")
            columns.append(Column(name, kind, tuple(categories), center, scale))
        names = [column.name for column in columns]
        if len(set(names)) != len(names):
            raise SchemaError(f"{source}: a column is listed twice")
        if data["target"] in names:
            raise SchemaError(f"{source}: the target {data['target']!r} is also listed as a feature")
        return cls(target=data["target"], columns=tuple(columns))

    @classmethod
    def load(cls, path: Path) -> "Schema":
        """Read a schema file.

        Raises:
            SchemaError: the file is missing, not JSON, or not a valid schema.
        """
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise SchemaError(f"schema file {path} does not exist") from None
        except IsADirectoryError:
            raise SchemaError(f"schema file {path} is a directory") from None
        except UnicodeDecodeError:
            raise SchemaError(f"schema file {path} is not a JSON text file (it is not UTF-8 text)") from None
        except json.JSONDecodeError as error:
            raise SchemaError(f"schema file {path} is not valid JSON: {error}") from None
        return cls.from_json(data, source=str(path))

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json(), indent=2) + "\n")
