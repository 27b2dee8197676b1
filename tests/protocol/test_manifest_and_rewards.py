"""Round manifests are canonical JSON that round-trips; reward splits are exact and within budget."""

from dataclasses import replace
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fedledger.canonical import canonical_json
from fedledger.contribution import AnomalyStatistics
from fedledger.hashing import keccak256
from fedledger.manifest import RejectedEvaluation, Requests, RoundManifest, SignedFields, UpdateEntry
from fedledger.rewards import RewardRule, split_budget

ACCEPTED = UpdateEntry(
    node_id=7,
    status="accepted",
    participant="0x" + "11" * 20,
    update_hash="0x" + "22" * 32,
    num_examples=10,
    signature="0x" + "33" * 65,
    signed=SignedFields(1, 2, "0x" + "44" * 32),
    reward=10**18,
    metrics={"train-loss": 0.25, "batches": 4},
)
REJECTED = UpdateEntry(node_id=3, status="rejected", reason="non-finite", detail="array 'w' holds NaN")


def manifest(**changes) -> RoundManifest:
    values = {
        "chain_id": 31337,
        "registry": "0x" + "55" * 20,
        "run_id": 1,
        "round": 2,
        "base_model_hash": "0x" + "66" * 32,
        "model_hash": "0x" + "77" * 32,
        "outcome": "aggregated",
        "strategy": {"name": "FedAvg", "params": {"fraction_train": 1.0}},
        "updates": (REJECTED, ACCEPTED),
        "updates_root": "0x" + "88" * 32,
        "rewards_root": "0x" + "99" * 32,
        "reproduction": "verified",
        "metrics": {"evaluate": {"aggregate": {"eval-accuracy": 0.8, "eval-auc": float("nan")}}},
        "training": Requests(asked=(9, 3, 7), silent=(9,)),
        "evaluation": Requests(asked=(3, 7)),
        "rejected_evaluations": (
            RejectedEvaluation(
                node_id=7, reason="non-finite", detail="'eval-loss' is nan", participant="0x" + "11" * 20
            ),
            RejectedEvaluation(node_id=3, reason="malformed", detail="a reply carries exactly one MetricRecord"),
        ),
    }
    values.update(changes)
    return RoundManifest(**values)


def test_a_manifest_round_trips_through_its_bytes():
    data = manifest().to_bytes()
    parsed = RoundManifest.from_bytes(data)
    assert parsed.to_bytes() == data
    assert parsed.accepted == (ACCEPTED,)
    assert parsed.rejected == (REJECTED,)
    assert manifest().manifest_hash == keccak256(data)


def test_manifest_bytes_are_canonical():
    data = manifest().to_bytes()
    details = [REJECTED.detail, *(entry.detail for entry in manifest().rejected_evaluations)]
    for detail in details:
        data = data.replace(detail.encode(), b"")
    assert b" " not in data
    data = manifest().to_bytes()
    assert data == canonical_json(manifest().to_json())
    assert b'"eval-auc":null' in data
    reordered = manifest(updates=(ACCEPTED, REJECTED))
    assert reordered.to_bytes() == data, "entries are stored in one order, accepted first"


def test_who_was_asked_and_who_was_silent_round_trips_in_one_order():
    data = manifest().to_bytes()
    parsed = RoundManifest.from_bytes(data)
    assert parsed.training == Requests(asked=(3, 7, 9), silent=(9,))
    assert parsed.evaluation == Requests(asked=(3, 7))
    assert [entry.node_id for entry in parsed.rejected_evaluations] == [3, 7]
    reordered = manifest(
        training=Requests(asked=(3, 7, 9), silent=(9,)),
        rejected_evaluations=tuple(reversed(manifest().rejected_evaluations)),
    )
    assert reordered.to_bytes() == data
    assert b'"silent":[9]' in data and b'"skipped":null' in data


def test_a_skipped_phase_says_why():
    skipped = Requests(skipped="too few nodes connected: 1 connected, 2 needed; waited 5.0 s")
    parsed = RoundManifest.from_bytes(manifest(training=skipped, evaluation=skipped).to_bytes())
    assert parsed.training == parsed.evaluation == skipped


def test_any_change_changes_the_hash():
    original = manifest().manifest_hash
    assert manifest(updates=(ACCEPTED,)).manifest_hash != original
    assert manifest(reproduction="mismatch").manifest_hash != original
    assert manifest(training=Requests(asked=(3, 7, 9))).manifest_hash != original
    assert manifest(rejected_evaluations=()).manifest_hash != original


@pytest.mark.parametrize("data", [b"not json", b"{}", b'{"version": 3}', b'{"version": 4}', b'{"version": 5}'])
def test_what_is_not_a_manifest_is_refused(data):
    with pytest.raises(ValueError):
        RoundManifest.from_bytes(data)


def test_a_version_2_manifest_is_refused_by_name():
    document = manifest().to_json()
    for entry in document["updates"]:
        entry["train_loss"] = entry.pop("metrics").get("train-loss")
    with pytest.raises(ValueError, match="not a version 5 round manifest"):
        RoundManifest.from_bytes(canonical_json({**document, "version": 2}))


def test_an_update_entry_records_the_finite_metrics_of_its_reply():
    entry = UpdateEntry(node_id=1, status="accepted", metrics={"train-loss": float("nan"), "accuracy": 0.5})
    assert entry.to_json()["metrics"] == {"accuracy": 0.5}
    parsed = RoundManifest.from_bytes(manifest().to_bytes())
    assert parsed.accepted[0].metrics == {"train-loss": 0.25, "batches": 4}
    assert parsed.rejected[0].metrics == {}


