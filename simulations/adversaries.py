"""Misbehaving simulated clients.

*Faults* send replies the coordinator's validation must reject (bad signatures, wrong shapes,
replays, ...). *Attacks* are sent by registered participants with valid signatures: poisoned or
free-riding updates that only the anomaly detector, the contribution scores and robust strategies
can catch. The honest ClientApp of ``client.app`` serves every other partition and request.
"""

from collections.abc import Mapping
from dataclasses import replace

import numpy as np
from flwr.app import Array, ArrayRecord, Context, Message, RecordDict
from flwr.clientapp import ClientApp

from client.app import (
    evaluate_round,
    initial_model,
    local_site,
    reply_with_site_errors,
    signed_reply,
    train_round,
    training_update,
)
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
ATTACKS = (
    "sign-flip",  # sends base - delta: pushes the model the opposite way
    "scaling",  # model replacement: sends base + 10 * delta
    "label-flip",  # trains honestly on its rows with every label inverted
    "gaussian-noise",  # sends the base model plus Gaussian noise (standard deviation 0.5), no training
    "free-rider",  # sends the base model back, plus noise of standard deviation 1e-4, no training
)
BOOST = 10.0
NOISE_STD = 0.5
FREE_RIDER_NOISE_STD = 1e-4
FAKE_LOSS = 0.5  # what updates that were never trained report as their training loss
UNREGISTERED_KEY_SEED = 987_654_321
_LAST_REPLY = "adversaries.last-reply"


def choose_attackers(clients: int, fraction: float, seed: int) -> list[int]:
    """``round(fraction * clients)`` partitions (at least one if ``fraction > 0``), drawn with ``seed``."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"the malicious fraction must be in [0, 1), got {fraction}")
    count = max(1, round(fraction * clients)) if fraction > 0 else 0
    return sorted(int(index) for index in np.random.default_rng(seed).choice(clients, size=count, replace=False))


def adversarial_client_app(behaviours: Mapping[int, str]) -> ClientApp:
    """A ClientApp whose partitions in ``behaviours`` misbehave as named; the others are honest."""
    unknown = set(behaviours.values()) - set(FAULTS) - set(ATTACKS)
    if unknown:
        raise ValueError(f"unknown behaviours {sorted(unknown)}; known: {', '.join(FAULTS + ATTACKS)}")
    app = ClientApp(mods=[reply_with_site_errors])
    app.query()(initial_model)
    app.evaluate()(evaluate_round)

    @app.train()
    def train(message: Message, context: Context) -> Message:
        behaviour = behaviours.get(int(context.node_config[PARTITION_ID]))
        if behaviour is None:
            return train_round(message, context)
        if behaviour in ATTACKS:
            return _attack(behaviour, message, context)
        return _fault(behaviour, message, context)

    return app


def _received(message: Message) -> dict[str, np.ndarray]:
    return {name: array.numpy() for name, array in message.content[messages.ARRAYS_RECORD].items()}


def _noise(message: Message, context: Context, shape: tuple[int, ...], std: float) -> np.ndarray:
    round_number = int(message.content[messages.CONFIG_RECORD][messages.CONFIG_ROUND])
    rng = np.random.default_rng([round_number, int(context.node_config[PARTITION_ID])])
    return rng.normal(scale=std, size=shape)


def _attack(attack: str, message: Message, context: Context) -> Message:
    base = _received(message)
    config = message.content[messages.CONFIG_RECORD]
    if attack == "label-flip":
        site = local_site(context, config)
        arrays, examples, loss = training_update(message, context, replace(site, train_labels=1 - site.train_labels))
        return signed_reply(message, context, arrays, examples, loss)
    site = local_site(context, config)
    examples = len(site.train_labels)
    if attack in ("gaussian-noise", "free-rider"):
        std = NOISE_STD if attack == "gaussian-noise" else FREE_RIDER_NOISE_STD
        arrays = {
            name: (value + _noise(message, context, value.shape, std)).astype(value.dtype)
            for name, value in base.items()
        }
        return signed_reply(message, context, arrays, examples, FAKE_LOSS)
    trained, examples, loss = training_update(message, context)
    factor = -1.0 if attack == "sign-flip" else BOOST
    arrays = {name: (base[name] + factor * (trained[name] - base[name])).astype(base[name].dtype) for name in base}
    return signed_reply(message, context, arrays, examples, loss)


def _fault(fault: str, message: Message, context: Context) -> Message:
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
