"""Whatever one site sends, every round is committed and its reply is in the manifest with its reason.

Property-based: hypothesis draws, for each of several rounds, what one registered site sends in
training and in evaluation — an error, records of any layout with values of any type, or its own
correctly signed reply spoiled in up to three ways (extra, missing, duplicated or renamed records
and keys; wrong types, lists, NaN and infinities; huge, corrupt or wrongly shaped arrays; forged
signatures and signed fields; values that raise when read). Three honest sites send real signed
updates. The run goes through the real ledger strategy, the real wrapped Flower strategy, Flower's
InMemoryGrid and LinkState, an in-process chain and an artifact store.
"""

import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pytest
from eth_account.signers.local import LocalAccount
from flwr.app import Array, ArrayRecord, ConfigRecord, Error, Message, MessageType, MetricRecord, RecordDict
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, arrays
from inprocess_federation import (
    HonestSite,
    InProcessFederation,
    Ledger,
    arrays_record,
    signing_domain,
    update_message,
)

from fedledger import messages
from fedledger.coordinator.validation import REASONS
from fedledger.hashing import from_hex, keccak256
from fedledger.manifest import RoundManifest
from fedledger.signing import UpdateMessage, sign_update
from tabular_app.settings import FederationSettings

from helpers import participant_key

ROUNDS = 3
HONEST = [participant_key(index) for index in range(3)]
HOSTILE = participant_key(10)
UNREGISTERED = participant_key(99)
EXAMPLES_PER_STRATEGY = 15
ACCEPTED = frozenset()  # the reasons of a reply that must be normalised and accepted: none
TRAIN_LOSS, EVAL_LOSS, EVAL_ACCURACY = "train-loss", "eval-loss", "eval-accuracy"  # the honest sites' metrics
SITE_METRICS = {messages.NUM_EXAMPLES, TRAIN_LOSS, EVAL_LOSS, EVAL_ACCURACY}
PROTOCOL_LEDGER = {
    messages.PARTICIPANT,
    messages.SIGNATURE,
    messages.SIGNED_RUN_ID,
    messages.SIGNED_ROUND,
    messages.SIGNED_BASE_MODEL_HASH,
    messages.SIGNED_UPDATE_HASH,
}


class Unreadable:
    """A value that raises on every use, as an object unpickled from a hostile node could."""

    def __getattribute__(self, name: str) -> Any:
        raise RuntimeError(f"unreadable: {name}")

    def __repr__(self) -> str:
        raise RuntimeError("unreadable")


def smuggle(record: ArrayRecord | MetricRecord | ConfigRecord, key: str, value: object) -> None:
    """Put ``value`` in ``record`` past Flower's type checks."""
    record.__dict__["_data"][key] = value


# What a site can send ------------------------------------------------------------------------------


@dataclass
class Draft:
    """A training reply before it is signed and built."""

    arrays: dict[str, np.ndarray]
    signer: LocalAccount
    update: UpdateMessage | None = None


@dataclass(frozen=True)
class Fault:
    """One way to spoil a reply, and the reasons the coordinator may reject it for (none: the
    reply must be normalised and accepted). ``stage`` is ``arrays`` (the arrays before they are
    hashed), ``signed`` (the draft before it is signed) or ``content`` (the records sent).
    ``metrics`` names the metrics it sets or removes: a later fault that sets them all again
    undoes it."""

    name: str
    reasons: frozenset[str]
    stage: str
    apply: Callable[[Any], None]
    metrics: frozenset[str] = frozenset()


def first(records: dict) -> Any:
    return next(iter(records.values()), None)


def metrics_of(content: RecordDict) -> MetricRecord | None:
    return first(content.metric_records)


def ledger_of(content: RecordDict) -> ConfigRecord | None:
    return content.config_records.get(messages.LEDGER_RECORD)


def on_metrics(change: Callable[[MetricRecord], None]) -> Callable[[RecordDict], None]:
    def apply(content: RecordDict) -> None:
        if (record := metrics_of(content)) is not None:
            change(record)

    return apply


def on_ledger(change: Callable[[ConfigRecord], None]) -> Callable[[RecordDict], None]:
    def apply(content: RecordDict) -> None:
        if (record := ledger_of(content)) is not None:
            change(record)

    return apply


def on_arrays(change: Callable[[ArrayRecord], None]) -> Callable[[RecordDict], None]:
    def apply(content: RecordDict) -> None:
        if (record := first(content.array_records)) is not None:
            change(record)

    return apply


