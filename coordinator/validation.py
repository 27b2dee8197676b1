"""What a valid reply is: the one place that decides it, for training and for evaluation replies.

A training reply is accepted only if it is well formed; signed for this chain, registry, run and
round, from the current global model; its arrays have the global model's names, shapes and dtypes
and only finite values, within a distance of the global model that float64 can sum; its example
count (the MetricRecord entry named by the round's weight key, ``num-examples`` unless the
wrapped strategy weights by another key) is a positive integer; its other metrics are finite
numbers or lists of them; its signer is a registered, active participant; and that participant
sent nothing else this round. An evaluation reply is accepted only if it names a registered,
active participant, carries a positive example count and only finite metrics, and its participant
sent no other evaluation reply this round. Which metrics a reply reports is the app's business:
no metric other than the example count is required. Every failure is kept with a
machine-readable reason and a sentence saying what exactly was wrong.

A reply is data from a site that may be hostile. Nothing in reading it may raise: any exception
while reading it is a ``malformed`` rejection that quotes the exception. The registry read that
says whether a participant is active is the coordinator's own: if it fails (the chain is
unreachable), that failure propagates and is never blamed on the site. The work a reply can cause
is bounded: arrays far larger than the model's are rejected before they are decoded, and so is a
MetricRecord of more than ``MAX_METRICS`` metrics, a key longer than ``MAX_METRIC_KEY_LENGTH``
characters or a list longer than ``MAX_METRIC_LIST_LENGTH`` values (none of its metrics is recorded).

Accepted replies are *normalised* before the wrapped strategy sees them (:func:`for_strategy`):
it receives the arrays sorted by name and a MetricRecord of exactly the metrics every accepted
reply of the round reports in the same form, so every accepted reply of a round has the layout
Flower's consistency check demands, whatever else a site sent or left out.
"""

import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Self, TypeVar

import numpy as np
from eth_utils import is_address, to_checksum_address
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict

from fedledger import messages
from fedledger.aggregation import WeightedUpdate
from fedledger.contribution import AnomalyStatistics, delta_gram
from fedledger.encoding import encode_model
from fedledger.hashing import HASH_SIZE, keccak256, to_hex
from fedledger.manifest import SignedFields
from fedledger.signing import (
    PRIVACY_PARAMETER_SCALE,
    SIGNATURE_SIZE,
    InvalidSignature,
    SigningDomain,
    UpdateMessage,
    recover_update_signer,
)

#: Rejection reasons, in the order the checks run. Evaluation replies use the same codes.
REASONS = (
    "client-error",  # the node answered with an error instead of an update
    "malformed",  # records or fields missing, of the wrong type (a metric not a number) or too many, or unreadable
    "wrong-run",  # signed for another run
    "wrong-round",  # signed for another round: a replay or a late reply
    "stale-base-model",  # trained from a model other than the current global model
    "wrong-privacy",  # signed for other local-DP parameters than the run's (or none where the run has them)
    "bad-example-count",  # not a positive integer
    "wrong-arrays",  # names, shapes or dtypes differ from the global model, or far more bytes than it
    "hash-mismatch",  # the signed update hash is not the hash of the arrays sent
    "bad-signature",  # the signature does not recover to the participant named
    "unregistered",  # the signer is not on the registry's allow-list
    "inactive",  # the signer was deactivated
    "non-finite",  # NaN or infinite values in the arrays or the metrics
    "duplicate-participant",  # more than one reply from one participant this round
    "anomalous",  # flagged by the anomaly detector (fedledger.contribution)
    "round-failed",  # valid, but the round had too few valid updates to aggregate
)

