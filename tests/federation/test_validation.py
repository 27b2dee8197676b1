"""Every way a reply can be wrong is rejected with its own reason, honest ones pass, and what passes
reaches the strategy in Flower's layout, with the metrics every accepted reply shares."""

import math
import re
from dataclasses import replace

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, ConfigRecord, Error, Message, MessageType, MetricRecord, RecordDict
from flwr.serverapp.strategy import FedAvg
from flwr.serverapp.strategy.strategy_utils import validate_message_reply_consistency

from fedledger import messages
from fedledger.chain import ChainUnavailable
from fedledger.coordinator.validation import (
    ARRAY_HEADER_BYTES,
    MAX_DETAIL_LENGTH,
    REASONS,
    RoundContext,
    check_evaluation,
    check_reply,
    for_strategy,
    reject_duplicates,
)
from fedledger.encoding import model_hash
from fedledger.hashing import to_hex
from fedledger.keys import simulated_participant
from fedledger.manifest import SignedFields
from fedledger.signing import SigningDomain, UpdateMessage, sign_update

DOMAIN = SigningDomain(chain_id=31337, registry="0x5FbDB2315678afecb367f032d93F642f64180aa3")
BASE = {"hidden.bias": np.zeros(4, np.float32), "hidden.weight": np.ones((4, 3), np.float32)}
CONTEXT = RoundContext(DOMAIN, run_id=1, round=2, base_model_hash=model_hash(BASE), reference=BASE)
HONEST = simulated_participant(0, 0)
OTHER = simulated_participant(0, 1)
STRANGER = simulated_participant(99, 0)
REGISTERED = {HONEST.address, OTHER.address}
LOSS = "train-loss"  # an app's own metric: the ledger requires none but the example count


def is_active(address: str) -> str | None:
    return None if address in REGISTERED else "unregistered"


def make_reply(
    account=HONEST,
    arrays: dict | None = None,
    examples: object = 10,
    signed: UpdateMessage | None = None,
    domain: SigningDomain = DOMAIN,
    ledger_changes: dict | None = None,
) -> Message:
    """A reply built the way ledger_mod signs one, with whatever fault the test asks for."""
    arrays = {name: value + 0.5 for name, value in BASE.items()} if arrays is None else arrays
    signed_examples = examples if isinstance(examples, int) else 10
    message = signed or UpdateMessage(1, 2, CONTEXT.base_model_hash, model_hash(arrays), signed_examples)
    ledger = {
        messages.PARTICIPANT: account.address,
        messages.SIGNATURE: sign_update(domain, message, account.key),
        messages.SIGNED_RUN_ID: message.run_id,
        messages.SIGNED_ROUND: message.round,
        messages.SIGNED_BASE_MODEL_HASH: message.base_model_hash,
        messages.SIGNED_UPDATE_HASH: message.update_hash,
    }
    ledger.update(ledger_changes or {})
    content = RecordDict(
        {
            messages.ARRAYS_RECORD: ArrayRecord({name: Array(arrays[name]) for name in sorted(arrays)}),
            messages.METRICS_RECORD: MetricRecord({messages.NUM_EXAMPLES: examples, LOSS: 0.5}),
            messages.LEDGER_RECORD: ConfigRecord(ledger),
        }
    )
    return Message(content, dst_node_id=0, message_type=MessageType.TRAIN)


def signed_for(**changes: object) -> UpdateMessage:
    arrays = {name: value + 0.5 for name, value in BASE.items()}
    return replace(UpdateMessage(1, 2, CONTEXT.base_model_hash, model_hash(arrays), 10), **changes)


def check(message: Message):
    return check_reply(message, CONTEXT, is_active)


def test_an_honest_reply_is_accepted_with_everything_recorded():
    checked = check(make_reply())
    assert checked.accepted, checked.detail
    assert checked.participant == HONEST.address
    assert checked.update_hash == model_hash({name: value + 0.5 for name, value in BASE.items()})
    assert checked.num_examples == 10 and checked.metrics == {messages.NUM_EXAMPLES: 10, LOSS: 0.5}
    assert checked.recorded_metrics == {LOSS: 0.5}
    assert checked.encoding is not None and checked.signature is not None


