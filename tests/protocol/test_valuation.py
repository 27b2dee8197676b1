"""Valuation arithmetic: players, the valuation plan, candidate models, group votes, the singleton
gate, contributions and scores, on small rounds whose answers are worked out by hand."""

import json
import math
from itertools import combinations

import numpy as np
import pytest
import valuation_vectors

from fedledger.aggregation import WeightedUpdate
from fedledger.contribution import delta_gram, sybil_clusters
from fedledger.encoding import model_hash
from fedledger.hashing import to_hex
from fedledger.signing import SigningDomain, ValuationMessage, sign_valuation, valuation_results_hash
from fedledger.valuation import (
    RoundValuation,
    ValidatorReport,
    ValuationSettings,
    budget_failure,
    candidate_count,
    coalition_model,
    conclude_valuation,
    contributions_of,
    group_improvements,
    group_values,
    member_scores,
    prepare_valuation,
    validator_groups,
    valuation_plan,
    verify_report,
)

from helpers import participant_key

VECTORS = json.loads(valuation_vectors.PATH.read_text())
DOMAIN = SigningDomain(chain_id=31337, registry="0x5FbDB2315678afecb367f032d93F642f64180aa3")


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
    record = {"method": "leave-one-out", "metric": "eval-loss", "budget": 64, "sybil_distance": 0.05}
    assert settings.to_json() == record
    assert ValuationSettings.from_json(settings.to_json()) == settings
    assert ValuationSettings().budget == 1024
    with pytest.raises(ValueError, match="not a leave-one-out scoring record"):
        ValuationSettings.from_json({**record, "method": "shapley"})
    with pytest.raises(ValueError, match="lacks budget"):
        ValuationSettings.from_json({"method": "leave-one-out", "metric": "eval-loss", "sybil_distance": 0.1})


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


# Plan


def test_the_plan_is_empty_singletons_complements_and_all_players_in_canonical_order():
    assert valuation_plan(1) == ((), (0,))
    assert valuation_plan(2) == ((), (0,), (1,), (0, 1))
    assert valuation_plan(3) == ((), (0,), (1,), (2,), (0, 1), (0, 2), (1, 2), (0, 1, 2))
    assert valuation_plan(4) == (
        *((), (0,), (1,), (2,), (3,)),
        *((0, 1, 2), (0, 1, 3), (0, 2, 3), (1, 2, 3), (0, 1, 2, 3)),
    )
    assert len(valuation_plan(40)) == 82
    assert [candidate_count(players) for players in range(1, 6)] == [2, 4, 8, 10, 12]
    assert all(candidate_count(players) == len(valuation_plan(players)) for players in range(1, 30))
    with pytest.raises(ValueError, match="at least one player"):
        valuation_plan(0)


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


# Votes, contributions, scores


def losses_for(players: int, full: float, leave_outs: list[float], alone: list[float] | None = None) -> list[float]:
    """One validator's losses, with ``L(∅) = 1``, on the candidates of ``players`` players, such
    that its relative improvement is ``full`` on all players, ``full - leave_outs[p]`` without
    ``p``, and ``alone[p]`` (0.6 each by default: above any pay, so the cap does not bind) with ``p``
    alone: its own leave-one-out values are
    ``leave_outs``. With one or two players every singleton is ``N`` or a complement already, so
    ``alone`` cannot be given."""
    everyone = tuple(range(players))
    if players <= 2 and alone is not None:
        raise ValueError("with one or two players the singletons follow from full and leave_outs")
    improvement = {(): 0.0, everyone: full}
    for player, value in enumerate(leave_outs):
        improvement[everyone[:player] + everyone[player + 1 :]] = full - value
    for player in everyone:
        improvement.setdefault((player,), 0.6 if alone is None else alone[player])
    return [1.0 - improvement[coalition] for coalition in valuation_plan(players)]


