"""A site's and a coordinator's tooling: keys, certificates, data checks."""

import ipaddress
import json
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from typer.testing import CliRunner

from fedledger.certificates import create_certificates
from fedledger.cli import app
from fedledger.errors import FedLedgerError
from fedledger.identity import KEYSTORE_FILE, PARTICIPANT_FILE, SUPERNODE_KEY_FILE, SUPERNODE_PUBLIC_KEY_FILE
from fedledger.keys import KEYSTORE_PASSWORD_ENV, load_keystore

runner = CliRunner()


def test_client_init_creates_both_keys_and_prints_what_to_hand_over(tmp_path: Path, monkeypatch):
    monkeypatch.setenv(KEYSTORE_PASSWORD_ENV, "site secret")
    result = runner.invoke(app, ["client", "init", "--out", str(tmp_path / "keys")])
    assert result.exit_code == 0, result.output
    keys = tmp_path / "keys"
    account = load_keystore(keys / KEYSTORE_FILE, "site secret")
    private = serialization.load_ssh_private_key((keys / SUPERNODE_KEY_FILE).read_bytes(), None)
    public = serialization.load_ssh_public_key((keys / SUPERNODE_PUBLIC_KEY_FILE).read_bytes())
    assert isinstance(private, ec.EllipticCurvePrivateKey) and private.curve.name == "secp384r1"
    assert private.public_key().public_numbers() == public.public_numbers()
    assert stat.S_IMODE((keys / SUPERNODE_KEY_FILE).stat().st_mode) == 0o600
    handed = json.loads((keys / PARTICIPANT_FILE).read_text())
    assert handed == {
        "address": account.address,
        "supernode_public_key": (keys / SUPERNODE_PUBLIC_KEY_FILE).read_text().strip(),
    }
    assert account.address in result.output and handed["supernode_public_key"] in result.output


def test_client_init_asks_for_the_password_twice_without_the_environment(tmp_path: Path, monkeypatch):
    monkeypatch.delenv(KEYSTORE_PASSWORD_ENV, raising=False)
    result = runner.invoke(app, ["client", "init", "--out", str(tmp_path)], input="typed\ntyped\n")
    assert result.exit_code == 0, result.output
    assert load_keystore(tmp_path / KEYSTORE_FILE, "typed").address in result.output


def test_client_init_never_overwrites_keys(tmp_path: Path, monkeypatch):
    monkeypatch.setenv(KEYSTORE_PASSWORD_ENV, "pw")
    assert runner.invoke(app, ["client", "init", "--out", str(tmp_path)]).exit_code == 0
    before = {path.name: path.read_bytes() for path in tmp_path.iterdir()}
    again = runner.invoke(app, ["client", "init", "--out", str(tmp_path)])
    assert again.exit_code == 1
    assert "refusing to overwrite existing keys" in again.output
    assert {path.name: path.read_bytes() for path in tmp_path.iterdir()} == before


def test_certificates_chain_to_the_ca_and_name_every_host(tmp_path: Path):
    result = runner.invoke(
        app, ["certs", "--out", str(tmp_path), "--host", "superlink.example.org", "--host", "10.0.0.5"]
    )
    assert result.exit_code == 0, result.output
    ca = x509.load_pem_x509_certificate((tmp_path / "ca.pem").read_bytes())
    server = x509.load_pem_x509_certificate((tmp_path / "superlink.pem").read_bytes())
    server.verify_directly_issued_by(ca)
    names = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["superlink.example.org"]
    assert names.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("10.0.0.5")]
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert not server.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    for key in ("ca.key", "superlink.key"):
        assert stat.S_IMODE((tmp_path / key).stat().st_mode) == 0o600


def test_certificates_need_a_host_and_are_never_overwritten(tmp_path: Path):
    with pytest.raises(FedLedgerError, match="name at least one host"):
        create_certificates(tmp_path, [])
    create_certificates(tmp_path, ["localhost"])
    with pytest.raises(FedLedgerError, match="refusing to overwrite"):
        create_certificates(tmp_path, ["localhost"])


def test_check_data_summarises_a_good_file_and_names_the_column_of_a_bad_one(tmp_path: Path):
    schema = tmp_path / "schema.json"
    schema.write_text(
        json.dumps(
            {"target": "y", "columns": [{"name": "age", "type": "numeric"}, {"name": "smoker", "type": "boolean"}]}
        )
    )
    good = tmp_path / "good.csv"
    good.write_text("age,smoker,y\n40,true,1\n,false,0\n55,,1\n")
    result = runner.invoke(app, ["check-data", "--data", str(good), "--schema", str(schema)])
    assert result.exit_code == 0, result.output
    assert "3 rows match the schema" in result.output and "2 positive, 1 negative" in result.output
    assert "age: 1 missing values" in result.output

    bad = tmp_path / "bad.csv"
    bad.write_text("age,smoker,y\nforty,true,1\n")
    result = runner.invoke(app, ["check-data", "--data", str(bad), "--schema", str(schema)])
    assert result.exit_code == 1
    assert "column 'age' is numeric but row 0 holds 'forty'" in result.output
