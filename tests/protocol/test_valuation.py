"""Valuation arithmetic: players, the coalition plan, candidate models, values, Shapley and scores,
on small rounds whose answers are worked out by hand."""

import json
import math
import struct
from itertools import combinations
from pathlib import Path

import numpy as np
import pytest

from fedledger.aggregation import WeightedUpdate
from fedledger.contribution import delta_gram
from fedledger.encoding import model_hash
from fedledger.hashing import keccak256, to_hex
from fedledger.signing import SigningDomain, ValuationMessage, sign_valuation, valuation_results_hash
from fedledger.valuation import (
    CoalitionPlan,
    RoundValuation,
    ValidatorReport,
    ValuationSettings,
    coalition_model,
    coalition_values,
    conclude_valuation,
    member_scores,
    prepare_valuation,
    shapley_values,
    sybil_clusters,
    validator_groups,
    valuation_seed,
    verify_report,
)

from helpers import participant_key

VECTORS = json.loads((Path(__file__).parents[2] / "docs" / "valuation-vectors.json").read_text())
DOMAIN = SigningDomain(chain_id=31337, registry="0x5FbDB2315678afecb367f032d93F642f64180aa3")
SEED = keccak256(b"seed")


def gram_of(deltas: list[list[float]]) -> np.ndarray:
    rows = np.array(deltas, dtype=np.float64)
    return rows @ rows.T


# Settings


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"budget": 1}, "budget must be an integer from 2"),
        ({"budget": 10_001}, "budget must be an integer from 2"),
        ({"sybil_distance": -0.1}, "must not be negative"),
        ({"sybil_distance": math.nan}, "finite number"),
        ({"sybil_distance": math.inf}, "finite number"),
        ({"metric": ""}, "non-empty string"),
    ],
)
def test_settings_out_of_range_are_refused_by_name(arguments, message):
    with pytest.raises(ValueError, match=message):
        ValuationSettings(**arguments)


def test_settings_round_trip_as_the_run_configuration_records_them():
    settings = ValuationSettings(metric="eval-loss", budget=64, sybil_distance=0.05)
    assert settings.to_json() == {"method": "shapley", "metric": "eval-loss", "budget": 64, "sybil_distance": 0.05}
    assert ValuationSettings.from_json(settings.to_json()) == settings
    with pytest.raises(ValueError, match="not a shapley scoring record"):
        ValuationSettings.from_json({"method": "consensus"})


# Players


def test_updates_within_the_sybil_distance_form_one_player_by_single_linkage():
    # Norms 10, 10, 10, 10.05, 10: median 10, threshold 1 at sybil_distance 0.1.
    deltas = [[10.0, 0.0], [0.0, 10.0], [0.0, 10.0], [0.0, 10.05], [-10.0, 0.0]]
    assert sybil_clusters(gram_of(deltas), 0.1) == [(0,), (1, 2, 3), (4,)]
    chain = [[10.0, 0.0], [10.0, 0.9], [10.0, 1.8], [-10.0, 0.0]]  # 0-1 and 1-2 linked, 0-2 not: one player
    assert sybil_clusters(gram_of(chain), 0.1) == [(0, 1, 2), (3,)]
    assert sybil_clusters(gram_of(deltas), 0.0) == [(0,), (1, 2), (3,), (4,)]


def test_a_pair_exactly_at_the_threshold_is_linked():
    deltas = [[10.0, 0.0], [10.0, 1.0], [0.0, 10.0]]  # distance 1.0, median norm 10
    assert sybil_clusters(gram_of(deltas), 0.1) == [(0, 1), (2,)]


# Seed and plan


def test_the_seed_binds_run_round_and_base_model():
    base = keccak256(b"base")
    expected = keccak256((7).to_bytes(32, "big") + (3).to_bytes(4, "big") + base)
    assert valuation_seed(7, 3, base) == expected
    assert len({valuation_seed(7, 3, base), valuation_seed(8, 3, base), valuation_seed(7, 4, base)}) == 3
    with pytest.raises(ValueError, match="32 bytes"):
        valuation_seed(7, 3, b"short")


