"""The public server API end to end on the in-process harness: a Flower strategy wrapped by
``Ledger.from_context(context)`` is recorded round by round and audited; an app's own strategy is
re-derived with its registered aggregation (found in the process or through an entry point), or,
without one, audited with re-aggregation reported as not checked."""

import importlib
import sys
import textwrap
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import replace

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MessageType, MetricRecord, RecordDict
from flwr.serverapp import Grid
from flwr.serverapp.strategy import DifferentialPrivacyClientSideFixedClipping, FedAvg, Result
from inprocess_federation import INITIAL_MODEL, HonestSite, InProcessFederation, Ledger, arrays_record

import fedledger.aggregation as aggregation_module
from fedledger.aggregation import (
    AggregationError,
    Aggregator,
    Arrays,
    NoAggregationRule,
    WeightedUpdate,
    aggregator_for,
    register_aggregation,
    registered_aggregation,
)
from fedledger.audit import Auditor, AuditReport
from fedledger.canonical import canonical_json
from fedledger.coordinator import Ledger as PublicLedger
from fedledger.coordinator.config import SettingsError
from fedledger.coordinator.ledger import LedgerStrategy, StrategyError
from fedledger.coordinator.runs import describe_strategy
from fedledger.errors import FedLedgerError
from fedledger.manifest import RoundManifest
from fedledger.runconfig import RunConfiguration
from tabular_app.settings import FederationSettings

from helpers import participant_key

SITES = [participant_key(index) for index in range(3)]
SETTINGS = FederationSettings(num_server_rounds=2, min_nodes=3, round_timeout=5.0)
FAB_HASH = "f" * 64


class MeanOfUpdates(FedAvg):
    """An app's own strategy: the plain, unweighted mean of the updates, computed with NumPy."""

    def __init__(self, scale: float = 1.0) -> None:
        super().__init__(min_train_nodes=3, min_evaluate_nodes=3, min_available_nodes=3)
        self.scale = scale

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        records = [reply.content["arrays"] for reply in replies]
        names = list(records[0])
        mean = {name: np.mean(np.stack([record[name].numpy() for record in records]), axis=0) for name in names}
        return ArrayRecord({name: Array(self.scale * mean[name]) for name in names}), None


class MeanAggregator(Aggregator):
    """What ``MeanOfUpdates`` computes, in the same order."""

    def __init__(self, scale: float) -> None:
        self.scale = scale

    def aggregate(self, round_number: int, base: Mapping[str, np.ndarray], updates: Sequence[WeightedUpdate]) -> Arrays:
        names = list(updates[0].arrays)
        return {
            name: self.scale * np.mean(np.stack([update.arrays[name] for update in updates]), axis=0) for name in names
        }


class MedianAggregator(Aggregator):
    """Not what ``MeanOfUpdates`` computes."""

    def aggregate(self, round_number: int, base: Mapping[str, np.ndarray], updates: Sequence[WeightedUpdate]) -> Arrays:
        return {name: np.median(np.stack([u.arrays[name] for u in updates]), axis=0) for name in updates[0].arrays}


def mean_aggregation(params: Mapping[str, object]) -> Aggregator:
    return MeanAggregator(float(params["scale"]))  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def ledger(tmp_path_factory) -> Ledger:
    return Ledger.create(str(tmp_path_factory.mktemp("api") / "store"), SITES)


def honest_federation() -> InProcessFederation:
    federation = InProcessFederation(len(SITES))
    for index, (node, account) in enumerate(zip(federation.node_ids, SITES, strict=True)):
        federation.responders[node] = HonestSite(account, step=0.01 * (index + 1), examples=10 * (index + 1))
    federation.grid.set_run(replace(federation.run, fab_hash=FAB_HASH))
    return federation


def recorded(ledger: Ledger, run_id: int) -> tuple[RunConfiguration, list[RoundManifest], AuditReport]:
    registry, store = ledger.session.registry, ledger.session.store
    run = registry.run(run_id)
    configuration = RunConfiguration.from_bytes(store.get(run.config_hash))
    manifests = [
        RoundManifest.from_bytes(store.get(registry.committed_round(run_id, number).commitment.manifest_hash))
        for number in range(1, run.committed_rounds + 1)
    ]
    return configuration, manifests, Auditor(registry, store, key=ledger.session.vault.key).audit([run_id])


