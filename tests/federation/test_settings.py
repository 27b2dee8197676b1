"""The run config in pyproject.toml and the coordinator's settings agree; bad values are named."""

import tomllib
from dataclasses import fields
from pathlib import Path

import pytest

from coordinator.settings import FederationSettings

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
