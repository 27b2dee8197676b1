"""``fedledger check-data``: check a site's data file against the federation's schema before joining.

Loaded by the ``fedledger`` command through the ``fedledger.commands`` entry point.
"""

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

console = Console(soft_wrap=True)


def check_data(
    data: Annotated[Path, typer.Option(help="The site's records: a .csv or .parquet file.")],
    schema: Annotated[Path, typer.Option(help="The federation's schema file (JSON).")],
) -> None:
    """Check DATA against SCHEMA exactly as the ClientApp will before training, and summarise it.

    A mismatch names the column (and the row and value) to fix. Nothing leaves this machine.
    """
    from tabular_app.data import load_table
    from tabular_app.schema import Schema

    table = load_table(data, Schema.load(schema))
    missing = table.features.isna().sum()
    console.print(f"{data}: {len(table)} rows match the schema ({len(table.features.columns)} feature columns)")
    console.print(f"target: {int(table.labels.sum())} positive, {int(len(table) - table.labels.sum())} negative")
    for column, count in missing[missing > 0].items():
        console.print(f"  {column}: {count} missing values (filled from the training rows' statistics)")