def test_a_manifest_missing_a_version_2_field_is_refused():
    document = manifest().to_json()
    del document["training"]
    with pytest.raises(ValueError, match="the manifest's 'training' must be a JSON object, got None"):
        RoundManifest.from_bytes(canonical_json(document))


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda document: document["updates"][0].update(update_hash=7), "'update_hash' must be a 32-byte hash"),
        (lambda document: document["updates"][0].update(node_id="one"), "'node_id' must be an integer"),
        (lambda document: document["updates"][0].update(participant="0xabc"), "'participant' must be an EIP-55"),
        (lambda document: document["updates"][0].update(reward=-5), "'reward' must be a decimal string"),
        (lambda document: document["updates"][0].update(status="maybe"), "'status' must be accepted or rejected"),
        (lambda document: document["updates"][0].update(metrics=[0.5]), "'metrics' must be a JSON object"),
        (
            lambda document: document["updates"][0].update(metrics={"loss": "low"}),
            "'metrics' must be a JSON object of numbers",
        ),
        (
            lambda document: document["updates"][0].update(metrics={"loss": True}),
            "'metrics' must be a JSON object of numbers",
        ),
        (lambda document: document["updates"][0].pop("metrics"), "'metrics' must be a JSON object, got None"),
        (lambda document: document["training"].update(asked=[1, "2"]), "'asked' must be a list of integers"),
        (lambda document: document.update(registry="0x" + "ab" * 20), "'registry' must be an EIP-55"),
        (lambda document: document.update(updates={}), "'updates' must be a list"),
    ],
)
def test_a_manifest_with_a_field_of_the_wrong_type_or_form_is_refused_naming_it(edit, message):
    document = manifest(updates=(ACCEPTED,)).to_json()
    edit(document)
    with pytest.raises(ValueError, match=message):
        RoundManifest.from_bytes(canonical_json(document))


def test_budgets_split_in_proportion_rounding_down():
    assert split_budget(100, {"a": 1, "b": 1, "c": 1}) == {"a": 33, "b": 33, "c": 33}
    assert split_budget(10**18, {"a": 3, "b": 1}) == {"a": 75 * 10**16, "b": 25 * 10**16}
    assert split_budget(100, {"a": 0, "b": 0}) == {"a": 0, "b": 0}
    assert split_budget(100, {}) == {}
    with pytest.raises(ValueError, match="negative"):
        split_budget(100, {"a": -1})


@given(st.integers(0, 10**24), st.dictionaries(st.text(max_size=4), st.floats(0, 1e6), max_size=12))
def test_a_split_never_exceeds_the_budget_and_is_exact(budget, weights):
    amounts = split_budget(budget, weights)
    assert sum(amounts.values()) <= budget
    total = sum((Fraction(weight) for weight in weights.values()), Fraction(0))
    for participant, weight in weights.items():
        exact = budget * Fraction(weight) / total if total else Fraction(0)
        assert exact - 1 < amounts[participant] <= exact


def test_reward_rules_are_checked_and_round_trip():
    first = UpdateEntry(node_id=1, status="accepted", participant="a", num_examples=30, score=0.25)
    second = UpdateEntry(node_id=2, status="accepted", participant="b", num_examples=10, score=0.75)
    free_rider = UpdateEntry(node_id=3, status="accepted", participant="c", num_examples=50, score=0.0)
    by_examples = RewardRule("examples", 9 * 10**18)
    by_score = RewardRule("score", 8 * 10**18)
    assert RewardRule.from_json(by_score.to_json()) == by_score
    assert by_examples.amounts([first, second, free_rider]) == {"a": 3 * 10**18, "b": 10**18, "c": 5 * 10**18}
    assert by_score.amounts([first, second, free_rider]) == {"a": 2 * 10**18, "b": 6 * 10**18, "c": 0}
    with pytest.raises(ValueError, match="unknown reward rule"):
        RewardRule("votes", 1)


EXAMINED = replace(ACCEPTED, anomaly=AnomalyStatistics(1.5, 1.25, 0.5, 0.25, -0.5, 0.75, flags=(), response=-0.625))


@pytest.mark.parametrize("response", [-0.625, None])
def test_an_updates_response_to_the_last_global_step_round_trips(response):
    entry = replace(EXAMINED, anomaly=replace(EXAMINED.anomaly, response=response))
    data = manifest(updates=(entry,)).to_bytes()
    parsed = RoundManifest.from_bytes(data)
    assert parsed.updates[0].anomaly == entry.anomaly and parsed.to_bytes() == data


@pytest.mark.parametrize(
    ("response", "message"),
    [
        ('"low"', "'response' must be a number, got 'low'"),
        ("true", "'response' must be a number, got True"),
        ("[-0.5]", r"'response' must be a number, got \[-0.5\]"),
        ("NaN", "'response' must be a finite number or null, got nan"),
        ("-Infinity", "'response' must be a finite number or null, got -inf"),
        ("1e999", "'response' must be a finite number or null, got inf"),
    ],
)
def test_a_malformed_response_is_refused_naming_it(response, message):
    data = manifest(updates=(EXAMINED,)).to_bytes().replace(b'"response":-0.625', b'"response":' + response.encode())
    assert b'"response":' + response.encode() in data
    with pytest.raises(ValueError, match=f"^the anomaly statistics's {message}$"):
        RoundManifest.from_bytes(data)