def test_group_votes_are_medians_of_relative_improvements():
    losses = [[2.0, 1.0, 1.5], [4.0, 1.0, 2.0], [0.0, -1.0, 1.0]]
    # relative improvements: [0, .5, .25], [0, .75, .5], [0, 1, -1] (L(∅) = 0 divides by 1)
    votes = group_improvements(losses, [5, 5, 9])
    assert list(votes) == [5, 9]
    assert votes[5].tolist() == [0.0, 0.625, 0.375] and votes[9].tolist() == [0.0, 1.0, -1.0]


def test_two_players_two_groups_by_hand():
    # candidates (), (0,), (1,), (0, 1): each player alone is the other one left out; L(∅) = 2 and 4
    losses = [[2.0, 1.0, 1.8, 1.2], [4.0, 3.0, 2.0, 1.6]]
    # group 0: r = [0, .5, .1, .4]: player 0 alone .5 > 0; λ₀ = .4 - .1 = .3, λ₁ = .4 - .5 = -.1; total .3
    # group 1: r = [0, .25, .5, .6]: player 1 alone .5 > 0; λ₀ = .6 - .5 = .1, λ₁ = .6 - .25 = .35; total .45
    # c = median(.3, .45) = .375; player 0: group 1 says .1; player 1: group 0 says -.1 -> 0
    clip, contributions = contributions_of(2, losses, [0, 1])
    assert clip == pytest.approx(0.375)
    assert contributions == pytest.approx([0.1, 0.0])


#: Three groups' losses on the candidates (), (0,), (1,), (2,), (0, 1), (0, 2), (1, 2), (0, 1, 2).
THREE_PLAYERS = [
    [2.0, 1.2, 1.8, 2.4, 1.0, 1.4, 1.6, 1.1],  # L(∅) = 2: r = [0, .4, .1, -.2, .5, .3, .2, .45]
    [4.0, 3.2, 2.8, 3.6, 2.6, 3.0, 2.8, 2.4],  # L(∅) = 4: r = [0, .2, .3, .1, .35, .25, .3, .4]
    [1.0, 0.9, 0.9, 1.05, 0.9, 0.85, 0.8, 0.7],  # L(∅) = 1: r = [0, .1, .1, -.05, .1, .15, .2, .3]
]


def test_three_players_by_hand_the_gate_is_the_own_groups_view_of_the_update_alone():
    # group 0: alone .4, -.2 ...; λ = [.45 - .2, .45 - .3, .45 - .5] = [.25, .15, -.05]; total .4
    # group 1: alone .2, .3, .1;   λ = [.4 - .3, .4 - .25, .4 - .35] = [.1, .15, .05]; total .3
    # group 2: player 2 alone -.05 (its update alone hurts its own rows), yet its own λ is
    #          .3 - .1 = .2 (the round gains from it on those rows); λ = [.1, .15, .2]; total .45
    values = group_values(3, group_improvements(THREE_PLAYERS, [0, 1, 2]))
    assert values[2].alone == pytest.approx((0.1, 0.1, -0.05))
    assert values[2].leave_one_out == pytest.approx((0.1, 0.15, 0.2))
    # c = median(.4, .3, .45) = .4; player 0: mean(.1, .1); player 1: mean(.15, .15); player 2: gated
    clip, contributions = contributions_of(3, THREE_PLAYERS, [0, 1, 2])
    assert clip == pytest.approx(0.4)
    assert contributions == pytest.approx([0.1, 0.15, 0.0])
    # Group 1 now sees the round gain nothing from player 1 (r({0, 2}) = .45 > r(N) = .4: λ₁ = -.05),
    # but player 1's update alone still helps its rows: it is paid what the other groups see.
    redundant = [THREE_PLAYERS[0], [4.0, 3.2, 2.8, 3.6, 2.6, 2.2, 2.8, 2.4], THREE_PLAYERS[2]]
    assert group_values(3, group_improvements(redundant, [0, 1, 2]))[1].leave_one_out[1] == pytest.approx(-0.05)
    clip, contributions = contributions_of(3, redundant, [0, 1, 2])
    assert clip == pytest.approx(0.4)
    assert contributions == pytest.approx([0.1, 0.15, 0.0])


