"""Checking every training reply before it can reach the aggregate.

A reply is accepted only if it is well formed; signed for this chain, registry, run and round,
from the current global model; its arrays have the global model's names, shapes and dtypes and
only finite values; its example count is positive; its signer is a registered, active
participant; and that participant sent nothing else this round. Every failure is kept with a
machine-readable reason and a sentence saying what exactly was wrong.
"""

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

import numpy as np
from eth_utils import is_address, to_checksum_address
from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord

from fedledger import messages
from fedledger.contribution import AnomalyStatistics
from fedledger.encoding import EncodingError, encode_model
from fedledger.hashing import HASH_SIZE, keccak256, to_hex
from fedledger.manifest import SignedFields
from fedledger.signing import InvalidSignature, SigningDomain, UpdateMessage, recover_update_signer

#: Rejection reasons, in the order the checks run.
REASONS = (
    "client-error",  # the node answered with an error instead of an update
    "malformed",  # records or fields missing or of the wrong type
    "wrong-run",  # signed for another run
    "wrong-round",  # signed for another round: a replay or a late reply
    "stale-base-model",  # trained from a model other than the current global model
    "bad-example-count",  # not a positive integer
    "wrong-arrays",  # names, shapes or dtypes differ from the global model
    "hash-mismatch",  # the signed update hash is not the hash of the arrays sent
    "bad-signature",  # the signature does not recover to the participant named
    "unregistered",  # the signer is not on the registry's allow-list
    "inactive",  # the signer was deactivated
    "non-finite",  # NaN or infinite values
    "duplicate-participant",  # more than one update from one participant this round
    "anomalous",  # flagged by the anomaly detector (fedledger.contribution)
    "round-failed",  # valid, but the round had too few valid updates to aggregate
)


@dataclass(frozen=True)
class RoundContext:
    """What the replies of one round are checked against."""

    domain: SigningDomain
    run_id: int
    round: int
    base_model_hash: bytes
    reference: Mapping[str, np.ndarray]


@dataclass(frozen=True)
class CheckedReply:
    """A reply and what the checks found. ``reason is None`` means accepted."""

    node_id: int
    reason: str | None = None
    detail: str | None = None
    participant: str | None = None
    arrays: dict[str, np.ndarray] | None = None
    encoding: bytes | None = None
    update_hash: bytes | None = None
    num_examples: int | None = None
    signature: bytes | None = None
    signed: SignedFields | None = None
    signed_update_hash: bytes | None = None
    train_loss: float | None = None
    message: Message | None = None
    anomaly: AnomalyStatistics | None = None
    score: float | None = None

    @property
    def accepted(self) -> bool:
        return self.reason is None

    def rejected(self, reason: str, detail: str) -> "CheckedReply":
        return replace(self, reason=reason, detail=detail)


