"""Turning a site's typed records into model inputs, fitted on that site's training rows only.

- numeric: missing values take the training median; then centred and scaled by the training
  mean and standard deviation — or, where the schema gives a column's agreed ``center`` and
  ``scale``, by those, with missing values taking the centre;
- boolean: 0/1, missing values take the training share of true values;
- categorical: one input per category of the schema (one-hot); a missing value is all zeros.

The statistics never look at test rows, and never leave the site.
"""

from dataclasses import dataclass

import numpy as np

from tabular_app.data import LabeledTable
from tabular_app.schema import Schema


@dataclass(frozen=True)
class Preprocessing:
    """Statistics fitted on training rows: the fill value, centre and scale of each non-categorical column."""

    schema: Schema
    fill: dict[str, float]
    centre: dict[str, float]
    scale: dict[str, float]

    @classmethod
    def fit(cls, schema: Schema, train: LabeledTable) -> "Preprocessing":
        fill, centre, scale = {}, {}, {}
        for column in schema.columns:
            if column.type == "categorical":
                continue
            observed = train.features[column.name].dropna().to_numpy(dtype=np.float64)
            if column.type == "boolean":
                fill[column.name] = float(observed.mean()) if observed.size else 0.0
                centre[column.name], scale[column.name] = 0.0, 1.0
                continue
            if column.center is not None and column.scale is not None:
                fill[column.name] = centre[column.name] = float(column.center)
                scale[column.name] = float(column.scale)
                continue
            fill[column.name] = float(np.median(observed)) if observed.size else 0.0
            centre[column.name] = float(observed.mean()) if observed.size else 0.0
            spread = float(observed.std()) if observed.size > 1 else 0.0
            scale[column.name] = spread if spread > 0 else 1.0
        return cls(schema, fill, centre, scale)

    def transform(self, table: LabeledTable) -> np.ndarray:
        """The model inputs of ``table``: a float32 matrix with ``schema.num_features`` columns."""
        blocks = []
        for column in self.schema.columns:
            values = table.features[column.name]
            if column.type == "categorical":
                blocks.append(
                    np.stack(
                        [
                            (values == category).fillna(False).to_numpy(dtype=np.float32)
                            for category in column.categories
                        ],
                        axis=1,
                    )
                )
                continue
            filled = values.fillna(self.fill[column.name]).to_numpy(dtype=np.float64)
            blocks.append(((filled - self.centre[column.name]) / self.scale[column.name])[:, None])
        return np.concatenate(blocks, axis=1).astype(np.float32)