def rename(kind: str, name: str) -> Callable[[RecordDict], None]:
    def apply(content: RecordDict) -> None:
        records = getattr(content, kind)
        if records:
            old = next(iter(records))
            content[name] = content.pop(old)

    return apply


def set_key(key: str, value: object) -> Callable[[MetricRecord | ConfigRecord], None]:
    def apply(record: MetricRecord | ConfigRecord) -> None:
        smuggle(record, key, value)

    return apply


def drop_key(key: str) -> Callable[[MetricRecord | ConfigRecord], None]:
    def apply(record: MetricRecord | ConfigRecord) -> None:
        record.pop(key, None)

    return apply


def drop_records(kind: str) -> Callable[[RecordDict], None]:
    def apply(content: RecordDict) -> None:
        for name in list(getattr(content, kind)):
            del content[name]

    return apply


def add_record(name: str, record: ArrayRecord | MetricRecord | ConfigRecord) -> Callable[[RecordDict], None]:
    def apply(content: RecordDict) -> None:
        content[name] = record

    return apply


def change_array(change: Callable[[np.ndarray], np.ndarray]) -> Callable[[Draft], None]:
    def apply(draft: Draft) -> None:
        name = sorted(draft.arrays)[0]
        draft.arrays[name] = change(draft.arrays[name])

    return apply


def change_signed(**changes: object) -> Callable[[Draft], None]:
    def apply(draft: Draft) -> None:
        values = {
            name: value(getattr(draft.update, name)) if callable(value) else value for name, value in changes.items()
        }
        draft.update = replace(draft.update, **values)

    return apply


def sign_with(account: LocalAccount) -> Callable[[Draft], None]:
    def apply(draft: Draft) -> None:
        draft.signer = account

    return apply


def with_nan(array: np.ndarray) -> np.ndarray:
    spoiled = array.copy()
    spoiled.flat[0] = np.nan
    return spoiled


def reasons(*names: str) -> frozenset[str]:
    return frozenset(names)


names = st.text(min_size=1, max_size=8)
metric_values = st.one_of(
    st.integers(),
    st.floats(),
    st.lists(st.integers(-(2**62), 2**62), max_size=4),
    st.lists(st.floats(), max_size=4),
)
config_values = st.one_of(
    metric_values,
    st.booleans(),
    st.text(max_size=12),
    st.binary(max_size=80),
    st.lists(st.text(max_size=4), max_size=3),
    st.lists(st.binary(max_size=8), max_size=3),
)
dtypes = st.sampled_from(["float32", "float64", "float16", "int32", "int8", "uint8", "bool", "complex64"])
numpy_arrays = dtypes.flatmap(lambda dtype: arrays(dtype, array_shapes(min_dims=0, max_dims=3, max_side=5)))
raw_arrays = st.builds(
    lambda dtype, shape, stype, data: Array(dtype=dtype, shape=tuple(shape), stype=stype, data=data),
    st.text(max_size=10),
    st.lists(st.integers(0, 2**40), max_size=3),
    st.sampled_from(["numpy.ndarray", "torch.Tensor", ""]),
    st.binary(max_size=200),
)
array_records = st.dictionaries(names, st.one_of(numpy_arrays.map(Array), raw_arrays), max_size=4).map(ArrayRecord)
metric_records = st.dictionaries(names, metric_values, max_size=5).map(MetricRecord)
config_records = st.dictionaries(names, config_values, max_size=5).map(ConfigRecord)
ledger_like = st.fixed_dictionaries(
    {},
    optional={
        messages.PARTICIPANT: st.sampled_from([HOSTILE.address, HONEST[0].address, "0x12", ""]),
        messages.SIGNATURE: st.binary(min_size=64, max_size=66),
        messages.SIGNED_RUN_ID: st.one_of(st.integers(), st.text(max_size=3)),
        messages.SIGNED_ROUND: st.one_of(st.integers(), st.floats()),
        messages.SIGNED_BASE_MODEL_HASH: st.binary(min_size=31, max_size=33),
        messages.SIGNED_UPDATE_HASH: st.binary(min_size=31, max_size=33),
    },
).map(ConfigRecord)
record_dicts = st.dictionaries(
    st.one_of(names, st.sampled_from([messages.ARRAYS_RECORD, messages.METRICS_RECORD])),
    st.one_of(array_records, metric_records, config_records),
    max_size=4,
)
garbage = st.tuples(record_dicts, st.one_of(st.none(), ledger_like)).map(
    lambda parts: RecordDict({**parts[0], **({messages.LEDGER_RECORD: parts[1]} if parts[1] is not None else {})})
)