@pytest.mark.parametrize(
    ("build", "reason", "detail"),
    [
        (lambda: make_reply(signed=signed_for(run_id=2)), "wrong-run", "signed for run 2, this is run 1"),
        (lambda: make_reply(signed=signed_for(round=1)), "wrong-round", "signed for round 1, this is round 2"),
        (lambda: make_reply(signed=signed_for(base_model_hash=b"\x01" * 32)), "stale-base-model", "trained from"),
        (lambda: make_reply(examples=0), "bad-example-count", "positive integer, got 0"),
        (lambda: make_reply(examples=2.5), "bad-example-count", "got 2.5"),
        (
            lambda: make_reply(arrays={**BASE, "hidden.weight": np.ones((4, 2), np.float32)}),
            "wrong-arrays",
            "'hidden.weight' has shape (4, 2), the model's is (4, 3)",
        ),
        (
            lambda: make_reply(arrays={**BASE, "hidden.bias": np.zeros(4, np.float64)}),
            "wrong-arrays",
            "'hidden.bias' is float64, the model's is float32",
        ),
        (lambda: make_reply(arrays={"hidden.bias": BASE["hidden.bias"]}), "wrong-arrays", "missing: ['hidden.weight']"),
        (
            lambda: make_reply(signed=signed_for(update_hash=b"\x02" * 32)),
            "hash-mismatch",
            "the arrays sent hash to",
        ),
        (lambda: make_reply(domain=replace(DOMAIN, chain_id=1)), "bad-signature", "not by"),
        (
            lambda: make_reply(ledger_changes={messages.PARTICIPANT: OTHER.address}),
            "bad-signature",
            f"the signature is by {HONEST.address}, not by {OTHER.address}",
        ),
        (
            lambda: make_reply(ledger_changes={messages.SIGNATURE: b"\x00" * 65}),
            "bad-signature",
            "malformed signature",
        ),
        (lambda: make_reply(account=STRANGER), "unregistered", f"{STRANGER.address} is not registered"),
        (
            lambda: make_reply(arrays={**BASE, "hidden.bias": np.array([0, np.nan, 0, 0], np.float32)}),
            "non-finite",
            "'hidden.bias' holds NaN",
        ),
        (
            lambda: make_reply(arrays={**BASE, "hidden.bias": np.array([0, np.inf, 0, 0], np.float32)}),
            "non-finite",
            "'hidden.bias'",
        ),
        (lambda: make_reply(ledger_changes={messages.PARTICIPANT: "not an address"}), "malformed", "participant"),
        (lambda: make_reply(ledger_changes={messages.SIGNED_ROUND: "two"}), "malformed", "must be integers"),
        (
            lambda: make_reply(ledger_changes={messages.SIGNED_UPDATE_HASH: b"short"}),
            "malformed",
            "must be 32 bytes each",
        ),
    ],
)
def test_each_fault_is_rejected_with_its_reason(build, reason, detail):
    checked = check(build())
    assert checked.reason == reason, checked.detail
    assert detail in checked.detail
    assert reason in REASONS


def test_a_reply_without_the_ledger_record_is_malformed_but_still_hashed():
    message = make_reply()
    del message.content[messages.LEDGER_RECORD]
    checked = check(message)
    assert checked.reason == "malformed"
    assert checked.update_hash is not None


BASE64 = {name: value.astype(np.float64) for name, value in BASE.items()}
CONTEXT64 = replace(CONTEXT, base_model_hash=model_hash(BASE64), reference=BASE64)


def float64_reply(change: float) -> Message:
    arrays = {name: value + 0.5 for name, value in BASE64.items()}
    arrays["hidden.bias"][0] = change
    signed = UpdateMessage(1, 2, CONTEXT64.base_model_hash, model_hash(arrays), 10)
    return make_reply(arrays=arrays, signed=signed)