class _Rejected(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def check_reply(message: Message, context: RoundContext, is_active: Callable[[str], str | None]) -> CheckedReply:
    """Check one training reply.

    ``is_active(address)`` returns ``None`` for a registered, active participant, else the
    rejection reason (``unregistered`` or ``inactive``).
    """
    checked = CheckedReply(node_id=message.metadata.src_node_id, message=message)
    if message.has_error():
        return checked.rejected("client-error", f"the node replied with an error: {message.error.reason}")
    checked = _read(message, checked)
    if not checked.accepted:
        return checked
    try:
        return _judge(checked, context, is_active)
    except _Rejected as rejection:
        return checked.rejected(rejection.reason, rejection.detail)


def _read(message: Message, checked: CheckedReply) -> CheckedReply:
    """Pull the arrays, counts and signed fields out of the reply; reject what is malformed."""
    content = message.content
    if len(content.array_records) != 1 or len(content.metric_records) != 1:
        return checked.rejected("malformed", "a reply carries exactly one ArrayRecord and one MetricRecord")
    record: ArrayRecord = next(iter(content.array_records.values()))
    metrics: MetricRecord = next(iter(content.metric_records.values()))
    try:
        arrays = {name: array.numpy() for name, array in record.items()}
        encoding = encode_model(arrays)
    except (EncodingError, ValueError, TypeError) as error:
        return checked.rejected("malformed", f"the arrays cannot be read: {error}")
    checked = replace(checked, arrays=arrays, encoding=encoding, update_hash=keccak256(encoding))
    ledger = content.config_records.get(messages.LEDGER_RECORD)
    if not isinstance(ledger, ConfigRecord):
        return checked.rejected("malformed", f"the reply has no {messages.LEDGER_RECORD!r} ConfigRecord")
    participant, signature = ledger.get(messages.PARTICIPANT), ledger.get(messages.SIGNATURE)
    base_hash, update_hash = (
        ledger.get(messages.SIGNED_BASE_MODEL_HASH),
        ledger.get(messages.SIGNED_UPDATE_HASH),
    )
    run_id, round_number = ledger.get(messages.SIGNED_RUN_ID), ledger.get(messages.SIGNED_ROUND)
    loss = metrics.get(messages.TRAIN_LOSS)
    checked = replace(
        checked,
        num_examples=metrics.get(messages.NUM_EXAMPLES),
        train_loss=float(loss) if isinstance(loss, int | float) else None,
        participant=_address(participant),
        signature=signature if isinstance(signature, bytes) else None,
    )
    if checked.participant is None or checked.signature is None:
        return checked.rejected("malformed", "the reply does not name a participant address and a signature")
    if not all(isinstance(value, bytes) and len(value) == HASH_SIZE for value in (base_hash, update_hash)):
        return checked.rejected("malformed", "the signed base model hash and update hash must be 32 bytes each")
    if not isinstance(run_id, int) or not isinstance(round_number, int):
        return checked.rejected("malformed", "the signed run id and round must be integers")
    return replace(
        checked, signed=SignedFields(run_id, round_number, to_hex(base_hash)), signed_update_hash=update_hash
    )


def _address(value: object) -> str | None:
    if isinstance(value, str) and is_address(value):
        return to_checksum_address(value)
    return None


def _judge(checked: CheckedReply, context: RoundContext, is_active: Callable[[str], str | None]) -> CheckedReply:
    """Hold a well-formed reply against the round; raise ``_Rejected`` at the first failed check."""
    signed, arrays, update_hash = checked.signed, checked.arrays, checked.update_hash
    assert signed is not None and arrays is not None and update_hash is not None and checked.signature is not None
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
    examples = checked.num_examples
    if not isinstance(examples, int) or isinstance(examples, bool) or examples <= 0:
        raise _Rejected("bad-example-count", f"the example count must be a positive integer, got {examples!r}")
    _check_arrays(arrays, context.reference)
    if checked.signed_update_hash != update_hash:
        raise _Rejected(
            "hash-mismatch",
            f"the signed update hash is {to_hex(checked.signed_update_hash or b'')[:18]}…, "
            f"the arrays sent hash to {to_hex(update_hash)[:18]}…",
        )
    message = UpdateMessage(context.run_id, context.round, context.base_model_hash, update_hash, examples)
    try:
        signer = recover_update_signer(context.domain, message, checked.signature)
    except InvalidSignature as error:
        raise _Rejected("bad-signature", str(error)) from None
    if signer != checked.participant:
        raise _Rejected("bad-signature", f"the signature is by {signer}, not by {checked.participant}")
    status = is_active(signer)
    if status is not None:
        raise _Rejected(status, f"{signer} is {'not registered' if status == 'unregistered' else 'deactivated'}")
    for name, array in arrays.items():
        if array.dtype.kind in "fc" and not np.all(np.isfinite(array)):
            raise _Rejected("non-finite", f"array {name!r} holds NaN or infinite values")
    return checked


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


def reject_duplicates(replies: list[CheckedReply]) -> list[CheckedReply]:
    """Reject every accepted reply whose participant sent more than one accepted reply.

    Two different updates signed by one key cannot both be counted, and nothing tells which
    one the participant meant, so neither is.
    """
    counts = Counter(reply.participant for reply in replies if reply.accepted)
    return [
        reply.rejected(
            "duplicate-participant",
            f"{reply.participant} sent {counts[reply.participant]} updates this round",
        )
        if reply.accepted and counts[reply.participant] > 1
        else reply
        for reply in replies
    ]
