"""``ledger_mod`` answering valuation requests for real ClientApps: the logreg example (NumPy, the
breast-cancer records that ship with scikit-learn), the tabular example (PyTorch, one UCI
hospital's records) and a small NumPy app whose evaluate handler a test chooses.

Each value the mod reports is the app's own evaluation of that candidate; the signature recovers
to the site's address over the hashes of the candidates sent; whatever goes wrong becomes an error
reply naming the candidate and what was wrong.
"""

import importlib
from collections.abc import Callable, Iterator
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
from fedledger.coordinator.validation import check_evaluation
from fedledger.encoding import model_hash
from fedledger.keys import KEYSTORE_PASSWORD_ENV, create_keystore
from fedledger.signing import ValuationMessage, recover_valuation_signer, valuation_results_hash

LOGREG = Path(__file__).resolve().parents[2] / "examples" / "logreg"
NUM_PARTITIONS = 4

Arrays = dict[str, np.ndarray]
Handler = Callable[[Message, Context], Message]


def as_record(arrays: Arrays) -> ArrayRecord:
    return ArrayRecord({name: Array(value) for name, value in arrays.items()})


def valuation_request(
    candidates: list[Arrays], metric: str = "eval-loss", config: ConfigRecord | None = None
) -> Message:
    """A valuation request as the coordinator sends it: the candidates as ``fedledger.candidate.NNNN``."""
    content = RecordDict(
        {messages.candidate_record(index): as_record(arrays) for index, arrays in enumerate(candidates)}
    )
    content[messages.CONFIG_RECORD] = config or ledger_config(**{messages.CONFIG_VALUATION: metric})
    return Message(content, dst_node_id=11, message_type=MessageType.EVALUATE)


def named(candidates: list[Arrays], names: list[str]) -> Message:
    """A valuation request whose ArrayRecords are ``candidates`` under ``names``."""
    request = valuation_request([])
    for name, arrays in zip(names, candidates, strict=True):
        request.content[name] = as_record(arrays)
    return request


CANDIDATE = messages.candidate_record


def evaluation_request(arrays: Arrays, config: ConfigRecord | None = None) -> Message:
    """An ordinary ledger evaluation request for the model ``arrays``."""
    content = RecordDict({messages.ARRAYS_RECORD: as_record(arrays), messages.CONFIG_RECORD: config or ledger_config()})
    return Message(content, dst_node_id=11, message_type=MessageType.EVALUATE)


def own_evaluation(app: ClientApp, arrays: Arrays, context: Context, metric: str) -> float:
    """What the app's own evaluation of ``arrays`` reports for ``metric``, as an ordinary ledger
    evaluation."""
    reply = app(evaluation_request(arrays), context)
    assert not reply.has_error(), reply.error.reason
    return reply.content[messages.METRICS_RECORD][metric]


def signer(reply: Message, candidates: list[Arrays], metric: str = "eval-loss") -> str:
    """The address that signed ``reply``'s values over the hashes of ``candidates``."""
    ledger = reply.content[messages.LEDGER_RECORD]
    results = valuation_results_hash([model_hash(arrays) for arrays in candidates], ledger[messages.VALUATION_VALUES])
    signed = ValuationMessage(RUN_ID, ROUND, metric, results)
    return recover_valuation_signer(DOMAIN, signed, ledger[messages.SIGNATURE])


@pytest.fixture(scope="module")
def logreg() -> Iterator[ClientApp]:
    """The logreg example's ClientApp, imported from the example's folder."""
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(LOGREG))
        yield importlib.import_module("logreg.client_app").app


def logreg_candidates() -> list[Arrays]:
    task = importlib.import_module("logreg.task")
    rng = np.random.default_rng(12)
    start = task.initial_arrays()
    trained, _ = task.train(start, task.load_data(0, NUM_PARTITIONS), epochs=30, lr=0.5)
    noisy = {name: value + rng.normal(0.0, 0.5, value.shape) for name, value in trained.items()}
    return [start, trained, noisy]


def logreg_site() -> Context:
    return node(**{"num-partitions": NUM_PARTITIONS})