def test_an_update_whose_distance_from_the_model_overflows_float64_is_non_finite():
    assert check_reply(float64_reply(1.0), CONTEXT64, is_active).accepted
    checked = check_reply(float64_reply(1e200), CONTEXT64, is_active)
    assert checked.reason == "non-finite"
    assert checked.detail.startswith("the update's distance from the global model overflows: its square is inf")


def test_an_update_whose_squared_distance_a_round_could_not_sum_is_non_finite():
    """Finite by itself, but five such updates would make the round's statistics NaN."""
    assert math.isfinite(1.2e154**2) and not math.isfinite(2 * 1.2e154**2)
    checked = check_reply(float64_reply(1.2e154), CONTEXT64, is_active)
    assert checked.reason == "non-finite"
    assert "its square is 1.44e+308 in float64" in checked.detail
    assert check_reply(float64_reply(1e144), CONTEXT64, is_active).accepted


def unreachable_registry(address: str) -> str | None:
    raise ChainUnavailable("the node at http://127.0.0.1:8545 did not answer for 120 s")


def test_a_registry_that_cannot_be_read_is_the_coordinators_failure_not_the_sites():
    with pytest.raises(ChainUnavailable, match="did not answer"):
        check_reply(make_reply(), CONTEXT, unreachable_registry)
    with pytest.raises(ChainUnavailable, match="did not answer"):
        check_evaluation(evaluation_reply(), unreachable_registry)


def test_a_reply_that_fails_before_its_signer_is_known_never_reads_the_registry():
    checked = check_reply(make_reply(signed=signed_for(round=1)), CONTEXT, unreachable_registry)
    assert checked.reason == "wrong-round"


def claims(checked) -> tuple:
    return (checked.participant, checked.signature is not None, checked.signed, checked.num_examples)


HONEST_CLAIMS = (HONEST.address, True, SignedFields(1, 2, to_hex(CONTEXT.base_model_hash)), 10)


def test_a_reply_rejected_for_its_arrays_or_records_keeps_the_participant_and_signature_it_named():
    huge = {**{name: value + 0.5 for name, value in BASE.items()}, "extra": np.zeros(10_000, np.float32)}
    corrupt = make_reply()
    corrupt.content[messages.ARRAYS_RECORD]["hidden.bias"] = Array("float32", (4,), "numpy.ndarray", b"junk")
    two_array_records = make_reply()
    two_array_records.content["more.arrays"] = ArrayRecord({"x": Array(np.ones(2, np.float32))})
    for message, reason in ((make_reply(arrays=huge), "wrong-arrays"), (corrupt, "malformed")):
        checked = check(message)
        assert checked.reason == reason and claims(checked) == HONEST_CLAIMS, checked.detail
    checked = check(two_array_records)
    assert checked.reason == "malformed" and "exactly one ArrayRecord" in checked.detail
    assert claims(checked) == HONEST_CLAIMS


def test_a_claim_that_raises_when_read_is_left_out_and_the_others_are_kept():
    message = make_reply()
    message.content[messages.METRICS_RECORD].__dict__["_data"][messages.NUM_EXAMPLES] = Exploding()
    two_metric_records = make_reply()
    two_metric_records.content["more.metrics"] = MetricRecord({"x": 1})
    checked = check(message)
    assert checked.reason == "bad-example-count" and claims(checked) == (*HONEST_CLAIMS[:3], None)
    checked = check(two_metric_records)
    assert checked.reason == "malformed" and claims(checked) == (*HONEST_CLAIMS[:3], None)


def test_an_inactive_participant_is_rejected():
    checked = check_reply(make_reply(), CONTEXT, lambda address: "inactive")
    assert checked.reason == "inactive"
    assert "deactivated" in checked.detail


def test_two_updates_from_one_participant_are_both_rejected():
    first = check(make_reply())
    second = check(make_reply(arrays={name: value + 0.25 for name, value in BASE.items()}))
    other = check(make_reply(account=OTHER))
    judged = reject_duplicates([first, second, other])
    assert [reply.reason for reply in judged] == ["duplicate-participant", "duplicate-participant", None]
    assert "sent 2 replies this round" in judged[0].detail


