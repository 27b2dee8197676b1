"""The adaptive attacks' arithmetic (ALIE, min-max, min-sum, Sybil copies) and the attack
benchmark's rank correlation."""

import math

import numpy as np
import pytest

from fedledger.simulations import collusion
from fedledger.simulations.benchmarks.attacks import ranks, spearman


@pytest.fixture
def benign() -> np.ndarray:
    """Ten sites' deltas of 40 coordinates, of different spreads per coordinate."""
    rng = np.random.default_rng(7)
    return rng.normal(loc=0.3, scale=rng.uniform(0.01, 0.2, size=40), size=(10, 40))


@pytest.mark.parametrize(
    ("sites", "colluders", "z"),
    [
        (10, 3, 0.5244005127080407),  # s = 6 - 3 = 3, Phi^-1(7 / 10)
        (50, 12, 0.5828415072712162),  # s = 26 - 12 = 14, Phi^-1(36 / 50)
        (10, 2, 0.2533471031357997),  # s = 4, Phi^-1(6 / 10)
        (10, 1, collusion.MIN_ALIE_Z),  # s = 5, Phi^-1(1 / 2) = 0: the floor
        (4, 1, collusion.MIN_ALIE_Z),  # s = 2, Phi^-1(1 / 2) = 0: the floor
    ],
)
def test_alie_z_is_the_papers_z_max_with_a_floor_above_zero(sites: int, colluders: int, z: float):
    assert collusion.alie_z(sites, colluders) == pytest.approx(z, rel=1e-12)


@pytest.mark.parametrize(("sites", "colluders", "problem"), [(10, 6, "majority"), (10, 0, "between 1 and 9")])
def test_alie_z_refuses_a_majority_or_no_colluder(sites: int, colluders: int, problem: str):
    with pytest.raises(ValueError, match=problem):
        collusion.alie_z(sites, colluders)


def test_alie_delta_is_the_mean_minus_z_sample_standard_deviations():
    benign = np.array([[1.0, 0.0], [3.0, 0.0], [5.0, 3.0]])
    # means 3 and 1; sample standard deviations 2 and sqrt(3)
    assert np.allclose(collusion.alie_delta(benign, 0.5), [3.0 - 1.0, 1.0 - 0.5 * math.sqrt(3)])


@pytest.mark.parametrize("objective", collusion.OBJECTIVES)
def test_the_largest_gamma_meets_its_constraint_and_a_slightly_larger_one_does_not(benign: np.ndarray, objective: str):
    gamma = collusion.largest_gamma(benign, objective)
    mean, std = benign.mean(axis=0), benign.std(axis=0, ddof=1)
    assert gamma > 0
    assert collusion.within_spread(mean - gamma * std, benign, objective)
    assert not collusion.within_spread(mean - gamma * (1 + 1e-4) * std, benign, objective)
    assert np.array_equal(collusion.agr_agnostic_delta(benign, objective), mean - gamma * std)


def test_min_max_bounds_the_largest_distance_and_min_sum_the_sum_of_squares(benign: np.ndarray):
    mean, std = benign.mean(axis=0), benign.std(axis=0, ddof=1)
    pairwise = np.linalg.norm(benign[:, None, :] - benign[None, :, :], axis=2)
    min_max = mean - collusion.largest_gamma(benign, "min-max") * std
    assert np.linalg.norm(benign - min_max, axis=1).max() == pytest.approx(pairwise.max(), rel=1e-5)
    min_sum = mean - collusion.largest_gamma(benign, "min-sum") * std
    squared_sums = (pairwise**2).sum(axis=1)
    assert (np.linalg.norm(benign - min_sum, axis=1) ** 2).sum() == pytest.approx(squared_sums.max(), rel=1e-5)


def test_identical_benign_deltas_leave_no_direction_to_push():
    assert collusion.largest_gamma(np.ones((4, 3)), "min-max") == 0.0


def test_an_unknown_objective_is_named():
    with pytest.raises(ValueError, match="unknown objective 'median'"):
        collusion.within_spread(np.zeros(2), np.zeros((2, 2)), "median")


def test_sybil_copies_differ_from_the_original_and_each_other_by_about_a_thousandth():
    delta = np.random.default_rng(1).normal(size=500)
    first = collusion.sybil_copy(delta, np.random.default_rng([3, 1]))
    second = collusion.sybil_copy(delta, np.random.default_rng([3, 2]))
    norm = np.linalg.norm(delta)
    assert np.linalg.norm(first - delta) / norm == pytest.approx(collusion.SYBIL_NOISE, rel=1e-9)
    assert np.linalg.norm(first - second) / norm == pytest.approx(math.sqrt(2) * collusion.SYBIL_NOISE, rel=0.15)
    assert np.array_equal(first, collusion.sybil_copy(delta, np.random.default_rng([3, 1])))


def test_flatten_and_unflatten_keep_names_shapes_and_dtypes():
    arrays = {"b": np.arange(6, dtype=np.float32).reshape(2, 3), "a": np.array([1.5, 2.5])}
    vector = collusion.flatten(arrays)
    assert vector.tolist() == [1.5, 2.5, 0, 1, 2, 3, 4, 5]
    back = collusion.unflatten(vector, arrays)
    assert {name: (value.dtype, value.shape) for name, value in back.items()} == {
        "a": (np.float64, (2,)),
        "b": (np.float32, (2, 3)),
    }
    assert all(np.array_equal(back[name], arrays[name]) for name in arrays)
    with pytest.raises(ValueError, match="does not fit"):
        collusion.unflatten(np.zeros(9), arrays)


def test_ranks_average_ties():
    assert ranks([3.0, 1.0, 2.0, 2.0]).tolist() == [4.0, 1.0, 2.5, 2.5]


def test_spearman_without_ties_is_one_minus_six_sum_of_squared_rank_differences():
    rng = np.random.default_rng(5)
    first, second = rng.normal(size=12), rng.normal(size=12)
    differences = ranks(first) - ranks(second)
    assert spearman(first, second) == pytest.approx(1 - 6 * np.sum(differences**2) / (12 * (12**2 - 1)), rel=1e-12)
    assert spearman([1, 2, 3], [10, 20, 30]) == pytest.approx(1.0)
    assert spearman([1, 2, 3], [30, 20, 10]) == pytest.approx(-1.0)


def test_spearman_with_ties_is_pearsons_over_average_ranks():
    # scipy.stats.spearmanr gives 0.8827348295047495 for these
    assert spearman([0, 0, 5, 7, 7, 9], [0.1, -0.2, 0.3, 0.5, 0.2, 0.9]) == pytest.approx(0.8827348295047495, rel=1e-12)
    assert math.isnan(spearman([0, 0, 0], [1, 2, 3]))