def test_a_player_whose_own_group_sees_its_update_alone_not_improve_gets_nothing_whatever_the_others_say():
    others = [losses_for(3, 0.5, [0.3, 0.2, 0.1]), losses_for(3, 0.4, [0.1, 0.3, 0.2])]
    for alone in (0.0, -0.3):
        own = losses_for(3, 0.4, [0.1, 0.25, 0.3], alone=[0.1, alone, 0.1])  # group 1: player 1's own
        clip, contributions = contributions_of(3, [others[0], own, others[1]], [0, 1, 2])
        # positive totals .6, .65, .6: c = .6; player 0: mean(.1, .1); player 2: mean(.1, .3)
        assert clip == pytest.approx(0.6)
        assert contributions == pytest.approx([0.1, 0.0, 0.2])
    vouched = losses_for(3, 0.4, [0.1, 0.25, 0.3], alone=[0.1, 1e-9, 0.1])
    hair = contributions_of(3, [others[0], vouched, others[1]], [0, 1, 2])[1][1]
    assert hair == pytest.approx(1e-9), "a hair opens the gate and earns at most that hair"


def test_a_site_alone_in_its_round_is_paid_its_own_leave_one_out_value_if_its_update_alone_helps():
    # only group 0 answered: c is its own total .6; players 1 and 2 have no own report
    clip, contributions = contributions_of(3, [losses_for(3, 0.5, [0.3, 0.1, 0.2])], [0])
    assert clip == pytest.approx(0.6)
    assert contributions == pytest.approx([0.3, 0.0, 0.0])
    assert contributions_of(3, [losses_for(3, 0.5, [-0.1, 0.3, 0.3])], [0])[1][0] == 0.0
    assert contributions_of(3, [losses_for(3, 0.5, [0.3, 0.1, 0.2], alone=[-0.1, 0.1, 0.1])], [0])[1][0] == 0.0


def test_a_player_with_no_own_report_gets_nothing():
    losses = [losses_for(3, 0.4, [0.3, 0.1, 0.0]), losses_for(3, 0.4, [0.2, 0.2, 0.0])]  # groups 1, 7; none for 0
    clip, contributions = contributions_of(3, losses, [1, 7])
    assert clip == pytest.approx(0.4)
    assert contributions == pytest.approx([0.0, 0.2, 0.0])


def test_the_clip_bounds_what_one_group_can_credit():
    losses = [
        losses_for(3, 0.2, [0.1, 0.1, 0.0]),  # group 0: total .2
        losses_for(3, 5.1, [5.0, 0.1, 0.0]),  # group 1 credits player 0 with 5: total 5.1
        losses_for(3, 0.2, [0.1, 0.1, 0.0]),  # group 7: total .2
    ]
    # c = median(.2, 5.1, .2) = .2; player 0: mean(min(5, .2), min(.1, .2)) = .15 (2.55 unclipped);
    # player 2 has no own report
    clip, contributions = contributions_of(3, losses, [0, 1, 7])
    assert clip == pytest.approx(0.2)
    assert contributions == pytest.approx([0.15, 0.1, 0.0])


def test_one_player_is_paid_its_own_gain_and_with_another_group_that_groups_view():
    assert contributions_of(1, [[2.0, 1.5]], [0]) == (0.25, [0.25])
    clip, contributions = contributions_of(1, [[2.0, 1.5], [1.0, 0.9]], [0, 4])  # λ = .25 and .1
    assert clip == pytest.approx(0.175) and contributions == pytest.approx([0.1])
    assert contributions_of(1, [[2.0, 2.5]], [0]) == (0.0, [0.0])