#: A reply's arrays may hold at most this many times the bytes of the global model's values, plus
#: ``ARRAY_HEADER_BYTES`` for each of the model's arrays; beyond, they are not read.
MAX_SIZE_RATIO = 2
#: What each of the model's arrays is allowed on top of its values: its serialisation header.
ARRAY_HEADER_BYTES = 256
#: The largest squared distance, in float64, an update may be from the global model. A round's
#: statistics (``fedledger.contribution``) add up to n² such terms for n updates; below this
#: bound, those sums stay finite in any round of up to 2**31 updates.
MAX_SQUARED_DISTANCE = float(np.finfo(np.float64).max) / 2**64
#: Integers a reply states (run, round, example count) are EIP-712 ``uint256`` values.
UINT256_LIMIT = 2**256
#: Details quote what a site sent; they are cut to this many characters.
MAX_DETAIL_LENGTH = 300
#: A reply's MetricRecord may hold at most this many metrics, each named by at most
#: ``MAX_METRIC_KEY_LENGTH`` characters and each list at most ``MAX_METRIC_LIST_LENGTH`` long;
#: beyond, it is ``malformed`` and none of its metrics is recorded, so that no site can bloat a manifest.
MAX_METRICS = 64
MAX_METRIC_KEY_LENGTH = 128
MAX_METRIC_LIST_LENGTH = 1_024

#: A metric as Flower's MetricRecord holds it: one number, or a list of numbers of one kind.
MetricValue = int | float | list[int] | list[float]


@dataclass(frozen=True)
class RoundContext:
    """What the training replies of one round are checked against. ``weight_key`` names the
    MetricRecord entry that holds a reply's example count: the wrapped strategy's
    ``weighted_by_key``."""

    domain: SigningDomain
    run_id: int
    round: int
    base_model_hash: bytes
    reference: Mapping[str, np.ndarray]
    weight_key: str = messages.NUM_EXAMPLES
    local_privacy: tuple[int, int] = (0, 0)  # the (clip norm, noise multiplier) in millionths every site applies

    @property
    def max_reply_bytes(self) -> int:
        """The most array bytes a reply may carry and still be read, hashed and stored."""
        values = sum(array.nbytes for array in self.reference.values())
        return MAX_SIZE_RATIO * values + ARRAY_HEADER_BYTES * len(self.reference)


@dataclass(frozen=True)
class Judged:
    """A reply and the verdict on it. ``reason is None`` means accepted."""

    node_id: int
    reason: str | None = None
    detail: str | None = None
    participant: str | None = None
    message: Message | None = None

    @property
    def accepted(self) -> bool:
        return self.reason is None

    def rejected(self, reason: str, detail: str) -> Self:
        return replace(self, reason=reason, detail=_clip(detail))


@dataclass(frozen=True)
class CheckedReply(Judged):
    """A training reply and what the checks read from it. ``metrics`` holds every metric of the
    reply that is a number or a list of numbers, the example count (under ``weight_key``) too."""

    arrays: dict[str, np.ndarray] | None = None
    encoding: bytes | None = None
    update_hash: bytes | None = None
    sealed_hash: bytes | None = None  # the hash of the sealed artifact the encoding is stored as
    num_examples: int | None = None
    signature: bytes | None = None
    signed: SignedFields | None = None
    signed_update_hash: bytes | None = None
    metrics: dict[str, MetricValue] | None = None
    weight_key: str = messages.NUM_EXAMPLES
    anomaly: AnomalyStatistics | None = None
    score: float | None = None
    selected: bool | None = None  # of an accepted update: whether the strategy aggregated it

    @property
    def recorded_metrics(self) -> dict[str, float]:
        """What a manifest records of the reply's metrics: each finite single number but the
        example count, as a float."""
        return {
            key: float(value)
            for key, value in (self.metrics or {}).items()
            if key != self.weight_key and not isinstance(value, list) and math.isfinite(value)
        }

    def as_update(self) -> WeightedUpdate:
        """The accepted update as it is screened, scored and re-aggregated: its arrays (those whose
        encoding is stored, sorted by name) weighted by its example count."""
        if not self.accepted or self.arrays is None or self.num_examples is None:
            raise ValueError(f"only an accepted training reply is an update (node {self.node_id})")
        return WeightedUpdate(self.arrays, self.num_examples)

    def _strategy_content(self, metrics: MetricRecord) -> RecordDict:
        if not self.accepted or self.arrays is None:
            raise ValueError(f"only an accepted training reply goes to the strategy (node {self.node_id})")
        arrays = ArrayRecord({name: Array(self.arrays[name]) for name in sorted(self.arrays)})
        return RecordDict({messages.ARRAYS_RECORD: arrays, messages.METRICS_RECORD: metrics})


