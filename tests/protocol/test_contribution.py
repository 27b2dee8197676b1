"""Contribution scores and the anomaly detector, on updates whose truth is known."""

import numpy as np
import pytest

from fedledger import contribution
from fedledger.contribution import (
    AnomalyStatistics,
    DetectorSettings,
    close,
    delta_gram,
    detect,
    step_responses,
)

BASE = {"b": np.zeros(50, np.float32), "a": np.zeros((20, 10), np.float32)}


def honest_updates(count: int, rng: np.random.Generator, spread: float = 0.3) -> list[dict[str, np.ndarray]]:
    """Updates that share a direction, each with its own noise."""
    shared = {name: rng.normal(size=value.shape) for name, value in BASE.items()}
    return [
        {
            name: (shared[name] + spread * rng.normal(size=value.shape)).astype(np.float32)
            for name, value in BASE.items()
        }
        for _ in range(count)
    ]


def rows(updates: list[dict[str, np.ndarray]]) -> np.ndarray:
    """The updates' deltas from BASE, flattened by hand in name order ("a" before "b")."""
    return np.vstack(
        [np.concatenate([update["a"].ravel() - BASE["a"].ravel(), update["b"] - BASE["b"]]) for update in updates]
    )


def gram(deltas: np.ndarray) -> np.ndarray:
    return deltas.astype(np.float64) @ deltas.astype(np.float64).T


@pytest.mark.parametrize("block_values", [1 << 21, 7])
def test_the_gram_matrix_is_of_the_float64_deltas_in_name_order(monkeypatch, block_values):
    monkeypatch.setattr(contribution, "_BLOCK_VALUES", block_values)
    updates = honest_updates(3, np.random.default_rng(0))
    computed = delta_gram(BASE, updates)
    assert computed.dtype == np.float64 and computed.shape == (3, 3)
    np.testing.assert_allclose(computed, gram(rows(updates)), rtol=1e-12)
    ones = {"a": np.ones((20, 10), np.float32), "b": np.full(50, 2.0, np.float32)}
    assert delta_gram(BASE, [ones]).tolist() == [[200 * 1.0 + 50 * 4.0]]


@pytest.mark.parametrize(
    ("attack", "flag"),
    [("scaling", "norm"), ("sign-flip", "direction"), ("noise", "norm")],
)
def test_the_detector_flags_each_attack_and_no_honest_update(attack, flag):
    rng = np.random.default_rng(2)
    updates = honest_updates(8, rng)
    honest = rows(updates)
    if attack == "scaling":
        bad = 10 * honest[:2]
    elif attack == "sign-flip":
        bad = -honest[:2]
    else:
        bad = 5 * rng.normal(size=(2, honest.shape[1]))
    statistics = detect(gram(np.vstack([honest, bad])), DetectorSettings())
    assert statistics is not None
    assert [stats.flags for stats in statistics[:8]] == [()] * 8
    assert all(flag in stats.flags for stats in statistics[8:])
    for stats in statistics[8:]:
        assert stats.flagged_by(DetectorSettings().threshold) == stats.flags
        assert "robust z-score" in stats.describe(DetectorSettings().threshold)


def test_too_few_updates_are_not_judged():
    four = delta_gram(BASE, honest_updates(4, np.random.default_rng(3)))
    assert detect(four, DetectorSettings(min_updates=5)) is None
    assert detect(four, DetectorSettings(min_updates=4)) is not None


def test_nearly_identical_updates_do_not_make_small_differences_extreme():
    deltas = rows(honest_updates(8, np.random.default_rng(4), spread=1e-6))
    deltas[0] *= 1.1
    statistics = detect(gram(deltas), DetectorSettings(sybil_distance=0.0))
    assert all(not stats.flags for stats in statistics)