finite_floats = st.floats(allow_nan=False, allow_infinity=False)
wire_integers = st.integers(-(2**63), 2**63 - 1)  # what a MetricRecord carries over Flower's wire
finite_metric_values = st.one_of(
    wire_integers, finite_floats, st.lists(wire_integers, max_size=4), st.lists(finite_floats, max_size=4)
)
non_finite_metric_values = st.one_of(
    st.sampled_from([math.nan, math.inf, -math.inf]),
    st.lists(finite_floats, max_size=3).flatmap(
        lambda values: st.sampled_from([math.nan, math.inf]).map(lambda bad: [*values, bad])
    ),
)
not_metric_values = st.one_of(
    st.text(max_size=5), st.booleans(), st.none(), st.just([1, 0.5]), st.lists(st.text(max_size=2), min_size=1)
)
extra_key = names.filter(lambda key: key not in SITE_METRICS)
extra_metrics = st.dictionaries(extra_key, finite_metric_values, min_size=1)
extra_ledger = st.dictionaries(names.filter(lambda key: key not in PROTOCOL_LEDGER), config_values, min_size=1)
bad_counts = st.one_of(
    st.integers(max_value=0), st.floats(), st.lists(st.integers(1, 100), min_size=1, max_size=3), st.just(True)
)


def normalised_faults() -> list[st.SearchStrategy[Fault]]:
    """What a reply of either phase may add or rename and still be accepted, once normalised; and
    extra metrics that are not finite numbers, which are not."""
    return [
        extra_metrics.map(
            lambda extra: Fault(
                f"extra metrics {sorted(extra)}",
                ACCEPTED,
                "content",
                on_metrics(lambda m: m.update(extra)),
                frozenset(extra),
            )
        ),
        st.tuples(names, config_records).map(
            lambda pair: Fault("extra ConfigRecord", ACCEPTED, "content", add_record(f"extra.{pair[0]}", pair[1]))
        ),
        extra_ledger.map(
            lambda extra: Fault("extra ledger keys", ACCEPTED, "content", on_ledger(lambda r: r.update(extra)))
        ),
        st.just(Fault("MetricRecord renamed", ACCEPTED, "content", rename("metric_records", "renamed.metrics"))),
        st.tuples(extra_key, non_finite_metric_values).map(
            lambda pair: Fault(
                f"metric {pair[1]}", reasons("non-finite"), "content", on_metrics(set_key(*pair)), frozenset(pair[:1])
            )
        ),
        st.tuples(extra_key, not_metric_values).map(
            lambda pair: Fault(
                f"metric {pair[1]!r}", reasons("malformed"), "content", on_metrics(set_key(*pair)), frozenset(pair[:1])
            )
        ),
    ]


def own_metric_faults(key: str) -> list[st.SearchStrategy[Fault]]:
    """What a site may do to one of its own metrics: any metric is the app's, and none but the
    example count is required, so only a value that is not a finite number is rejected."""
    touched = frozenset([key])
    return [
        st.just(Fault(f"no {key}", ACCEPTED, "content", on_metrics(drop_key(key)), touched)),
        finite_metric_values.map(
            lambda value: Fault(f"{key} {value!r}", ACCEPTED, "content", on_metrics(set_key(key, value)), touched)
        ),
        non_finite_metric_values.map(
            lambda value: Fault(
                f"{key} {value}", reasons("non-finite"), "content", on_metrics(set_key(key, value)), touched
            )
        ),
        not_metric_values.map(
            lambda value: Fault(
                f"{key} {value!r}", reasons("malformed"), "content", on_metrics(set_key(key, value)), touched
            )
        ),
        st.just(
            Fault(f"unreadable {key}", reasons("malformed"), "content", on_metrics(set_key(key, Unreadable())), touched)
        ),
    ]