def test_few_players_are_valued_exactly_over_every_coalition_in_canonical_order():
    plan = CoalitionPlan.of(3, 8, SEED)
    assert plan.exact and plan.permutations == ()
    assert plan.coalitions == ((), (0,), (1,), (2,), (0, 1), (0, 2), (1, 2), (0, 1, 2))
    assert not CoalitionPlan.of(3, 7, SEED).exact


def test_the_permutation_plan_is_deterministic_antithetic_within_budget_and_seeded():
    plan = CoalitionPlan.of(9, 40, SEED)
    assert not plan.exact
    assert plan == CoalitionPlan.of(9, 40, SEED)
    assert len(plan.permutations) % 2 == 0 and len(plan.permutations) >= 4
    for forward, backward in zip(plan.permutations[::2], plan.permutations[1::2], strict=True):
        assert backward == forward[::-1]
        assert sorted(forward) == list(range(9))
    prefixes = {tuple(sorted(order[:size])) for order in plan.permutations for size in range(10)}
    assert set(plan.coalitions) == prefixes and len(plan.coalitions) <= 40
    next_pair = CoalitionPlan.of(9, 500, SEED).permutations[len(plan.permutations) : len(plan.permutations) + 2]
    grown = prefixes | {tuple(sorted(order[:size])) for order in next_pair for size in range(10)}
    assert len(grown) > 40, "pairs are added while they fit"
    assert plan.coalitions[0] == () and plan.coalitions[-1] == tuple(range(9))
    assert list(plan.coalitions) == sorted(plan.coalitions, key=lambda coalition: (len(coalition), coalition))
    assert CoalitionPlan.of(9, 40, keccak256(b"another seed")).permutations != plan.permutations


def test_the_first_permutation_sorts_players_by_their_keccak_key():
    keys = [keccak256(SEED + struct.pack(">II", 0, player)) for player in range(6)]
    assert CoalitionPlan.of(6, 20, SEED).permutations[0] == tuple(sorted(range(6), key=keys.__getitem__))


def test_one_antithetic_pair_is_taken_even_beyond_the_budget():
    plan = CoalitionPlan.of(8, 4, SEED)
    assert len(plan.permutations) == 2 and len(plan.coalitions) == 2 * 8


# Candidate models


BASE = {"w": np.array([1.0, -2.0, 0.5], dtype=np.float32), "b": np.array([0.25], dtype=np.float32)}


def update(*values: float, weight: int) -> WeightedUpdate:
    return WeightedUpdate({"w": np.array(values[:3], dtype=np.float32), "b": np.array(values[3:], np.float32)}, weight)


def test_a_coalition_model_is_the_stated_float64_sum_cast_to_the_base_dtype():
    updates = [update(0.1, 0.2, 0.3, 0.4, weight=3), update(0.1, 0.2, 0.3, 0.4, weight=5), update(1, 2, 3, 4, weight=4)]
    players = [(0, 1), (2,)]
    model = coalition_model(BASE, updates, players, (0, 1))
    total = 8 / 2 + 4 / 1
    coefficients = [3 / (2 * total), 5 / (2 * total), 4 / (1 * total)]
    for name in ("b", "w"):
        expected = []
        for position in range(BASE[name].size):
            accumulated = 0.0
            for coefficient, member in zip(coefficients, updates, strict=True):
                accumulated += coefficient * float(member.arrays[name][position])
            expected.append(accumulated)
        assert model[name].dtype == np.float32
        assert model[name].tobytes() == np.array(expected, dtype=np.float64).astype(np.float32).tobytes()
    assert list(model) == ["b", "w"]
    empty = coalition_model(BASE, updates, players, ())
    assert model_hash(empty) == model_hash(BASE)


def test_a_coalition_model_refuses_a_member_without_weight():
    with pytest.raises(ValueError, match="update 1's weight must be positive, got 0"):
        coalition_model(BASE, [update(1, 2, 3, 4, weight=2), update(1, 2, 3, 4, weight=0)], [(0, 1)], (0,))


def test_a_round_with_no_update_or_one_that_does_not_fit_is_refused():
    with pytest.raises(ValueError, match="at least one player"):
        prepare_valuation(ValuationSettings(), 1, 2, BASE, model_hash(BASE), [])
    misfit = WeightedUpdate({"w": np.zeros(3, np.float32)}, 1)
    with pytest.raises(ValueError, match="update 0 does not fit the base model's array 'b'"):
        prepare_valuation(ValuationSettings(), 1, 2, BASE, model_hash(BASE), [misfit])


