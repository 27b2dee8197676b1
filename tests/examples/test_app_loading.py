"""The examples as Flower apps on disk, the documented diff, and what `fedledger simulate --app` refuses
before anything starts. No simulation runs here."""

import ast
import hashlib
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fedledger.cli import app as cli
from fedledger.simulations.apps import AppError, AppSimulation, FlowerApp

from example_apps import (
    DIFF,
    DIGITS,
    EXAMPLES,
    LOGREG,
    QUICKSTART,
    TABULAR,
    app_files,
    copy_app,
    quickstart_with_the_diff,
)

runner = CliRunner()


def changed_lines(diff: str) -> list[str]:
    return [line for line in diff.splitlines() if line[:1] in "+-" and not line.startswith(("+++ ", "--- "))]


def test_the_documented_diff_changes_at_most_15_lines_and_turns_the_quickstart_into_the_digits_example(
    tmp_path: Path,
):
    diff = DIFF.read_text()
    changed = changed_lines(diff)
    assert len(changed) <= 15, changed
    assert len(changed) == 6
    assert "+app = ClientApp(mods=[ledger_mod])" in changed
    assert "+    strategy = Ledger.from_context(context).wrap(strategy)" in changed

    patched = quickstart_with_the_diff(tmp_path / "app")
    assert app_files(patched) == app_files(DIGITS)
    assert app_files(QUICKSTART) != app_files(DIGITS)


def test_the_docs_show_the_diff_that_is_shipped():
    page = (EXAMPLES.parent / "docs" / "add-fedledger.md").read_text()
    shown = page.split("```diff\n", 1)[1].split("```", 1)[0]
    assert shown == DIFF.read_text()
    assert f"## The diff: {len(changed_lines(shown))} changed lines" in page


def test_the_quickstart_is_plain_flower():
    for path in QUICKSTART.rglob("*.py"):
        assert "fedledger" not in path.read_text(), path
    assert "fedledger" not in (QUICKSTART / "pyproject.toml").read_text().split("[tool.flwr.app]")[0]


def imported_modules(directory: Path) -> set[str]:
    modules = set()
    for path in directory.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                modules |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                modules.add(node.module.split(".")[0])
    return modules


def test_the_logreg_example_imports_no_torch_and_its_aggregation_no_flower():
    assert "torch" not in imported_modules(LOGREG)
    aggregation = ast.parse((LOGREG / "logreg" / "aggregation.py").read_text())
    imported = {
        node.module.split(".")[0] for node in ast.walk(aggregation) if isinstance(node, ast.ImportFrom) and node.module
    }
    assert imported <= {"collections", "typing", "numpy", "fedledger"}, imported


#: What an example may import from fedledger: the public API, module by module.
PUBLIC_API = {
    "fedledger.client": {"ledger_mod"},
    "fedledger.coordinator": {"Ledger", "SettingsError", "run_config_value"},
    "fedledger.aggregation": {"register_aggregation", "Aggregator", "WeightedUpdate", "Arrays"},
}


def fedledger_imports(directory: Path) -> set[tuple[str, str]]:
    """Every ``(module, name)`` that the Python files under ``directory`` import from fedledger."""
    imported = set()
    for path in directory.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {(alias.name, "") for alias in node.names if alias.name.split(".")[0] == "fedledger"}
            elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "fedledger":
                imported |= {(node.module, alias.name) for alias in node.names}
    return imported


@pytest.mark.parametrize("example", [DIGITS, LOGREG, TABULAR], ids=lambda path: path.name)
def test_every_example_imports_only_fedledgers_public_api(example: Path):
    imported = fedledger_imports(example)
    assert imported, example
    outside = {(module, name) for module, name in imported if name not in PUBLIC_API.get(module, set())}
    assert not outside, f"{example.name} imports fedledger internals: {sorted(outside)}"


def test_the_public_api_the_examples_use_is_exported():
    import importlib

    for module, names in PUBLIC_API.items():
        exported = importlib.import_module(module)
        for name in names:
            assert getattr(exported, name) is not None, (module, name)
    from fedledger.coordinator import SettingsError

    assert "SettingsError" in importlib.import_module("fedledger.coordinator").__all__
    assert issubclass(SettingsError, ValueError)


