"""Contribution scores and the anomaly detector, on updates whose truth is known."""

import numpy as np
import pytest

from fedledger.contribution import AnomalyStatistics, DetectorSettings, close, consensus_scores, deltas, detect

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


def test_deltas_are_flattened_in_name_order_as_float64():
    update = {"a": np.ones((20, 10), np.float32), "b": np.full(50, 2.0, np.float32)}
    (row,) = deltas(BASE, [update])
    assert row.dtype == np.float64 and row.shape == (250,)
    assert row[:200].tolist() == [1.0] * 200 and row[200:].tolist() == [2.0] * 50


def test_scores_reward_agreement_with_the_others_and_nothing_else():
    rng = np.random.default_rng(1)
    rows = deltas(BASE, honest_updates(6, rng))
    free_rider = 1e-4 * rng.normal(size=rows.shape[1])
    scores = consensus_scores(np.vstack([rows, -rows[0], free_rider, np.zeros(rows.shape[1])]))
    assert all(score > 0.5 for score in scores[:6])
    assert scores[6] == 0.0, "an update against the others scores 0"
    assert scores[7] < 0.01, "noise around the global model scores about 0"
    assert scores[8] == 0.0


def test_one_huge_update_neither_drags_the_consensus_nor_earns_more():
    rng = np.random.default_rng(5)
    rows = deltas(BASE, honest_updates(6, rng))
    noise = 100 * rng.normal(size=rows.shape[1])
    scaled = 10 * rows[0]
    scores = consensus_scores(np.vstack([rows, noise, scaled]))
    assert scores[6] < 0.2, "noise does not become the consensus by being large"
    assert all(score > 0.5 for score in scores[:6])
    assert scores[7] <= 1.0, "a scaled-up update earns at most a full share"


def test_a_lone_update_is_the_consensus():
    row = deltas(BASE, honest_updates(1, np.random.default_rng(6)))
    assert consensus_scores(row) == [1.0]
    assert consensus_scores(np.zeros_like(row)) == [0.0]


@pytest.mark.parametrize(
    ("attack", "flag"),
    [("scaling", "norm"), ("sign-flip", "direction"), ("noise", "norm")],
)
def test_the_detector_flags_each_attack_and_no_honest_update(attack, flag):
    rng = np.random.default_rng(2)
    updates = honest_updates(8, rng)
    honest = deltas(BASE, updates)
    if attack == "scaling":
        bad = 10 * honest[:2]
    elif attack == "sign-flip":
        bad = -honest[:2]
    else:
        bad = 5 * rng.normal(size=(2, honest.shape[1]))
    statistics = detect(np.vstack([honest, bad]), DetectorSettings())
    assert statistics is not None
    assert [stats.flags for stats in statistics[:8]] == [()] * 8
    assert all(flag in stats.flags for stats in statistics[8:])
    for stats in statistics[8:]:
        assert stats.flagged_by(DetectorSettings().threshold) == stats.flags
        assert "robust z-score" in stats.describe(DetectorSettings().threshold)


def test_too_few_updates_are_not_judged():
    rows = deltas(BASE, honest_updates(4, np.random.default_rng(3)))
    assert detect(rows, DetectorSettings(min_updates=5)) is None
    assert detect(rows, DetectorSettings(min_updates=4)) is not None


def test_nearly_identical_updates_do_not_make_small_differences_extreme():
    rows = deltas(BASE, honest_updates(8, np.random.default_rng(4), spread=1e-6))
    rows[0] *= 1.1
    statistics = detect(rows, DetectorSettings())
    assert all(not stats.flags for stats in statistics)


def test_statistics_round_trip_and_compare_with_tolerance():
    stats = AnomalyStatistics(1.0, 2.0, -0.5, 0.1, 0.2, -6.0, ("direction",))
    assert AnomalyStatistics.from_json(stats.to_json()) == stats
    assert close(1.0, 1.0 + 1e-12) and not close(1.0, 1.0001)
    assert DetectorSettings.from_json(DetectorSettings(4.0, 6).to_json()) == DetectorSettings(4.0, 6)