def test_a_coalition_model_names_a_member_array_that_does_not_fit():
    bad = WeightedUpdate({"w": np.zeros(4, np.float32), "b": np.zeros(1, np.float32)}, 1)
    with pytest.raises(ValueError, match=r"update 0's array 'w' must have shape \(3,\)"):
        coalition_model(BASE, [bad], [(0,)], (0,))


# Values, Shapley, scores


def test_values_are_relative_improvements_medianed_within_then_across_groups():
    losses = [[2.0, 1.0, 1.5], [4.0, 1.0, 2.0], [0.0, -1.0, 1.0]]
    # relative improvements: [0, .5, .25], [0, .75, .5], [0, 1, -1] (L(∅) = 0 divides by 1)
    assert coalition_values(losses, [0, 1, 2]) == [0.0, 0.75, 0.25]
    # validators 0 and 1 in one group vote their median [0, .625, .375]; the median of two groups is their mean
    assert coalition_values(losses, [5, 5, 9]) == [0.0, (0.625 + 1) / 2, (0.375 - 1) / 2]


def test_validators_vote_with_their_player_or_alone():
    players = [(0, 2), (1,)]
    reports = [ValidatorReport(node, address, (), None) for node, address in [(5, "0xAA"), (6, "0xcc"), (9, "0xDD")]]
    assert validator_groups(players, ["0xaa", "0xBB", "0xCC"], reports) == [0, 0, 2 + 9]


def test_a_lying_minority_cannot_move_a_value_outside_the_honest_range():
    rng = np.random.default_rng(3)
    honest = rng.uniform(1.0, 2.0, size=(5, 16))
    liars = np.vstack([np.full(16, 1e6), np.concatenate([[1e-6], np.full(15, -1e6)])])
    losses = np.vstack([honest, liars])
    values = coalition_values(losses.tolist(), list(range(7)))
    improvements = (honest[:, :1] - honest) / honest[:, :1]
    assert np.all(values >= improvements.min(axis=0)) and np.all(values <= improvements.max(axis=0))


def test_exact_shapley_of_two_and_three_players_by_hand():
    two = CoalitionPlan.of(2, 4, SEED)  # (), (0,), (1,), (0, 1)
    assert shapley_values(two, [0.0, 0.4, 0.1, 0.6]) == pytest.approx([0.5 * 0.4 + 0.5 * 0.5, 0.5 * 0.1 + 0.5 * 0.2])
    three = CoalitionPlan.of(3, 8, SEED)  # (), 0, 1, 2, 01, 02, 12, 012
    values = [0.0, 0.3, 0.3, 0.0, 0.6, 0.3, 0.3, 0.6]  # 0 and 1 add 0.3 each; 2 adds nothing
    assert shapley_values(three, values) == pytest.approx([0.3, 0.3, 0.0])
    glove = [0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 1.0]  # player 0 pairs with 1 or 2: φ = (2/3, 1/6, 1/6)
    assert shapley_values(three, glove) == pytest.approx([2 / 3, 1 / 6, 1 / 6])


def test_shapley_over_every_permutation_is_the_exact_shapley():
    exact = CoalitionPlan.of(3, 8, SEED)
    orders = ((0, 1, 2), (2, 1, 0), (1, 0, 2), (2, 0, 1), (0, 2, 1), (1, 2, 0))
    sampled = CoalitionPlan(3, orders, exact.coalitions)
    glove = [0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 1.0]
    assert shapley_values(sampled, glove) == pytest.approx(shapley_values(exact, glove))


def test_sampled_shapley_values_add_up_to_the_grand_coalition():
    plan = CoalitionPlan.of(9, 40, SEED)
    values = [0.0, *np.random.default_rng(0).uniform(-1, 1, len(plan.coalitions) - 1)]
    assert sum(shapley_values(plan, values)) == pytest.approx(values[-1])