def test_a_flower_strategy_wrapped_from_the_context_is_recorded_and_passes_the_audit(ledger):
    model = {"architecture": "two layers", "hidden_units": 4}
    with honest_federation() as federation:
        run_id, wrapped = ledger.run(
            federation,
            SETTINGS,
            strategy=FedAvg(min_available_nodes=3),
            model=model,
            run_config={"learning-rate": 0.1, "local-epochs": 2},
        )
    configuration, manifests, report = recorded(ledger, run_id)
    assert configuration.details["app"] == {
        "config": {"learning-rate": 0.1, "local-epochs": 2},
        "model": model,
        "fab_hash": FAB_HASH,
    }
    assert configuration.details["num_server_rounds"] == 2
    assert configuration.strategy["name"] == "FedAvg" and "aggregation" not in configuration.strategy
    assert [manifest.reproduction for manifest in manifests] == ["verified", "verified"]
    assert [report.round for report in wrapped.reports] == [1, 2]
    assert report.verdict == "pass", [str(finding) for finding in report.problems()]


def test_the_audit_checks_the_app_bundle_an_auditor_approved(ledger):
    with honest_federation() as federation:
        run_id, _ = ledger.run(federation, SETTINGS, strategy=FedAvg(min_available_nodes=3))
    registry, store = ledger.session.registry, ledger.session.store

    approved = Auditor(registry, store, key=ledger.session.vault.key, approved_bundle=FAB_HASH).audit([run_id])
    other = Auditor(registry, store, key=ledger.session.vault.key, approved_bundle="e" * 64).audit([run_id])

    (passed,) = [finding for finding in approved.findings if finding.check == "app-bundle"]
    assert passed.status == "pass" and approved.verdict == "pass"
    (failed,) = [finding for finding in other.findings if finding.check == "app-bundle"]
    assert (failed.status, failed.expected, failed.found) == ("fail", "e" * 64, FAB_HASH)
    assert other.verdict == "fail"


def test_a_run_outside_an_app_bundle_fails_the_check_of_an_approved_one(ledger):
    with honest_federation() as federation:
        federation.grid.set_run(replace(federation.run, fab_hash=""))
        run_id, _ = ledger.run(federation, SETTINGS, strategy=FedAvg(min_available_nodes=3))
    registry, store = ledger.session.registry, ledger.session.store

    unasked = Auditor(registry, store, key=ledger.session.vault.key).audit([run_id])
    report = Auditor(registry, store, key=ledger.session.vault.key, approved_bundle=FAB_HASH).audit([run_id])

    assert not [finding for finding in unasked.findings if finding.check == "app-bundle"]
    assert unasked.verdict == "pass"
    (failed,) = [finding for finding in report.findings if finding.check == "app-bundle"]
    assert failed.status == "fail" and "records no app bundle" in failed.message


def test_an_apps_strategy_with_a_registered_aggregation_is_verified_every_round(ledger):
    register_aggregation("test-mean", mean_aggregation)
    with honest_federation() as federation:
        run_id, _ = ledger.run(federation, SETTINGS, strategy=MeanOfUpdates(scale=0.5), aggregation="test-mean")
    configuration, manifests, report = recorded(ledger, run_id)
    assert configuration.strategy["aggregation"] == "test-mean"
    assert configuration.strategy["name"] == f"{MeanOfUpdates.__module__}.MeanOfUpdates"
    assert configuration.strategy["params"]["scale"] == 0.5
    assert [manifest.reproduction for manifest in manifests] == ["verified", "verified"]
    assert report.verdict == "pass", [str(finding) for finding in report.problems()]
    checked = [finding for finding in report.findings if finding.check == "reaggregation"]
    assert [finding.status for finding in checked] == ["pass", "pass"]