@dataclass(frozen=True)
class CheckedEvaluation(Judged):
    """An evaluation reply and, once accepted, its metrics (the example count among them)."""

    metrics: dict[str, MetricValue] | None = None

    def _strategy_content(self, metrics: MetricRecord) -> RecordDict:
        if not self.accepted or self.metrics is None:
            raise ValueError(f"only an accepted evaluation reply goes to the strategy (node {self.node_id})")
        return RecordDict({messages.METRICS_RECORD: metrics})


def for_strategy(accepted: Sequence[CheckedReply] | Sequence[CheckedEvaluation]) -> list[Message]:
    """The accepted replies of one phase of a round as the wrapped strategy receives them.

    Each message's content is replaced by Flower's layout: ``arrays`` (training replies only: the
    arrays sorted by name) and ``metrics``, a MetricRecord of exactly the metrics that every
    accepted reply reports in the same form (each a single number, or each a list of the same
    length). Flower's strategies demand identical metric keys across replies and average them
    element by element; a metric that one site adds, leaves out or shapes differently would end
    the round, so it is left out for all. The example count is always among them: every accepted
    reply carries it.

    Raises:
        ValueError: a reply in ``accepted`` was not accepted.
    """
    shared = _shared_metrics([reply.metrics or {} for reply in accepted])
    normalised = []
    for reply in accepted:
        if reply.message is None or reply.metrics is None:
            raise ValueError(f"only an accepted reply goes to the strategy (node {reply.node_id})")
        metrics = MetricRecord({key: reply.metrics[key] for key in shared})
        reply.message.content = reply._strategy_content(metrics)
        normalised.append(reply.message)
    return normalised


def _shared_metrics(metrics: list[dict[str, MetricValue]]) -> list[str]:
    """The keys every one of ``metrics`` holds in the same form, sorted."""
    if not metrics:
        return []

    def form(value: MetricValue) -> int | None:
        return len(value) if isinstance(value, list) else None

    first, *others = metrics
    return sorted(
        key for key, value in first.items() if all(key in other and form(other[key]) == form(value) for other in others)
    )


