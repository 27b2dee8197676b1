"""Differential privacy's arithmetic: calibration, accounting, clipping, noise and its test."""

import itertools
import math

import numpy as np
import pytest

from fedledger.privacy import (
    MAX_NOISE_MULTIPLIER,
    NoiseTest,
    PrivacyError,
    PrivacySettings,
    RoundPrivacy,
    add_noise,
    clip_update,
    delta_norm,
    draw_noise,
    epsilon_spent,
    to_fixed_epsilon,
)


@pytest.mark.parametrize(("epsilon", "sampling_rate", "rounds"), [(1.0, 1.0, 10), (3.0, 0.5, 10), (8.0, 1.0, 3)])
def test_calibration_spends_at_most_the_budget_and_not_much_less(epsilon, sampling_rate, rounds):
    settings = PrivacySettings.calibrated("central", epsilon, 1e-5, 1.0, sampling_rate, rounds)
    assert to_fixed_epsilon(settings.epsilon_after(rounds)) <= settings.to_budget().epsilon
    less_noise = settings.noise_multiplier * 0.99
    assert epsilon_spent(less_noise, sampling_rate, rounds, 1e-5) > epsilon


def test_epsilon_grows_with_every_release_and_shrinks_with_sampling():
    spent = [epsilon_spent(2.0, 1.0, releases, 1e-5) for releases in range(6)]
    assert spent[0] == 0.0
    assert all(earlier < later for earlier, later in itertools.pairwise(spent))
    assert epsilon_spent(2.0, 0.1, 5, 1e-5) < spent[5]


def test_fixed_point_epsilon_is_rounded_up():
    assert to_fixed_epsilon(1.0) == 1_000_000
    assert to_fixed_epsilon(1.0000001) == 1_000_001
    assert PrivacySettings("central", 2.5, 1e-5, 1.0, 1.0).to_budget().epsilon == 2_500_000


def test_a_budget_no_noise_can_meet_is_refused_with_the_numbers():
    with pytest.raises(PrivacyError, match=f"above {MAX_NOISE_MULTIPLIER:g}"):
        PrivacySettings.calibrated("central", 1e-6, 1e-5, 1.0, 1.0, 1000)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("mode", "global", "unknown privacy mode 'global'"),
        ("epsilon", 0.0, "epsilon must be a finite number above 0"),
        ("delta", 1.0, "delta must be between 0 and 1"),
        ("clip_norm", math.inf, "clip_norm must be a finite number above 0"),
        ("sampling_rate", 1.5, r"sampling_rate must be in \(0, 1\]"),
    ],
)
def test_settings_out_of_range_are_refused_by_name(field, value, message):
    values = {"mode": "central", "epsilon": 1.0, "delta": 1e-5, "clip_norm": 1.0, "noise_multiplier": 1.0}
    with pytest.raises(PrivacyError, match=message):
        PrivacySettings(**{**values, field: value})


def test_settings_round_trip_through_the_run_configuration_json():
    settings = PrivacySettings("local", 3.0, 1e-6, 0.5, 4.2, 1.0)
    assert PrivacySettings.from_json(settings.to_json()) == settings
    with pytest.raises(PrivacyError, match="accountant 'other'"):
        PrivacySettings.from_json({**settings.to_json(), "accountant": "other"})


def test_clipping_scales_the_delta_to_the_norm_and_keeps_integer_arrays():
    base = {"b": np.zeros(3, np.float32), "count": np.array([7], np.int64), "w": np.ones((2, 2), np.float32)}
    update = {"b": np.full(3, 4.0, np.float32), "count": np.array([9], np.int64), "w": np.full((2, 2), 4.0, np.float32)}
    assert delta_norm(base, update) == pytest.approx(math.sqrt(3 * 16 + 4 * 9))
    clipped = clip_update(base, update, 2.0)
    assert delta_norm(base, clipped) == pytest.approx(2.0, rel=1e-6)
    assert clipped["count"].tolist() == [9]
    assert clipped["w"].dtype == np.float32
    direction = (clipped["b"] - base["b"]) / (update["b"] - base["b"])
    assert np.allclose(direction, direction[0])


def test_an_update_within_the_norm_is_not_changed():
    base = {"w": np.zeros(4, np.float32)}
    update = {"w": np.array([0.1, -0.2, 0.0, 0.3], np.float32)}
    assert np.array_equal(clip_update(base, update, 1.0)["w"], update["w"])


def test_clipping_is_exact_whatever_the_order_of_the_values():
    generator = np.random.default_rng(3)
    base = {"w": generator.standard_normal(10_001).astype(np.float32)}
    update = {"w": base["w"] + generator.standard_normal(10_001).astype(np.float32) * 1e3}
    reversed_base, reversed_update = {"w": base["w"][::-1].copy()}, {"w": update["w"][::-1].copy()}
    assert delta_norm(base, update) == delta_norm(reversed_base, reversed_update)


def test_noise_covers_the_floating_arrays_and_adds_in_their_dtype():
    model = {"count": np.array([3], np.int64), "w": np.zeros((50, 20), np.float32)}
    noise = draw_noise(model, 0.5)
    assert sorted(noise) == ["w"]
    assert noise["w"].dtype == np.float32 and noise["w"].shape == (50, 20)
    noised = add_noise(model, noise)
    assert np.array_equal(noised["w"], noise["w"]) and noised["count"].tolist() == [3]
    with pytest.raises(PrivacyError, match="the noise of 'w' is float64"):
        add_noise(model, {"w": noise["w"].astype(np.float64)})
    with pytest.raises(PrivacyError, match="the noise has arrays"):
        add_noise(model, {})


def test_honest_noise_passes_its_size_test_and_noise_of_another_size_fails_it():
    noise = {"w": (np.random.default_rng(11).standard_normal(200_000) * 0.3).astype(np.float32)}
    assert NoiseTest.of(noise, 0.3).passed
    assert not NoiseTest.of({"w": noise["w"] * np.float32(0.97)}, 0.3).passed
    assert not NoiseTest.of({"w": noise["w"] * np.float32(1.03)}, 0.3).passed
    assert not NoiseTest.of({"w": np.zeros(200_000, np.float32)}, 0.3).passed


def test_drawn_noise_has_the_promised_size():
    noise = draw_noise({"w": np.zeros(20_000, np.float32)}, 0.3)
    assert NoiseTest.of(noise, 0.3).measured == pytest.approx(0.3, rel=0.05)


def test_the_noise_test_rarely_fails_honest_noise():
    failures = sum(not NoiseTest.of(draw_noise({"w": np.zeros(200, np.float32)}, 1.0), 1.0).passed for _ in range(300))
    assert failures == 0


def test_a_round_record_round_trips_and_names_a_mistyped_field():
    record = RoundPrivacy(2, 1.25, 1_250_000, 4, 0.5, "0x" + "ab" * 32, None)
    assert RoundPrivacy.from_json(record.to_json()) == record
    with pytest.raises(ValueError, match=r"privacy\.epsilon_spent must be int"):
        RoundPrivacy.from_json({**record.to_json(), "epsilon_spent": 1.5})
