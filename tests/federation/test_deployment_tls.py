"""A federation as it is deployed: anvil, a SuperLink with TLS and SuperNode authentication, and
SuperNodes with their own data, keystores and authentication keys, run with `flwr run`, then audited."""

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from typer.testing import CliRunner

from fedledger.certificates import create_certificates
from fedledger.chain import Chain, Registry
from fedledger.chain.anvil import AnvilNode, free_port
from fedledger.cli import app
from fedledger.hashing import keccak256
from fedledger.identity import SUPERNODE_PUBLIC_KEY_FILE, create_participant
from fedledger.keys import PRIVATE_KEY_ENV
from fedledger.manifest import RoundManifest
from fedledger.sealing import generate_key_file, public_key_hex
from fedledger.simulations.deployment import LocalDeployment
from fedledger.simulations.scenarios import SCENARIOS
from fedledger.store import ArtifactStore

pytestmark = [pytest.mark.anvil, pytest.mark.deployment]

PASSWORD = "site password"
CONNECTION = "federation"


def pem_public_key(path: Path) -> str:
    """An OpenSSH public key as the PEM text the SuperLink logs it in."""
    key = serialization.load_ssh_public_key(path.read_bytes())
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def test_a_tls_deployment_with_node_authentication_records_and_passes_the_audit(
    anvil: AnvilNode, tmp_path: Path, monkeypatch
):
    data = SCENARIOS["hospitals"].prepare(tmp_path / "data", 4, 0)
    certificates = create_certificates(tmp_path / "certs", ["127.0.0.1", "localhost"])
    sites = {name: tmp_path / name for name in ("cleveland", "hungary", "off-chain", "unknown")}
    identities = {name: create_participant(directory, PASSWORD) for name, directory in sites.items()}

    chain = Chain.connect(anvil.rpc_url)
    coordinator = anvil.dev_accounts()[0]
    registry, _ = Registry.deploy(chain, chain.add_signer(coordinator))
    port = free_port()
    with LocalDeployment(tmp_path) as deployment:
        deployment.superlink(
            port, tls=certificates, node_authentication=True, env={PRIVATE_KEY_ENV: coordinator.key.to_0x_hex()}
        )
        deployment.connection(CONNECTION, port, root_certificates=certificates.ca_certificate)
        monkeypatch.setenv("FLWR_HOME", str(deployment.flwr_home))
        monkeypatch.setenv("PATH", deployment.environment()["PATH"])
        monkeypatch.setenv(PRIVATE_KEY_ENV, coordinator.key.to_0x_hex())
        for name in ("cleveland", "hungary"):
            result = CliRunner().invoke(
                app,
                [
                    "participants",
                    "add",
                    identities[name].address,
                    "--metadata-hash",
                    "0x" + keccak256(name.encode()).hex(),
                    "--supernode-key",
                    str(sites[name] / SUPERNODE_PUBLIC_KEY_FILE),
                    "--superlink",
                    CONNECTION,
                    "--rpc-url",
                    anvil.rpc_url,
                    "--registry",
                    registry.address,
                ],
            )
            assert result.exit_code == 0, result.output
            assert "registered its SuperNode key" in result.output
        allowance = CliRunner().invoke(
            app,
            [
                "chain",
                "allowance",
                coordinator.address,
                "200",
                "--rpc-url",
                anvil.rpc_url,
                "--registry",
                registry.address,
            ],
        )
        assert allowance.exit_code == 0, allowance.output  # 2 rounds of the default 100 tokens
        deployment.flwr("supernode", "register", str(sites["off-chain"] / SUPERNODE_PUBLIC_KEY_FILE), CONNECTION)

        for index, name in enumerate(("cleveland", "hungary", "off-chain", "unknown")):
            deployment.site(name, port, sites[name], data.site_path(index), data.schema_path, certificates, PASSWORD)
        deployment.flwr_run(
            CONNECTION,
            {
                "fedledger.rpc-url": anvil.rpc_url,
                "fedledger.registry": registry.address,
                "num-server-rounds": 2,
                "min-nodes": 3,
                "schema-path": str(data.schema_path),
                "fedledger.store": str(tmp_path / "store"),
                "fedledger.output-dir": str(tmp_path / "run"),
                "fedledger.auditor-keys": public_key_hex(generate_key_file(tmp_path / "auditor.pem")),
            },
            timeout=900,
        )
        superlink_log = (tmp_path / "superlink.log").read_text()

    store = ArtifactStore(tmp_path / "store")
    on_chain = {identities["cleveland"].address, identities["hungary"].address}
    for number in (1, 2):
        commitment = registry.committed_round(1, number).commitment
        manifest = RoundManifest.from_bytes(store.get(commitment.manifest_hash))
        assert {entry.participant for entry in manifest.accepted} == on_chain
        (outsider,) = manifest.rejected
        assert (outsider.participant, outsider.reason) == (identities["off-chain"].address, "unregistered")
        assert identities["unknown"].address not in {entry.participant for entry in manifest.updates}
    refused = pem_public_key(sites["unknown"] / SUPERNODE_PUBLIC_KEY_FILE)
    assert "No SuperNode found with the given public key" in superlink_log
    assert refused.replace("\n", "\\n") in superlink_log, "the SuperLink turned the unregistered SuperNode away"

    where = ["--rpc-url", anvil.rpc_url, "--registry", registry.address, "--store", str(tmp_path / "store")]
    audit = CliRunner().invoke(app, ["audit", *where, "--key", str(tmp_path / "auditor.pem")])
    assert audit.exit_code == 0, audit.output
    assert "PASS:" in audit.output
    keyless = CliRunner().invoke(app, ["audit", *where])
    assert keyless.exit_code == 3 and "need a key" in keyless.output
