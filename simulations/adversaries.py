"""Misbehaving simulated clients.

*Faults* send replies the coordinator's validation must reject (bad signatures, wrong shapes,
replays, garbage, ...) or none at all. *Attacks* are sent by registered participants with valid
signatures: poisoned or free-riding updates that only the anomaly detector, the contribution scores
and robust strategies can catch. The honest ClientApp of ``tabular_app.client_app`` serves every other
partition and request.

The colluding attacks (``alie``, ``min-max``, ``min-sum``) know every site's honest update of the
round: each colluder trains, as the honest ClientApp would, on every partition of the simulation's
data directory (once per process and round); ``fedledger.simulations.collusion`` holds their
arithmetic. The ``sybil`` partitions are one party: the lowest trains, the others send copies.

The adversaries run on top of the real client mod, ``ledger_mod``, as a site would: their handlers
return unsigned replies, which the mod signs honestly; what a site does to a request before the mod
sees it, or to a reply after the mod signed it, ``tampering_mod`` does, placed before ``ledger_mod``.
"""

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from flwr.app import Array, ArrayRecord, Context, Message, MessageType, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.clientapp.typing import ClientAppCallable, Mod

from fedledger import messages
from fedledger.client.identity import PARTITION_ID
from fedledger.client.mod import ledger_mod
from fedledger.encoding import model_hash
from fedledger.simulations import collusion
from fedledger.simulations.scenarios import PreparedData
from tabular_app import task_keys
from tabular_app.client_app import (
    evaluate_round,
    local_site,
    reply_with_site_errors,
    train_round,
    training_reply,
    training_update,
)

FAULTS = (
    "nan",  # NaN in the update
    "wrong-shape",  # an array of the wrong shape
    "bad-signature",  # a signature altered after signing
    "unregistered-key",  # signed by a key the registry does not know
    "stale-base",  # trained from a model other than the current global model
    "replay",  # resends its previous round's reply, signature and all
    "duplicate",  # signs with partition 0's key, so that participant sends two updates
    "garbage",  # malformed replies of many layouts (see GARBAGE)
    "hang",  # answers every training request only after HANG_SECONDS: past a short round timeout
)
ATTACKS = (
    "sign-flip",  # sends base - delta: pushes the model the opposite way
    "scaling",  # model replacement: sends base + 10 * delta
    "label-flip",  # trains honestly on its rows with every label inverted
    "gaussian-noise",  # sends the base model plus Gaussian noise (standard deviation 0.5), no training
    "free-rider",  # sends the base model back, plus noise of standard deviation 1e-4, no training
    "alie",  # colluders all send the honest mean minus z_max standard deviations ("A Little Is Enough")
    "min-max",  # colluders all send mean - gamma * std, no further from any honest update than they are apart
    "min-sum",  # the same, bounding the sum of squared distances to the honest updates instead
    "sybil",  # one party: the lowest partition trains, the others send its update plus 1e-3 noise
)
COLLUDING = ("alie", "min-max", "min-sum")
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
    app = ClientApp(mods=[reply_with_site_errors, tampering_mod(behaviours), ledger_mod])

    @app.train()
    def train(message: Message, context: Context) -> Message:
        behaviour = behaviours.get(_partition(context))
        if behaviour in COLLUDING:
            return _colluding_update(behaviour, message, context, list(behaviours.values()).count(behaviour))
        if behaviour == "sybil":
            return _sybil_update(message, context, min(p for p, name in behaviours.items() if name == "sybil"))
        if behaviour in ATTACKS:
            return _attack(behaviour, message, context)
        if behaviour == "garbage":
            return _garbage("train", message, context).build(message, context)
        if behaviour == "hang":
            time.sleep(HANG_SECONDS)
        if behaviour in ("nan", "wrong-shape"):
            return _spoiled_update(behaviour, message, context)
        return train_round(message, context)

    @app.evaluate()
    def evaluate(message: Message, context: Context) -> Message:
        if behaviours.get(_partition(context)) == "garbage":
            return _garbage("evaluate", message, context).build(message, context)
        return evaluate_round(message, context)

    return app