def test_an_apps_strategy_without_an_aggregation_is_audited_with_reaggregation_not_checked(ledger):
    with honest_federation() as federation:
        run_id, _ = ledger.run(federation, SETTINGS, strategy=MeanOfUpdates())
    _, manifests, report = recorded(ledger, run_id)
    reason = (
        f"{MeanOfUpdates.__module__}.MeanOfUpdates has no registered aggregation: "
        "wrap it with aggregation=... and register it (docs/ledger-api.md)"
    )
    assert [manifest.reproduction for manifest in manifests] == [f"not checked: {reason}"] * 2
    assert report.verdict == "incomplete"
    problems = report.problems()
    assert sorted((finding.check, finding.status) for finding in problems) == [
        ("reaggregation", "not-checked"),
        ("reaggregation", "not-checked"),
        ("selection", "not-checked"),
        ("selection", "not-checked"),
    ]
    assert problems[0].message == f"re-aggregation not checked: {reason}"
    unchecked = ("reaggregation", "selection")
    assert all(finding.status == "pass" for finding in report.findings if finding.check not in unchecked)


def test_a_registered_aggregation_that_disagrees_with_the_strategy_is_caught(ledger):
    register_aggregation("test-median", lambda params: MedianAggregator())
    with honest_federation() as federation:
        run_id, _ = ledger.run(federation, SETTINGS, strategy=MeanOfUpdates(), aggregation="test-median")
    _, manifests, report = recorded(ledger, run_id)
    assert all(manifest.reproduction.startswith("mismatch: re-derived 0x") for manifest in manifests)
    assert report.verdict == "fail"
    failed = [finding for finding in report.problems() if finding.status == "fail"]
    assert {finding.check for finding in failed} == {"reaggregation"} and len(failed) == 2


class LastBitsOff(MeanOfUpdates):
    """``MeanOfUpdates`` moved one unit in the last place: a strategy whose own arithmetic differs
    from its specified aggregation only in the last bits, as Flower's FedTrimmedAvg can."""

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        aggregate, metrics = super().aggregate_train(server_round, replies)
        if aggregate is None:
            return None, metrics
        return ArrayRecord(
            {name: Array(np.nextafter(array.numpy(), np.inf)) for name, array in aggregate.items()}
        ), metrics


class SettlingMean(MeanAggregator):
    settles_last_bits = True


def test_an_aggregate_off_in_its_last_bits_is_committed_as_specified_when_the_rule_settles_them(ledger):
    register_aggregation("test-settling-mean", lambda params: SettlingMean(1.0))
    register_aggregation("test-strict-mean", lambda params: MeanAggregator(1.0))
    with honest_federation() as federation:
        run_id, _ = ledger.run(federation, SETTINGS, strategy=LastBitsOff(), aggregation="test-settling-mean")
    _, manifests, report = recorded(ledger, run_id)
    assert all(
        manifest.reproduction.startswith("verified: Flower's own aggregate differs in its last bits")
        for manifest in manifests
    ), [manifest.reproduction for manifest in manifests]
    assert report.verdict == "pass", [str(finding) for finding in report.problems()]

    with honest_federation() as federation:
        run_id, _ = ledger.run(federation, SETTINGS, strategy=LastBitsOff(), aggregation="test-strict-mean")
    _, manifests, report = recorded(ledger, run_id)
    assert all(manifest.reproduction.startswith("mismatch: re-derived 0x") for manifest in manifests)
    assert report.verdict == "fail", "a rule that does not settle the last bits must match Flower's exactly"


