"""The example apps run for two rounds and end with a passing audit: through `fedledger simulate --app`
(each in its own process, as two apps with one package name cannot share one), and through `flwr run`
on the Simulation Engine behind a SuperLink."""

import json
import os
import shutil
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from fedledger.chain import Chain, Registry
from fedledger.chain.anvil import free_port
from fedledger.deployment import LedgerLocation
from fedledger.keys import PRIVATE_KEY_ENV, simulated_participant
from fedledger.manifest import RoundManifest
from fedledger.runconfig import RunConfiguration
from fedledger.sealing import COORDINATOR_KEY_FILE
from fedledger.simulations.apps import FlowerApp
from fedledger.simulations.deployment import LocalDeployment, config_text
from fedledger.store import ArtifactStore

from example_apps import LOGREG, copy_app, quickstart_with_the_diff

pytestmark = pytest.mark.simulation

FEDLEDGER = str(Path(sys.executable).parent / "fedledger")


def fedledger(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 600) -> str:
    """Run the `fedledger` command; return its output, failing the test if it exits non-zero."""
    result = subprocess.run(
        [FEDLEDGER, *args],
        cwd=cwd,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, f"fedledger {' '.join(args)}: {result.returncode}\n{result.stdout[-6000:]}"
    return result.stdout


class Record:
    """What a run left in its output directory: the registry on its saved chain, the store, the run."""

    def __init__(self, output_dir: Path) -> None:
        self.location = LedgerLocation.load(output_dir)
        assert self.location.saved_chain is not None
        self.registry = Registry(Chain.restore(Path(self.location.saved_chain)), self.location.registry)
        self.store = ArtifactStore(self.location.store)
        run = self.registry.run(self.location.run_id)
        self.configuration = RunConfiguration.from_bytes(self.store.get(run.config_hash))
        self.manifests = [
            RoundManifest.from_bytes(
                self.store.get(self.registry.committed_round(run.run_id, number).commitment.manifest_hash)
            )
            for number in range(1, run.committed_rounds + 1)
        ]


def test_the_quickstart_with_the_documented_diff_runs_two_rounds_with_a_passing_audit(tmp_path: Path):
    app = quickstart_with_the_diff(tmp_path / "app")
    output = fedledger(
        "simulate", "--app", str(app), "--clients", "2", "--rounds", "2", "--out", str(tmp_path / "run"), cwd=tmp_path
    )
    (hint,) = [line for line in output.splitlines() if line.startswith("audit it again  ")]
    command, _, arguments = hint.removeprefix("audit it again  ").partition(" audit ")
    assert arguments == f"--simulation {tmp_path / 'run'} --report {tmp_path / 'run' / 'audit.html'}"
    runs = shutil.which(command) if command == "fedledger" else tmp_path / command
    assert runs is not None and Path(runs).resolve() == Path(FEDLEDGER).resolve(), command

    record = Record(tmp_path / "run")
    assert [manifest.round for manifest in record.manifests] == [1, 2]
    for manifest in record.manifests:
        assert len(manifest.accepted) == 2
        assert manifest.reproduction == "verified"
    assert record.configuration.planned_rounds == 2
    assert record.configuration.strategy["name"] == "FedAvg"
    recorded_app = record.configuration.details["app"]
    assert recorded_app["fab_hash"] == FlowerApp.load(app).fab_hash
    assert recorded_app["config"]["lr"] == 0.05
    assert not any(key.startswith("fedledger.") for key in recorded_app["config"])


def test_the_logreg_strategy_is_re_derived_by_the_coordinator_and_by_an_auditor_who_installs_the_app(
    tmp_path: Path,
):
    run = tmp_path / "run"
    fedledger("simulate", "--app", str(LOGREG), "--clients", "3", "--rounds", "2", "--out", str(run), cwd=tmp_path)

    record = Record(run)
    assert record.configuration.strategy["name"] == "logreg.strategy.ClippedFedAvg"
    assert record.configuration.strategy["aggregation"] == "clipped-fedavg"
    assert record.configuration.strategy["params"]["clip_norm"] == 0.5
    assert [manifest.round for manifest in record.manifests] == [1, 2]
    for manifest in record.manifests:
        assert len(manifest.accepted) == 3
        assert manifest.reproduction == "verified"

    # Another process, without the app: the aggregation cannot be found, and the audit says so.
    installed_here = [
        f"{point.name} = {point.value}"
        for point in entry_points(group="fedledger.aggregations")
        if point.name == "clipped-fedavg"
    ]
    assert not installed_here, (
        f"this step needs an environment without the logreg app, but its aggregation is installed here "
        f"({', '.join(installed_here)}): pip uninstall logreg"
    )
    result = subprocess.run(
        [FEDLEDGER, "audit", "--simulation", str(run), "--json"], cwd=tmp_path, capture_output=True, text=True
    )
    assert result.returncode == 1, result.stdout
    report = json.loads(result.stdout)
    assert report["verdict"] == "fail"
    assert "clipped-fedavg" in result.stdout

    # The auditor installs the app's package: the entry point names the aggregation, and the audit re-runs it.
    site = tmp_path / "site-packages"
    source = copy_app(LOGREG, tmp_path / "logreg-source")
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index"]
    subprocess.run([*pip, "--target", str(site), str(source)], check=True, capture_output=True)
    installed = {"PYTHONPATH": str(site)}
    report = json.loads(fedledger("audit", "--simulation", str(run), "--json", cwd=tmp_path, env=installed))
    assert report["verdict"] == "pass"

    # Each site verifies its inclusion and claims its rewards with its (simulated) key.
    site_zero = simulated_participant(0, 0)
    verified = fedledger("client", "verify", "--address", site_zero.address, "--simulation", str(run), cwd=tmp_path)
    assert verified.count("yes (proof verified on-chain)") == 2
    claimed = fedledger(
        "client", "claim", "--simulation", str(run), cwd=tmp_path, env={PRIVATE_KEY_ENV: site_zero.key.to_0x_hex()}
    )
    assert "2 rewards claimed" in claimed
    report = json.loads(fedledger("audit", "--simulation", str(run), "--json", cwd=tmp_path, env=installed))
    assert report["verdict"] == "pass"


@pytest.mark.deployment
def test_flwr_run_on_the_simulation_engine_records_the_digits_app_and_its_record_audits(tmp_path: Path):
    app = quickstart_with_the_diff(tmp_path / "digits")
    project = app / "pyproject.toml"
    declared = 'fedledger.output-dir = ".fedledger/run"\nfedledger.store = ".fedledger/store"\n'
    project.write_text(project.read_text() + declared)  # what an app declares to take them from --run-config
    port = free_port()
    with LocalDeployment(tmp_path) as flower:
        flower.superlink(port, simulation=True)
        flower.connection("local-sim", port, num_supernodes=2)
        flower.flwr(
            "run",
            str(app),
            "local-sim",
            "--stream",
            "--run-config",
            config_text(
                {
                    "num-server-rounds": 2,
                    "fedledger.output-dir": str(tmp_path / "run"),
                    "fedledger.store": str(tmp_path / "store"),
                }
            ),
            timeout=600,
        )

    record = Record(tmp_path / "run")
    assert [manifest.reproduction for manifest in record.manifests] == ["verified", "verified"]
    assert record.configuration.details["app"]["fab_hash"] == FlowerApp.load(app).fab_hash
    fedledger(
        "audit",
        "--chain-file",
        str(tmp_path / "run" / "chain.jsonl"),
        "--registry",
        record.location.registry,
        "--store",
        str(tmp_path / "store"),
        "--key",
        str(tmp_path / "run" / COORDINATOR_KEY_FILE),
        cwd=tmp_path,
    )
