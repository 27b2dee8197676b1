"""The run config in pyproject.toml and the coordinator's settings agree; bad values are named."""

import tomllib
from dataclasses import fields
from pathlib import Path

import pytest

from coordinator.settings import FederationSettings, SettingsError

PYPROJECT = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())


def test_every_setting_is_in_the_flower_run_config_with_its_default():
    run_config = PYPROJECT["tool"]["flwr"]["app"]["config"]
    expected = {
        field.name.replace("_", "-"): getattr(FederationSettings, field.name) for field in fields(FederationSettings)
    }
    assert run_config == expected
    assert FederationSettings.from_run_config(run_config) == FederationSettings()


def test_the_flower_components_point_at_the_apps():
    components = PYPROJECT["tool"]["flwr"]["app"]["components"]
    assert components == {"serverapp": "coordinator.app:app", "clientapp": "client.app:app"}


def test_run_config_values_are_checked():
    settings = FederationSettings.from_run_config({"num-server-rounds": 3, "learning-rate": 1, "ledger": False})
    assert (settings.num_server_rounds, settings.learning_rate, settings.ledger) == (3, 1.0, False)
    with pytest.raises(ValueError, match="unknown run config keys: num-rounds"):
        FederationSettings.from_run_config({"num-rounds": 3})
    with pytest.raises(ValueError, match="'num-server-rounds' must be int, got '3'"):
        FederationSettings.from_run_config({"num-server-rounds": "3"})
    with pytest.raises(ValueError, match="'ledger' must be true or false"):
        FederationSettings.from_run_config({"ledger": 1})


def test_rewards_are_whole_tokens_in_base_units():
    assert FederationSettings(reward_per_round=5).rewards.budget == 5 * 10**18


@pytest.mark.parametrize(
    ("run_config", "message"),
    [
        ({"num-server-rounds": 0}, "run config: 'num-server-rounds' must be at least 1, got 0"),
        ({"num-server-rounds": -1}, "run config: 'num-server-rounds' must be at least 1, got -1"),
        ({"strategy": "NoSuch"}, "run config: unknown strategy 'NoSuch': choose one of FedAvg, FedProx, "),
        ({"reward-rule": "equal"}, "run config: unknown reward-rule 'equal': choose one of "),
        ({"fraction-train": 0.0}, r"run config: 'fraction-train' must be in \(0, 1\], got 0.0"),
        ({"fraction-evaluate": 1.5}, r"run config: 'fraction-evaluate' must be in \[0, 1\], got 1.5"),
        ({"trim-beta": 0.5}, r"run config: 'trim-beta' must be in \[0, 0.5\), got 0.5"),
        ({"test-fraction": 1.0}, r"run config: 'test-fraction' must be in \(0, 1\), got 1.0"),
        ({"learning-rate": float("nan")}, "run config: 'learning-rate' must be above 0, got nan"),
        ({"model-seed": -1}, "run config: 'model-seed' must be at least 0, got -1"),
        ({"round-timeout": 0}, r"run config: 'round-timeout' must be above 0 \(seconds\), got 0.0"),
        ({"anomaly-min-updates": 1}, "run config: 'anomaly-min-updates' must be at least 2, got 1"),
        ({"registry": "0x123"}, "run config: 'registry' '0x123' is not an Ethereum address"),
    ],
)
def test_run_config_values_out_of_range_are_refused_naming_the_key(run_config: dict, message: str):
    with pytest.raises(SettingsError, match=f"^{message}"):
        FederationSettings.from_run_config(run_config)
