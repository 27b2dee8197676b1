"""``ledger_mod`` around a small NumPy ClientApp: what it signs the coordinator accepts, what it
cannot sign becomes an error reply naming why, and a plain Flower run never notices it.

Real Flower ClientApps, Messages and Contexts; real keys, keystores and EIP-712 signatures; the
coordinator's own checks (``fedledger.coordinator.validation``) judge every reply.
"""

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Error, Message, MessageType, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.common.constant import ErrorCode
from site_requests import DOMAIN, ROUND, RUN_ID, SITE, error_of, ledger_config, node

from fedledger import messages
from fedledger.client import ledger_mod
from fedledger.client.identity import KEYSTORE
from fedledger.coordinator.validation import RoundContext, check_evaluation, check_reply
from fedledger.encoding import model_hash
from fedledger.keys import KEYSTORE_PASSWORD_ENV, create_keystore

BASE = {"layer.weight": np.arange(6, dtype=np.float32).reshape(2, 3), "layer.bias": np.zeros(2, np.float32)}
CONTEXT = RoundContext(DOMAIN, RUN_ID, ROUND, model_hash(BASE), BASE)

Handler = Callable[[Message, Context], Message]


def registered(*accounts: str) -> Callable[[str], str | None]:
    return lambda address: None if address in accounts else "unregistered"


def trained(message: Message) -> dict[str, np.ndarray]:
    return {name: array.numpy() + np.float32(0.5) for name, array in message.content[messages.ARRAYS_RECORD].items()}


def reply_with(arrays: dict[str, np.ndarray] | None = None, **metrics: object) -> Handler:
    """A training handler whose reply holds ``arrays`` (default: the received ones, trained) and
    ``metrics`` (default: 12 examples and a loss); ``_`` in a metric name becomes ``-``."""

    def handler(message: Message, context: Context) -> Message:
        values = trained(message) if arrays is None else arrays
        record = MetricRecord()
        for key, value in (metrics or {"num_examples": 12, "train_loss": 0.25}).items():
            record.__dict__["_data"][key.replace("_", "-")] = value
        content = RecordDict(
            {messages.ARRAYS_RECORD: ArrayRecord({name: Array(value) for name, value in values.items()})}
        )
        content[messages.METRICS_RECORD] = record
        return Message(content, reply_to=message)

    return handler


def evaluated(message: Message, context: Context) -> Message:
    metrics = MetricRecord({messages.NUM_EXAMPLES: 9, "eval-loss": 0.5, "eval-mae": 1.25})
    return Message(RecordDict({messages.METRICS_RECORD: metrics}), reply_to=message)


def numpy_app(train: Handler | None = None, calls: list[str] | None = None) -> ClientApp:
    """A ClientApp on plain NumPy arrays, with ``ledger_mod``: its training handler is ``train``
    (default: an honest one); ``calls`` records which handlers ran."""
    app = ClientApp(mods=[ledger_mod])
    train = train or reply_with()
    seen = [] if calls is None else calls

    @app.train()
    def train_handler(message: Message, context: Context) -> Message:
        seen.append("train")
        return train(message, context)

    @app.evaluate()
    def evaluate_handler(message: Message, context: Context) -> Message:
        seen.append("evaluate")
        return evaluated(message, context)

    @app.query()
    def query_handler(message: Message, context: Context) -> Message:
        seen.append("query")
        return Message(RecordDict({"answer": ConfigRecord({"ok": True})}), reply_to=message)

    return app


def request(message_type: str = MessageType.TRAIN, config: ConfigRecord | None = None) -> Message:
    arrays = ArrayRecord({name: Array(value) for name, value in BASE.items()})
    content = RecordDict({messages.ARRAYS_RECORD: arrays, messages.CONFIG_RECORD: config or ledger_config()})
    return Message(content, dst_node_id=11, message_type=message_type)


def test_a_signed_training_reply_is_accepted_by_the_coordinator():
    reply = numpy_app()(request(), node())
    checked = check_reply(reply, CONTEXT, registered(SITE.address))
    assert checked.accepted, checked.detail
    assert checked.participant == SITE.address and checked.num_examples == 12
    assert checked.update_hash == model_hash({name: value + np.float32(0.5) for name, value in BASE.items()})
    assert checked.recorded_metrics == {"train-loss": 0.25}
    ledger = reply.content[messages.LEDGER_RECORD]
    assert ledger[messages.SIGNED_BASE_MODEL_HASH] == model_hash(BASE)
    assert (ledger[messages.SIGNED_RUN_ID], ledger[messages.SIGNED_ROUND]) == (RUN_ID, ROUND)


