"""Every scenario splits for every site count it accepts and every seed, and refuses other counts up front."""

import re
from pathlib import Path

import numpy as np
import pytest

from fedledger.simulations.scenarios import SCENARIOS, ScenarioError
from fedledger.simulations.scenarios.banks import (
    DIRICHLET_ALPHA,
    MIN_BANK_SIZE,
    Banks,
    label_skewed_split,
    load_records,
)

SEEDS = range(21)
BANK_COUNTS = (2, 3, 5, 10, 20, 33)


@pytest.fixture(scope="module")
def approvals() -> np.ndarray:
    return load_records()[1]["approve"].to_numpy()


@pytest.mark.parametrize("banks", BANK_COUNTS)
def test_banks_split_for_every_seed_into_banks_of_the_minimum_size_or_more(approvals: np.ndarray, banks: int):
    for seed in SEEDS:
        shares = label_skewed_split(approvals, banks, DIRICHLET_ALPHA, MIN_BANK_SIZE, seed)
        assert len(shares) == banks
        assert min(len(share) for share in shares) >= MIN_BANK_SIZE, f"seed {seed}"
        assert np.array_equal(np.sort(np.concatenate(shares)), np.arange(len(approvals))), f"seed {seed}"
        again = label_skewed_split(approvals, banks, DIRICHLET_ALPHA, MIN_BANK_SIZE, seed)
        assert all(np.array_equal(first, second) for first, second in zip(shares, again, strict=True))
        rates = [approvals[share].mean() for share in shares]
        if banks >= 5:  # an unskewed split of ~400 applications per bank varies by a few points at most
            assert max(rates) - min(rates) > 0.1, f"seed {seed}: approval rates {rates}"


def test_the_banks_scenario_writes_ten_banks_for_the_seeds_that_used_to_fail(tmp_path: Path):
    for seed in (1, 2):
        data = Banks().prepare(tmp_path / f"seed{seed}", 10, seed)
        assert len(data.sites) == 10
        assert min(site.rows for site in data.sites) >= MIN_BANK_SIZE
        assert sum(site.rows for site in data.sites) == len(load_records()[1])


def test_a_split_that_cannot_give_every_share_its_minimum_is_refused():
    labels = np.array([0, 1] * 10)
    with pytest.raises(ValueError, match="20 rows cannot give 3 shares 7 rows each"):
        label_skewed_split(labels, 3, 1.0, 7, 0)
    shares = label_skewed_split(labels, 4, 1.0, 5, 0)
    assert [len(share) for share in shares] == [5, 5, 5, 5]


@pytest.mark.parametrize(
    ("scenario", "accepted", "refused", "message"),
    [
        ("hospitals", (4,), (1, 3, 5), "can be split over exactly 4 sites (one per hospital)"),
        (
            "banks",
            (2, 33),
            (0, 1, 34),
            f"can be split over 2 to 33 sites (every bank needs at least {MIN_BANK_SIZE} applications)",
        ),
        ("synthetic", (2, 1000), (0, 1), "can be split over at least 2 sites"),
        ("synthetic-iid", (2, 1000), (-1, 1), "can be split over at least 2 sites"),
    ],
)
def test_each_scenario_declares_the_site_counts_it_supports(
    scenario: str, accepted: tuple[int, ...], refused: tuple[int, ...], message: str
):
    for clients in accepted:
        SCENARIOS[scenario].check_clients(clients)
    for clients in refused:
        with pytest.raises(ScenarioError, match=rf"the {scenario} scenario {re.escape(message)}, not {clients}$"):
            SCENARIOS[scenario].check_clients(clients)


def test_prepare_refuses_a_site_count_or_seed_before_writing_anything(tmp_path: Path):
    with pytest.raises(ScenarioError, match="not 3"):
        SCENARIOS["hospitals"].prepare(tmp_path / "hospitals", 3, 0)
    with pytest.raises(ScenarioError, match="seed must be at least 0, not -1"):
        SCENARIOS["synthetic"].prepare(tmp_path / "synthetic", 5, -1)
    assert list(tmp_path.iterdir()) == []