@pytest.fixture
def installed_app(tmp_path, monkeypatch) -> Iterator[Callable[[str, str], None]]:
    """Installs, on ``sys.path``, packages whose entry points name aggregations; afterwards removes
    the modules they imported and the aggregations registered from them."""
    (tmp_path / "app_aggregations.py").write_text(
        textwrap.dedent(
            """
            from fedledger.aggregation import FedAvg

            def build(params):
                return FedAvg()

            def other(params):
                return FedAvg()
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    registered_before = dict(aggregation_module._registered)

    def install(distribution: str, entry_points: str) -> None:
        dist_info = tmp_path / f"{distribution}-1.0.dist-info"
        dist_info.mkdir()
        (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {distribution}\nVersion: 1.0\n")
        (dist_info / "entry_points.txt").write_text(f"[fedledger.aggregations]\n{entry_points}\n")
        importlib.invalidate_caches()

    yield install
    sys.modules.pop("app_aggregations", None)
    aggregation_module._registered.clear()
    aggregation_module._registered.update(registered_before)
    importlib.invalidate_caches()


def test_an_aggregation_is_found_through_its_entry_point(installed_app):
    installed_app("app_with_aggregations", "test-entry-point = app_aggregations:build")
    factory = registered_aggregation("test-entry-point")
    assert factory is sys.modules["app_aggregations"].build
    described = {"name": "AppStrategy", "params": {}, "aggregation": "test-entry-point"}
    updates = [WeightedUpdate({"w": np.ones(2, np.float32)}, 1), WeightedUpdate({"w": np.zeros(2, np.float32)}, 3)]
    assert aggregator_for(described).aggregate(1, {}, updates)["w"].tolist() == [0.25, 0.25]


def test_an_aggregation_name_no_one_registered_is_refused_when_wrapping(ledger):
    api = PublicLedger.from_context(ledger.context())
    with pytest.raises(AggregationError, match=r"^no aggregation named 'test-nowhere' is registered"):
        api.wrap(MeanOfUpdates(), aggregation="test-nowhere")


def test_a_name_registered_twice_with_different_factories_is_refused():
    register_aggregation("test-twice", mean_aggregation)
    register_aggregation("test-twice", mean_aggregation)
    with pytest.raises(AggregationError, match=r"^aggregation 'test-twice' is already registered with "):
        register_aggregation("test-twice", lambda params: MedianAggregator())
    assert registered_aggregation("test-twice") is mean_aggregation


def test_with_the_ledger_disabled_the_strategy_is_plain_flower(ledger):
    strategy = FedAvg()
    assert PublicLedger.from_context(ledger.context(enabled=False)).wrap(strategy) is strategy


def test_initial_arrays_the_ledger_cannot_record_stop_the_run_before_it_starts(ledger):
    api = PublicLedger.from_context(ledger.context())
    runs_before = ledger.session.registry.run_count()
    broken = {**INITIAL_MODEL, "output.bias": np.array([np.nan], np.float32)}
    with honest_federation() as federation, pytest.raises(FedLedgerError, match=r"'output\.bias' holds NaN"):
        api.wrap(FedAvg()).start(
            grid=federation.grid,
            initial_arrays=ArrayRecord({name: Array(value) for name, value in broken.items()}),
            num_rounds=1,
        )
    assert ledger.session.registry.run_count() == runs_before


def test_the_request_config_names_the_weight_key_and_the_simulated_key_seed(ledger):
    seen: list[RecordDict] = []

    class Recording(HonestSite):
        def __call__(self, message: Message) -> Message:
            seen.append(message.content)
            return super().__call__(message)

    federation = InProcessFederation(len(SITES))
    for index, (node, account) in enumerate(zip(federation.node_ids, SITES, strict=True)):
        federation.responders[node] = Recording(account, step=0.01, examples=10 * (index + 1), weight_key="samples")
    with federation:
        run_id, _ = ledger.run(
            federation,
            FederationSettings(num_server_rounds=1, min_nodes=3),
            strategy=FedAvg(min_available_nodes=3, weighted_by_key="samples"),
            key_seed=7,
        )
    configs = [content["config"] for content in seen]
    assert configs and all(config["fedledger.weight-key"] == "samples" for config in configs)
    assert all(config["fedledger.key-seed"] == 7 for config in configs)
    _, (manifest,), report = recorded(ledger, run_id)
    assert sorted(entry.num_examples for entry in manifest.accepted) == [10, 20, 30]
    assert manifest.reproduction == "verified"
    assert report.verdict == "pass", [str(finding) for finding in report.problems()]


class TrackingFedAvg(FedAvg):
    """An app's own strategy keeping the best loss seen, which starts at infinity."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.best_loss = float("inf")
        self.patience = 3


def test_a_non_finite_strategy_attribute_is_left_out_of_the_recorded_parameters():
    description = describe_strategy(TrackingFedAvg())
    assert "best_loss" not in description["params"] and description["params"]["patience"] == 3
    assert canonical_json(description)


def test_a_run_config_value_json_cannot_hold_stops_the_run_before_the_ledger_opens(ledger):
    api = PublicLedger.from_context(ledger.context({"patience": float("inf")}))
    runs_before = ledger.session.registry.run_count()
    wrapped = api.wrap(FedAvg())
    with honest_federation() as federation, pytest.raises(FedLedgerError) as raised:
        wrapped.start(grid=federation.grid, initial_arrays=arrays_record(INITIAL_MODEL), num_rounds=1)
    assert str(raised.value) == (
        "the run configuration cannot be recorded: run configuration['details']['app']['config']['patience'] "
        "is inf: JSON has no NaN or infinity"
    )
    assert isinstance(wrapped, LedgerStrategy) and wrapped._session is None
    assert ledger.session.registry.run_count() == runs_before


def test_a_model_description_json_cannot_hold_is_refused_naming_its_key(ledger):
    with pytest.raises(SettingsError, match=r"^the model description cannot be recorded: model\['hidden'\] is a numpy"):
        PublicLedger.from_context(ledger.context(), model={"layers": 2, "hidden": np.int64(4)})


def test_two_installed_entry_points_defining_one_name_are_refused_naming_both(installed_app):
    installed_app("first_app", "test-twice-installed = app_aggregations:build")
    installed_app("second_app", "test-twice-installed = app_aggregations:other")
    with pytest.raises(AggregationError) as raised:
        registered_aggregation("test-twice-installed")
    assert str(raised.value) == (
        "aggregation 'test-twice-installed' is defined by more than one installed entry point "
        "(app_aggregations:build, app_aggregations:other): uninstall all but the one the run needs"
    )


def test_an_aggregation_that_cannot_be_built_from_the_strategys_parameters_is_refused_when_wrapping(ledger):
    register_aggregation("test-mean", mean_aggregation)
    api = PublicLedger.from_context(ledger.context())
    with pytest.raises(AggregationError) as raised:
        api.wrap(TrackingFedAvg(), aggregation="test-mean")
    assert str(raised.value) == (
        f"aggregation 'test-mean' cannot re-derive {TrackingFedAvg.__module__}.TrackingFedAvg: aggregation "
        "'test-mean' cannot be built from the recorded parameters: KeyError: 'scale'"
    )


class OwnLoop(FedAvg):
    """A strategy that runs its own loop."""

    def start(self, grid: Grid, initial_arrays: ArrayRecord, *args: object, **kwargs: object) -> Result:
        return Result()


def test_a_strategy_with_its_own_start_or_config_record_is_refused_when_wrapping(ledger):
    api = PublicLedger.from_context(ledger.context())
    with pytest.raises(StrategyError, match=r"^OwnLoop overrides start\(\): the ledger runs Flower's own start"):
        api.wrap(OwnLoop())
    with pytest.raises(StrategyError, match=r"^FedAvg sends its config as the ConfigRecord 'train-config', but"):
        api.wrap(FedAvg(configrecord_key="train-config"))


class FedAvg2(FedAvg):
    """Stands in for an app's own class named like a built-in (renamed below)."""

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        return None, None


FedAvg2.__name__ = FedAvg2.__qualname__ = "FedAvg"


def test_an_apps_own_class_named_like_a_built_in_gets_no_built_in_rule():
    own = describe_strategy(FedAvg2())
    assert own["name"] == f"{__name__}.FedAvg"
    with pytest.raises(NoAggregationRule, match=r"has no registered aggregation"):
        aggregator_for(own)
    assert describe_strategy(FedAvg())["name"] == "FedAvg"


def test_a_subclass_keeping_flowers_aggregation_is_verified_with_the_built_in_rule_it_names(ledger):
    with honest_federation() as federation:
        run_id, _ = ledger.run(
            federation, SETTINGS, strategy=TrackingFedAvg(min_available_nodes=3), aggregation="FedAvg"
        )
    configuration, manifests, report = recorded(ledger, run_id)
    assert configuration.strategy["name"] == f"{TrackingFedAvg.__module__}.TrackingFedAvg"
    assert configuration.strategy["aggregation"] == "FedAvg"
    assert [manifest.reproduction for manifest in manifests] == ["verified", "verified"]
    assert report.verdict == "pass", [str(finding) for finding in report.problems()]


def test_a_built_in_rules_name_cannot_be_registered():
    with pytest.raises(AggregationError, match=r"^'FedAvg' is a built-in rule"):
        register_aggregation("FedAvg", mean_aggregation)


def test_under_a_differential_privacy_wrapper_the_weight_key_is_the_wrapped_strategys(ledger):
    private = DifferentialPrivacyClientSideFixedClipping(
        FedAvg(weighted_by_key="samples"), noise_multiplier=0.1, clipping_norm=1.0, num_sampled_clients=3
    )
    wrapped = PublicLedger.from_context(ledger.context()).wrap(private)
    assert isinstance(wrapped, LedgerStrategy) and wrapped.weight_key == "samples"


class OwnRequests(FedAvg):
    """An app's own strategy that builds its training requests itself, without Flower's ``server-round``."""

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        content = RecordDict({"arrays": arrays, "config": config})
        return [Message(content, dst_node_id=node, message_type=MessageType.TRAIN) for node in grid.get_node_ids()]


def test_requests_carry_the_runs_round_even_when_the_strategy_sets_none(ledger):
    with honest_federation() as federation:
        run_id, _ = ledger.run(federation, SETTINGS, strategy=OwnRequests(min_available_nodes=3), aggregation="FedAvg")
    _, manifests, report = recorded(ledger, run_id)
    assert [manifest.reproduction for manifest in manifests] == ["verified", "verified"]
    assert report.verdict == "pass", [str(finding) for finding in report.problems()]


class FreshConfig(FedAvg):
    """Sends a config of its own instead of the one it is given."""

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        return super().configure_train(server_round, arrays, ConfigRecord({"lr": 0.1}), grid)


class OwnArrays(FedAvg):
    """Sends arrays of its own instead of the round's model."""

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        shifted = ArrayRecord({name: Array(arrays[name].numpy() + 1) for name in arrays})
        return super().configure_train(server_round, shifted, config, grid)


@pytest.mark.parametrize(
    ("strategy", "problem"),
    [
        (FreshConfig, "no ConfigRecord 'config' holding 'fedledger.run-id'"),
        (OwnArrays, "arrays that are not the round's model"),
    ],
)
def test_a_strategy_whose_requests_sites_could_not_sign_for_stops_before_sending(ledger, strategy, problem):
    seen: list[Message] = []
    federation = InProcessFederation(len(SITES))
    for node in federation.node_ids:
        federation.responders[node] = seen.append  # type: ignore[assignment]
    with federation, pytest.raises(StrategyError) as raised:
        ledger.run(federation, SETTINGS, strategy=strategy(min_available_nodes=3))
    assert str(raised.value).startswith(f"{strategy.__qualname__}.configure_train built a request to node ")
    assert problem in str(raised.value)
    assert seen == []


def test_evaluate_fn_sees_the_runs_round_numbers_on_a_resumed_run(ledger):
    evaluated: list[int] = []

    def evaluate(server_round: int, arrays: ArrayRecord) -> MetricRecord:
        evaluated.append(server_round)
        return MetricRecord({"checked": 1})

    settings = replace(SETTINGS, num_server_rounds=3)
    with honest_federation() as federation:
        run_id, _ = ledger.run(federation, settings, rounds=1, strategy=FedAvg(min_available_nodes=3))
    with honest_federation() as federation:
        resumed_id, resumed = ledger.run(
            federation, settings, strategy=FedAvg(min_available_nodes=3), evaluate_fn=evaluate, resume_run=run_id
        )
    assert resumed_id == run_id and [report.round for report in resumed.reports] == [2, 3]
    assert evaluated == [1, 2, 3]


class FirstReplyMetrics(FedAvg):
    """Reads the first evaluation reply, as an app's own strategy may."""

    def aggregate_evaluate(self, server_round: int, replies: Iterable[Message]) -> MetricRecord | None:
        first, *_ = replies
        return MetricRecord(dict(first.content["metrics"]))


class AnonymousEvaluation(HonestSite):
    """Answers evaluation requests without naming its participant: every such reply is rejected."""

    def __call__(self, message: Message) -> Message:
        reply = super().__call__(message)
        if message.metadata.message_type == MessageType.EVALUATE:
            del reply.content["fedledger"]
        return reply


def test_a_round_without_accepted_evaluation_replies_has_no_evaluation_metrics(ledger):
    federation = InProcessFederation(len(SITES))
    for index, (node, account) in enumerate(zip(federation.node_ids, SITES, strict=True)):
        federation.responders[node] = AnonymousEvaluation(account, step=0.01 * (index + 1))
    with federation:
        _, wrapped = ledger.run(
            federation, SETTINGS, strategy=FirstReplyMetrics(min_available_nodes=3), aggregation="FedAvg"
        )
    assert [report.round for report in wrapped.reports] == [1, 2]
