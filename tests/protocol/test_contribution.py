"""Contribution scores and the anomaly detector, on updates whose truth is known."""

import numpy as np
import pytest

from fedledger import contribution
from fedledger.contribution import AnomalyStatistics, DetectorSettings, close, consensus_scores, delta_gram, detect

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


def test_scores_reward_agreement_with_the_others_and_nothing_else():
    rng = np.random.default_rng(1)
    honest = rows(honest_updates(6, rng))
    free_rider = 1e-4 * rng.normal(size=honest.shape[1])
    scores = consensus_scores(gram(np.vstack([honest, -honest[0], free_rider, np.zeros(honest.shape[1])])))
    assert all(score > 0.5 for score in scores[:6])
    assert scores[6] == 0.0, "an update against the others scores 0"
    assert scores[7] < 0.01, "noise around the global model scores about 0"
    assert scores[8] == 0.0


def test_one_huge_update_neither_drags_the_consensus_nor_earns_more():
    rng = np.random.default_rng(5)
    honest = rows(honest_updates(6, rng))
    noise = 100 * rng.normal(size=honest.shape[1])
    scaled = 10 * honest[0]
    scores = consensus_scores(gram(np.vstack([honest, noise, scaled])))
    assert scores[6] < 0.2, "noise does not become the consensus by being large"
    assert all(score > 0.5 for score in scores[:6])
    assert scores[7] <= 1.0, "a scaled-up update earns at most a full share"


def test_when_most_updates_did_not_move_the_ones_that_did_get_a_full_length_factor():
    """The median length is 0 when most sites send the global model back unchanged."""
    moved = rows(honest_updates(2, np.random.default_rng(4), spread=0.0))
    deltas = np.vstack([np.zeros((3, moved.shape[1])), moved])
    scores = consensus_scores(gram(deltas))
    assert scores[:3] == [0.0, 0.0, 0.0]
    assert scores[3:] == pytest.approx([1.0, 1.0]), "two identical moves agree fully, at full length"
    assert consensus_scores(gram(deltas)) == scores


def test_a_lone_update_is_the_consensus():
    row = rows(honest_updates(1, np.random.default_rng(6)))
    assert consensus_scores(gram(row)) == [1.0]
    assert consensus_scores(gram(np.zeros_like(row))) == [0.0]


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
    statistics = detect(gram(deltas), DetectorSettings())
    assert all(not stats.flags for stats in statistics)


def test_statistics_round_trip_and_compare_with_tolerance():
    stats = AnomalyStatistics(1.0, 2.0, -0.5, 0.1, 0.2, -6.0, ("direction",))
    assert AnomalyStatistics.from_json(stats.to_json()) == stats
    assert close(1.0, 1.0 + 1e-12) and not close(1.0, 1.0001)
    assert DetectorSettings.from_json(DetectorSettings(4.0, 6).to_json()) == DetectorSettings(4.0, 6)