def test_copies_count_once_and_cannot_make_honest_updates_look_far():
    """Three identical updates among honest ones that differ: counted three times they would narrow
    the round's spread; counted once they leave the honest updates unflagged, and share one set of
    statistics."""
    rng = np.random.default_rng(7)
    honest = rows(honest_updates(6, rng, spread=0.5))
    deltas = np.vstack([honest, np.repeat(honest[:1] * 0.98, 3, axis=0)])
    statistics = detect(gram(deltas), DetectorSettings())
    assert all(not stats.flags for stats in statistics[:6])
    assert statistics[6] == statistics[7] == statistics[8]
    assert detect(gram(np.repeat(honest[:1], 8, axis=0)), DetectorSettings()) is None, "one distinct update"


def test_statistics_round_trip_and_compare_with_tolerance():
    stats = AnomalyStatistics(1.0, 2.0, -0.5, 0.1, 0.2, -6.0, ("direction",))
    assert AnomalyStatistics.from_json(stats.to_json()) == stats
    assert close(1.0, 1.0 + 1e-12) and not close(1.0, 1.0001)
    assert DetectorSettings.from_json(DetectorSettings(4.0, 6, 0.2).to_json()) == DetectorSettings(4.0, 6, 0.2)


Model = dict[str, np.ndarray]


def local_training(model: Model, optimum: Model, rng: np.random.Generator) -> Model:
    """A site's update under a quadratic local loss: most of the way from ``model`` to the site's
    optimum, each coordinate at its own rate (the loss's curvature), plus a little SGD noise."""
    return {
        name: (
            value
            + rng.uniform(0.3, 0.6, size=value.shape) * (optimum[name] - value)
            + 0.02 * rng.normal(size=value.shape)
        ).astype(np.float32)
        for name, value in model.items()
    }


def mean(updates: list[Model]) -> Model:
    return {name: np.mean([update[name] for update in updates], axis=0).astype(np.float32) for name in BASE}