TRAINING_FAULTS = st.one_of(
    *normalised_faults(),
    st.just(Fault("ArrayRecord renamed", ACCEPTED, "content", rename("array_records", "renamed.arrays"))),
    st.just(Fault("NaN in arrays", reasons("non-finite"), "arrays", change_array(with_nan))),
    st.just(Fault("wrong shape", reasons("wrong-arrays"), "arrays", change_array(lambda a: a.reshape(-1)[:-1]))),
    st.just(Fault("wrong dtype", reasons("wrong-arrays"), "arrays", change_array(lambda a: a.astype(np.float64)))),
    st.just(Fault("extra array", reasons("wrong-arrays"), "arrays", lambda d: d.arrays.update(extra=np.ones(2)))),
    st.just(Fault("missing array", reasons("wrong-arrays"), "arrays", lambda d: d.arrays.pop(sorted(d.arrays)[0]))),
    st.just(
        Fault(
            "huge array",
            reasons("wrong-arrays"),
            "content",
            on_arrays(lambda r: r.__setitem__("huge", Array(np.zeros(100_000, np.float32)))),
        )
    ),
    st.binary(max_size=300).map(
        lambda data: Fault(
            "corrupt array bytes",
            reasons("malformed"),
            "content",
            on_arrays(lambda r: r.__setitem__(sorted(r)[0], Array("float32", (4,), "numpy.ndarray", data))),
        )
    ),
    st.just(
        Fault(
            "torch array",
            reasons("malformed"),
            "content",
            on_arrays(lambda r: r.__setitem__(sorted(r)[0], Array("float32", (4,), "torch", b"\0" * 16))),
        )
    ),
    st.just(Fault("unreadable array", reasons("malformed"), "content", on_arrays(set_key("x", Unreadable())))),
    st.just(Fault("wrong round", reasons("wrong-round"), "signed", change_signed(round=lambda r: r + 1))),
    st.just(Fault("wrong run", reasons("wrong-run"), "signed", change_signed(run_id=lambda r: r + 7))),
    st.just(Fault("stale base", reasons("stale-base-model"), "signed", change_signed(base_model_hash=b"\1" * 32))),
    st.just(Fault("hash mismatch", reasons("hash-mismatch"), "signed", change_signed(update_hash=keccak256(b"x")))),
    st.just(Fault("unregistered signer", reasons("unregistered"), "signed", sign_with(UNREGISTERED))),
    st.just(
        Fault(
            "tampered signature",
            reasons("bad-signature"),
            "content",
            on_ledger(lambda r: r.__setitem__(messages.SIGNATURE, bytes(65 - 1) + b"\x1b")),
        )
    ),
    st.binary(max_size=64).map(
        lambda signature: Fault(
            "short signature", reasons("malformed"), "content", on_ledger(set_key(messages.SIGNATURE, signature))
        )
    ),
    st.just(
        Fault(
            "names another participant",
            reasons("bad-signature"),
            "content",
            on_ledger(set_key(messages.PARTICIPANT, HONEST[0].address)),
        )
    ),
    config_values.map(
        lambda value: Fault(
            "participant not an address",
            reasons("malformed"),
            "content",
            on_ledger(set_key(messages.PARTICIPANT, value)),
        )
    ),
    st.tuples(
        st.sampled_from([messages.SIGNED_ROUND, messages.SIGNED_RUN_ID, messages.SIGNED_UPDATE_HASH]), st.text()
    ).map(
        lambda pair: Fault(f"{pair[0]} mistyped", reasons("malformed"), "content", on_ledger(set_key(pair[0], pair[1])))
    ),
    st.just(Fault("no ledger record", reasons("malformed"), "content", drop_records("config_records"))),
    bad_counts.map(
        lambda value: Fault(
            f"example count {value!r}",
            reasons("bad-example-count"),
            "content",
            on_metrics(set_key(messages.NUM_EXAMPLES, value)),
        )
    ),
    st.just(
        Fault("no example count", reasons("bad-example-count"), "content", on_metrics(drop_key(messages.NUM_EXAMPLES)))
    ),
    *own_metric_faults(TRAIN_LOSS),
    st.just(Fault("no MetricRecord", reasons("malformed"), "content", drop_records("metric_records"))),
    st.just(Fault("no ArrayRecord", reasons("malformed"), "content", drop_records("array_records"))),
    metric_records.map(
        lambda r: Fault("second MetricRecord", reasons("malformed"), "content", add_record("more.m", r))
    ),
    array_records.map(lambda r: Fault("second ArrayRecord", reasons("malformed"), "content", add_record("more.a", r))),
)