def test_rejected_replies_do_not_count_as_duplicates():
    bad = check(make_reply(examples=0))
    good = check(make_reply())
    assert [reply.reason for reply in reject_duplicates([bad, good])] == ["bad-example-count", None]


# Normalisation: what the wrapped strategy receives --------------------------------------------------


def with_metrics(message: Message, **changes: object) -> Message:
    """``message`` with these metrics set (``_`` in a name becomes ``-``), past Flower's type checks."""
    metrics = message.content[messages.METRICS_RECORD]
    for key, value in changes.items():
        metrics.__dict__["_data"][key.replace("_", "-")] = value
    return message


def test_metrics_not_every_reply_reports_are_left_out_and_the_strategy_gets_flowers_layout():
    extra = with_metrics(make_reply(), accuracy=0.9, batch_losses=[0.1, 0.2])
    extra.content["notes"] = ConfigRecord({"site": "Basel"})
    plain = make_reply(account=OTHER)
    checked = [check(extra), check(plain)]
    assert all(reply.accepted for reply in checked), [reply.detail for reply in checked]
    replies = for_strategy(checked)
    for reply in replies:
        assert dict(reply.content.metric_records) == {messages.METRICS_RECORD: {messages.NUM_EXAMPLES: 10, LOSS: 0.5}}
        assert list(reply.content.array_records) == [messages.ARRAYS_RECORD]
        assert list(reply.content[messages.ARRAYS_RECORD]) == sorted(BASE)
        assert not reply.content.config_records
    # What made Flower raise InconsistentMessageReplies before: the layouts now agree.
    validate_message_reply_consistency([reply.content for reply in replies], messages.NUM_EXAMPLES, True)
    aggregate, metrics = FedAvg().aggregate_train(2, replies)
    assert aggregate is not None and metrics == {LOSS: 0.5}


def test_metrics_every_reply_reports_in_one_form_reach_the_strategy_and_are_averaged():
    first = with_metrics(make_reply(examples=10), accuracy=0.5, per_class=[0.0, 1.0], skew=[1.0])
    second = with_metrics(make_reply(account=OTHER, examples=30), accuracy=1.0, per_class=[1.0, 1.0], skew=[1.0, 2.0])
    checked = [check(first), check(second)]
    assert all(reply.accepted for reply in checked), [reply.detail for reply in checked]
    replies = for_strategy(checked)
    assert [set(reply.content[messages.METRICS_RECORD]) for reply in replies] == [
        {messages.NUM_EXAMPLES, LOSS, "accuracy", "per-class"}
    ] * 2, "a list of another length in one reply is left out for all"
    _, metrics = FedAvg().aggregate_train(2, replies)
    assert metrics == {LOSS: 0.5, "accuracy": 0.875, "per-class": [0.75, 1.0]}


def test_the_example_count_is_read_from_the_strategys_weight_key():
    context = replace(CONTEXT, weight_key="samples")
    weighted = make_reply(examples=25)
    metrics = weighted.content[messages.METRICS_RECORD]
    metrics["samples"] = metrics.pop(messages.NUM_EXAMPLES)
    checked = check_reply(weighted, context, is_active)
    assert checked.accepted, checked.detail
    assert checked.num_examples == 25 and checked.recorded_metrics == {LOSS: 0.5}
    assert dict(for_strategy([checked])[0].content[messages.METRICS_RECORD]) == {"samples": 25, LOSS: 0.5}
    unweighted = check_reply(make_reply(), context, is_active)
    assert unweighted.reason == "bad-example-count"
    assert "the example count 'samples' must be a positive integer, got None" in unweighted.detail


def test_records_under_other_names_are_read_and_renamed():
    message = make_reply()
    message.content["weights"] = message.content.pop(messages.ARRAYS_RECORD)
    message.content["figures"] = message.content.pop(messages.METRICS_RECORD)
    checked = check(message)
    assert checked.accepted, checked.detail
    assert set(for_strategy([checked])[0].content) == {messages.ARRAYS_RECORD, messages.METRICS_RECORD}