class LabelSkewedFederation:
    """Nine sites whose optima lie together and one whose optimum lies on the other side of the
    starting model, as a bank that mostly refuses among banks that mostly approve: its updates push
    against everyone else's, round after round, and it is honest."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        common = {name: self.rng.normal(size=value.shape) for name, value in BASE.items()}
        self.optima = [
            {name: common[name] + 0.8 * self.rng.normal(size=value.shape) for name, value in BASE.items()}
            for _ in range(9)
        ]
        self.optima.append(
            {name: -common[name] + 0.8 * self.rng.normal(size=value.shape) for name, value in BASE.items()}
        )
        self.skewed = 9

    def honest_round(self, model: Model) -> list[Model]:
        return [local_training(model, optimum, self.rng) for optimum in self.optima]


def attacked(model: Model, honest: Model, attack: str, rng: np.random.Generator) -> Model:
    """What an attacker sends instead of its honest update ``honest``, trained from ``model``."""
    if attack == "noise":
        return {name: (value + 5 * rng.normal(size=value.shape)).astype(np.float32) for name, value in model.items()}
    factor = -1.0 if attack == "sign-flip" else 10.0
    return {name: (value + factor * (honest[name] - value)).astype(np.float32) for name, value in model.items()}


def two_rounds(
    federation: LabelSkewedFederation, attack: str | None = None, attackers: tuple[int, ...] = ()
) -> tuple[Model, Model, list[Model], list[Model]]:
    """Round 1 from BASE and round 2 from its FedAvg aggregate over the updates the detector kept."""
    settings = DetectorSettings()
    updates = federation.honest_round(BASE)
    for index in attackers:
        updates[index] = attacked(BASE, updates[index], attack or "", federation.rng)
    statistics = detect(delta_gram(BASE, updates), settings)
    assert statistics is not None
    model = mean([update for update, stats in zip(updates, statistics, strict=True) if not stats.flags])
    following = federation.honest_round(model)
    for index in attackers:
        following[index] = attacked(model, following[index], attack or "", federation.rng)
    return BASE, model, updates, following


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_label_skewed_site_is_flagged_alone_but_not_once_it_answers_the_last_step(seed):
    federation = LabelSkewedFederation(seed)
    previous_base, base, previous, updates = two_rounds(federation)
    gram_now = delta_gram(base, updates)
    alone = detect(gram_now, DetectorSettings())
    assert alone is not None and alone[federation.skewed].flags == ("direction",)

    responses = step_responses(previous_base, base, previous, updates)
    statistics = detect(gram_now, DetectorSettings(), responses)
    assert statistics is not None
    assert [stats.flags for stats in statistics] == [()] * 10
    skewed = statistics[federation.skewed]
    assert skewed.agreement < 0 and skewed.agreement_z < -DetectorSettings().threshold
    assert skewed.response is not None and skewed.descends()
    assert all(response is not None and response < -0.2 for response in responses)


@pytest.mark.parametrize(("attack", "flag"), [("sign-flip", "direction"), ("scaling", "norm"), ("noise", "norm")])
@pytest.mark.parametrize("attackers", [(0,), (5,)])
def test_attacks_are_still_flagged_among_label_skewed_sites(attack, flag, attackers):
    federation = LabelSkewedFederation(3)
    previous_base, base, previous, updates = two_rounds(federation, attack, attackers)
    responses = step_responses(previous_base, base, previous, updates)
    statistics = detect(delta_gram(base, updates), DetectorSettings(), responses)
    assert statistics is not None
    for index, stats in enumerate(statistics):
        if index in attackers:
            assert flag in stats.flags
        else:
            assert stats.flags == ()
    if attack == "sign-flip":
        assert all(not statistics[index].descends() for index in attackers)


def test_step_responses_are_the_cosine_between_the_step_and_the_change_of_delta():
    rng = np.random.default_rng(5)
    previous_base = honest_updates(1, rng)[0]
    base = honest_updates(1, rng)[0]
    previous, update = honest_updates(2, rng)
    flat = [rows([arrays]).astype(np.float64) for arrays in (previous_base, base, previous, update)]
    change = (flat[3] - flat[1]) - (flat[2] - flat[0])
    step = flat[1] - flat[0]
    expected = float((change @ step.T)[0, 0] / (np.linalg.norm(change) * np.linalg.norm(step)))
    responses = step_responses(previous_base, base, [previous, None], [update, update])
    assert responses[1] is None
    assert responses[0] is not None and close(responses[0], expected)
    assert step_responses(base, base, [previous], [update]) == [None]


def test_detect_refuses_responses_that_do_not_match_the_updates():
    updates_gram = delta_gram(BASE, honest_updates(6, np.random.default_rng(6)))
    with pytest.raises(ValueError, match="5 step responses for 6 updates"):
        detect(updates_gram, DetectorSettings(), [None] * 5)


def test_statistics_with_a_response_round_trip_and_match_only_statistics_like_them():
    stats = AnomalyStatistics(1.0, 2.0, -0.5, 0.1, 0.2, -6.0, (), response=-0.4)
    assert AnomalyStatistics.from_json(stats.to_json()) == stats
    without = {key: value for key, value in stats.to_json().items() if key != "response"}
    assert AnomalyStatistics.from_json(without).response is None
    assert stats.matches(AnomalyStatistics(1.0, 2.0, -0.5, 0.1, 0.2, -6.0, (), response=-0.4 + 1e-12))
    assert not stats.matches(AnomalyStatistics(1.0, 2.0, -0.5, 0.1, 0.2, -6.0, (), response=-0.3))
    assert not stats.matches(AnomalyStatistics(1.0, 2.0, -0.5, 0.1, 0.2, -6.0, ()))
    assert stats.flagged_by(5.0) == ()
    assert AnomalyStatistics(1.0, 2.0, -0.5, 0.1, 0.2, -6.0, (), response=0.3).flagged_by(5.0) == ("direction",)
