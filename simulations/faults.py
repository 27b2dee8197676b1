"""Misbehaving simulated clients: each fault produces one kind of bad reply the coordinator must reject.

The honest ClientApp of ``client.app`` is reused for everything but the faulty partitions'
training replies.
"""

from collections.abc import Mapping

import numpy as np
from flwr.app import Array, ArrayRecord, Context, Message, RecordDict
from flwr.clientapp import ClientApp

from client.app import evaluate_round, initial_model, signed_reply, train_round, training_update
from client.site import PARTITION_ID
from fedledger import messages

FAULTS = (
    "nan",  # NaN in the update
    "wrong-shape",  # an array of the wrong shape
    "bad-signature",  # a signature altered after signing
    "unregistered-key",  # signed by a key the registry does not know
    "stale-base",  # trained from a model other than the current global model
    "replay",  # resends its previous round's reply, signature and all
    "duplicate",  # signs with partition 0's key, so that participant sends two updates
)
UNREGISTERED_KEY_SEED = 987_654_321
_LAST_REPLY = "faults.last-reply"


def faulty_client_app(faults: Mapping[int, str]) -> ClientApp:
    """A ClientApp whose partitions in ``faults`` misbehave as named; the others are honest."""
    unknown = set(faults.values()) - set(FAULTS)
    if unknown:
        raise ValueError(f"unknown faults {sorted(unknown)}; known: {', '.join(FAULTS)}")
    app = ClientApp()
    app.query()(initial_model)
    app.evaluate()(evaluate_round)

    @app.train()
    def train(message: Message, context: Context) -> Message:
        fault = faults.get(int(context.node_config[PARTITION_ID]))
        if fault is None:
            return train_round(message, context)
        return _misbehave(fault, message, context)

    return app


def _misbehave(fault: str, message: Message, context: Context) -> Message:
    config = message.content[messages.CONFIG_RECORD]
    if fault == "stale-base":
        received = message.content[messages.ARRAYS_RECORD]
        message.content[messages.ARRAYS_RECORD] = ArrayRecord(
            {name: Array(received[name].numpy() + np.float32(0.01)) for name in received}
        )
    arrays, num_examples, loss = training_update(message, context)
    if fault == "nan":
        first = sorted(arrays)[0]
        arrays[first] = arrays[first].copy()
        arrays[first].flat[0] = np.nan
    if fault == "wrong-shape":
        first = sorted(arrays)[0]
        arrays[first] = arrays[first][:-1]
    node_config = dict(context.node_config)
    if fault == "unregistered-key":
        config[messages.CONFIG_SIMULATION_KEY_SEED] = UNREGISTERED_KEY_SEED
    if fault == "duplicate":
        node_config[PARTITION_ID] = 0
        context = Context(context.run_id, context.node_id, node_config, context.state, context.run_config)
    reply = signed_reply(message, context, arrays, num_examples, loss)
    if fault == "bad-signature":
        ledger = reply.content[messages.LEDGER_RECORD]
        signature = bytearray(ledger[messages.SIGNATURE])
        signature[5] ^= 0xFF
        ledger[messages.SIGNATURE] = bytes(signature)
    if fault == "replay":
        return _replay(message, context, reply)
    return reply


def _replay(message: Message, context: Context, reply: Message) -> Message:
    """Send the previous round's reply instead of this one (and remember this one)."""
    kept = (messages.ARRAYS_RECORD, messages.METRICS_RECORD, messages.LEDGER_RECORD)
    previous = {name: context.state.get(f"{_LAST_REPLY}.{name}") for name in kept}
    for name in kept:
        context.state[f"{_LAST_REPLY}.{name}"] = reply.content[name]
    if any(record is None for record in previous.values()):
        return reply
    return Message(RecordDict(previous), reply_to=message)
