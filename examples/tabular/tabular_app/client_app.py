"""The tabular task's Flower ClientApp: train on local records, evaluate; ``ledger_mod`` signs.

Node config of a real install: ``data-path`` (CSV or Parquet), ``schema-path`` (see
``tabular_app.schema``) and ``keystore`` (password in ``$FEDLEDGER_KEYSTORE_PASSWORD``). In a
simulation, each virtual node finds its data file and key from its ``partition-id``.
"""

from logging import ERROR

import numpy as np
import torch
from Crypto.Hash import keccak
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Error, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.clientapp.typing import ClientAppCallable
from flwr.common.constant import ErrorCode
from flwr.supercore import log

from fedledger.client import ledger_mod
from fedledger.coordinator import SettingsError
from tabular_app import task_keys
from tabular_app.models import TabularClassifier, model_arrays
from tabular_app.site import LocalSite, data_paths, load_site
from tabular_app.training import TrainingSettings, evaluate, train


def reply_with_site_errors(message: Message, context: Context, call_next: ClientAppCallable) -> Message:
    """Answer with an error reply naming what is wrong when this site's data or schema cannot be used
    (a missing file, a column the schema does not describe): the coordinator records the reason, and
    the SuperNode's log gets one line instead of a traceback."""
    try:
        return call_next(message, context)
    except SettingsError as error:
        log(ERROR, "%s", error)
        return Message(Error(code=ErrorCode.CLIENT_APP_RAISED_EXCEPTION, reason=str(error)), reply_to=message)


app = ClientApp(mods=[reply_with_site_errors, ledger_mod])


def local_site(context: Context, config: ConfigRecord) -> LocalSite:
    torch.set_num_threads(1)
    data_path, schema_path = data_paths(context.node_config, config)
    return load_site(
        data_path,
        schema_path,
        float(config[task_keys.TEST_FRACTION]),
        int(config[task_keys.SPLIT_SEED]),
    )


def _received_arrays(message: Message) -> dict[str, np.ndarray]:
    return {name: array.numpy() for name, array in message.content[task_keys.ARRAYS].items()}


def _as_record(arrays: dict[str, np.ndarray]) -> ArrayRecord:
    return ArrayRecord({name: Array(arrays[name]) for name in sorted(arrays)})


def training_update(
    message: Message, context: Context, site: LocalSite | None = None
) -> tuple[dict[str, np.ndarray], int, float]:
    """Train the received model on this site's rows (or on ``site``'s); returns the arrays (in the
    dtypes received), the number of training examples and the training loss."""
    config = message.content[task_keys.CONFIG]
    site = site or local_site(context, config)
    received = _received_arrays(message)
    model = TabularClassifier.from_arrays(received)
    settings = TrainingSettings(
        local_epochs=int(config[task_keys.LOCAL_EPOCHS]),
        batch_size=int(config[task_keys.BATCH_SIZE]),
        learning_rate=float(config[task_keys.LEARNING_RATE]),
        momentum=float(config[task_keys.MOMENTUM]),
        proximal_mu=float(config.get(task_keys.PROXIMAL_MU, 0.0)),
    )
    seed_text = f"{config[task_keys.SPLIT_SEED]} {config[task_keys.SERVER_ROUND]} {site.source}"
    seed = int.from_bytes(keccak.new(data=seed_text.encode(), digest_bits=256).digest()[:4], "big")
    loss = train(model, site.train_inputs, site.train_labels, settings, seed)
    trained = {name: value.astype(received[name].dtype) for name, value in model_arrays(model).items()}
    return trained, len(site.train_labels), loss


def training_reply(message: Message, arrays: dict[str, np.ndarray], num_examples: int, loss: float) -> Message:
    """The reply to a training request: the arrays, the example count and the training loss
    (``ledger_mod`` signs it when the coordinator runs a ledger)."""
    content = RecordDict(
        {
            task_keys.ARRAYS: _as_record(arrays),
            task_keys.METRICS: MetricRecord({task_keys.NUM_EXAMPLES: num_examples, task_keys.TRAIN_LOSS: loss}),
        }
    )
    return Message(content, reply_to=message)


@app.train()
def train_round(message: Message, context: Context) -> Message:
    """Train on local rows and reply with the update."""
    arrays, num_examples, loss = training_update(message, context)
    return training_reply(message, arrays, num_examples, loss)


@app.evaluate()
def evaluate_round(message: Message, context: Context) -> Message:
    """Evaluate the received model on this site's test rows."""
    config = message.content[task_keys.CONFIG]
    site = local_site(context, config)
    result = evaluate(TabularClassifier.from_arrays(_received_arrays(message)), site.test_inputs, site.test_labels)
    metrics = MetricRecord(
        {
            task_keys.NUM_EXAMPLES: result.examples,
            task_keys.EVAL_LOSS: result.loss,
            task_keys.EVAL_ACCURACY: result.accuracy,
        }
    )
    return Message(RecordDict({task_keys.METRICS: metrics}), reply_to=message)