def positive_totals(losses: list[list[float]], players: int) -> list[float]:
    """Each validator's ``Σ_p max(0, λ_p)``, from losses made by ``losses_for``."""
    everyone = tuple(range(players))
    totals = []
    for row in losses:
        improvement = {coalition: 1.0 - loss for coalition, loss in zip(valuation_plan(players), row, strict=True)}
        leave_outs = [improvement[everyone] - improvement[everyone[:p] + everyone[p + 1 :]] for p in everyone]
        totals.append(sum(max(0.0, value) for value in leave_outs))
    return totals


@pytest.mark.parametrize("seed", range(10))
def test_a_lying_minority_of_other_groups_raises_a_contribution_by_at_most_its_share_of_the_clip(seed: int):
    rng = np.random.default_rng(seed)
    players = 6
    own = losses_for(players, 0.5, list(rng.uniform(0.01, 0.2, players)))
    honest = [own, *(losses_for(players, 0.5, list(rng.uniform(-0.1, 0.2, players))) for _ in range(players - 1))]
    _, honest_pay = contributions_of(players, honest, list(range(players)))
    assert honest_pay[0] > 0
    for liars in (1, 2):  # of the five groups other than player 0's own: they claim player 0 is worth 1e6
        lying = [*honest[: players - liars], *[losses_for(players, 1e6, [1e6] * players)] * liars]
        clip, lying_pay = contributions_of(players, lying, list(range(players)))
        assert lying_pay[0] > honest_pay[0]
        assert lying_pay[0] - honest_pay[0] <= liars / (players - 1) * clip + 1e-12
        assert clip <= max(positive_totals(honest[: players - liars], players)) + 1e-12


def test_a_validator_cannot_vouch_for_its_own_player_beyond_the_gate():
    others = [losses_for(3, 0.6, [0.1, 0.2, 0.15]), losses_for(3, 0.6, [0.05, 0.25, 0.2])]
    modest = contributions_of(3, [losses_for(3, 0.3, [0.01, 0.2, 0.1]), *others], [0, 1, 2])
    boastful = contributions_of(3, [losses_for(3, 1e6, [1e6, 0.2, 0.1]), *others], [0, 1, 2])
    assert modest[1][0] == boastful[1][0] == pytest.approx((0.1 + 0.05) / 2)


def test_validators_vote_with_their_player_or_alone():
    players = [(0, 2), (1,)]
    reports = [ValidatorReport(node, address, (), None) for node, address in [(5, "0xAA"), (6, "0xcc"), (9, "0xDD")]]
    assert validator_groups(players, ["0xaa", "0xBB", "0xCC"], reports) == [0, 0, 2 + 9]


def test_members_share_their_players_contribution():
    assert member_scores([(0, 2), (1,), (3,)], [0.5, 0.0, 0.1], 4) == [0.125, 0.0, 0.125, 0.1]


# A round end to end: real losses, real signatures


def site_loss(model: dict[str, np.ndarray], target: np.ndarray) -> float:
    """A site's loss on its own rows: the squared distance of the model's parameters to its optimum."""
    flat = np.concatenate([model["b"].astype(np.float64), model["w"].astype(np.float64)])
    return float(np.sum((flat - target) ** 2))


#: Three sites' optima on their test rows: much in common, each with its own twist.
TARGETS = [np.array([1.0, 2.0, -1.0, 0.0]), np.array([1.0, 1.5, -0.5, 0.5]), np.array([0.5, 2.0, -1.0, 1.0])]
#: How far each site's training rows pull it from its test optimum: more than the sites differ, so
#: that averaging the sites' updates helps each of them.
TRAINING_NOISE = [np.array([0.8, -0.6, 0.0, 0.4]), np.array([-0.6, 0.2, 0.8, -0.4]), np.array([0.0, 0.6, -0.8, -0.2])]


def site_update(site: int, weight: int) -> WeightedUpdate:
    """Site ``site``'s honest update: half way from the base towards the optimum of its training rows."""
    start = np.concatenate([BASE["b"], BASE["w"]]).astype(np.float64)
    moved = (start + 0.5 * (TARGETS[site] + TRAINING_NOISE[site] - start)).astype(np.float32)
    return WeightedUpdate({"b": moved[:1], "w": moved[1:]}, weight)