EVALUATION_FAULTS = st.one_of(
    *normalised_faults(),
    st.tuples(names, array_records).map(
        lambda pair: Fault("extra ArrayRecord", ACCEPTED, "content", add_record(f"extra.{pair[0]}", pair[1]))
    ),
    st.just(Fault("no MetricRecord", reasons("malformed"), "content", drop_records("metric_records"))),
    metric_records.map(
        lambda r: Fault("second MetricRecord", reasons("malformed"), "content", add_record("more.m", r))
    ),
    *own_metric_faults(EVAL_LOSS),
    *own_metric_faults(EVAL_ACCURACY),
    st.just(
        Fault("no example count", reasons("bad-example-count"), "content", on_metrics(drop_key(messages.NUM_EXAMPLES)))
    ),
    bad_counts.map(
        lambda value: Fault(
            f"example count {value!r}",
            reasons("bad-example-count"),
            "content",
            on_metrics(set_key(messages.NUM_EXAMPLES, value)),
        )
    ),
    st.just(Fault("no ledger record", reasons("malformed"), "content", drop_records("config_records"))),
    config_values.map(
        lambda value: Fault(
            "participant not an address",
            reasons("malformed"),
            "content",
            on_ledger(set_key(messages.PARTICIPANT, value)),
        )
    ),
    st.just(
        Fault(
            "unregistered participant",
            reasons("unregistered"),
            "content",
            on_ledger(set_key(messages.PARTICIPANT, UNREGISTERED.address)),
        )
    ),
    st.just(
        Fault(
            "poses as an honest site",
            reasons("duplicate-participant"),
            "content",
            on_ledger(set_key(messages.PARTICIPANT, HONEST[0].address)),
        )
    ),
)


@dataclass(frozen=True)
class Plan:
    """What the hostile site sends for one request: ``kind`` is ``error``, ``garbage`` (``content``
    as drawn; ``garbage_reasons`` says what the coordinator may make of it) or ``spoiled`` (its own
    reply with ``faults``)."""

    kind: str
    content: RecordDict | None = None
    faults: tuple[Fault, ...] = ()
    garbage_reasons: frozenset[str] | None = None

    @property
    def reasons(self) -> frozenset[str] | None:
        """The reasons the reply may be rejected for; empty: it must be accepted; ``None``: either."""
        if self.kind == "error":
            return reasons("client-error")
        if self.kind == "garbage":
            return self.garbage_reasons
        faults = self.faults
        standing = [
            fault
            for position, fault in enumerate(faults)
            if not fault.metrics
            or not fault.metrics <= frozenset().union(*(later.metrics for later in faults[position + 1 :]))
        ]
        return frozenset().union(*(fault.reasons for fault in standing))

    def describe(self) -> str:
        return self.kind if self.kind != "spoiled" else ", ".join(fault.name for fault in self.faults)


def plans(faults: st.SearchStrategy[Fault], garbage_reasons: frozenset[str] | None) -> st.SearchStrategy[Plan]:
    return st.one_of(
        st.just(Plan("error")),
        garbage.map(lambda content: Plan("garbage", content, garbage_reasons=garbage_reasons)),
        st.lists(faults, min_size=1, max_size=3).map(lambda drawn: Plan("spoiled", faults=tuple(drawn))),
    )


# Garbage cannot carry a valid signature, so it is rejected in training; as an evaluation reply it
# may happen to be well formed, and then it is accepted.
ROUND_PLANS = st.lists(
    st.tuples(plans(TRAINING_FAULTS, frozenset(REASONS)), plans(EVALUATION_FAULTS, None)),
    min_size=ROUNDS,
    max_size=ROUNDS,
)