@pytest.mark.parametrize("example", [QUICKSTART, DIGITS, LOGREG, TABULAR], ids=lambda path: path.name)
def test_a_run_recorded_inside_an_example_does_not_change_its_fab_hash(example: Path, tmp_path: Path):
    app = copy_app(example, tmp_path / example.name)
    before = FlowerApp.load(app).fab_hash
    record = app / ".fedledger" / "run"
    record.mkdir(parents=True)
    (record / "ledger.json").write_text('{"registry": "0x0"}')
    (record / "chain.jsonl").write_text("{}\n")
    assert FlowerApp.load(app).fab_hash == before


def test_the_tabular_app_without_schema_or_data_says_what_to_set():
    from fedledger.coordinator import SettingsError
    from tabular_app.settings import FederationSettings

    with pytest.raises(
        SettingsError, match=r"set 'schema-path'.*'data-dir'.*fedledger\.simulations\.prepare hospitals"
    ):
        _ = FederationSettings().schema
    assert FederationSettings(data_dir="/data/h").schema == "/data/h/schema.json"
    assert FederationSettings(schema_path="/s.json", data_dir="/data/h").schema == "/s.json"


def test_an_app_is_read_from_its_pyproject_and_hashed_as_flwr_build_hashes_it(tmp_path: Path):
    app = FlowerApp.load(DIGITS)
    assert app.name == "digitscnn"
    assert app.fab_id == "fedledger/digitscnn"
    assert app.fab_version == "1.0.0"
    assert app.server_app == "digitscnn.server_app:app"
    assert app.client_app == "digitscnn.client_app:app"
    assert app.config["num-server-rounds"] == 3
    assert app.config["lr"] == 0.05

    flwr = Path(sys.executable).parent / "flwr"
    subprocess.run([str(flwr), "build", "--app", str(DIGITS)], cwd=tmp_path, check=True, capture_output=True)
    (built,) = tmp_path.glob("*.fab")
    assert app.fab_hash == hashlib.sha256(built.read_bytes()).hexdigest()
    assert app.fab_hash != FlowerApp.load(QUICKSTART).fab_hash


def test_dotted_config_keys_are_flattened_as_flower_flattens_them(tmp_path: Path):
    copy_app(LOGREG, tmp_path / "app")
    project = tmp_path / "app" / "pyproject.toml"
    project.write_text(project.read_text() + 'fedledger.reward-per-round = 50\nfedledger.registry = ""\n')
    app = FlowerApp.load(tmp_path / "app")
    assert app.config["fedledger.reward-per-round"] == 50
    assert app.config["clip-norm"] == 0.5


def test_a_directory_that_is_not_a_flower_app_is_refused(tmp_path: Path):
    with pytest.raises(AppError, match=r"holds no pyproject\.toml"):
        FlowerApp.load(tmp_path)
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\nversion = "1.0.0"\n')
    with pytest.raises(AppError, match="not a Flower app's project file"):
        FlowerApp.load(tmp_path)
    (tmp_path / "pyproject.toml").write_text("[project\n")
    with pytest.raises(AppError, match="cannot be read as TOML"):
        FlowerApp.load(tmp_path)


def test_the_run_config_splits_into_the_apps_keys_and_the_ledgers():
    app_keys, ledger = AppSimulation.parse_run_config("lr=0.2 local-epochs=3 fedledger.reward-rule='examples'")
    assert app_keys == {"lr": 0.2, "local-epochs": 3}
    assert ledger == {"fedledger.reward-rule": "examples"}
    assert AppSimulation.parse_run_config("") == ({}, {})
    with pytest.raises(AppError, match="--run-config"):
        AppSimulation.parse_run_config("lr=[1,")


def test_the_serverapp_gets_the_apps_config_with_the_overrides_and_the_ledger_settings(tmp_path: Path):
    simulation = AppSimulation(
        app=FlowerApp.load(LOGREG),
        output_dir=tmp_path / "run",
        clients=3,
        rounds=2,
        seed=7,
        overrides={"lr": 0.2},
        ledger={"fedledger.reward-per-round": 50},
    )
    assert simulation.override_config() == {"lr": 0.2, "num-server-rounds": 2}
    config = simulation.server_run_config()
    assert config["lr"] == 0.2
    assert config["num-server-rounds"] == 2
    assert config["clip-norm"] == 0.5
    assert config["fedledger.output-dir"] == str((tmp_path / "run").resolve())
    assert config["fedledger.store"] == str((tmp_path / "run" / "store").resolve())
    assert config["fedledger.key-seed"] == 7
    assert config["fedledger.simulated-participants"] == 3
    assert config["fedledger.reward-per-round"] == 50
    assert "fedledger.rpc-url" not in config


