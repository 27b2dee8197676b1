"""The same apps under `flwr run`: the Simulation Engine behind a SuperLink, and the Deployment
Engine with a SuperLink and two SuperNodes on 127.0.0.1, each recording on a real anvil node."""

import json
import re
import time
from pathlib import Path

import pytest

from fedledger.audit import Auditor
from fedledger.chain import Chain, Registry
from fedledger.chain.anvil import AnvilNode, free_port
from fedledger.coordinator.config import LedgerSettings
from fedledger.coordinator.recorder import ROUNDS_FILE
from fedledger.deployment import LedgerLocation
from fedledger.hashing import keccak256
from fedledger.keys import PRIVATE_KEY_ENV, create_keystore
from fedledger.manifest import RoundManifest
from fedledger.sealing import COORDINATOR_KEY_FILE, load_key_file
from fedledger.simulations.deployment import TABULAR_APP_DIR, LocalDeployment, config_text
from fedledger.simulations.scenarios import SCENARIOS
from fedledger.store import ArtifactStore

pytestmark = [pytest.mark.anvil, pytest.mark.deployment]

KEYSTORE_PASSWORD = "site password"


def committed_manifests(registry: Registry, store: ArtifactStore, run_id: int) -> list[RoundManifest]:
    run = registry.run(run_id)
    manifests = []
    for number in range(1, run.committed_rounds + 1):
        committed = registry.committed_round(run_id, number).commitment
        data = store.get(committed.manifest_hash)
        assert keccak256(data) == committed.manifest_hash
        manifests.append(RoundManifest.from_bytes(data))
    return manifests


def test_flwr_run_on_the_simulation_engine(anvil: AnvilNode, tmp_path: Path):
    data = SCENARIOS["hospitals"].prepare(tmp_path / "data", 4, 0)
    coordinator = anvil.dev_accounts()[0]
    port = free_port()
    with LocalDeployment(tmp_path) as flower:
        flower.superlink(port, simulation=True, env={PRIVATE_KEY_ENV: coordinator.key.to_0x_hex()})
        flower.connection("local-sim", port, num_supernodes=4)
        flower.flwr_run(
            "local-sim",
            {
                "data-dir": str(data.directory),
                "fedledger.simulated-participants": 4,
                "num-server-rounds": 2,
                "fedledger.rpc-url": anvil.rpc_url,
                "fedledger.store": str(tmp_path / "store"),
                "fedledger.output-dir": str(tmp_path / "run"),
            },
            timeout=600,
        )
    summary = json.loads((tmp_path / "run" / "federation.json").read_text())
    registry = Registry(Chain.connect(anvil.rpc_url), summary["ledger"]["registry"])
    manifests = committed_manifests(registry, ArtifactStore(tmp_path / "store"), summary["ledger"]["run_id"])
    assert [manifest.round for manifest in manifests] == [1, 2]
    assert all(len(manifest.accepted) == 4 and manifest.reproduction == "verified" for manifest in manifests)
    assert manifests[-1].model_hash == summary["final_model_hash"]


def test_a_stopped_flwr_run_resumes_under_the_same_run_id_with_the_resume_run_setting(anvil: AnvilNode, tmp_path: Path):
    data = SCENARIOS["hospitals"].prepare(tmp_path / "data", 4, 0)
    coordinator = anvil.dev_accounts()[0]
    output_dir = tmp_path / "run"
    config = {
        "data-dir": str(data.directory),
        "fedledger.simulated-participants": 4,
        "num-server-rounds": 3,
        "fedledger.rpc-url": anvil.rpc_url,
        "fedledger.store": str(tmp_path / "store"),
        "fedledger.output-dir": str(output_dir),
    }
    port = free_port()
    with LocalDeployment(tmp_path) as flower:
        flower.superlink(port, simulation=True, env={PRIVATE_KEY_ENV: coordinator.key.to_0x_hex()})
        flower.connection("local-sim", port, num_supernodes=4)
        started = flower.flwr("run", str(TABULAR_APP_DIR), "local-sim", "--run-config", config_text(config))
        (flower_run,) = re.findall(r"started run (\d+)", started)
        wait_for(lambda: (output_dir / ROUNDS_FILE).exists(), "round 1 to be committed", timeout=300)
        flower.flwr("stop", flower_run, "local-sim")
        location = LedgerLocation.load(output_dir)
        flower.flwr_run(
            "local-sim",
            {**config, "fedledger.resume-run": location.run_id, "fedledger.registry": location.registry},
            timeout=600,
        )
    registry = Registry(Chain.connect(anvil.rpc_url), location.registry)
    assert registry.run_count() == 1
    assert registry.run(location.run_id).committed_rounds == 3
    acknowledged = [json.loads(line)["round"] for line in (output_dir / ROUNDS_FILE).read_text().splitlines()]
    assert acknowledged == [1, 2, 3]
    key = load_key_file(output_dir / COORDINATOR_KEY_FILE)
    report = Auditor(registry, ArtifactStore(tmp_path / "store"), key=key).audit([location.run_id])
    assert report.verdict == "pass", [str(finding) for finding in report.problems()]


def wait_for(condition, what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout:.0f} s for {what}")
        time.sleep(0.2)


def test_flwr_run_on_the_deployment_engine_with_two_supernodes(anvil: AnvilNode, tmp_path: Path):
    data = SCENARIOS["hospitals"].prepare(tmp_path / "data", 4, 0)
    chain = Chain.connect(anvil.rpc_url)
    coordinator = anvil.dev_accounts()[0]
    registry, _ = Registry.deploy(chain, chain.add_signer(coordinator))
    registry.set_run_allowance(coordinator.address, LedgerSettings().rewards.budget * 2)
    sites = []
    for index in (0, 1):
        keystore = tmp_path / f"site-{index}" / "keystore.json"
        account = create_keystore(keystore, KEYSTORE_PASSWORD)
        registry.add_participant(account.address, keccak256(f"site {index}".encode()))
        sites.append((account.address, keystore, data.site_path(index)))

    superlink_port = free_port()
    with LocalDeployment(tmp_path) as flower:
        flower.superlink(superlink_port, env={PRIVATE_KEY_ENV: coordinator.key.to_0x_hex()})
        for index, (_, keystore, data_path) in enumerate(sites):
            flower.supernode(
                f"supernode-{index}",
                superlink_port,
                free_port(),
                {"data-path": str(data_path), "schema-path": str(data.schema_path), "keystore": str(keystore)},
                env={"FEDLEDGER_KEYSTORE_PASSWORD": KEYSTORE_PASSWORD},
            )
        flower.connection("deployment", superlink_port)
        flower.flwr_run(
            "deployment",
            {
                "fedledger.rpc-url": anvil.rpc_url,
                "fedledger.registry": registry.address,
                "num-server-rounds": 2,
                "schema-path": str(data.schema_path),
                "fedledger.store": str(tmp_path / "store"),
                "fedledger.output-dir": str(tmp_path / "run"),
            },
            timeout=900,
        )

    manifests = committed_manifests(registry, ArtifactStore(tmp_path / "store"), 1)
    assert [manifest.round for manifest in manifests] == [1, 2]
    addresses = sorted(address for address, _, _ in sites)
    for manifest in manifests:
        assert [entry.participant for entry in manifest.accepted] == addresses
        assert sorted(manifest.metrics["evaluate"]["participants"]) == addresses
        assert manifest.rejected == ()
        assert manifest.reproduction == "verified"