def signed_report(node_id: int, index: int, prepared, values: list[float], metric: str = "eval-loss"):
    account = participant_key(index)
    message = ValuationMessage(1, 2, metric, valuation_results_hash(prepared.candidate_hashes, values))
    signature = sign_valuation(DOMAIN, message, account.key)
    return ValidatorReport(node_id, account.address, tuple(values), to_hex(signature))


def value_round(updates: list[WeightedUpdate], targets: list[np.ndarray]):
    """Value a round of ``updates``; each update's participant validates on its own rows, whose
    optimum is ``targets[i]``."""
    prepared = prepare_valuation(ValuationSettings(), 1, 2, BASE, model_hash(BASE), updates)
    participants = [participant_key(index).address for index in range(len(updates))]
    reports = []
    for index, target in enumerate(targets):
        losses = [site_loss(model, target) for model in prepared.candidates()]
        report = signed_report(100 + index, index, prepared, losses)
        why = verify_report(DOMAIN, 1, 2, "eval-loss", prepared.candidate_hashes, report, participants[index])
        assert why is None, why
        reports.append(report)
    return prepared, conclude_valuation(prepared, participants, reports)


def run_round(sites: list[tuple[int, int]]):
    """Value a round whose updates come from ``sites`` (target index, weight); each update's
    participant validates on its site's own target."""
    updates = [site_update(target, weight) for target, weight in sites]
    return value_round(updates, [TARGETS[target] for target, _ in sites])


def values_of(valuation: RoundValuation) -> dict:
    """Each group's ``GroupValues`` in a round where validator ``i`` sent update ``i``, a player each."""
    losses = [list(report.values or ()) for report in valuation.validators]
    players = len(valuation.players)
    return group_values(players, group_improvements(losses, list(range(players))))


def test_honest_sites_whose_updates_alone_help_their_own_rows_are_paid_what_the_other_groups_see():
    _, (valuation, scores) = run_round([(0, 10), (1, 20), (2, 5)])
    values, clip = values_of(valuation), valuation.clip or 0.0
    for player in range(3):
        assert values[player].alone[player] > 0, "an honest update alone improves its own site's loss"
        others = [min(max(0.0, values[group].leave_one_out[player]), clip) for group in range(3) if group != player]
        assert valuation.contributions[player] == pytest.approx(sum(others) / 2)
    assert all(score > 0 for score in scores)


def overshooting_update(site: int, weight: int) -> WeightedUpdate:
    """Site ``site``'s update with a learning rate too large: 1.3 times the way to its optimum."""
    start = np.concatenate([BASE["b"], BASE["w"]]).astype(np.float64)
    moved = (start + 1.3 * (TARGETS[site] - start)).astype(np.float32)
    return WeightedUpdate({"b": moved[:1], "w": moved[1:]}, weight)


#: The free-rider's own rows, and the size of the noise it adds to the round's model.
FREE_RIDER_ROWS = (TARGETS[0] + TARGETS[1]) / 2
FREE_RIDER_NOISE = 1e-4


def free_rider_round(towards_its_rows: bool):
    """The honest sites overshoot, so the round gains from any update that dilutes their step: a
    free-rider that sends the round's model back plus noise of 1e-4 in every coordinate (away
    from its own rows' optimum, or towards it), claiming 20 examples, shrinks the step."""
    start = np.concatenate([BASE["b"], BASE["w"]]).astype(np.float64)
    direction = np.sign(FREE_RIDER_ROWS - start) * (1 if towards_its_rows else -1)
    sent = (start + FREE_RIDER_NOISE * direction).astype(np.float32)
    free_rider = WeightedUpdate({"b": sent[:1], "w": sent[1:]}, 20)
    honest = [overshooting_update(site, weight) for site, weight in [(0, 10), (1, 20), (2, 5)]]
    prepared, (valuation, scores) = value_round([*honest, free_rider], [*TARGETS, FREE_RIDER_ROWS])
    assert prepared.players == ((0,), (1,), (2,), (3,))
    values = values_of(valuation)
    assert all(values[group].leave_one_out[3] > 0 for group in range(4)), "the dilution helps every site"
    assert all(values[player].alone[player] > 0 and scores[player] > 0 for player in range(3))
    return valuation, values, scores