def tampering_mod(behaviours: Mapping[int, str]) -> Mod:
    """What a misbehaving site does around ``ledger_mod``: changes the request before the mod
    hashes and signs (``stale-base``, ``unregistered-key``, ``duplicate``) and the reply after
    (``bad-signature``, ``replay``, the ``garbage`` layouts)."""

    def tamper(message: Message, context: Context, call_next: ClientAppCallable) -> Message:
        behaviour = behaviours.get(_partition(context))
        phase = message.metadata.message_type
        if behaviour == "garbage" and phase in (MessageType.TRAIN, MessageType.EVALUATE):
            layout = _garbage(phase, message, context)
            reply = call_next(message, context)
            if layout.tamper is not None and not reply.has_error():
                layout.tamper(reply.content)
            return reply
        if phase != MessageType.TRAIN or behaviour not in FAULTS:
            return call_next(message, context)
        context = _disguised(behaviour, message, context)
        reply = call_next(message, context)
        if behaviour == "bad-signature" and not reply.has_error():
            ledger = reply.content[messages.LEDGER_RECORD]
            signature = bytearray(ledger[messages.SIGNATURE])
            signature[5] ^= 0xFF
            ledger[messages.SIGNATURE] = bytes(signature)
        if behaviour == "replay" and not reply.has_error():
            return _replay(message, context, reply)
        return reply

    return tamper


def _partition(context: Context) -> int:
    return int(context.node_config[PARTITION_ID])


def _received(message: Message) -> dict[str, np.ndarray]:
    return {name: array.numpy() for name, array in message.content[messages.ARRAYS_RECORD].items()}


def _as_partition(context: Context, partition_id: int) -> Context:
    """``context`` as partition ``partition_id``'s node would have it (same state)."""
    node_config = {**context.node_config, PARTITION_ID: partition_id}
    return Context(context.run_id, context.node_id, node_config, context.state, context.run_config)


def _round(message: Message) -> int:
    return int(message.content[messages.CONFIG_RECORD][messages.CONFIG_ROUND])


def _rng(message: Message, context: Context) -> np.random.Generator:
    """Randomness seeded by the round and the partition."""
    return np.random.default_rng([_round(message), _partition(context)])


def _noise(message: Message, context: Context, shape: tuple[int, ...], std: float) -> np.ndarray:
    return _rng(message, context).normal(scale=std, size=shape)


def _attack(attack: str, message: Message, context: Context) -> Message:
    base = _received(message)
    config = message.content[messages.CONFIG_RECORD]
    if attack == "label-flip":
        site = local_site(context, config)
        arrays, examples, loss = training_update(message, context, replace(site, train_labels=1 - site.train_labels))
        return training_reply(message, arrays, examples, loss)
    site = local_site(context, config)
    examples = len(site.train_labels)
    if attack in ("gaussian-noise", "free-rider"):
        std = NOISE_STD if attack == "gaussian-noise" else FREE_RIDER_NOISE_STD
        arrays = {
            name: (value + _noise(message, context, value.shape, std)).astype(value.dtype)
            for name, value in base.items()
        }
        return training_reply(message, arrays, examples, FAKE_LOSS)
    trained, examples, loss = training_update(message, context)
    factor = -1.0 if attack == "sign-flip" else BOOST
    arrays = {name: (base[name] + factor * (trained[name] - base[name])).astype(base[name].dtype) for name in base}
    return training_reply(message, arrays, examples, loss)


@dataclass(frozen=True)
class HonestRound:
    """What every site of the simulation sends for one training request when honest: the deltas
    (rows, in partition order), the example counts and the training losses."""

    deltas: np.ndarray
    examples: tuple[int, ...]
    losses: tuple[float, ...]


#: This process's ``HonestRound``, by (round, base model hash): one entry, the latest request's.
_HONEST_ROUNDS: dict[tuple[int, bytes], HonestRound] = {}