@dataclass
class HostileSite:
    """A registered site that sends, for each round and phase, what its plan says."""

    plans: list[tuple[Plan, Plan]]
    honest: HonestSite = field(default_factory=lambda: HonestSite(HOSTILE, step=0.03))

    def __call__(self, message: Message) -> Message:
        round_number = int(message.content[messages.CONFIG_RECORD][messages.CONFIG_ROUND])
        training, evaluation = self.plans[round_number - 1]
        is_training = message.metadata.message_type == MessageType.TRAIN
        plan = training if is_training else evaluation
        if plan.kind == "error":
            return Message(Error(code=0, reason="the site failed"), reply_to=message)
        if plan.kind == "garbage":
            return Message(plan.content, reply_to=message)
        content = self.spoiled_training(message, plan) if is_training else self.honest.evaluation_reply(message).content
        for fault in plan.faults:
            if fault.stage == "content":
                fault.apply(content)
        return Message(content, reply_to=message)

    def spoiled_training(self, message: Message, plan: Plan) -> RecordDict:
        draft = Draft(self.honest.arrays(message), HOSTILE)
        for fault in plan.faults:
            if fault.stage == "arrays":
                fault.apply(draft)
        draft.update = update_message(message, draft.arrays, self.honest.examples)
        for fault in plan.faults:
            if fault.stage == "signed":
                fault.apply(draft)
        update = draft.update
        ledger = ConfigRecord(
            {
                messages.PARTICIPANT: draft.signer.address,
                messages.SIGNATURE: sign_update(signing_domain(message), update, draft.signer.key),
                messages.SIGNED_RUN_ID: update.run_id,
                messages.SIGNED_ROUND: update.round,
                messages.SIGNED_BASE_MODEL_HASH: update.base_model_hash,
                messages.SIGNED_UPDATE_HASH: update.update_hash,
            }
        )
        return RecordDict(
            {
                messages.ARRAYS_RECORD: arrays_record(draft.arrays),
                messages.METRICS_RECORD: MetricRecord({messages.NUM_EXAMPLES: update.num_examples, TRAIN_LOSS: 0.5}),
                messages.LEDGER_RECORD: ledger,
            }
        )


# The test ---------------------------------------------------------------------------------------------


@dataclass
class Tally:
    """How many hostile replies were tried, and what became of them."""

    outcomes: Counter = field(default_factory=Counter)

    @property
    def total(self) -> int:
        return sum(self.outcomes.values())


@pytest.fixture(scope="module")
def ledger(tmp_path_factory) -> Ledger:
    return Ledger.create(str(tmp_path_factory.mktemp("hostile") / "store"), [*HONEST, HOSTILE])


@pytest.fixture(scope="module")
def tally(summary_line) -> Iterator[Tally]:
    tally = Tally()
    started = time.perf_counter()
    yield tally
    rejected = sum(count for (_, outcome), count in tally.outcomes.items() if outcome == "rejected")
    summary_line(
        f"hostile replies tried: {tally.total} in {time.perf_counter() - started:.1f} s "
        f"({rejected} rejected with a reason, {tally.total - rejected} normalised and accepted)"
    )


@pytest.fixture(autouse=True, scope="module")
def quiet_flower() -> Iterator[None]:
    logger = logging.getLogger("flwr")
    level = logger.level
    logger.setLevel(logging.WARNING)
    yield
    logger.setLevel(level)


def committed_manifests(ledger: Ledger, run_id: int) -> list[RoundManifest]:
    registry, store = ledger.session.registry, ledger.session.store
    run = registry.run(run_id)
    return [
        RoundManifest.from_bytes(store.get(registry.committed_round(run_id, number).commitment.manifest_hash))
        for number in range(1, run.committed_rounds + 1)
    ]


def check_verdict(plan: Plan, status: str, reason: str | None, detail: str | None, where: str) -> str:
    expected = plan.reasons
    outcome = "accepted" if status == "accepted" else "rejected"
    if expected is None:
        assert outcome == "accepted" or (reason and detail), where
    elif expected:
        assert outcome == "rejected", f"{where}: {plan.describe()} was accepted"
        assert reason in expected, f"{where}: {plan.describe()} rejected as {reason} ({detail})"
        assert detail, where
    else:
        assert outcome == "accepted", f"{where}: {plan.describe()} rejected as {reason} ({detail})"
    return outcome


