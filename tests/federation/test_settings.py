"""The tabular app's run config (examples/tabular/pyproject.toml), its settings and the ledger's agree; bad
values are named."""

import subprocess
import sys
import tomllib
from dataclasses import fields
from pathlib import Path

import pytest

from fedledger.coordinator.config import LedgerSettings, app_config
from tabular_app.settings import STRATEGY_NAMES, STRATEGY_PARAMETERS, FederationSettings, SettingsError
from tabular_app.strategies import build_strategy

PROJECT_DIR = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((PROJECT_DIR / "examples" / "tabular" / "pyproject.toml").read_text())


def flat(table: dict, prefix: str = "") -> dict:
    """A TOML table's keys as Flower flattens them: sub-tables joined with dots."""
    flattened = {}
    for key, value in table.items():
        if isinstance(value, dict):
            flattened.update(flat(value, f"{prefix}{key}."))
        else:
            flattened[f"{prefix}{key}"] = value
    return flattened


def test_every_setting_is_in_the_flower_run_config_with_its_default():
    run_config = flat(PYPROJECT["tool"]["flwr"]["app"]["config"])
    app = {
        field.name.replace("_", "-"): getattr(FederationSettings, field.name) for field in fields(FederationSettings)
    }
    ledger = {
        "fedledger." + field.name.replace("_", "-"): getattr(LedgerSettings, field.name)
        for field in fields(LedgerSettings)
    }
    assert run_config == {**app, **ledger}
    assert FederationSettings.from_run_config(run_config) == FederationSettings()
    assert LedgerSettings.from_run_config(run_config) == LedgerSettings()
    assert app_config(run_config) == dict(sorted(app.items()))


def test_the_flower_components_point_at_the_apps():
    components = PYPROJECT["tool"]["flwr"]["app"]["components"]
    assert components == {"serverapp": "tabular_app.server_app:app", "clientapp": "tabular_app.client_app:app"}


def test_the_framework_itself_is_no_flower_app():
    framework = tomllib.loads((PROJECT_DIR / "pyproject.toml").read_text())
    assert "flwr" not in framework["tool"]


def test_run_config_values_are_checked():
    run_config = {"num-server-rounds": 3, "learning-rate": 1, "fedledger.enabled": False}
    settings = FederationSettings.from_run_config(run_config)
    assert (settings.num_server_rounds, settings.learning_rate) == (3, 1.0)
    assert LedgerSettings.from_run_config(run_config) == LedgerSettings(enabled=False)
    with pytest.raises(ValueError, match="unknown run config keys: num-rounds"):
        FederationSettings.from_run_config({"num-rounds": 3})
    with pytest.raises(ValueError, match="'num-server-rounds' must be int, got '3'"):
        FederationSettings.from_run_config({"num-server-rounds": "3"})
    with pytest.raises(ValueError, match=r"'fedledger\.enabled' must be true or false"):
        LedgerSettings.from_run_config({"fedledger.enabled": 1})


def test_an_unknown_ledger_key_is_refused_and_every_other_key_is_the_apps():
    with pytest.raises(SettingsError, match=r"^unknown run config keys: fedledger\.rpc; known: fedledger\.anomaly"):
        LedgerSettings.from_run_config({"fedledger.rpc": "http://127.0.0.1:8545", "rpc": "anything"})
    assert app_config({"fedledger.store": "s", "lr": 0.1, "epochs": 2}) == {"epochs": 2, "lr": 0.1}


def test_rewards_are_whole_tokens_in_base_units():
    assert LedgerSettings(reward_per_round=5).rewards.budget == 5 * 10**18


@pytest.mark.parametrize(
    ("run_config", "message"),
    [
        ({"num-server-rounds": 0}, "run config: 'num-server-rounds' must be at least 1, got 0"),
        ({"num-server-rounds": -1}, "run config: 'num-server-rounds' must be at least 1, got -1"),
        ({"strategy": "NoSuch"}, "run config: unknown strategy 'NoSuch': choose one of FedAvg, FedProx, "),
        ({"fraction-train": 0.0}, r"run config: 'fraction-train' must be in \(0, 1\], got 0.0"),
        ({"fraction-evaluate": 1.5}, r"run config: 'fraction-evaluate' must be in \[0, 1\], got 1.5"),
        ({"trim-beta": 0.5}, r"run config: 'trim-beta' must be in \[0, 0.5\), got 0.5"),
        ({"test-fraction": 1.0}, r"run config: 'test-fraction' must be in \(0, 1\), got 1.0"),
        ({"learning-rate": float("nan")}, "run config: 'learning-rate' must be above 0, got nan"),
        ({"model-seed": -1}, "run config: 'model-seed' must be at least 0, got -1"),
        ({"round-timeout": 0}, r"run config: 'round-timeout' must be above 0 \(seconds\), got 0.0"),
    ],
)
def test_run_config_values_out_of_range_are_refused_naming_the_key(run_config: dict, message: str):
    with pytest.raises(SettingsError, match=f"^{message}"):
        FederationSettings.from_run_config(run_config)