def test_members_share_their_players_positive_shapley_value():
    assert member_scores([(0, 2), (1,), (3,)], [0.5, -0.2, 0.1], 4) == [0.25, 0.0, 0.25, 0.1]


# A round end to end: real losses, real signatures


def site_loss(model: dict[str, np.ndarray], target: np.ndarray) -> float:
    """A site's loss on its own rows: the squared distance of the model's parameters to its optimum."""
    flat = np.concatenate([model["b"].astype(np.float64), model["w"].astype(np.float64)])
    return float(np.sum((flat - target) ** 2))


TARGETS = [np.array([1.0, 2.0, -1.0, 0.0]), np.array([0.5, 1.0, 1.0, 1.0]), np.array([-1.0, 0.0, 0.0, 2.0])]


def site_update(target: np.ndarray, weight: int) -> WeightedUpdate:
    """An honest site's update: half way from the base towards its own optimum."""
    start = np.concatenate([BASE["b"], BASE["w"]]).astype(np.float64)
    moved = (start + 0.5 * (target - start)).astype(np.float32)
    return WeightedUpdate({"b": moved[:1], "w": moved[1:]}, weight)


def signed_report(node_id: int, index: int, prepared, values: list[float], metric: str = "eval-loss"):
    account = participant_key(index)
    message = ValuationMessage(1, 2, metric, valuation_results_hash(prepared.candidate_hashes, values))
    signature = sign_valuation(DOMAIN, message, account.key)
    return ValidatorReport(node_id, account.address, tuple(values), to_hex(signature))


def run_round(sites: list[tuple[int, int]], settings: ValuationSettings | None = None):
    """Value a round whose updates come from ``sites`` (target index, weight); each update's
    participant validates on its site's own target."""
    updates = [site_update(TARGETS[target], weight) for target, weight in sites]
    prepared = prepare_valuation(settings or ValuationSettings(), 1, 2, BASE, model_hash(BASE), updates)
    participants = [participant_key(index).address for index in range(len(sites))]
    reports = []
    for index, (target, _) in enumerate(sites):
        losses = [site_loss(model, TARGETS[target]) for model in prepared.candidates()]
        report = signed_report(100 + index, index, prepared, losses)
        why = verify_report(DOMAIN, 1, 2, "eval-loss", prepared.candidate_hashes, report, participants[index])
        assert why is None, why
        reports.append(report)
    return prepared, conclude_valuation(prepared, participants, reports)


def test_a_sybil_pair_shares_what_one_copy_earns_alone():
    _, (alone, alone_scores) = run_round([(0, 10), (1, 20)])
    pair_prepared, (pair, pair_scores) = run_round([(0, 10), (1, 20), (1, 20)])
    assert pair_prepared.players == ((0,), (1, 2))
    assert pair.candidates == alone.candidates, "the pair's models are the one copy's, bit for bit"
    assert pair_scores[0] == alone_scores[0]
    assert pair_scores[1] + pair_scores[2] == pytest.approx(alone_scores[1])
    assert pair_scores[1] == pair_scores[2] > 0


def test_a_concluded_round_records_what_an_auditor_needs_in_canonical_json():
    prepared, (valuation, scores) = run_round([(0, 10), (1, 20), (2, 5)])
    assert valuation.failure is None and len(valuation.values) == 8 and valuation.values[0] == 0.0
    assert sum(valuation.shapley) == pytest.approx(valuation.values[-1])
    assert scores == member_scores(list(prepared.players), list(valuation.shapley), 3)
    assert list(prepared.candidates())[3]["w"].tobytes() == prepared.candidate(3)["w"].tobytes()
    assert RoundValuation.from_json(json.loads(json.dumps(valuation.to_json()))) == valuation


def test_no_counted_report_fails_the_valuation_and_scores_nothing():
    updates = [site_update(TARGETS[0], 10), site_update(TARGETS[1], 20)]
    prepared = prepare_valuation(ValuationSettings(), 1, 2, BASE, model_hash(BASE), updates)
    reports = [
        ValidatorReport(7, None, None, None, "silent", "no reply"),
        ValidatorReport(8, None, None, None, "error"),
    ]
    valuation, scores = conclude_valuation(prepared, ["0xA", "0xB"], reports)
    assert scores == [0.0, 0.0] and valuation.values == () and valuation.shapley == ()
    assert valuation.failure == "no validator report counted (1 error, 1 silent)"