def test_the_base_model_is_hashed_before_the_app_runs_so_an_app_that_changes_it_in_place_is_still_accepted():
    def train_in_place(message: Message, context: Context) -> Message:
        updated = trained(message)
        message.content[messages.ARRAYS_RECORD] = ArrayRecord({name: Array(value) for name, value in updated.items()})
        return reply_with(updated)(message, context)

    reply = numpy_app(train_in_place)(request(), node())
    assert check_reply(reply, CONTEXT, registered(SITE.address)).accepted


def test_a_plain_flower_request_and_its_reply_pass_through_untouched():
    """No ``fedledger.run-id``: no key is looked for (this node has none) and nothing is added."""
    calls: list[str] = []
    app = numpy_app(calls=calls)
    plain = {messages.CONFIG_ROUND: ROUND, "local-epochs": 1}
    for message_type in (MessageType.TRAIN, MessageType.EVALUATE):
        reply = app(request(message_type, ConfigRecord(plain)), node())
        assert not reply.has_error()
        assert set(reply.content) == {messages.METRICS_RECORD} | (
            {messages.ARRAYS_RECORD} if message_type == MessageType.TRAIN else set()
        )
    assert calls == ["train", "evaluate"]


def test_a_reply_it_could_not_sign_is_not_its_business_outside_a_ledger_run():
    uncounted = numpy_app(reply_with(num_examples=0))
    reply = uncounted(request(config=ConfigRecord({messages.CONFIG_ROUND: 1})), node())
    assert not reply.has_error() and dict(reply.content[messages.METRICS_RECORD]) == {"num-examples": 0}


def test_a_query_is_untouched_even_in_a_ledger_run():
    reply = numpy_app()(request(MessageType.QUERY), node())
    assert set(reply.content) == {"answer"}


def with_records(change: Callable[[RecordDict], None]) -> Handler:
    def handler(message: Message, context: Context) -> Message:
        reply = reply_with()(message, context)
        change(reply.content)
        return reply

    return handler


@pytest.mark.parametrize(
    ("handler", "reason"),
    [
        (with_records(lambda c: c.pop(messages.ARRAYS_RECORD)), "the reply carries 0 ArrayRecords"),
        (
            with_records(lambda c: c.__setitem__("more", ArrayRecord({"x": Array(np.ones(2))}))),
            "the reply carries 2 ArrayRecords; the ledger signs exactly one",
        ),
        (with_records(lambda c: c.pop(messages.METRICS_RECORD)), "the reply carries 0 MetricRecords"),
        (
            with_records(lambda c: c.__setitem__("more", MetricRecord({"x": 1}))),
            "the reply carries 2 MetricRecords; the ledger needs exactly one, holding 'num-examples'",
        ),
        (reply_with(train_loss=0.5), "must hold the example count 'num-examples' as a positive integer, got None"),
        (reply_with(num_examples=0), "as a positive integer, got 0"),
        (reply_with(num_examples=12.0), "as a positive integer, got 12.0"),
        (reply_with(num_examples=True), "as a positive integer, got True"),
        (reply_with(num_examples=[12]), "as a positive integer, got [12]"),
        (reply_with(num_examples=2**64), "as a positive integer, got 18446744073709551616"),
        (
            reply_with({"w": np.ones(2, np.complex64)}, num_examples=3),
            "the reply's arrays cannot be hashed: EncodingError: array 'w': dtype complex64 is not supported",
        ),
    ],
)
def test_a_training_reply_it_cannot_sign_becomes_an_error_reply_naming_why(handler: Handler, reason: str):
    reply = numpy_app(handler)(request(), node())
    assert error_of(reply).startswith("ledger_mod: ") and reason in reply.error.reason
    checked = check_reply(reply, CONTEXT, registered(SITE.address))
    assert checked.reason == "client-error" and reason in checked.detail


def test_an_error_reply_from_the_app_passes_through_untouched():
    def failing(message: Message, context: Context) -> Message:
        return Message(Error(code=ErrorCode.CLIENT_APP_RAISED_EXCEPTION, reason="out of GPU memory"), reply_to=message)

    assert error_of(numpy_app(failing)(request(), node())) == "out of GPU memory"