@pytest.mark.parametrize(
    ("run_config", "message"),
    [
        ({"fedledger.reward-rule": "equal"}, "run config: unknown fedledger.reward-rule 'equal': choose one of "),
        ({"fedledger.anomaly-min-updates": 1}, "run config: 'fedledger.anomaly-min-updates' must be at least 2, got 1"),
        ({"fedledger.min-accepted": 0}, "run config: 'fedledger.min-accepted' must be at least 1, got 0"),
        ({"fedledger.connect-timeout": -1}, r"run config: 'fedledger.connect-timeout' must be at least 0 \(seconds\)"),
        ({"fedledger.registry": "0x123"}, "run config: 'fedledger.registry' '0x123' is not an Ethereum address"),
        (
            {"fedledger.resume-run": 3},
            "run config: 'fedledger.resume-run' 3 needs 'fedledger.registry', the registry the run is recorded on$",
        ),
    ],
)
def test_ledger_values_out_of_range_are_refused_naming_the_key(run_config: dict, message: str):
    with pytest.raises(SettingsError, match=f"^{message}"):
        LedgerSettings.from_run_config(run_config)


def test_a_resumed_run_names_its_registry_before_anything_connects_or_deploys():
    with pytest.raises(SettingsError, match=r"'fedledger\.resume-run' 7 needs 'fedledger\.registry'"):
        LedgerSettings(resume_run=7)
    registry = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
    assert LedgerSettings(resume_run=7, registry=registry).resume_run == 7


@pytest.mark.parametrize("name", STRATEGY_NAMES)
def test_each_strategy_name_builds_that_flower_strategy_with_its_settings(name):
    settings = FederationSettings(
        strategy=name,
        min_nodes=3,
        proximal_mu=0.3,
        server_learning_rate=0.2,
        learning_rate=0.04,
        server_momentum=0.5,
        trim_beta=0.1,
        num_malicious_nodes=1,
        num_nodes_to_select=2,
    )
    strategy = build_strategy(settings)
    assert type(strategy).__name__ == name
    assert (strategy.min_train_nodes, strategy.min_available_nodes) == (3, 3)
    for keyword, setting in STRATEGY_PARAMETERS[name].items():
        assert getattr(strategy, keyword) == getattr(settings, setting), keyword


def test_the_command_line_lists_the_strategies_without_loading_flower_or_torch():
    program = (
        "import sys, fedledger.cli; "
        "print('fedledger.simulations.cli' in sys.modules, {'flwr', 'torch'} & set(sys.modules))"
    )
    loaded = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "True set()"


@pytest.mark.parametrize(
    ("run_config", "message"),
    [
        ({"fedledger.dp": "global"}, r"'fedledger\.dp' must be '' \(off\) or one of central, local, got 'global'"),
        ({"fedledger.dp": "local"}, r"'fedledger\.dp' local needs 'fedledger\.dp-epsilon'"),
        (
            {"fedledger.dp": "central", "fedledger.dp-epsilon": 1.0},
            r"'fedledger\.dp' central needs 'fedledger\.reward-rule' examples",
        ),
    ],
)
def test_privacy_settings_no_run_can_honour_are_refused(run_config, message):
    with pytest.raises(SettingsError, match=message):
        LedgerSettings.from_run_config(run_config)


def test_the_privacy_of_a_run_is_calibrated_or_checked_against_its_budget():
    settings = LedgerSettings(dp="central", dp_epsilon=3.0, reward_rule="examples", dp_clip=0.5)
    privacy = settings.privacy(0.5, 10)
    assert (privacy.mode, privacy.epsilon, privacy.clip_norm, privacy.sampling_rate) == ("central", 3.0, 0.5, 0.5)
    assert privacy.epsilon_after(10) <= 3.0
    local = LedgerSettings(dp="local", dp_epsilon=3.0).privacy(0.5, 10)
    assert local.sampling_rate == 1.0  # a site is accounted for every round it trains in
    too_little_noise = LedgerSettings(dp="local", dp_epsilon=3.0, dp_noise_multiplier=0.5)
    with pytest.raises(SettingsError, match=r"noise multiplier 0\.5 spends ε=.* over 10 rounds, above the budget 3\.0"):
        too_little_noise.privacy(1.0, 10)
    assert LedgerSettings().privacy(1.0, 10) is None