def test_a_signed_reply_with_one_extra_metric_key_no_longer_ends_the_run(ledger):
    """The reply that used to make Flower raise InconsistentMessageReplies and end the ServerApp."""
    federation = InProcessFederation(nodes=4)
    *honest_nodes, chatty_node = federation.node_ids
    for node, account in zip(honest_nodes, HONEST, strict=True):
        federation.responders[node] = HonestSite(account, step=0.01)
    chatty = HonestSite(HOSTILE, step=0.02)

    def reply_with_an_extra_key(message: Message) -> Message:
        reply = chatty(message)
        if reply.content.metric_records:  # a valuation reply carries none
            metrics_of(reply.content)["local-accuracy"] = 0.9
        return reply

    federation.responders[chatty_node] = reply_with_an_extra_key
    with federation:
        run_id, _ = ledger.run(federation, FederationSettings(num_server_rounds=2, min_nodes=4))
    for manifest in committed_manifests(ledger, run_id):
        assert manifest.outcome == "aggregated" and manifest.reproduction == "verified"
        assert len(manifest.accepted) == 4 and not manifest.rejected and not manifest.rejected_evaluations
        assert set(manifest.metrics["train"]) == {TRAIN_LOSS}, "a metric one site adds is not aggregated"
        (chatty_entry,) = [entry for entry in manifest.updates if entry.participant == HOSTILE.address]
        assert set(chatty_entry.metrics) == {TRAIN_LOSS, "local-accuracy"}, "but it is recorded"
        assert manifest.metrics["evaluate"]["participants"][HOSTILE.address] == {
            messages.NUM_EXAMPLES: 10,
            EVAL_LOSS: 0.5,
            EVAL_ACCURACY: 0.75,
            "local-accuracy": 0.9,
        }


@pytest.mark.parametrize("strategy", ["FedAvg", "FedMedian"])
@settings(
    max_examples=EXAMPLES_PER_STRATEGY,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)
@given(round_plans=ROUND_PLANS)
def test_whatever_one_site_sends_every_round_is_committed_with_its_verdict(ledger, tally, strategy, round_plans):
    config = FederationSettings(strategy=strategy, num_server_rounds=ROUNDS, min_nodes=4, round_timeout=3.0)
    federation = InProcessFederation(nodes=4)
    *honest_nodes, hostile_node = federation.node_ids
    for node, account in zip(honest_nodes, HONEST, strict=True):
        federation.responders[node] = HonestSite(account, step=0.01 * (1 + HONEST.index(account)))
    federation.responders[hostile_node] = HostileSite(round_plans)
    with federation:
        run_id, _ = ledger.run(federation, config)

    manifests = committed_manifests(ledger, run_id)
    assert [manifest.round for manifest in manifests] == list(range(1, ROUNDS + 1))
    store = ledger.session.store
    for manifest, (training, evaluation) in zip(manifests, round_plans, strict=True):
        where = f"{strategy} round {manifest.round}"
        assert manifest.outcome == "aggregated", where
        assert manifest.reproduction == "verified", where
        assert manifest.training.asked == tuple(sorted(federation.node_ids)) and manifest.training.silent == ()
        assert manifest.evaluation.asked == tuple(sorted(federation.node_ids)) and manifest.evaluation.silent == ()
        by_node = {entry.node_id: entry for entry in manifest.updates}
        assert sorted(by_node) == sorted(federation.node_ids), where
        assert {by_node[node].participant for node in honest_nodes if by_node[node].status == "accepted"} == {
            account.address for account in HONEST
        }, where
        for entry in manifest.updates:
            if entry.update_hash is not None:
                assert entry.sealed_hash is not None and from_hex(entry.sealed_hash) in store
        hostile = by_node[hostile_node]
        outcome = check_verdict(training, hostile.status, hostile.reason, hostile.detail, f"{where} training")
        if hostile.reason == "wrong-arrays" and "not read" in (hostile.detail or ""):
            assert hostile.update_hash is None, "arrays far larger than the model are neither hashed nor stored"
        tally.outcomes["training", outcome] += 1

        rejected = {entry.node_id: entry for entry in manifest.rejected_evaluations}
        participants = manifest.metrics["evaluate"]["participants"]
        if hostile_node in rejected:
            entry = rejected[hostile_node]
            outcome = check_verdict(evaluation, "rejected", entry.reason, entry.detail, f"{where} evaluation")
        else:
            assert HOSTILE.address in participants, f"{where}: the hostile evaluation reply is nowhere"
            outcome = check_verdict(evaluation, "accepted", None, None, f"{where} evaluation")
        tally.outcomes["evaluation", outcome] += 1
        impostor = rejected.get(hostile_node) is not None and rejected[hostile_node].reason == "duplicate-participant"
        for node, account in zip(honest_nodes, HONEST, strict=True):
            if impostor and account == HONEST[0]:
                assert rejected[node].reason == "duplicate-participant"
            else:
                assert participants[account.address] == {
                    messages.NUM_EXAMPLES: 10,
                    EVAL_LOSS: 0.5,
                    EVAL_ACCURACY: 0.75,
                }, where