def honest_round(message: Message, context: Context) -> HonestRound:
    """Every site's honest reply to ``message``, from training on each partition of the
    simulation's data directory exactly as its own ClientApp does (computed once per process and
    round).

    Raises:
        ValueError: the request names no simulation data directory (the attack runs only in simulations).
    """
    config = message.content[messages.CONFIG_RECORD]
    base = _received(message)
    key = (_round(message), model_hash(base))
    if key not in _HONEST_ROUNDS:
        directory = config.get(task_keys.SIMULATION_DATA_DIR)
        if not isinstance(directory, str):
            raise ValueError(
                f"colluding attacks need every site's data; the request has no {task_keys.SIMULATION_DATA_DIR}"
            )
        partitions = range(len(PreparedData.load(Path(directory)).sites))
        replies = [training_update(message, _as_partition(context, partition)) for partition in partitions]
        base_vector = collusion.flatten(base)
        _HONEST_ROUNDS.clear()
        _HONEST_ROUNDS[key] = HonestRound(
            np.stack([collusion.flatten(arrays) - base_vector for arrays, _, _ in replies]),
            tuple(examples for _, examples, _ in replies),
            tuple(loss for _, _, loss in replies),
        )
    return _HONEST_ROUNDS[key]


def _colluding_update(attack: str, message: Message, context: Context, colluders: int) -> Message:
    """The update every colluder sends (``alie``, ``min-max`` or ``min-sum``), with its own example
    count and training loss."""
    known = honest_round(message, context)
    if attack == "alie":
        delta = collusion.alie_delta(known.deltas, collusion.alie_z(len(known.deltas), colluders))
    else:
        delta = collusion.agr_agnostic_delta(known.deltas, attack)
    base = _received(message)
    arrays = collusion.unflatten(collusion.flatten(base) + delta, base)
    partition = _partition(context)
    return training_reply(message, arrays, known.examples[partition], known.losses[partition])


def _sybil_update(message: Message, context: Context, trainer: int) -> Message:
    """The ``trainer`` partition trains honestly; every other identity of the party sends that
    update plus noise (``collusion.sybil_copy``), claiming the trainer's example count."""
    if _partition(context) == trainer:
        return train_round(message, context)
    arrays, examples, loss = training_update(message, _as_partition(context, trainer))
    base = _received(message)
    base_vector = collusion.flatten(base)
    copy = collusion.sybil_copy(collusion.flatten(arrays) - base_vector, _rng(message, context))
    return training_reply(message, collusion.unflatten(base_vector + copy, base), examples, loss)


def _spoiled_update(fault: str, message: Message, context: Context) -> Message:
    """A trained update with a NaN or one array of the wrong shape, which ``ledger_mod`` signs as sent."""
    arrays, num_examples, loss = training_update(message, context)
    first = sorted(arrays)[0]
    if fault == "nan":
        arrays[first] = arrays[first].copy()
        arrays[first].flat[0] = np.nan
    if fault == "wrong-shape":
        arrays[first] = arrays[first][:-1]
    return training_reply(message, arrays, num_examples, loss)


def _disguised(fault: str, message: Message, context: Context) -> Context:
    """The request and context as ``ledger_mod`` and the app are to see them: from a global model
    other than the current one (``stale-base``, changed in place), for a key the registry does not
    know (``unregistered-key``), or as partition 0 (``duplicate``)."""
    if fault == "stale-base":
        received = message.content[messages.ARRAYS_RECORD]
        message.content[messages.ARRAYS_RECORD] = ArrayRecord(
            {name: Array(received[name].numpy() + np.float32(0.01)) for name in received}
        )
    if fault == "unregistered-key":
        message.content[messages.CONFIG_RECORD][messages.CONFIG_KEY_SEED] = UNREGISTERED_KEY_SEED
    if fault == "duplicate":
        return _as_partition(context, 0)
    return context


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


@dataclass(frozen=True)
class Layout:
    """One malformed reply: ``build`` is what the app's handler returns (``ledger_mod`` then signs
    or tags it), ``tamper`` what ``tampering_mod`` does to the reply after that."""

    build: Callable[[Message, Context], Message]
    tamper: Callable[[RecordDict], None] | None = None


def _update(message: Message, context: Context, change: Callable[[dict], dict] | None = None) -> Message:
    """A training reply without training: the received model nudged, then ``change``d."""
    arrays = {name: (value + np.float32(0.001)).astype(value.dtype) for name, value in _received(message).items()}
    return training_reply(message, change(arrays) if change else arrays, 1, FAKE_LOSS)


