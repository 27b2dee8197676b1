"""A participant's own data, found from its node config (or, in a simulation, its partition id)."""

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
from flwr.app import ConfigRecord
from flwr.app.user_config import UserConfig

from tabular_app import task_keys
from tabular_app.data import load_table, train_test_split
from tabular_app.preprocessing import Preprocessing
from tabular_app.schema import Schema, SchemaError

#: Node config key Flower's simulation gives every virtual node.
PARTITION_ID = "partition-id"
#: Node config keys of a real install.
DATA_PATH = "data-path"
SCHEMA_PATH = "schema-path"


@dataclass(frozen=True)
class LocalSite:
    """A site's records, split into train and test, as model inputs fitted on the train rows."""

    source: Path
    schema: Schema
    train_inputs: np.ndarray
    train_labels: np.ndarray
    test_inputs: np.ndarray
    test_labels: np.ndarray


def data_paths(node_config: UserConfig, config: ConfigRecord) -> tuple[Path, Path]:
    """The data file and schema file of this node.

    A real install names them in its node config; a simulated node reads the file of its
    partition in the simulation's data directory.

    Raises:
        SchemaError: neither is configured.
    """
    if DATA_PATH in node_config:
        if SCHEMA_PATH not in node_config:
            raise SchemaError(f"node config names {DATA_PATH!r} but not {SCHEMA_PATH!r}")
        return Path(str(node_config[DATA_PATH])), Path(str(node_config[SCHEMA_PATH]))
    data_dir = config.get(task_keys.SIMULATION_DATA_DIR)
    if isinstance(data_dir, str) and PARTITION_ID in node_config:
        directory = Path(data_dir)
        return directory / f"site-{int(node_config[PARTITION_ID]):04d}.csv", directory / "schema.json"
    raise SchemaError(f"this node has no data: set {DATA_PATH!r} and {SCHEMA_PATH!r} in its node config")


@cache
def load_site(data_path: Path, schema_path: Path, test_fraction: float, split_seed: int) -> LocalSite:
    """Read, check, split and preprocess the site's records (once per process)."""
    schema = Schema.load(schema_path)
    train, test = train_test_split(load_table(data_path, schema), test_fraction, split_seed)
    preprocessing = Preprocessing.fit(schema, train)
    return LocalSite(
        data_path,
        schema,
        preprocessing.transform(train),
        train.labels,
        preprocessing.transform(test),
        test.labels,
    )
