"""Misbehaving simulated clients.

*Faults* send replies the coordinator's validation must reject (bad signatures, wrong shapes,
replays, garbage, ...) or none at all. *Attacks* are sent by registered participants with valid
signatures: poisoned or free-riding updates that only the anomaly detector, the contribution scores
and robust strategies can catch. The honest ClientApp of ``fedledger.client.app`` serves every other
partition and request.
"""

import time
from collections.abc import Callable, Mapping
from dataclasses import replace

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from fedledger import messages
from fedledger.client.app import (
    evaluate_round,
    initial_model,
    local_site,
    reply_with_site_errors,
    signed_reply,
    train_round,
    training_update,
)
from fedledger.client.identity import participant_address
from fedledger.client.site import PARTITION_ID

FAULTS = (
    "nan",  # NaN in the update
    "wrong-shape",  # an array of the wrong shape
    "bad-signature",  # a signature altered after signing
    "unregistered-key",  # signed by a key the registry does not know
    "stale-base",  # trained from a model other than the current global model
    "replay",  # resends its previous round's reply, signature and all
    "duplicate",  # signs with partition 0's key, so that participant sends two updates
    "garbage",  # malformed replies of many layouts (see GARBAGE), and no model when asked for the initial one
    "hang",  # answers every training request only after HANG_SECONDS: past a short round timeout
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
HANG_SECONDS = 25.0
GARBAGE_SEED = 1_122
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

    @app.query()
    def query(message: Message, context: Context) -> Message:
        if behaviours.get(int(context.node_config[PARTITION_ID])) == "garbage":
            return Message(RecordDict({messages.METRICS_RECORD: MetricRecord({"not-a-model": 1})}), reply_to=message)
        return initial_model(message, context)

    @app.train()
    def train(message: Message, context: Context) -> Message:
        behaviour = behaviours.get(int(context.node_config[PARTITION_ID]))
        if behaviour is None:
            return train_round(message, context)
        if behaviour in ATTACKS:
            return _attack(behaviour, message, context)
        if behaviour == "garbage":
            return _garbage("train", message, context)
        if behaviour == "hang":
            time.sleep(HANG_SECONDS)
            return train_round(message, context)
        return _fault(behaviour, message, context)

    @app.evaluate()
    def evaluate(message: Message, context: Context) -> Message:
        if behaviours.get(int(context.node_config[PARTITION_ID])) == "garbage":
            return _garbage("evaluate", message, context)
        return evaluate_round(message, context)

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
        config[messages.CONFIG_KEY_SEED] = UNREGISTERED_KEY_SEED
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


# Garbage: a fixed family of malformed layouts, one per request --------------------------------------

Layout = Callable[[Message, Context], Message]


def _update(message: Message, context: Context, change: Callable[[dict], dict] | None = None) -> Message:
    """A signed training reply without training: the received model nudged, then ``change``d."""
    arrays = {name: (value + np.float32(0.001)).astype(value.dtype) for name, value in _received(message).items()}
    return signed_reply(message, context, change(arrays) if change else arrays, 1, FAKE_LOSS)


def _edited(build: Callable[[Message, Context], Message], edit: Callable[[RecordDict], None]) -> Layout:
    def layout(message: Message, context: Context) -> Message:
        reply = build(message, context)
        edit(reply.content)
        return reply

    return layout


def _failing(message: Message, context: Context) -> Message:
    raise RuntimeError("garbage: the site's ClientApp failed")


def _scores(message: Message, context: Context) -> Message:
    """An evaluation reply without evaluating."""
    address = participant_address(context.node_config, message.content[messages.CONFIG_RECORD])
    content = RecordDict(
        {
            messages.METRICS_RECORD: MetricRecord(
                {messages.NUM_EXAMPLES: 1, messages.EVAL_LOSS: FAKE_LOSS, messages.EVAL_ACCURACY: 0.5}
            ),
            messages.LEDGER_RECORD: ConfigRecord({messages.PARTICIPANT: address}),
        }
    )
    return Message(content, reply_to=message)


def _set_metric(key: str, value: object) -> Callable[[RecordDict], None]:
    def edit(content: RecordDict) -> None:
        content[messages.METRICS_RECORD][key] = value

    return edit


def _corrupt_first_array(content: RecordDict) -> None:
    record = content[messages.ARRAYS_RECORD]
    name = sorted(record)[0]
    record[name] = Array(record[name].dtype, record[name].shape, record[name].stype, b"\x93NUMPY garbage")


#: Per phase, the malformed layouts a ``garbage`` site sends, by name.
GARBAGE: dict[str, dict[str, Layout]] = {
    "train": {
        "error": _failing,
        "second-array-record": _edited(_update, lambda content: content.__setitem__("more", ArrayRecord())),
        "no-metric-record": _edited(_update, lambda content: content.pop(messages.METRICS_RECORD)),
        "example-count-list": _edited(_update, _set_metric(messages.NUM_EXAMPLES, [1, 1])),
        "loss-list": _edited(_update, _set_metric(messages.TRAIN_LOSS, [0.5, 0.5])),
        "nan-loss": _edited(_update, _set_metric(messages.TRAIN_LOSS, float("nan"))),
        "extra-array": lambda message, context: _update(
            message, context, lambda arrays: {**arrays, "extra": np.zeros(3, np.float32)}
        ),
        "float64-arrays": lambda message, context: _update(
            message, context, lambda arrays: {name: value.astype(np.float64) for name, value in arrays.items()}
        ),
        "huge-array": lambda message, context: _update(
            message,
            context,
            lambda arrays: {**arrays, "huge": np.zeros(10 * sum(value.size for value in arrays.values()), np.float64)},
        ),
        "corrupt-array-bytes": _edited(_update, _corrupt_first_array),
        "no-ledger-record": _edited(_update, lambda content: content.pop(messages.LEDGER_RECORD)),
    },
    "evaluate": {
        "error": _failing,
        "no-accuracy": _edited(_scores, lambda content: content[messages.METRICS_RECORD].pop(messages.EVAL_ACCURACY)),
        "nan-loss": _edited(_scores, _set_metric(messages.EVAL_LOSS, float("nan"))),
        "accuracy-out-of-range": _edited(_scores, _set_metric(messages.EVAL_ACCURACY, 1.5)),
        "example-count-list": _edited(_scores, _set_metric(messages.NUM_EXAMPLES, [1, 1])),
        "second-metric-record": _edited(_scores, lambda content: content.__setitem__("more", MetricRecord())),
        "no-participant": _edited(_scores, lambda content: content.pop(messages.LEDGER_RECORD)),
    },
}


def garbage_layout(phase: str, round_number: int, partition_id: int) -> str:
    """The layout a ``garbage`` partition sends for ``phase`` (``train`` or ``evaluate``) in
    ``round_number``: each layout of the family once, in an order seeded by the partition, then
    again."""
    family = sorted(GARBAGE[phase])
    order = np.random.default_rng([GARBAGE_SEED, partition_id]).permutation(len(family))
    return family[order[(round_number - 1) % len(family)]]


def _garbage(phase: str, message: Message, context: Context) -> Message:
    round_number = int(message.content[messages.CONFIG_RECORD][messages.CONFIG_ROUND])
    layout = garbage_layout(phase, round_number, int(context.node_config[PARTITION_ID]))
    return GARBAGE[phase][layout](message, context)
