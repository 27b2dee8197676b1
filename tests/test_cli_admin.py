"""The admin's commands: deploying with separate admin and coordinator keys, run allowances, admin transfers."""

import json
from pathlib import Path

import pytest
from eth_account.signers.local import LocalAccount
from typer.testing import CliRunner

from fedledger.chain import Chain, Registry
from fedledger.chain.anvil import AnvilNode
from fedledger.cli import app
from fedledger.cli.admin import utc
from fedledger.hashing import keccak256
from fedledger.keys import KEYSTORE_PASSWORD_ENV, PRIVATE_KEY_ENV, create_keystore
from fedledger.rewards import TOKEN_DECIMALS

runner = CliRunner()
TOKEN = 10**TOKEN_DECIMALS
TRANSFER_DELAY = 600


def invoke(*args: str, key: LocalAccount | None = None, env: dict[str, str] | None = None):
    environment = {PRIVATE_KEY_ENV: key.key.to_0x_hex()} if key is not None else {}
    return runner.invoke(app, list(args), env={**environment, **(env or {})})


def error_line(result) -> str:
    """The one line a refused command prints; fails unless it exited 1 with exactly one line and no traceback."""
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]


class Federation:
    """A registry deployed on anvil by the CLI: admin, coordinator and an outsider are development accounts."""

    def __init__(self, anvil: AnvilNode, tmp_path: Path) -> None:
        self.anvil = anvil
        self.admin, self.coordinator, self.outsider = anvil.dev_accounts()[:3]
        self.deployment = tmp_path / "deployment.json"
        roles = ["--coordinator", self.coordinator.address, "--admin-delay", str(TRANSFER_DELAY)]
        result = self.run("chain", "deploy", "--rpc-url", anvil.rpc_url, *roles, "--allowance", "1000", key=self.admin)
        assert result.exit_code == 0, result.output
        self.registry = Registry(Chain.connect(anvil.rpc_url), json.loads(self.deployment.read_text())["registry"])

    def run(self, *args: str, key: LocalAccount | None = None):
        return invoke(*args, "--deployment", str(self.deployment), key=key)

    def pass_time(self, seconds: int) -> None:
        """Move anvil's clock forward. No block is mined: as on a quiet chain, the latest block stays
        older than the clock, and the next transaction's block is the first to carry the new time."""
        self.registry.chain.w3.provider.make_request("evm_increaseTime", [seconds])


@pytest.fixture
def federation(anvil: AnvilNode, tmp_path: Path) -> Federation:
    return Federation(anvil, tmp_path)


@pytest.mark.anvil
def test_deploy_on_a_node_separates_the_admin_from_the_coordinator(federation: Federation):
    registry = federation.registry
    assert registry.admin() == federation.admin.address
    assert registry.is_coordinator(federation.coordinator.address)
    assert not registry.is_coordinator(federation.admin.address)
    assert registry.admin_transfer_delay() == TRANSFER_DELAY
    assert registry.run_allowance(federation.coordinator.address) == 1000 * TOKEN
    record = json.loads(federation.deployment.read_text())
    assert (record["admin"], record["coordinator"]) == (federation.admin.address, federation.coordinator.address)


@pytest.mark.anvil
def test_deploy_on_a_node_refuses_one_key_for_both_roles_unless_asked(anvil: AnvilNode, tmp_path: Path):
    admin = anvil.dev_accounts()[0]
    deployment = tmp_path / "deployment.json"
    options = ["chain", "deploy", "--rpc-url", anvil.rpc_url, "--deployment", str(deployment)]
    for roles in ([], ["--admin", admin.address, "--coordinator", admin.address.lower()]):
        line = error_line(invoke(*options, *roles, key=admin))
        assert f"refusing to make {admin.address} both admin and coordinator" in line
        assert "--single-key" in line
    assert not deployment.exists()

    result = invoke(*options, "--single-key", key=admin)
    assert result.exit_code == 0, result.output
    record = json.loads(deployment.read_text())
    assert record["admin"] == record["coordinator"] == admin.address
    registry = Registry(Chain.connect(anvil.rpc_url), record["registry"])
    assert registry.admin_transfer_delay() == 86_400


@pytest.mark.anvil
def test_deploy_refuses_an_allowance_it_cannot_grant(anvil: AnvilNode, tmp_path: Path):
    deployer, cold_admin, coordinator = anvil.dev_accounts()[:3]
    deployment = tmp_path / "deployment.json"
    roles = ["--admin", cold_admin.address, "--coordinator", coordinator.address]
    options = ["--rpc-url", anvil.rpc_url, "--deployment", str(deployment), *roles, "--allowance", "10"]
    result = invoke("chain", "deploy", *options, key=deployer)
    assert "--allowance is granted by the admin" in error_line(result)
    assert not deployment.exists()


@pytest.mark.anvil
def test_deploy_with_a_wrong_keystore_password_fails_in_one_line_on_a_node_and_on_a_dry_run(
    anvil: AnvilNode, tmp_path: Path
):
    keystore = tmp_path / "admin.json"
    create_keystore(keystore, "right password")
    wrong = {KEYSTORE_PASSWORD_ENV: "wrong password"}
    for node in ([], ["--rpc-url", anvil.rpc_url]):
        result = invoke("chain", "deploy", *node, "--keystore", str(keystore), "--single-key", env=wrong)
        assert error_line(result) == f"error: wrong password for keystore {keystore}"


