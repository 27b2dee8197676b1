"""The ``fedledger`` command line, against the in-process chain and a real anvil node."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner
from web3 import Web3

from fedledger.chain.anvil import AnvilNode, free_port
from fedledger.cli import app
from fedledger.cli.common import fedledger_command
from fedledger.identity import SUPERNODE_PUBLIC_KEY_FILE, create_participant
from fedledger.keys import PRIVATE_KEY_ENV

from helpers import participant_key

runner = CliRunner()


def invoke(*args: str, env: dict[str, str] | None = None):
    return runner.invoke(app, list(args), env=env)


@pytest.fixture
def deployed(anvil: AnvilNode, tmp_path: Path):
    """A registry deployed on anvil by the CLI, its coordinator the second development account;
    returns (deployment file, admin env)."""
    admin, coordinator = anvil.dev_accounts()[:2]
    env = {PRIVATE_KEY_ENV: admin.key.to_0x_hex()}
    deployment = tmp_path / "deployment.json"
    options = ["--rpc-url", anvil.rpc_url, "--coordinator", coordinator.address, "--deployment", str(deployment)]
    result = invoke("chain", "deploy", *options, env=env)
    assert result.exit_code == 0, result.output
    return deployment, env


def test_help_explains_every_command():
    result = invoke("--help")
    assert result.exit_code == 0
    for command in ("contracts", "chain", "participants"):
        assert command in result.output
    for group, commands in {
        "chain": ("deploy", "node", "status", "allowance", "admin"),
        "participants": ("add", "list", "deactivate"),
    }.items():
        output = invoke(group, "--help").output
        assert all(command in output for command in commands)


def test_printed_commands_name_the_fedledger_that_runs_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    executable = tmp_path / ".venv" / "bin" / "fedledger"
    executable.parent.mkdir(parents=True)
    executable.write_text("#!/bin/sh\n")
    executable.chmod(0o755)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", [str(executable), "simulate"])
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    assert fedledger_command() == ".venv/bin/fedledger", "not on PATH: the path from where it ran"
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert fedledger_command() == str(executable), "not on PATH, outside the current directory: its absolute path"
    monkeypatch.setenv("PATH", f"{executable.parent}:/usr/bin:/bin")
    assert fedledger_command() == "fedledger", "the one on PATH: its name"
    monkeypatch.setattr(sys, "argv", ["-m", "simulate"])
    assert fedledger_command() == "fedledger", "run as a module: the installed name"


def test_simulate_without_the_tabular_app_says_how_to_install_it():
    # The app is hidden once the command line has loaded: installed, it also brings `check-data`.
    without_app = (
        "import sys; from fedledger.cli import main; "
        "[sys.modules.pop(name) for name in list(sys.modules) if name.startswith('tabular_app')]; "
        "sys.modules['tabular_app'] = None; main()"
    )
    result = subprocess.run(
        [sys.executable, "-c", without_app, "simulate", "--rounds", "1"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "error: the hospitals and banks task is the example app tabular_app, which is not installed: "
        "pip install -e examples/tabular"
    ]


def test_a_plugin_command_that_cannot_be_loaded_breaks_only_itself(tmp_path: Path):
    # A real installed distribution (its dist-info on sys.path) whose command names a module that is gone.
    dist_info = tmp_path / "stale_plugin-1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: stale-plugin\nVersion: 1.0\n")
    (dist_info / "entry_points.txt").write_text("[fedledger.commands]\nstale = stale_plugin_gone.cli:stale\n")
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}

    def fedledger(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "fedledger.cli", *args], capture_output=True, text=True, env=environment, timeout=120
        )

    listed = fedledger("--help")
    assert listed.returncode == 0, listed.stderr
    assert "stale" in listed.stdout and "audit" in listed.stdout
    audit_help = fedledger("audit", "--help")
    assert audit_help.returncode == 0, audit_help.stderr
    assert "Traceback" not in audit_help.stderr

    used = fedledger("stale", "--some-option", "value")
    assert used.returncode == 1
    assert used.stderr.splitlines() == [
        "error: command stale (from stale-plugin) cannot be loaded: ModuleNotFoundError: No module named "
        "'stale_plugin_gone'; reinstall stale-plugin, or uninstall it to drop the command"
    ]


def test_deploy_without_a_node_is_a_dry_run_on_the_in_process_chain():
    result = invoke("chain", "deploy")
    assert result.exit_code == 0, result.output
    assert "registry     0x" in result.output
    assert "in-process chain, gone when this command exits" in result.output


@pytest.mark.anvil
def test_deploy_writes_the_deployment_file(anvil: AnvilNode, deployed):
    deployment, _ = deployed
    record = json.loads(deployment.read_text())
    assert record["rpc_url"] == anvil.rpc_url
    assert record["chain_id"] == 31337
    assert (record["admin"], record["coordinator"]) == tuple(account.address for account in anvil.dev_accounts()[:2])
    w3 = Web3(Web3.HTTPProvider(anvil.rpc_url))
    assert w3.eth.get_code(record["registry"])


@pytest.mark.anvil
def test_participants_add_list_deactivate(deployed, tmp_path: Path):
    deployment, env = deployed
    address = participant_key(0).address
    metadata = tmp_path / "site.json"
    metadata.write_text('{"site": "hospital A"}')

    added = invoke(
        "participants", "add", address, "--metadata", str(metadata), "--deployment", str(deployment), env=env
    )
    assert added.exit_code == 0, added.output
    assert Web3.keccak(metadata.read_bytes()).to_0x_hex() in added.output

    listed = invoke("participants", "list", "--deployment", str(deployment))
    assert address in listed.output and "active" in listed.output

    removed = invoke("participants", "deactivate", address, "--deployment", str(deployment), env=env)
    assert removed.exit_code == 0, removed.output
    assert "deactivated" in invoke("participants", "list", "--deployment", str(deployment)).output

    again = invoke("participants", "deactivate", address, "--deployment", str(deployment), env=env)
    assert again.exit_code == 1
    assert f"ParticipantNotActive(participant={address})" in again.output


@pytest.mark.anvil
def test_a_non_admin_is_refused_by_the_contract_with_the_named_error(anvil: AnvilNode, deployed):
    deployment, _ = deployed
    outsider = anvil.dev_accounts()[1]
    result = invoke(
        "participants",
        "add",
        participant_key(0).address,
        "--deployment",
        str(deployment),
        env={PRIVATE_KEY_ENV: outsider.key.to_0x_hex()},
    )
    assert result.exit_code == 1
    assert f"AccessControlUnauthorizedAccount(account={outsider.address}" in result.output


@pytest.mark.anvil
def test_writes_without_a_key_say_how_to_give_one(deployed, monkeypatch):
    deployment, _ = deployed
    monkeypatch.delenv(PRIVATE_KEY_ENV, raising=False)
    result = invoke("participants", "add", participant_key(0).address, "--deployment", str(deployment))
    assert result.exit_code == 1
    assert "pass --keystore or set $FEDLEDGER_PRIVATE_KEY" in result.output


@pytest.mark.anvil
def test_status_shows_registry_participants_and_runs(deployed):
    deployment, env = deployed
    invoke("participants", "add", participant_key(0).address, "--deployment", str(deployment), env=env)
    result = invoke("chain", "status", "--deployment", str(deployment))
    assert result.exit_code == 0, result.output
    assert json.loads(deployment.read_text())["registry"] in result.output
    assert "participants 1 active of 1 registered" in result.output


def test_commands_without_a_deployment_say_what_is_missing(tmp_path: Path):
    result = invoke("participants", "list", "--deployment", str(tmp_path / "absent.json"))
    assert result.exit_code == 1
    assert "pass --rpc-url and --registry, or deploy first" in result.output


def test_an_unreachable_node_is_reported(tmp_path: Path):
    url = f"http://127.0.0.1:{free_port()}"
    result = invoke("participants", "list", "--rpc-url", url, "--registry", "0x" + "11" * 20)
    assert result.exit_code == 1
    assert f"no Ethereum JSON-RPC node answers at {url}" in result.output


@pytest.mark.solc
def test_contracts_build_check_confirms_the_shipped_artifacts():
    result = invoke("contracts", "build", "--check")
    assert result.exit_code == 0, result.output
    assert "match a fresh build byte for byte" in result.output


@pytest.mark.anvil
def test_chain_node_serves_and_saves_its_chain_on_ctrl_c(tmp_path: Path):
    port = free_port()
    state_dir = tmp_path / "node"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fedledger.cli",
            "chain",
            "node",
            "--state-dir",
            str(state_dir),
            "--port",
            str(port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "COLUMNS": "200"},
    )
    try:
        w3 = Web3(Web3.HTTPProvider(f"http://127.0.0.1:{port}"))
        deadline = time.monotonic() + 30
        while not w3.is_connected():
            assert time.monotonic() < deadline, "the node did not start"
            assert process.poll() is None, process.stdout.read().decode()
            time.sleep(0.2)
        assert w3.eth.chain_id == 31337
    finally:
        process.send_signal(signal.SIGINT)
        output = process.communicate(timeout=30)[0].decode()
    assert "anvil stopped; chain saved" in output
    assert (state_dir / "state.json").is_file()
    assert (state_dir / "anvil.json").is_file()


@pytest.mark.anvil
def test_a_failed_supernode_registration_says_what_was_done_and_how_to_retry(deployed, tmp_path: Path, monkeypatch):
    deployment, env = deployed
    identity = create_participant(tmp_path / "site", "pw")
    monkeypatch.setenv("FLWR_HOME", str(tmp_path / "no-such-flower-home"))
    public_key = tmp_path / "site" / SUPERNODE_PUBLIC_KEY_FILE
    result = invoke(
        "participants",
        "add",
        identity.address,
        "--deployment",
        str(deployment),
        "--supernode-key",
        str(public_key),
        "--superlink",
        "nowhere",
        env=env,
    )
    assert result.exit_code == 1
    assert "on the chain's allow-list, but its SuperNode key was not registered" in result.output
    assert f"retry with: flwr supernode register {public_key} nowhere" in result.output
    assert identity.address in invoke("participants", "list", "--deployment", str(deployment)).output