def test_a_free_rider_whose_dilution_helps_its_own_rows_is_paid_nothing():
    """Its leave-one-out value on its own rows is positive, but its update alone, the round's model
    plus noise, does not improve them: it is paid nothing."""
    valuation, values, scores = free_rider_round(towards_its_rows=False)
    assert values[3].leave_one_out[3] > 0 and values[3].alone[3] <= 0
    assert valuation.contributions[3] == 0.0 and scores[3] == 0.0


def test_a_free_rider_whose_noise_happens_to_help_its_own_rows_earns_at_most_that_hair():
    """Noise that happens to point towards its own optimum improves its own rows by a hair and opens
    the gate; its pay, what the other groups see in its dilution, is capped at that hair."""
    valuation, values, _ = free_rider_round(towards_its_rows=True)
    hair = values[3].alone[3]
    assert 0 < hair < 1e-3
    others = [min(max(0.0, values[group].leave_one_out[3]), valuation.clip or 0.0) for group in range(3)]
    assert sum(others) / 3 > hair, "the others credit its dilution with more than the hair"
    assert valuation.contributions[3] == hair
    assert all(valuation.contributions[player] < values[player].alone[player] for player in range(3)), (
        "an honest site's update alone helps its own rows more than the others credit it: the cap does not bind"
    )


def test_a_sybil_pair_earns_half_of_what_one_copy_earns_alone():
    _, (alone, alone_scores) = run_round([(0, 10), (1, 20)])
    pair_prepared, (pair, pair_scores) = run_round([(0, 10), (1, 20), (1, 20)])
    assert pair_prepared.players == ((0,), (1, 2))
    assert pair.candidates == alone.candidates, "the pair's models are the one copy's, bit for bit"
    assert pair_scores[0] == alone_scores[0]
    assert pair_scores[1] + pair_scores[2] == pytest.approx(alone_scores[1] / 2), "copying costs the sender"
    assert pair_scores[1] == pair_scores[2] > 0


def test_a_concluded_round_records_what_an_auditor_needs_in_canonical_json():
    prepared, (valuation, scores) = run_round([(0, 10), (1, 20), (2, 5)])
    assert valuation.failure is None and valuation.coalitions == valuation_plan(3)
    assert len(valuation.candidates) == 8 and valuation.candidates[0] == to_hex(model_hash(BASE))
    losses = [list(report.values or ()) for report in valuation.validators]
    assert (valuation.clip, list(valuation.contributions)) == contributions_of(3, losses, [0, 1, 2])
    assert scores == member_scores(list(prepared.players), list(valuation.contributions), 3)
    assert all(0 <= contribution <= (valuation.clip or 0) for contribution in valuation.contributions)
    assert list(prepared.candidates())[3]["w"].tobytes() == prepared.candidate(3)["w"].tobytes()
    assert RoundValuation.from_json(json.loads(json.dumps(valuation.to_json()))) == valuation


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("contributions", [0.1, "0.2"], "'contributions' must be a list of float"),
        ("contributions", [math.nan], "'contributions' must be a list of float"),
        ("clip", math.inf, "'clip' must be a finite number"),
        ("clip", "0.2", "'clip' must be a finite number"),
        ("players", [["0xA"], [3]], "'players' must be a list of lists of str"),
        ("coalitions", [[0], [True]], "'coalitions' must be a list of lists of int"),
        ("validators", [{"node_id": "7"}], "'node_id' must be int"),
        ("failure", 3, "'failure' must be str"),
    ],
)
def test_a_stored_valuation_that_is_malformed_is_refused_by_field(field: str, value: object, message: str):
    _, (valuation, _) = run_round([(0, 10), (1, 20)])
    with pytest.raises(ValueError, match=message):
        RoundValuation.from_json({**valuation.to_json(), field: value})
    record = valuation.to_json()
    del record["contributions"]
    with pytest.raises(ValueError, match="'contributions' must be list"):
        RoundValuation.from_json(record)