def _changed_update(change: Callable[[dict], dict]) -> Callable[[Message, Context], Message]:
    return lambda message, context: _update(message, context, change)


def _failing(message: Message, context: Context) -> Message:
    raise RuntimeError("garbage: the site's ClientApp failed")


def _scores(message: Message, context: Context) -> Message:
    """An evaluation reply without evaluating."""
    metrics = MetricRecord({messages.NUM_EXAMPLES: 1, task_keys.EVAL_LOSS: FAKE_LOSS, task_keys.EVAL_ACCURACY: 0.5})
    return Message(RecordDict({messages.METRICS_RECORD: metrics}), reply_to=message)


def _set_metric(key: str, value: object) -> Callable[[RecordDict], None]:
    def edit(content: RecordDict) -> None:
        content[messages.METRICS_RECORD][key] = value

    return edit


def _drop_metric(key: str) -> Callable[[RecordDict], None]:
    def edit(content: RecordDict) -> None:
        content[messages.METRICS_RECORD].pop(key)

    return edit


def _with_huge_array(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``arrays`` and one more, ten times as large as all of them together."""
    return {**arrays, "huge": np.zeros(10 * sum(value.size for value in arrays.values()), np.float64)}


def _corrupt_first_array(content: RecordDict) -> None:
    record = content[messages.ARRAYS_RECORD]
    name = sorted(record)[0]
    record[name] = Array(record[name].dtype, record[name].shape, record[name].stype, b"\x93NUMPY garbage")


#: Per phase, the malformed layouts a ``garbage`` site sends, by name.
GARBAGE: dict[str, dict[str, Layout]] = {
    "train": {
        "error": Layout(_failing),
        "second-array-record": Layout(_update, lambda content: content.__setitem__("more", ArrayRecord())),
        "second-metric-record": Layout(_update, lambda content: content.__setitem__("more", MetricRecord())),
        "no-metric-record": Layout(_update, lambda content: content.pop(messages.METRICS_RECORD)),
        "example-count-list": Layout(_update, _set_metric(messages.NUM_EXAMPLES, [1, 1])),
        "nan-loss": Layout(_update, _set_metric(task_keys.TRAIN_LOSS, float("nan"))),
        "extra-array": Layout(_changed_update(lambda arrays: {**arrays, "extra": np.zeros(3, np.float32)})),
        "float64-arrays": Layout(
            _changed_update(lambda arrays: {name: value.astype(np.float64) for name, value in arrays.items()})
        ),
        "huge-array": Layout(_changed_update(_with_huge_array)),
        "corrupt-array-bytes": Layout(_update, _corrupt_first_array),
        "no-ledger-record": Layout(_update, lambda content: content.pop(messages.LEDGER_RECORD)),
    },
    "evaluate": {
        "error": Layout(_failing),
        "no-example-count": Layout(
            _scores, lambda content: content[messages.METRICS_RECORD].pop(messages.NUM_EXAMPLES)
        ),
        "nan-loss": Layout(_scores, _set_metric(task_keys.EVAL_LOSS, float("nan"))),
        "no-metric-record": Layout(_scores, lambda content: content.pop(messages.METRICS_RECORD)),
        "example-count-list": Layout(_scores, _set_metric(messages.NUM_EXAMPLES, [1, 1])),
        "second-metric-record": Layout(_scores, lambda content: content.__setitem__("more", MetricRecord())),
        "no-participant": Layout(_scores, lambda content: content.pop(messages.LEDGER_RECORD)),
    },
}


def garbage_layout(phase: str, round_number: int, partition_id: int) -> str:
    """The layout a ``garbage`` partition sends for ``phase`` (``train`` or ``evaluate``) in
    ``round_number``: each layout of the family once, in an order seeded by the partition, then
    again."""
    family = sorted(GARBAGE[phase])
    order = np.random.default_rng([GARBAGE_SEED, partition_id]).permutation(len(family))
    return family[order[(round_number - 1) % len(family)]]


def _garbage(phase: str, message: Message, context: Context) -> Layout:
    return GARBAGE[phase][garbage_layout(phase, _round(message), _partition(context))]