def test_settings_the_app_cannot_take_are_refused(tmp_path: Path):
    app = FlowerApp.load(LOGREG)
    with pytest.raises(AppError, match="declares no 'batch-size'"):
        AppSimulation(app=app, output_dir=tmp_path, overrides={"batch-size": 8})
    with pytest.raises(AppError, match="at least one site"):
        AppSimulation(app=app, output_dir=tmp_path, clients=0)
    (tmp_path / "bare").mkdir()
    (tmp_path / "bare" / "pyproject.toml").write_text(
        (LOGREG / "pyproject.toml").read_text().replace("num-server-rounds = 3\n", "")
    )
    with pytest.raises(AppError, match="declares no 'num-server-rounds'"):
        AppSimulation(app=FlowerApp.load(tmp_path / "bare"), output_dir=tmp_path, rounds=2)


def refused(*args: str, exit_code: int = 1) -> str:
    result = runner.invoke(cli, list(args))
    assert result.exit_code == exit_code, result.output
    assert "Traceback" not in result.output
    return result.output


def test_simulate_app_refuses_the_scenario_options_and_a_run_config_without_an_app(tmp_path: Path):
    output = refused("simulate", "--app", str(LOGREG), "--strategy", "FedMedian", "--attack", "sign-flip")
    assert output.startswith("error: --app runs the app's own strategy and settings: drop --strategy, --attack")
    output = refused("simulate", "--run-config", "lr=0.1", "--out", str(tmp_path / "run"))
    assert output == "error: --run-config sets a Flower app's config: it needs --app PATH\n"
    output = refused("simulate", "--app", str(LOGREG), "--run-config", "batch-size=8", "--out", str(tmp_path / "run"))
    assert "logreg declares no 'batch-size'" in output
    assert not (tmp_path / "run").exists()
    assert "does not exist" in refused("simulate", "--app", str(tmp_path / "missing"), exit_code=2)


def test_simulate_app_refuses_fewer_sites_than_the_ledger_needs_before_anything_starts(tmp_path: Path):
    output = refused("simulate", "--app", str(LOGREG), "--clients", "1", "--out", str(tmp_path / "run"))
    assert output.count("\n") == 1
    assert output.startswith("error: 1 site cannot commit a round: the ledger needs fedledger.min-accepted = 2")
    output = refused(
        "simulate",
        "--app",
        str(LOGREG),
        "--clients",
        "2",
        "--run-config",
        "fedledger.min-accepted=3",
        "--out",
        str(tmp_path / "run"),
    )
    assert output.startswith("error: 2 sites cannot commit a round: the ledger needs fedledger.min-accepted = 3")
    assert not (tmp_path / "run").exists()
    simulation = AppSimulation(
        app=FlowerApp.load(LOGREG), output_dir=tmp_path / "run", clients=1, ledger={"fedledger.min-accepted": 1}
    )
    assert simulation.clients == 1


def test_simulate_app_refuses_an_output_directory_inside_the_app(tmp_path: Path):
    app = copy_app(LOGREG, tmp_path / "logreg")
    output = refused("simulate", "--app", str(app), "--out", str(app / ".fedledger" / "run"))
    assert output.count("\n") == 1
    assert output.startswith(f"error: the output directory {app / '.fedledger' / 'run'} is inside the app's directory")
    assert not (app / ".fedledger").exists()


def test_the_tabular_readme_shows_the_commands_prepare_prints(tmp_path: Path):
    printed = subprocess.run(
        [sys.executable, "-m", "fedledger.simulations.prepare", "hospitals", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "(num-supernodes must be 4):" in printed
    commands = [line.strip() for line in printed.splitlines() if line.startswith("  ")]
    assert [command.split(" --run-config")[0] for command in commands] == [
        "flwr run examples/tabular local --stream",
        "fedledger simulate --app examples/tabular --clients 4 --seed 0",
    ]
    readme = (TABULAR / "README.md").read_text().replace(" \\\n    ", " ")
    for command in commands:
        assert command.replace(str(tmp_path), "$PWD/.fedledger/data") in readme, command