@pytest.mark.parametrize("metric", ["eval-loss", "eval-acc"])
def test_the_logreg_app_values_each_candidate_as_its_own_evaluation_does_and_the_site_signs_them(
    logreg: ClientApp, metric: str
):
    candidates = logreg_candidates()
    reply = logreg(valuation_request(candidates, metric), logreg_site())

    assert not reply.has_error(), reply.error.reason
    assert set(reply.content) == {messages.LEDGER_RECORD}
    ledger = reply.content[messages.LEDGER_RECORD]
    assert set(ledger) == {messages.PARTICIPANT, messages.SIGNATURE, messages.VALUATION_VALUES}
    assert ledger[messages.PARTICIPANT] == SITE.address
    expected = [own_evaluation(logreg, arrays, logreg_site(), metric) for arrays in candidates]
    assert ledger[messages.VALUATION_VALUES] == expected
    assert all(isinstance(value, float) for value in ledger[messages.VALUATION_VALUES])
    assert len(set(expected)) > 1, "the candidates should differ in value"
    assert signer(reply, candidates, metric) == SITE.address


def test_the_signature_binds_the_values_to_these_candidates_this_metric_and_this_site(logreg: ClientApp):
    candidates = logreg_candidates()
    reply = logreg(valuation_request(candidates), logreg_site())
    assert signer(reply, candidates) == SITE.address
    assert signer(reply, candidates[::-1]) != SITE.address
    assert signer(reply, candidates, metric="eval-acc") != SITE.address
    other_site = logreg(valuation_request(candidates), node(**{"num-partitions": NUM_PARTITIONS, "partition-id": 3}))
    assert (
        other_site.content[messages.LEDGER_RECORD][messages.VALUATION_VALUES]
        != (reply.content[messages.LEDGER_RECORD][messages.VALUATION_VALUES])
    ), "another site evaluates on its own rows"
    assert signer(other_site, candidates) != SITE.address


def test_candidates_are_valued_in_index_order_whatever_order_the_request_lists_them(logreg: ClientApp):
    candidates = logreg_candidates()
    in_order = logreg(valuation_request(candidates), logreg_site())
    indices = range(len(candidates))[::-1]
    listed_backwards = logreg(named([candidates[i] for i in indices], [CANDIDATE(i) for i in indices]), logreg_site())
    assert (
        listed_backwards.content[messages.LEDGER_RECORD][messages.VALUATION_VALUES]
        == (in_order.content[messages.LEDGER_RECORD][messages.VALUATION_VALUES])
    )
    assert signer(listed_backwards, candidates) == SITE.address


def test_a_request_without_a_valuation_metric_is_an_ordinary_evaluation(logreg: ClientApp):
    arrays = logreg_candidates()[1]
    reply = logreg(evaluation_request(arrays), logreg_site())
    assert dict(reply.content[messages.LEDGER_RECORD]) == {messages.PARTICIPANT: SITE.address}
    checked = check_evaluation(reply, lambda address: None if address == SITE.address else "unregistered")
    assert checked.accepted, checked.detail
    assert set(checked.metrics) == {"eval-loss", "eval-acc", "num-examples"}


def test_a_training_request_that_names_a_valuation_metric_is_still_an_ordinary_training(logreg: ClientApp):
    config = ledger_config(**{messages.CONFIG_VALUATION: "eval-loss", "lr": 0.1})
    content = RecordDict({messages.ARRAYS_RECORD: as_record(logreg_candidates()[0]), messages.CONFIG_RECORD: config})
    context = logreg_site()
    context.run_config["local-epochs"] = 1
    reply = logreg(Message(content, dst_node_id=11, message_type=MessageType.TRAIN), context)
    assert not reply.has_error(), reply.error.reason
    assert reply.content[messages.LEDGER_RECORD][messages.SIGNED_UPDATE_HASH] == model_hash(
        {name: array.numpy() for name, array in reply.content[messages.ARRAYS_RECORD].items()}
    )