def test_no_metric_but_the_example_count_is_required_and_numbers_reach_the_strategy_as_sent():
    bare = make_reply()
    bare.content[messages.METRICS_RECORD].pop(LOSS)
    counted = with_metrics(make_reply(account=OTHER), train_loss=1)
    checked = [check(bare), check(counted)]
    assert all(reply.accepted for reply in checked), [reply.detail for reply in checked]
    assert checked[1].metrics == {messages.NUM_EXAMPLES: 10, LOSS: 1} and checked[1].recorded_metrics == {LOSS: 1.0}
    assert [dict(reply.content[messages.METRICS_RECORD]) for reply in for_strategy(checked)] == [
        {messages.NUM_EXAMPLES: 10}
    ] * 2


def test_a_rejected_reply_never_goes_to_the_strategy():
    with pytest.raises(ValueError, match="only an accepted"):
        for_strategy([check(make_reply(examples=0))])


@pytest.mark.parametrize(
    ("change", "reason", "detail"),
    [
        (lambda m: with_metrics(m, train_loss="low"), "malformed", "metric 'train-loss' must be a number"),
        (lambda m: with_metrics(m, train_loss=[1, 0.5]), "malformed", "a list of numbers of one kind, got [1, 0.5]"),
        (lambda m: with_metrics(m, train_loss=True), "malformed", "metric 'train-loss' must be a number"),
        (lambda m: with_metrics(m, train_loss=float("nan")), "non-finite", "metric 'train-loss' is nan"),
        (lambda m: with_metrics(m, train_loss=float("inf")), "non-finite", "metric 'train-loss' is inf"),
        (lambda m: with_metrics(m, per_class=[0.5, float("-inf")]), "non-finite", "'per-class' is [0.5, -inf]"),
        (lambda m: with_metrics(m, num_examples=[10, 10]), "bad-example-count", "got [10, 10]"),
        (lambda m: m.content[messages.METRICS_RECORD].pop(messages.NUM_EXAMPLES), "bad-example-count", "got None"),
        (lambda m: m.content.__setitem__("more", MetricRecord({"x": 1})), "malformed", "one MetricRecord"),
        (lambda m: m.content.__setitem__("more", ArrayRecord()), "malformed", "one ArrayRecord, this one carries 2"),
        (lambda m: m.content.pop(messages.METRICS_RECORD), "malformed", "one MetricRecord, this one carries 0"),
        (
            lambda m: m.content[messages.LEDGER_RECORD].__setitem__(messages.SIGNATURE, b"\x01" * 64),
            "malformed",
            "65-byte signature",
        ),
        (
            lambda m: m.content[messages.LEDGER_RECORD].__setitem__(messages.SIGNED_ROUND, 10**100_000),
            "malformed",
            "must be integers",
        ),
    ],
)
def test_metrics_and_fields_of_the_wrong_kind_are_rejected(change, reason, detail):
    message = make_reply()
    change(message)
    checked = check(message)
    assert checked.reason == reason, checked.detail
    assert detail in checked.detail


def test_an_error_reply_is_rejected_as_a_client_error():
    request = Message(RecordDict(), dst_node_id=0, message_type=MessageType.TRAIN)
    reply = Message(Error(code=0, reason="out of memory"), reply_to=request)
    checked = check(reply)
    assert (checked.reason, checked.detail) == ("client-error", "the node replied with an error: out of memory")


def test_arrays_far_larger_than_the_model_are_rejected_unread():
    huge = {**{name: value + 0.5 for name, value in BASE.items()}, "extra": np.zeros(10_000, np.float32)}
    checked = check(make_reply(arrays=huge))
    assert checked.reason == "wrong-arrays"
    assert "40," in checked.detail and "were not read" in checked.detail
    assert checked.encoding is None and checked.update_hash is None