@pytest.mark.parametrize("message_type", [MessageType.TRAIN, MessageType.EVALUATE])
def test_a_node_without_a_key_answers_with_an_error_before_the_app_runs(message_type: str):
    calls: list[str] = []
    reply = numpy_app(calls=calls)(request(message_type, ledger_config(**{messages.CONFIG_KEY_SEED: None})), node())
    assert error_of(reply) == (
        "ledger_mod: this node has no signing key: set 'fedledger.signer' or 'keystore' in its node config"
    )
    assert calls == []


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({messages.CONFIG_REGISTRY: "registry"}, "'fedledger.registry' must be a contract address, got 'registry'"),
        ({messages.CONFIG_CHAIN_ID: None}, "'fedledger.chain-id' must be a non-negative integer, got None"),
        ({messages.CONFIG_ROUND: "3"}, "'server-round' must be a non-negative integer, got '3'"),
        ({messages.CONFIG_WEIGHT_KEY: ""}, "'fedledger.weight-key' must be a metric key name, got ''"),
        ({messages.CONFIG_ROUND: 2**40}, "round must fit in uint32"),
    ],
)
def test_a_request_it_cannot_sign_for_becomes_an_error_reply(changes: dict, reason: str):
    assert reason in error_of(numpy_app()(request(config=ledger_config(**changes)), node()))


def test_the_example_count_is_read_under_the_strategys_weight_key():
    config = ledger_config(**{messages.CONFIG_WEIGHT_KEY: "samples"})
    reply = numpy_app(reply_with(samples=40, num_examples=1))(request(config=config), node())
    context = RoundContext(DOMAIN, RUN_ID, ROUND, model_hash(BASE), BASE, weight_key="samples")
    checked = check_reply(reply, context, registered(SITE.address))
    assert checked.accepted, checked.detail
    assert checked.num_examples == 40
    unweighted = numpy_app()(request(config=ledger_config(**{messages.CONFIG_WEIGHT_KEY: "samples"})), node())
    assert "the example count 'samples' as a positive integer, got None" in error_of(unweighted)


def test_an_evaluation_reply_is_tagged_with_the_participant_and_accepted():
    reply = numpy_app()(request(MessageType.EVALUATE), node())
    assert dict(reply.content[messages.LEDGER_RECORD]) == {messages.PARTICIPANT: SITE.address}
    checked = check_evaluation(reply, registered(SITE.address))
    assert checked.accepted, checked.detail
    assert checked.metrics == {messages.NUM_EXAMPLES: 9, "eval-loss": 0.5, "eval-mae": 1.25}


def test_a_node_with_a_keystore_signs_with_it_and_tags_evaluations_without_decrypting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    keystore = tmp_path / "site.json"
    account = create_keystore(keystore, "hospital password")
    app, context = numpy_app(), node(**{KEYSTORE: str(keystore)})
    monkeypatch.delenv(KEYSTORE_PASSWORD_ENV, raising=False)
    evaluation = app(request(MessageType.EVALUATE), context)
    assert check_evaluation(evaluation, registered(account.address)).participant == account.address
    assert f"set ${KEYSTORE_PASSWORD_ENV}" in error_of(app(request(), context))
    monkeypatch.setenv(KEYSTORE_PASSWORD_ENV, "wrong")
    assert error_of(app(request(), context)) == f"ledger_mod: wrong password for keystore {keystore}"
    monkeypatch.setenv(KEYSTORE_PASSWORD_ENV, "hospital password")
    checked = check_reply(app(request(), context), CONTEXT, registered(account.address))
    assert checked.accepted and checked.participant == account.address, checked.detail


OTHER_REGISTRY = "0x" + "ab" * 20


@pytest.mark.parametrize("message_type", [MessageType.TRAIN, MessageType.EVALUATE])
def test_a_node_pinned_to_a_registry_and_chain_signs_only_for_them(message_type: str):
    pinned = node(**{"fedledger.registry": DOMAIN.registry.lower(), "fedledger.chain-id": DOMAIN.chain_id})
    assert not numpy_app()(request(message_type), pinned).has_error()

    calls: list[str] = []
    elsewhere = ledger_config(**{messages.CONFIG_REGISTRY: OTHER_REGISTRY})
    reply = numpy_app(calls=calls)(request(message_type, elsewhere), pinned)
    assert error_of(reply) == (
        f"ledger_mod: this node signs only for registry {DOMAIN.registry.lower()} (node config "
        f"'fedledger.registry'); the request is for registry {OTHER_REGISTRY}"
    )
    other_chain = ledger_config(**{messages.CONFIG_CHAIN_ID: 1})
    reply = numpy_app(calls=calls)(request(message_type, other_chain), pinned)
    assert error_of(reply) == (
        f"ledger_mod: this node signs only for chain {DOMAIN.chain_id} (node config 'fedledger.chain-id'); "
        "the request is for chain 1"
    )
    assert calls == []