def test_a_dry_run_deploys_from_the_given_keystore(tmp_path: Path):
    keystore = tmp_path / "admin.json"
    account = create_keystore(keystore, "right password")
    result = invoke("chain", "deploy", "--keystore", str(keystore), env={KEYSTORE_PASSWORD_ENV: "right password"})
    assert result.exit_code == 0, result.output
    assert f"admin        {account.address} (transfer delay 86,400 s)" in result.output
    assert "on a node, one key as admin and coordinator is refused" in result.output


@pytest.mark.anvil
def test_the_admin_sets_and_anyone_reads_a_run_allowance(federation: Federation):
    coordinator = federation.coordinator.address
    result = federation.run("chain", "allowance", coordinator, "250", key=federation.admin)
    assert result.exit_code == 0, result.output
    assert f"run allowance of {coordinator}: 1,000 -> 250 tokens" in result.output
    assert federation.registry.run_allowance(coordinator) == 250 * TOKEN

    shown = federation.run("chain", "allowance", coordinator)
    assert f"run allowance of {coordinator}: 250 tokens" in shown.output

    granted = federation.run("chain", "allowance", federation.outsider.address, "5", key=federation.admin)
    assert "does not hold the coordinator role" in granted.output


@pytest.mark.anvil
def test_only_the_admin_sets_a_run_allowance(federation: Federation):
    coordinator = federation.coordinator
    result = federation.run("chain", "allowance", coordinator.address, "1000000", key=coordinator)
    line = error_line(result)
    assert f"only the admin of registry {federation.registry.address} ({federation.admin.address})" in line
    assert federation.registry.run_allowance(coordinator.address) == 1000 * TOKEN
    assert "is not an Ethereum address" in error_line(federation.run("chain", "allowance", "0x123", "1"))


@pytest.mark.anvil
def test_the_admin_sets_and_anyone_reads_the_privacy_limit(federation: Federation):
    assert "privacy limit: none" in federation.run("chain", "privacy-limit").output
    refused = federation.run("chain", "privacy-limit", "8", "1e-5", key=federation.coordinator)
    assert "only the admin of registry" in error_line(refused)
    result = federation.run("chain", "privacy-limit", "8", "1e-5", key=federation.admin)
    assert result.exit_code == 0, result.output
    assert "privacy limit: none -> ε=8, δ=1e-05" in result.output
    limit = federation.registry.privacy_limit()
    assert (limit.epsilon, limit.delta) == (8_000_000, 10_000_000_000_000)
    assert "privacy limit: ε=8, δ=1e-05" in federation.run("chain", "privacy-limit").output
    assert "give both EPSILON and DELTA" in error_line(
        federation.run("chain", "privacy-limit", "3", key=federation.admin)
    )
    removed = federation.run("chain", "privacy-limit", "0", "0", key=federation.admin)
    assert "-> none" in removed.output


@pytest.mark.anvil
def test_the_admin_role_is_handed_over_in_two_steps(federation: Federation):
    new_admin = federation.outsider
    started = federation.run("chain", "admin", "transfer", new_admin.address, key=federation.admin)
    assert started.exit_code == 0, started.output
    assert f"admin transfer to {new_admin.address} started" in started.output
    assert "under way" in federation.run("chain", "status").output

    pending = federation.registry.pending_admin()
    early = federation.run("chain", "admin", "accept", key=new_admin)
    assert error_line(early) == (
        f"error: the admin transfer to {new_admin.address} can be accepted after {utc(pending.accept_after)} by "
        f"the chain's clock, not yet: the registry refused it "
        f"(AccessControlEnforcedDefaultAdminDelay(schedule={pending.accept_after}))"
    )
    stranger = federation.run("chain", "admin", "accept", key=federation.coordinator)
    assert f"is to {new_admin.address}, not to {federation.coordinator.address}" in error_line(stranger)

    federation.pass_time(TRANSFER_DELAY + 1)
    latest_block = federation.registry.chain.w3.eth.get_block("latest")
    assert latest_block["timestamp"] <= pending.accept_after  # the node has mined nothing since the transfer
    accepted = federation.run("chain", "admin", "accept", key=new_admin)
    assert accepted.exit_code == 0, accepted.output
    assert federation.registry.admin() == new_admin.address
    assert json.loads(federation.deployment.read_text())["admin"] == new_admin.address
    old_admin = federation.run("chain", "allowance", federation.coordinator.address, "1", key=federation.admin)
    assert "only the admin of registry" in error_line(old_admin)


@pytest.mark.anvil
def test_the_admin_cancels_a_transfer(federation: Federation):
    new_admin = federation.outsider
    assert "only the admin" in error_line(
        federation.run("chain", "admin", "transfer", new_admin.address, key=new_admin)
    )
    federation.run("chain", "admin", "transfer", new_admin.address, key=federation.admin)
    cancelled = federation.run("chain", "admin", "cancel", key=federation.admin)
    assert f"admin transfer to {new_admin.address} cancelled" in cancelled.output
    federation.pass_time(TRANSFER_DELAY + 1)
    line = error_line(federation.run("chain", "admin", "accept", key=new_admin))
    assert "no admin transfer is under way" in line
    assert federation.registry.admin() == federation.admin.address


@pytest.mark.anvil
def test_status_shows_the_admin_and_each_run_against_its_plan(federation: Federation):
    chain = federation.registry.chain
    coordinator = federation.registry.as_sender(chain.add_signer(federation.coordinator))
    coordinator.start_run(keccak256(b"config"), keccak256(b"model"), 100 * TOKEN, 4)
    result = federation.run("chain", "status")
    assert result.exit_code == 0, result.output
    assert f"admin      {federation.admin.address} (transfer delay {TRANSFER_DELAY} s)" in result.output
    assert "0 of 4" in result.output and "400" in result.output