def test_the_size_bound_is_twice_the_values_plus_one_header_per_array():
    assert CONTEXT.max_reply_bytes == 2 * (4 + 12) * 4 + 2 * ARRAY_HEADER_BYTES
    honest = {name: value + 0.5 for name, value in BASE.items()}

    def padded(values: int) -> dict[str, np.ndarray]:
        return {**honest, "extra": np.zeros(values, np.float32)}

    def size(arrays: dict[str, np.ndarray]) -> int:
        return sum(len(Array(value).data) for value in arrays.values())

    most = max(values for values in range(1000) if size(padded(values)) <= CONTEXT.max_reply_bytes)
    read, unread = check(make_reply(arrays=padded(most))), check(make_reply(arrays=padded(most + 1)))
    assert read.reason == unread.reason == "wrong-arrays"
    assert read.update_hash is not None and "unexpected: ['extra']" in read.detail
    assert unread.update_hash is None and unread.detail.endswith("they were not read")


def test_arrays_of_another_dtype_within_the_bound_are_read_and_hashed():
    wider = {name: (value + 0.5).astype(np.float64) for name, value in BASE.items()}
    checked = check(make_reply(arrays=wider))
    assert checked.reason == "wrong-arrays"
    assert checked.update_hash == model_hash(wider)


@pytest.mark.parametrize(
    ("array", "detail"),
    [
        (Array("float32", (4,), "numpy.ndarray", b"not an npy file"), "the arrays cannot be read: ValueError"),
        (Array("float32", (4,), "torch", b"\0" * 16), "Unsupported serialization type"),
    ],
)
def test_unreadable_array_bytes_are_malformed(array, detail):
    message = make_reply()
    message.content[messages.ARRAYS_RECORD]["hidden.bias"] = array
    checked = check(message)
    assert checked.reason == "malformed"
    assert detail in checked.detail


class Exploding:
    """What an object from a hostile node may do when it is read."""

    def __getattribute__(self, name: str):
        raise RuntimeError(f"boom on {name}")


def test_whatever_raises_while_a_reply_is_read_is_a_malformed_rejection_quoting_it():
    message = make_reply()
    message.content[messages.ARRAYS_RECORD].__dict__["_data"]["hidden.bias"] = Exploding()
    checked = check(message)
    assert checked.reason == "malformed"
    assert checked.detail == "the reply cannot be read: RuntimeError: boom on data"


def test_details_quoting_what_a_site_sent_are_cut_short():
    request = Message(RecordDict(), dst_node_id=0, message_type=MessageType.TRAIN)
    checked = check(Message(Error(code=0, reason="x" * 100_000), reply_to=request))
    assert checked.reason == "client-error"
    assert len(checked.detail) == MAX_DETAIL_LENGTH and checked.detail.endswith("x…")


# Evaluation replies ----------------------------------------------------------------------------------


EVAL_LOSS, EVAL_ACCURACY = "eval-loss", "eval-accuracy"  # an app's own metrics


def evaluation_reply(account=HONEST, examples: object = 12, loss: object = 0.4, accuracy: object = 0.8) -> Message:
    metrics = MetricRecord()
    for key, value in (
        (messages.NUM_EXAMPLES, examples),
        (EVAL_LOSS, loss),
        (EVAL_ACCURACY, accuracy),
    ):
        if value is not None:
            metrics.__dict__["_data"][key] = value
    content = RecordDict(
        {
            messages.METRICS_RECORD: metrics,
            messages.LEDGER_RECORD: ConfigRecord({messages.PARTICIPANT: account.address}),
        }
    )
    return Message(content, dst_node_id=0, message_type=MessageType.EVALUATE)


def test_an_honest_evaluation_reply_is_accepted_and_normalised():
    message = evaluation_reply()
    message.content[messages.METRICS_RECORD]["eval-auc"] = 0.7
    message.content["arrays"] = ArrayRecord({"w": Array(np.ones(3))})
    checked = check_evaluation(message, is_active)
    assert checked.accepted, checked.detail
    assert checked.participant == HONEST.address
    assert checked.metrics == {messages.NUM_EXAMPLES: 12, EVAL_LOSS: 0.4, EVAL_ACCURACY: 0.8, "eval-auc": 0.7}
    content = for_strategy([checked])[0].content
    assert dict(content) == {messages.METRICS_RECORD: checked.metrics}


