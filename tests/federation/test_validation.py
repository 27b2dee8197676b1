"""Every way a training reply can be wrong is rejected with its own reason, and honest ones pass."""

from dataclasses import replace

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MessageType, MetricRecord, RecordDict

from coordinator.validation import REASONS, RoundContext, check_reply, reject_duplicates
from fedledger import messages
from fedledger.encoding import model_hash
from fedledger.keys import simulated_participant
from fedledger.signing import SigningDomain, UpdateMessage, sign_update

DOMAIN = SigningDomain(chain_id=31337, registry="0x5FbDB2315678afecb367f032d93F642f64180aa3")
BASE = {"hidden.bias": np.zeros(4, np.float32), "hidden.weight": np.ones((4, 3), np.float32)}
CONTEXT = RoundContext(DOMAIN, run_id=1, round=2, base_model_hash=model_hash(BASE), reference=BASE)
HONEST = simulated_participant(0, 0)
OTHER = simulated_participant(0, 1)
STRANGER = simulated_participant(99, 0)
REGISTERED = {HONEST.address, OTHER.address}


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
    """A reply built the way client.app builds one, with whatever fault the test asks for."""
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
            messages.METRICS_RECORD: MetricRecord({messages.NUM_EXAMPLES: examples, messages.TRAIN_LOSS: 0.5}),
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
    assert checked.num_examples == 10 and checked.train_loss == 0.5
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
