"""The tabular app's ServerApp: a Flower strategy from its run config, wrapped with the ledger.

It reads its own settings (``tabular_app.settings``) from the run config, builds the
Flower strategy they name, makes the initial model — its shape from the sites' schema, its
weights from ``model-seed``, so anyone can re-create it — and starts the strategy wrapped by
``Ledger.from_context``, which reads the ``fedledger.*`` keys.
"""

from pathlib import Path

from flwr.app import Array, ArrayRecord, ConfigRecord, Context
from flwr.serverapp import Grid, ServerApp

from fedledger.coordinator import Ledger
from tabular_app import task_keys
from tabular_app.models import TabularClassifier, model_arrays
from tabular_app.schema import Schema
from tabular_app.settings import FederationSettings
from tabular_app.strategies import build_strategy

app = ServerApp()


def client_config(settings: FederationSettings) -> ConfigRecord:
    """What every client needs to know to train and evaluate like the others."""
    config = ConfigRecord(
        {
            task_keys.LOCAL_EPOCHS: settings.local_epochs,
            task_keys.BATCH_SIZE: settings.batch_size,
            task_keys.LEARNING_RATE: settings.learning_rate,
            task_keys.MOMENTUM: settings.momentum,
            task_keys.HIDDEN_UNITS: settings.hidden_units,
            task_keys.MODEL_SEED: settings.model_seed,
            task_keys.TEST_FRACTION: settings.test_fraction,
            task_keys.SPLIT_SEED: settings.split_seed,
        }
    )
    if settings.data_dir:
        config[task_keys.SIMULATION_DATA_DIR] = settings.data_dir
    return config


def initial_arrays(settings: FederationSettings) -> ArrayRecord:
    """A freshly initialised classifier for the sites' schema: its weights depend only on its
    shape and ``model-seed``."""
    schema = Schema.load(Path(settings.schema))
    model = TabularClassifier.initialised(schema.num_features, settings.hidden_units, settings.model_seed)
    arrays = model_arrays(model)
    return ArrayRecord({name: Array(arrays[name]) for name in sorted(arrays)})


def model_description(settings: FederationSettings) -> dict[str, str | int]:
    """The model, as the run configuration records it."""
    return {"architecture": "TabularClassifier", "hidden_units": settings.hidden_units, "seed": settings.model_seed}


@app.main()
def main(grid: Grid, context: Context) -> None:
    settings = FederationSettings.from_run_config(context.run_config)
    strategy = Ledger.from_context(context, model=model_description(settings)).wrap(build_strategy(settings))
    strategy.start(
        grid=grid,
        initial_arrays=initial_arrays(settings),
        num_rounds=settings.num_server_rounds,
        timeout=settings.round_timeout,
        train_config=client_config(settings),
        evaluate_config=client_config(settings),
    )