class _Rejected(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class _Parts:
    """The records of a training reply the checks read, as sent."""

    arrays: ArrayRecord
    metrics: MetricRecord
    ledger: ConfigRecord | None


@dataclass(frozen=True)
class _SignedUpdate:
    """A training reply that passed every check on what it says about itself: what is left to
    check is its signer's standing on the registry, and its values."""

    signer: str
    arrays: Mapping[str, np.ndarray]
    metrics: Mapping[str, MetricValue]


# Training replies ---------------------------------------------------------------------------------


def check_reply(message: Message, context: RoundContext, is_active: Callable[[str], str | None]) -> CheckedReply:
    """Check one training reply. Nothing a site sends makes it raise.

    ``is_active(address)`` returns ``None`` for a registered, active participant, else the
    rejection reason (``unregistered`` or ``inactive``). It reads the registry; if that read
    fails, the failure is the coordinator's, not the site's, and propagates.
    """
    checked = CheckedReply(node_id=message.metadata.src_node_id, message=message, weight_key=context.weight_key)
    try:
        if message.has_error():
            raise _Rejected("client-error", f"the node replied with an error: {message.error.reason}")
        checked = _read_claims(checked, message.content)
        parts = _parts(message.content)
        arrays, encoding = _read_arrays(parts.arrays, context)
        update_hash = keccak256(encoding)
        checked = replace(checked, arrays=arrays, encoding=encoding, update_hash=update_hash)
        update = _judge(checked, parts, context, arrays, update_hash)
    except _Rejected as rejection:
        return checked.rejected(rejection.reason, rejection.detail)
    except Exception as error:  # whatever a site sends must not end the run
        return checked.rejected("malformed", f"the reply cannot be read: {_describe(error)}")
    status = is_active(update.signer)
    if status is not None:
        return checked.rejected(status, _standing(update.signer, status))
    problem = _non_finite(update, context.reference)
    return checked if problem is None else checked.rejected("non-finite", problem)


def _ledger_record(content: RecordDict) -> ConfigRecord | None:
    ledger = content.config_records.get(messages.LEDGER_RECORD)
    return ledger if isinstance(ledger, ConfigRecord) else None


def _parts(content: RecordDict) -> _Parts:
    return _Parts(
        arrays=_only(content.array_records, "ArrayRecord"),
        metrics=_only(content.metric_records, "MetricRecord"),
        ledger=_ledger_record(content),
    )


def _read_arrays(record: ArrayRecord, context: RoundContext) -> tuple[dict[str, np.ndarray], bytes]:
    """The arrays, in name order, and their encoding; not read if they hold far more bytes than the model."""
    size = sum(len(array.data) for array in record.values())
    if size > context.max_reply_bytes:
        raise _Rejected(
            "wrong-arrays",
            f"the arrays hold {size:,} bytes, more than the {context.max_reply_bytes:,} a reply to this model "
            "may hold; they were not read",
        )
    try:
        arrays = {name: record[name].numpy() for name in sorted(record)}
        return arrays, encode_model(arrays)
    except Exception as error:  # a site's bytes may fail to decode in any way
        raise _Rejected("malformed", f"the arrays cannot be read: {_describe(error)}") from None


def _read_claims(checked: CheckedReply, content: RecordDict) -> CheckedReply:
    """What the reply says about itself, for the manifest: each value only if it is well typed.

    Read before anything else, and no value a record holds makes it raise, so that a reply
    rejected for its records or its arrays is still recorded with the participant, signature and
    signed fields it named.
    """
    ledger = _ledger_record(content)
    metric_records = content.metric_records
    metrics = next(iter(metric_records.values())) if len(metric_records) == 1 else None
    run_id = _claim(ledger, messages.SIGNED_RUN_ID, _integer)
    round_number = _claim(ledger, messages.SIGNED_ROUND, _integer)
    base_hash = _claim(ledger, messages.SIGNED_BASE_MODEL_HASH, _hash)
    clip_norm = _claim(ledger, messages.SIGNED_CLIP_NORM, _integer) if _has(ledger, messages.SIGNED_CLIP_NORM) else 0
    noise_multiplier = (
        _claim(ledger, messages.SIGNED_NOISE_MULTIPLIER, _integer)
        if _has(ledger, messages.SIGNED_NOISE_MULTIPLIER)
        else 0
    )
    well_formed = None not in (run_id, round_number, base_hash, clip_norm, noise_multiplier)
    return replace(
        checked,
        participant=_claim(ledger, messages.PARTICIPANT, _address),
        signature=_claim(ledger, messages.SIGNATURE, _signature),
        signed=SignedFields(run_id, round_number, to_hex(base_hash), clip_norm, noise_multiplier)
        if well_formed
        else None,
        signed_update_hash=_claim(ledger, messages.SIGNED_UPDATE_HASH, _hash),
        num_examples=_claim(metrics, checked.weight_key, _integer),
        metrics=_claim_metrics(metrics),
    )


def _judge(
    checked: CheckedReply, parts: _Parts, context: RoundContext, arrays: dict[str, np.ndarray], update_hash: bytes
) -> _SignedUpdate:
    """Hold a reply against the round; raise ``_Rejected`` at the first failed check."""
    if parts.ledger is None:
        raise _Rejected("malformed", f"the reply has no {messages.LEDGER_RECORD!r} ConfigRecord")
    if checked.participant is None or checked.signature is None:
        raise _Rejected(
            "malformed", f"the reply does not name a participant address and a {SIGNATURE_SIZE}-byte signature"
        )
    signed = checked.signed
    if signed is None or checked.signed_update_hash is None:
        raise _Rejected(
            "malformed",
            "the signed run id and round (and local-DP clip norm and noise multiplier, if given) must be "
            f"integers, and the signed base model hash and update hash must be {HASH_SIZE} bytes each",
        )
    _check_metric_types(parts.metrics, context.weight_key)
    if signed.run_id != context.run_id:
        raise _Rejected("wrong-run", f"signed for run {signed.run_id}, this is run {context.run_id}")
    if signed.round != context.round:
        raise _Rejected("wrong-round", f"signed for round {signed.round}, this is round {context.round}")
    if signed.base_model_hash != to_hex(context.base_model_hash):
        raise _Rejected(
            "stale-base-model",
            f"trained from model {signed.base_model_hash[:18]}…, the global model is "
            f"{to_hex(context.base_model_hash)[:18]}…",
        )
    if (signed.clip_norm, signed.noise_multiplier) != context.local_privacy:
        raise _Rejected("wrong-privacy", _privacy_mismatch((signed.clip_norm, signed.noise_multiplier), context))
    examples = checked.num_examples
    if examples is None or examples <= 0:
        raise _Rejected(
            "bad-example-count",
            f"the example count {context.weight_key!r} must be a positive integer, "
            f"got {_show(parts.metrics.get(context.weight_key))}",
        )
    _check_arrays(arrays, context.reference)
    if checked.signed_update_hash != update_hash:
        raise _Rejected(
            "hash-mismatch",
            f"the signed update hash is {to_hex(checked.signed_update_hash)[:18]}…, "
            f"the arrays sent hash to {to_hex(update_hash)[:18]}…",
        )
    message = UpdateMessage(
        context.run_id, context.round, context.base_model_hash, update_hash, examples, *context.local_privacy
    )
    try:
        signer = recover_update_signer(context.domain, message, checked.signature)
    except InvalidSignature as error:
        raise _Rejected("bad-signature", str(error)) from None
    if signer != checked.participant:
        raise _Rejected("bad-signature", f"the signature is by {signer}, not by {checked.participant}")
    return _SignedUpdate(signer, arrays, checked.metrics or {})


def _privacy_mismatch(signed: tuple[int, int], context: RoundContext) -> str:
    def described(parameters: tuple[int, int]) -> str:
        clip_norm, noise_multiplier = (value / PRIVACY_PARAMETER_SCALE for value in parameters)
        return (
            f"local DP with clip norm {clip_norm:g} and noise multiplier {noise_multiplier:g}"
            if any(parameters)
            else "no local DP"
        )

    return f"signed as {described(signed)}; this run takes {described(context.local_privacy)}"


def _non_finite(update: _SignedUpdate, reference: Mapping[str, np.ndarray]) -> str | None:
    """Why the update's values cannot be aggregated and scored in float64, or ``None`` if they can."""
    for name, array in update.arrays.items():
        if not np.all(np.isfinite(array)):
            return f"array {name!r} holds NaN or infinite values"
    with np.errstate(over="ignore", invalid="ignore"):
        squared_distance = float(delta_gram(reference, [update.arrays])[0, 0])
    if not squared_distance <= MAX_SQUARED_DISTANCE:
        return (
            f"the update's distance from the global model overflows: its square is {squared_distance:.3g} in "
            f"float64, more than the {MAX_SQUARED_DISTANCE:.3g} a round's statistics can add up"
        )
    return _non_finite_metric(update.metrics)


def _check_arrays(arrays: Mapping[str, np.ndarray], reference: Mapping[str, np.ndarray]) -> None:
    missing, extra = sorted(set(reference) - set(arrays)), sorted(set(arrays) - set(reference))
    if missing or extra:
        raise _Rejected("wrong-arrays", f"arrays missing: {missing or 'none'}; unexpected: {extra or 'none'}")
    for name, expected in reference.items():
        array = arrays[name]
        if array.shape != expected.shape:
            raise _Rejected("wrong-arrays", f"array {name!r} has shape {array.shape}, the model's is {expected.shape}")
        if array.dtype != expected.dtype:
            raise _Rejected("wrong-arrays", f"array {name!r} is {array.dtype}, the model's is {expected.dtype}")


# Evaluation replies -------------------------------------------------------------------------------


def check_evaluation(
    message: Message, is_active: Callable[[str], str | None], weight_key: str = messages.NUM_EXAMPLES
) -> CheckedEvaluation:
    """Check one evaluation reply; its example count is the MetricRecord entry ``weight_key``.
    Nothing a site sends makes it raise; ``is_active`` as for :func:`check_reply`, whose failures
    propagate."""
    checked = CheckedEvaluation(node_id=message.metadata.src_node_id, message=message)
    try:
        if message.has_error():
            raise _Rejected("client-error", f"the node replied with an error: {message.error.reason}")
        participant = _claim(_ledger_record(message.content), messages.PARTICIPANT, _address)
        checked = replace(checked, participant=participant)
        record = _only(message.content.metric_records, "MetricRecord")
        if participant is None:
            raise _Rejected(
                "malformed", f"the reply's {messages.LEDGER_RECORD!r} ConfigRecord does not name a participant address"
            )
        examples = _integer(record.get(weight_key))
        if examples is None or examples <= 0:
            raise _Rejected(
                "bad-example-count",
                f"the example count {weight_key!r} must be a positive integer, got {_show(record.get(weight_key))}",
            )
        _check_metric_types(record, weight_key)
        metrics = _claim_metrics(record)
        if metrics is None:
            raise _Rejected("malformed", "the MetricRecord cannot be read")
    except _Rejected as rejection:
        return checked.rejected(rejection.reason, rejection.detail)
    except Exception as error:  # whatever a site sends must not end the run
        return checked.rejected("malformed", f"the reply cannot be read: {_describe(error)}")
    status = is_active(participant)
    if status is not None:
        return checked.rejected(status, _standing(participant, status))
    problem = _non_finite_metric(metrics)
    if problem is not None:
        return checked.rejected("non-finite", problem)
    return replace(checked, metrics=metrics)


# Metrics ------------------------------------------------------------------------------------------


def _metric_value(value: object) -> MetricValue | None:
    """``value`` as plain Python numbers if it is what a MetricRecord holds: an integer (not a
    bool) or a float, or a list of integers or a list of floats; else ``None``."""
    if isinstance(value, list):
        if all(_integer(item) is not None for item in value):
            return [int(item) for item in value]
        if all(isinstance(item, float) for item in value):
            return [float(item) for item in value]
        return None
    if _integer(value) is not None:
        return int(value)
    if isinstance(value, float):
        return float(value)
    return None


def _claim_metrics(record: MetricRecord | None) -> dict[str, MetricValue] | None:
    """Every metric of ``record`` that is a number or a list of numbers; ``None`` without a record
    or if it cannot be read. Never raises."""
    if record is None:
        return None
    try:
        if _oversized(record) is not None:
            return None
        keys = [key for key in record if isinstance(key, str)]
    except Exception:  # a record that raises when read claims nothing
        return None
    claimed = {key: _claim(record, key, _metric_value) for key in keys}
    return {key: value for key, value in claimed.items() if value is not None}


def _check_metric_types(record: MetricRecord, weight_key: str) -> None:
    """Raise ``malformed`` for a record larger than the bounds allow, or for the first metric but
    the example count that is not a number or a list of numbers of one kind (the example count has
    its own check)."""
    problem = _oversized(record)
    if problem is not None:
        raise _Rejected("malformed", problem)
    for key in record:
        if not isinstance(key, str):
            raise _Rejected("malformed", f"the MetricRecord has a key that is not a string: {_show(key)}")
        if key == weight_key:
            continue
        try:
            value = _metric_value(record.get(key))
        except Exception as error:  # a value may raise when it is looked at
            raise _Rejected("malformed", f"metric {key!r} cannot be read: {_describe(error)}") from None
        if value is None:
            raise _Rejected(
                "malformed",
                f"metric {key!r} must be a number or a list of numbers of one kind, got {_show(record.get(key))}",
            )


def _oversized(record: MetricRecord) -> str | None:
    """How ``record`` exceeds the bounds on metrics (``MAX_METRICS`` and the others), or ``None``.
    Looks at no value but through its type, which no value can intercept."""
    if len(record) > MAX_METRICS:
        return f"the MetricRecord holds {len(record)} metrics, more than {MAX_METRICS}"
    for key, value in record.items():
        if isinstance(key, str) and len(key) > MAX_METRIC_KEY_LENGTH:
            return f"a metric key has {len(key)} characters, more than {MAX_METRIC_KEY_LENGTH}: {_show(key)}"
        if issubclass(type(value), list) and len(value) > MAX_METRIC_LIST_LENGTH:
            return f"metric {key!r} holds {len(value):,} values, more than {MAX_METRIC_LIST_LENGTH:,}"
    return None


def _non_finite_metric(metrics: Mapping[str, MetricValue]) -> str | None:
    """Which metric holds NaN or an infinity, or ``None`` if none does."""
    for key, value in metrics.items():
        values = value if isinstance(value, list) else [value]
        if not all(math.isfinite(item) for item in values):
            return f"metric {key!r} is {_show(value)}"
    return None


# Both ---------------------------------------------------------------------------------------------

J = TypeVar("J", bound=Judged)
R = TypeVar("R")


def reject_duplicates(replies: list[J]) -> list[J]:
    """Reject every accepted reply whose participant sent more than one accepted reply.

    Two different replies from one participant cannot both be counted, and nothing tells which
    one the participant meant, so neither is.
    """
    counts = Counter(reply.participant for reply in replies if reply.accepted)
    return [
        reply.rejected(
            "duplicate-participant",
            f"{reply.participant} sent {counts[reply.participant]} replies this round",
        )
        if reply.accepted and counts[reply.participant] > 1
        else reply
        for reply in replies
    ]


def _standing(address: str, status: str) -> str:
    return f"{address} is {'not registered' if status == 'unregistered' else 'deactivated'}"


def _claim(record: Mapping[str, object] | None, key: str, read: Callable[[object], R | None]) -> R | None:
    """``read(record[key])``: ``None`` without the record or the key, or if the value is not of the
    kind ``read`` accepts, or raises when it is looked at."""
    if record is None:
        return None
    try:
        return read(record.get(key))
    except Exception:  # a value that raises when looked at claims nothing
        return None


def _has(record: Mapping[str, object] | None, key: str) -> bool:
    """Whether ``record`` holds ``key`` (``False`` if looking raises)."""
    try:
        return record is not None and key in record
    except Exception:  # a record that raises when looked at holds nothing
        return False


def _only(records: Mapping[str, R], kind: str) -> R:
    if len(records) != 1:
        raise _Rejected("malformed", f"a reply carries exactly one {kind}, this one carries {len(records)}")
    return next(iter(records.values()))


def _address(value: object) -> str | None:
    if isinstance(value, str) and is_address(value):
        return to_checksum_address(value)
    return None


def _integer(value: object) -> int | None:
    """``value`` if it is an integer (not a bool) that EIP-712 could encode, else ``None``."""
    if isinstance(value, int) and not isinstance(value, bool) and -UINT256_LIMIT < value < UINT256_LIMIT:
        return value
    return None


def _hash(value: object) -> bytes | None:
    return value if isinstance(value, bytes) and len(value) == HASH_SIZE else None


def _signature(value: object) -> bytes | None:
    return value if isinstance(value, bytes) and len(value) == SIGNATURE_SIZE else None


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:59] + "…"


def _describe(error: Exception) -> str:
    return f"{type(error).__name__}: {error}"


def _clip(detail: str) -> str:
    return detail if len(detail) <= MAX_DETAIL_LENGTH else detail[: MAX_DETAIL_LENGTH - 1] + "…"