def test_evaluation_metrics_are_the_apps_own_and_only_the_weight_key_is_required():
    message = evaluation_reply(examples=None, loss=None, accuracy=3.5)
    message.content[messages.METRICS_RECORD]["samples"] = 7
    checked = check_evaluation(message, is_active, weight_key="samples")
    assert checked.accepted, checked.detail
    assert checked.metrics == {"samples": 7, EVAL_ACCURACY: 3.5}
    assert check_evaluation(evaluation_reply(), is_active, weight_key="samples").reason == "bad-example-count"


@pytest.mark.parametrize(
    ("build", "reason", "detail"),
    [
        (lambda: evaluation_reply(loss="low"), "malformed", "metric 'eval-loss' must be a number"),
        (lambda: evaluation_reply(loss=[1, 0.5]), "malformed", "of one kind, got [1, 0.5]"),
        (lambda: evaluation_reply(loss=float("nan")), "non-finite", "metric 'eval-loss' is nan"),
        (lambda: evaluation_reply(accuracy=[float("inf")]), "non-finite", "metric 'eval-accuracy' is [inf]"),
        (lambda: evaluation_reply(examples=0), "bad-example-count", "got 0"),
        (lambda: evaluation_reply(examples=2.0), "bad-example-count", "got 2.0"),
        (lambda: evaluation_reply(examples=None), "bad-example-count", "'num-examples' must be a positive integer"),
        (lambda: evaluation_reply(account=STRANGER), "unregistered", "is not registered"),
    ],
)
def test_each_bad_evaluation_reply_is_rejected_with_its_reason(build, reason, detail):
    checked = check_evaluation(build(), is_active)
    assert checked.reason == reason, checked.detail
    assert detail in checked.detail


def test_an_evaluation_reply_without_a_participant_is_malformed():
    message = evaluation_reply()
    message.content[messages.LEDGER_RECORD][messages.PARTICIPANT] = "site 3"
    checked = check_evaluation(message, is_active)
    assert (checked.reason, checked.participant) == ("malformed", None)
    assert "does not name a participant address" in checked.detail


def test_two_evaluation_replies_naming_one_participant_are_both_rejected():
    replies = [check_evaluation(evaluation_reply(), is_active) for _ in range(2)]
    replies.append(check_evaluation(evaluation_reply(account=OTHER), is_active))
    assert [reply.reason for reply in reject_duplicates(replies)] == [
        "duplicate-participant",
        "duplicate-participant",
        None,
    ]


def test_an_unreadable_evaluation_reply_is_malformed():
    message = evaluation_reply(loss=Exploding())
    checked = check_evaluation(message, is_active)
    assert checked.reason == "malformed"
    assert checked.detail.startswith("metric 'eval-loss' cannot be read: RuntimeError")
    assert checked.participant == HONEST.address


def many_metrics(message: Message, count: int) -> Message:
    return with_metrics(message, **{f"m{index}": 0.5 for index in range(count)})


@pytest.mark.parametrize(
    ("change", "detail"),
    [
        (lambda m: many_metrics(m, 63), r"the MetricRecord holds 6[56] metrics, more than 64$"),
        (lambda m: with_metrics(m, **{"k" * 129: 0.5}), r"a metric key has 129 characters, more than 128: 'kkk"),
        (lambda m: with_metrics(m, per_class=[0.5] * 1_025), r"metric 'per-class' holds 1,025 values, more than 1,024"),
    ],
)
def test_a_metric_record_past_the_bounds_is_malformed_and_none_of_its_metrics_is_recorded(change, detail):
    checked = check(change(make_reply()))
    assert (checked.reason, checked.metrics) == ("malformed", None)
    assert re.match(detail, checked.detail), checked.detail
    evaluation = check_evaluation(change(evaluation_reply()), is_active)
    assert evaluation.reason == "malformed" and re.match(detail, evaluation.detail), evaluation.detail


def test_a_metric_record_at_the_bounds_is_accepted():
    message = with_metrics(many_metrics(make_reply(), 60), per_class=[0.5] * 1_024, **{"k" * 128: 0.5})
    checked = check(message)
    assert checked.accepted, checked.detail
    assert len(checked.metrics) == 64