@pytest.fixture(scope="module")
def hospital(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """One UCI hospital's records and the federation's schema, as the hospitals scenario writes them."""
    from fedledger.simulations.scenarios import SCENARIOS

    data = SCENARIOS["hospitals"].prepare(tmp_path_factory.mktemp("hospitals"), 4, 0)
    return data.site_path(1), data.schema_path


def test_the_tabular_app_values_each_candidate_as_its_own_evaluation_does(
    hospital: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    from tabular_app.client_app import app
    from tabular_app.models import TabularClassifier, model_arrays
    from tabular_app.schema import Schema
    from tabular_app.server_app import client_config
    from tabular_app.settings import FederationSettings
    from tabular_app.site import DATA_PATH, SCHEMA_PATH

    data_path, schema_path = hospital
    keystore = tmp_path / "hospital.json"
    account = create_keystore(keystore, "hospital password")
    monkeypatch.setenv(KEYSTORE_PASSWORD_ENV, "hospital password")
    site = node(**{DATA_PATH: str(data_path), SCHEMA_PATH: str(schema_path), KEYSTORE: str(keystore)})
    num_features = Schema.load(schema_path).num_features
    candidates = [model_arrays(TabularClassifier.initialised(num_features, 16, seed)) for seed in range(3)]
    config = ledger_config(**client_config(FederationSettings()), **{messages.CONFIG_VALUATION: "eval-loss"})

    reply = app(valuation_request(candidates, config=config), site)

    assert not reply.has_error(), reply.error.reason
    ledger = reply.content[messages.LEDGER_RECORD]
    evaluation_config = ledger_config(**client_config(FederationSettings()))
    expected = []
    for arrays in candidates:
        own = app(evaluation_request(arrays, evaluation_config), site)
        expected.append(own.content[messages.METRICS_RECORD]["eval-loss"])
    assert ledger[messages.VALUATION_VALUES] == expected
    assert len(set(expected)) == len(candidates)
    assert ledger[messages.PARTICIPANT] == account.address
    assert signer(reply, candidates) == account.address


def evaluating_app(evaluate: Handler, calls: list[int] | None = None) -> ClientApp:
    """A ClientApp with ``ledger_mod`` whose evaluate handler is ``evaluate``; ``calls`` records the
    bias of each model it is given."""
    app = ClientApp(mods=[ledger_mod])
    seen = [] if calls is None else calls

    @app.evaluate()
    def evaluate_handler(message: Message, context: Context) -> Message:
        seen.append(float(message.content[messages.ARRAYS_RECORD]["bias"].numpy()[0]))
        return evaluate(message, context)

    return app


FEATURES = np.random.default_rng(5).normal(size=(40, 3))
TARGETS = FEATURES @ np.array([1.0, -2.0, 0.5]) + 0.25


def squared_error(message: Message, context: Context) -> Message:
    """A linear model's mean squared error on 40 rows."""
    model = message.content[messages.ARRAYS_RECORD]
    predictions = FEATURES @ model["weights"].numpy() + model["bias"].numpy()
    metrics = MetricRecord({"eval-loss": float(np.mean((predictions - TARGETS) ** 2)), "num-examples": 40})
    return Message(RecordDict({messages.METRICS_RECORD: metrics}), reply_to=message)


def linear_models(count: int) -> list[Arrays]:
    return [{"weights": np.full(3, index / 2), "bias": np.array([float(index)])} for index in range(count)]


def reporting(**metrics: object) -> Handler:
    """An evaluate handler whose reply holds ``metrics`` (``_`` in a name becomes ``-``) whatever
    model it is given."""

    def handler(message: Message, context: Context) -> Message:
        record = MetricRecord()
        for key, value in metrics.items():
            record.__dict__["_data"][key.replace("_", "-")] = value
        return Message(RecordDict({messages.METRICS_RECORD: record}), reply_to=message)

    return handler


def test_an_app_that_changes_the_arrays_it_is_given_changes_nothing_that_is_signed():
    def evaluate_in_place(message: Message, context: Context) -> Message:
        reply = squared_error(message, context)
        message.content[messages.ARRAYS_RECORD]["bias"] = Array(np.array([99.0]))
        return reply

    candidates = linear_models(2)
    reply = evaluating_app(evaluate_in_place)(valuation_request(candidates), node())
    assert signer(reply, candidates) == SITE.address


def test_the_evaluation_of_each_candidate_is_a_reply_flower_accepts_to_the_request():
    """The app's handler builds its reply with ``reply_to``: each candidate's message carries the
    request's metadata, so the reply is addressed back to the coordinator's node."""
    replies: list[Message] = []

    def recording(message: Message, context: Context) -> Message:
        replies.append(squared_error(message, context))
        return replies[-1]

    request = valuation_request(linear_models(3))
    reply = evaluating_app(recording)(request, node())
    assert not reply.has_error()
    for candidate_reply in replies:
        assert candidate_reply.metadata.message_type == MessageType.EVALUATE
        assert candidate_reply.metadata.dst_node_id == request.metadata.src_node_id
        assert candidate_reply.metadata.src_node_id == request.metadata.dst_node_id
    assert reply.metadata.dst_node_id == request.metadata.src_node_id


def test_a_squared_error_app_reports_one_value_per_candidate():
    candidates = linear_models(4)
    calls: list[float] = []
    reply = evaluating_app(squared_error, calls)(valuation_request(candidates), node())
    values = reply.content[messages.LEDGER_RECORD][messages.VALUATION_VALUES]
    assert calls == [0.0, 1.0, 2.0, 3.0]
    expected = [float(np.mean((FEATURES @ m["weights"] + m["bias"] - TARGETS) ** 2)) for m in candidates]
    assert values == expected


def with_model(request: Message, model: Arrays, name: str = messages.ARRAYS_RECORD) -> Message:
    """``request`` as the site's evaluation request of the round: it also carries ``model``."""
    request.content[name] = as_record(model)
    return request


def test_a_request_with_the_rounds_model_is_also_its_ordinary_evaluation_answered_in_one_call():
    model, *candidates = linear_models(4)
    calls: list[float] = []
    request = with_model(valuation_request(candidates), model)
    reply = evaluating_app(squared_error, calls)(request, node())

    assert calls == [0.0, 1.0, 2.0, 3.0], "the model first, then every candidate in order"
    assert reply.metadata.dst_node_id == request.metadata.src_node_id
    alone = evaluating_app(squared_error)(evaluation_request(model), node())
    assert reply.content[messages.METRICS_RECORD] == alone.content[messages.METRICS_RECORD]
    ledger = reply.content[messages.LEDGER_RECORD]
    own = evaluating_app(squared_error)(valuation_request(candidates), node()).content[messages.LEDGER_RECORD]
    assert ledger[messages.VALUATION_VALUES] == own[messages.VALUATION_VALUES]
    assert signer(reply, candidates) == SITE.address
    checked = check_evaluation(reply, lambda address: None if address == SITE.address else "unregistered")
    assert checked.accepted, checked.detail
    assert checked.metrics == {"eval-loss": alone.content[messages.METRICS_RECORD]["eval-loss"], "num-examples": 40}


def test_the_model_may_have_any_name_and_the_app_sees_it_without_the_candidates():
    seen: list[list[str]] = []
    app = ClientApp(mods=[ledger_mod])

    @app.evaluate()
    def names_seen(message: Message, context: Context) -> Message:
        seen.append(sorted(message.content.array_records))
        return reporting(eval_loss=1.0, num_examples=40)(message, context)

    model, *candidates = linear_models(3)
    reply = app(with_model(valuation_request(candidates), model, "global"), node())
    assert not reply.has_error(), reply.error.reason
    assert seen == [["global"], [messages.ARRAYS_RECORD], [messages.ARRAYS_RECORD]]


def test_an_error_reply_to_the_rounds_model_is_returned_as_it_is_and_no_candidate_is_evaluated():
    calls: list[float] = []
    model, *candidates = linear_models(3)
    reply = evaluating_app(app_error, calls)(with_model(valuation_request(candidates), model), node())
    assert error_of(reply) == "out of GPU memory"
    assert calls == [0.0]


def test_a_candidate_the_app_cannot_value_makes_the_whole_reply_an_error_also_with_the_rounds_model():
    model, *candidates = linear_models(3)
    reply = evaluating_app(fails_on_second(raising))(with_model(valuation_request(candidates), model), node())
    assert error_of(reply).startswith("ledger_mod: the app raised on candidate 0: ValueError")


def test_an_integer_metric_is_reported_as_a_float():
    reply = evaluating_app(reporting(eval_loss=3))(valuation_request(linear_models(1)), node())
    values = reply.content[messages.LEDGER_RECORD][messages.VALUATION_VALUES]
    assert values == [3.0] and isinstance(values[0], float)


@pytest.mark.parametrize(
    ("names", "reason"),
    [
        (
            [CANDIDATE(0), CANDIDATE(2)],
            "the valuation request's 2 candidates must be 'fedledger.candidate.0000' to "
            "'fedledger.candidate.0001', with no gap; missing: ['fedledger.candidate.0001']",
        ),
        ([CANDIDATE(1)], "missing: ['fedledger.candidate.0000']"),
        (
            [CANDIDATE(0), messages.ARRAYS_RECORD, "extra"],
            "the valuation request carries ArrayRecords other than candidate models: ['arrays', 'extra']; "
            "candidates are named 'fedledger.candidate.0000', 'fedledger.candidate.0001', ..., and one other "
            "ArrayRecord at most, the model to evaluate",
        ),
        ([CANDIDATE(0), "fedledger.candidate.1"], "other than candidate models: ['fedledger.candidate.1']"),
        ([CANDIDATE(0), "fedledger.candidate.10000"], "other than candidate models: ['fedledger.candidate.10000']"),
        ([], "the valuation request carries no candidate model (an ArrayRecord 'fedledger.candidate.0000')"),
    ],
)
def test_a_request_whose_array_records_are_not_exactly_the_candidates_gets_an_error_reply_before_the_app_runs(
    names: list[str], reason: str
):
    calls: list[float] = []
    reply = evaluating_app(squared_error, calls)(named(linear_models(len(names)), names), node())
    assert error_of(reply).startswith("ledger_mod: ") and reason in reply.error.reason
    assert calls == []


def fails_on_second(failure: Handler) -> Handler:
    """Evaluates the first candidate and answers the others with ``failure``."""

    def handler(message: Message, context: Context) -> Message:
        if message.content[messages.ARRAYS_RECORD]["bias"].numpy()[0] == 0.0:
            return squared_error(message, context)
        return failure(message, context)

    return handler


def raising(message: Message, context: Context) -> Message:
    raise ValueError("the test rows are unreadable")


def app_error(message: Message, context: Context) -> Message:
    return Message(Error(code=ErrorCode.CLIENT_APP_RAISED_EXCEPTION, reason="out of GPU memory"), reply_to=message)


def with_two_metric_records(message: Message, context: Context) -> Message:
    reply = squared_error(message, context)
    reply.content["more"] = MetricRecord({"eval-loss": 1.0})
    return reply


@pytest.mark.parametrize(
    ("failure", "reason"),
    [
        (raising, "the app raised on candidate 1: ValueError: the test rows are unreadable"),
        (app_error, "the app answered candidate 1 with an error: out of GPU memory"),
        (
            reporting(eval_acc=0.5),
            "the MetricRecord of the reply to candidate 1 must hold 'eval-loss' as a finite number, got None",
        ),
        (reporting(eval_loss=float("nan")), "candidate 1 must hold 'eval-loss' as a finite number, got nan"),
        (reporting(eval_loss=float("inf")), "candidate 1 must hold 'eval-loss' as a finite number, got inf"),
        (reporting(eval_loss=True), "candidate 1 must hold 'eval-loss' as a finite number, got True"),
        (reporting(eval_loss=[0.5]), "candidate 1 must hold 'eval-loss' as a finite number, got [0.5]"),
        (
            with_two_metric_records,
            "the reply to candidate 1 carries 2 MetricRecords; the ledger needs exactly one, holding 'eval-loss'",
        ),
    ],
)
def test_a_candidate_the_app_cannot_value_makes_the_reply_an_error_naming_the_candidate(failure: Handler, reason: str):
    reply = evaluating_app(fails_on_second(failure))(valuation_request(linear_models(3)), node())
    assert error_of(reply).startswith("ledger_mod: ") and reason in reply.error.reason


def test_a_reply_without_metrics_is_named():
    def no_metrics(message: Message, context: Context) -> Message:
        return Message(RecordDict(), reply_to=message)

    reply = evaluating_app(no_metrics)(valuation_request(linear_models(1)), node())
    assert error_of(reply) == (
        "ledger_mod: the reply to candidate 0 carries 0 MetricRecords; "
        "the ledger needs exactly one, holding 'eval-loss'"
    )


OTHER_REGISTRY = "0x" + "ab" * 20


@pytest.mark.parametrize(
    ("config", "pins", "reason"),
    [
        (
            ledger_config(**{messages.CONFIG_VALUATION: "eval-loss", messages.CONFIG_REGISTRY: OTHER_REGISTRY}),
            {"fedledger.registry": DOMAIN.registry},
            f"ledger_mod: this node signs only for registry {DOMAIN.registry} (node config 'fedledger.registry'); "
            f"the request is for registry {OTHER_REGISTRY}",
        ),
        (
            ledger_config(**{messages.CONFIG_VALUATION: "eval-loss", messages.CONFIG_CHAIN_ID: 1}),
            {"fedledger.chain-id": DOMAIN.chain_id},
            f"ledger_mod: this node signs only for chain {DOMAIN.chain_id} (node config 'fedledger.chain-id'); "
            "the request is for chain 1",
        ),
        (
            ledger_config(**{messages.CONFIG_VALUATION: "eval-loss", messages.CONFIG_KEY_SEED: None}),
            {},
            "ledger_mod: this node has no signing key: set 'fedledger.signer' or 'keystore' in its node config",
        ),
        (
            ledger_config(**{messages.CONFIG_VALUATION: ""}),
            {},
            "ledger_mod: the request's 'fedledger.valuation' must be a metric key name, got ''",
        ),
        (
            ledger_config(**{messages.CONFIG_VALUATION: 3}),
            {},
            "ledger_mod: the request's 'fedledger.valuation' must be a metric key name, got 3",
        ),
        (
            ledger_config(**{messages.CONFIG_VALUATION: "eval-loss", messages.CONFIG_RUN_ID: -1}),
            {},
            "ledger_mod: the request's 'fedledger.run-id' must be a non-negative integer, got -1",
        ),
    ],
)
def test_a_request_the_site_will_not_or_cannot_sign_for_gets_an_error_reply_before_the_app_runs(
    config: ConfigRecord, pins: dict, reason: str
):
    calls: list[float] = []
    reply = evaluating_app(squared_error, calls)(valuation_request(linear_models(2), config=config), node(**pins))
    assert error_of(reply) == reason
    assert calls == []


def test_a_candidate_the_canonical_encoding_does_not_support_gets_an_error_reply_before_the_app_runs():
    calls: list[float] = []
    candidates = linear_models(3)
    candidates[2]["weights"] = candidates[2]["weights"].astype(np.complex64)
    reply = evaluating_app(squared_error, calls)(valuation_request(candidates), node())
    assert error_of(reply).startswith(
        "ledger_mod: candidate 2's arrays cannot be hashed: EncodingError: array 'weights': dtype complex64"
    )
    assert calls == []


def test_a_round_beyond_uint32_gets_an_error_reply():
    config = ledger_config(**{messages.CONFIG_VALUATION: "eval-loss", messages.CONFIG_ROUND: 2**32})
    reply = evaluating_app(squared_error)(valuation_request(linear_models(1), config=config), node())
    assert error_of(reply) == "ledger_mod: round must fit in uint32, got 4294967296"


def test_a_pinned_node_values_candidates_for_its_own_registry():
    pins = {"fedledger.registry": DOMAIN.registry.lower(), "fedledger.chain-id": DOMAIN.chain_id}
    candidates = linear_models(2)
    reply = evaluating_app(squared_error)(valuation_request(candidates), node(**pins))
    assert signer(reply, candidates) == SITE.address