def test_a_round_needing_more_candidates_than_the_budget_is_not_valued():
    assert budget_failure(1, 2) is None and budget_failure(2, 4) is None and budget_failure(3, 8) is None
    assert budget_failure(3, 7) == "not valued: 3 players need 8 candidate models, more than the budget of 7"
    assert budget_failure(2, 3) == "not valued: 2 players need 4 candidate models, more than the budget of 3"
    updates = [site_update(0, 10), site_update(1, 20), site_update(2, 5)]
    prepared = prepare_valuation(ValuationSettings(budget=7), 1, 2, BASE, model_hash(BASE), updates)
    assert prepared.failure == budget_failure(3, 7)
    assert prepared.coalitions == () and prepared.candidate_hashes == () and list(prepared.candidates()) == []
    valuation, scores = conclude_valuation(prepared, ["0xA", "0xB", "0xC"], [])
    assert scores == [0.0, 0.0, 0.0]
    assert valuation == RoundValuation(
        players=(("0xA",), ("0xB",), ("0xC",)),
        coalitions=(),
        candidates=(),
        validators=(),
        contributions=(),
        clip=None,
        failure=prepared.failure,
    )
    with pytest.raises(ValueError, match="takes no reports"):
        conclude_valuation(prepared, ["0xA", "0xB", "0xC"], [ValidatorReport(1, None, None, None, "silent")])
    within = prepare_valuation(ValuationSettings(budget=8), 1, 2, BASE, model_hash(BASE), updates)
    assert within.failure is None and len(within.candidate_hashes) == 8


def test_no_counted_report_fails_the_valuation_and_scores_nothing():
    updates = [site_update(0, 10), site_update(1, 20)]
    prepared = prepare_valuation(ValuationSettings(), 1, 2, BASE, model_hash(BASE), updates)
    reports = [
        ValidatorReport(7, None, None, None, "silent", "no reply"),
        ValidatorReport(8, None, None, None, "error"),
    ]
    valuation, scores = conclude_valuation(prepared, ["0xA", "0xB"], reports)
    assert scores == [0.0, 0.0] and valuation.contributions == () and valuation.clip is None
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
    prepared = prepare_valuation(settings, vector["run_id"], vector["round"], base, base_hash, updates)
    assert [list(player) for player in prepared.players] == vector["players"]
    assert prepared.failure == vector["failure"]
    assert [list(coalition) for coalition in prepared.coalitions] == vector["coalitions"]
    assert [to_hex(digest) for digest in prepared.candidate_hashes] == vector["candidate_hashes"]
    if vector["failure"] is not None:
        assert vector["scores"] == [0.0] * len(updates)
        return
    players = len(prepared.players)
    values = group_values(players, group_improvements(vector["losses"], vector["groups"]))
    assert [
        {"group": group, "alone": list(values[group].alone), "leave_one_out": list(values[group].leave_one_out)}
        for group in sorted(values)
    ] == vector["group_values"]
    clip, contributions = contributions_of(players, vector["losses"], vector["groups"])
    assert clip == vector["clip"] and contributions == vector["contributions"]
    assert member_scores(list(prepared.players), contributions, len(updates)) == vector["scores"]


def test_the_stored_vectors_are_what_their_generator_writes():
    assert valuation_vectors.build() == VECTORS


def test_the_free_rider_of_the_vectors_is_paid_nothing_despite_its_own_leave_one_out_value():
    [free_rider] = [group for group in VECTORS[0]["group_values"] if group["group"] == 3]
    assert free_rider["leave_one_out"][3] > 0 and free_rider["alone"][3] <= 0
    assert VECTORS[0]["contributions"][3] == 0.0


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