def test_reports_that_do_not_hold_are_refused_with_the_reason():
    prepared, _ = run_round([(0, 10), (1, 20)])
    hashes, me = prepared.candidate_hashes, participant_key(0).address
    good = signed_report(1, 0, prepared, [1.0, 0.5, 0.7, 0.2])

    def why(report: ValidatorReport, metric: str = "eval-loss") -> str | None:
        return verify_report(DOMAIN, 1, 2, metric, hashes, report, me)

    assert why(good) is None
    assert why(ValidatorReport(1, me, (1.0, 0.5), good.signature)) == "2 values reported for 4 candidates"
    assert "candidate 2 is not a finite number" in why(ValidatorReport(1, me, (1.0, 0.5, math.nan, 0.2), "0x"))
    assert "out of range" in why(ValidatorReport(1, me, (1e-200, 0.5, 1e200, 0.2), "0x"))
    assert "not the node's" in why(signed_report(1, 1, prepared, [1.0, 0.5, 0.7, 0.2]))
    forged = ValidatorReport(1, me, (1.0, 0.5, 0.7, 0.1), good.signature)
    assert why(forged).startswith("the signature is 0x") and why(forged).endswith(f"not {me}'s")
    assert why(good, metric="eval-accuracy").startswith("the signature is")
    assert why(ValidatorReport(1, me, good.values, "0x1234")).startswith("bad signature")


def test_a_report_with_values_json_cannot_hold_is_recorded_without_them():
    report = ValidatorReport(3, None, (1.0, math.inf), "0x", "bad-values", "not finite")
    assert report.to_json()["values"] is None
    with pytest.raises(ValueError, match="'values' must be a list of numbers"):
        ValidatorReport.from_json({**report.to_json(), "values": ["1.0"]})


# Pinned vectors: what another implementation must reproduce


def vector_arrays(entries: list[dict]) -> dict[str, np.ndarray]:
    return {entry["name"]: np.array(entry["values"], dtype=entry["dtype"]).reshape(entry["shape"]) for entry in entries}


@pytest.mark.parametrize("vector", VECTORS, ids=[vector["description"] for vector in VECTORS])
def test_vectors(vector):
    settings = ValuationSettings.from_json(vector["settings"])
    base = vector_arrays(vector["base"])
    updates = [WeightedUpdate(vector_arrays(entry["arrays"]), entry["weight"]) for entry in vector["updates"]]
    base_hash = model_hash(base)
    assert to_hex(base_hash) == vector["base_model_hash"]
    assert to_hex(valuation_seed(vector["run_id"], vector["round"], base_hash)) == vector["seed"]
    prepared = prepare_valuation(settings, vector["run_id"], vector["round"], base, base_hash, updates)
    assert [list(player) for player in prepared.players] == vector["players"]
    assert [list(order) for order in prepared.plan.permutations] == vector["permutations"]
    assert [list(coalition) for coalition in prepared.plan.coalitions] == vector["coalitions"]
    assert [to_hex(digest) for digest in prepared.candidate_hashes] == vector["candidate_hashes"]
    values = coalition_values(vector["losses"], vector["groups"])
    assert values == vector["values"]
    shapley = shapley_values(prepared.plan, values)
    assert shapley == vector["shapley"]
    assert member_scores(list(prepared.players), shapley, len(updates)) == vector["scores"]


def test_gram_of_the_vectors_is_what_players_are_cut_from():
    vector = VECTORS[0]
    updates = [vector_arrays(entry["arrays"]) for entry in vector["updates"]]
    gram = delta_gram(vector_arrays(vector["base"]), updates)
    norms = np.sqrt(np.diag(gram))
    linked = [
        pair
        for pair in combinations(range(len(updates)), 2)
        if np.sqrt(max(gram[pair[0], pair[0]] + gram[pair[1], pair[1]] - 2 * gram[pair], 0.0))
        <= vector["settings"]["sybil_distance"] * np.median(norms)
    ]
    assert linked and all(any(set(pair) <= set(player) for player in vector["players"]) for pair in linked)
