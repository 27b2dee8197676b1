"""Keys come from an encrypted keystore or the environment, never from code."""

import json
from pathlib import Path

import pytest

from fedledger.keys import (
    KEYSTORE_PASSWORD_ENV,
    PRIVATE_KEY_ENV,
    KeyLoadError,
    create_keystore,
    keystore_address,
    load_keystore,
    load_sender,
)

from helpers import participant_key


def test_a_created_keystore_decrypts_to_the_same_account(tmp_path: Path):
    path = tmp_path / "keys" / "participant.json"
    created = create_keystore(path, "correct horse")
    assert load_keystore(path, "correct horse").address == created.address
    assert path.stat().st_mode & 0o777 == 0o600
    assert created.key.hex() not in path.read_text()


def test_a_keystore_names_its_address_without_being_decrypted(tmp_path: Path):
    path = tmp_path / "participant.json"
    created = create_keystore(path, "correct horse")
    assert keystore_address(path) == created.address
    path.write_text(json.dumps({**json.loads(path.read_text()), "address": "not an address"}))
    with pytest.raises(KeyLoadError, match="names no valid address"):
        keystore_address(path)
    with pytest.raises(KeyLoadError, match="does not exist"):
        keystore_address(tmp_path / "absent.json")


def test_keystores_are_never_overwritten(tmp_path: Path):
    path = tmp_path / "participant.json"
    create_keystore(path, "pw")
    before = path.read_bytes()
    with pytest.raises(KeyLoadError, match="refusing to overwrite"):
        create_keystore(path, "pw")
    assert path.read_bytes() == before


def test_empty_password_is_refused(tmp_path: Path):
    with pytest.raises(KeyLoadError, match="must not be empty"):
        create_keystore(tmp_path / "k.json", "")


def test_wrong_password_and_missing_file_are_reported(tmp_path: Path):
    path = tmp_path / "participant.json"
    create_keystore(path, "right")
    with pytest.raises(KeyLoadError, match=f"wrong password for keystore {path}"):
        load_keystore(path, "wrong")
    with pytest.raises(KeyLoadError, match="does not exist"):
        load_keystore(tmp_path / "absent.json", "right")


def test_the_keystore_password_comes_from_the_environment(tmp_path: Path, monkeypatch):
    path = tmp_path / "participant.json"
    created = create_keystore(path, "from env")
    monkeypatch.setenv(KEYSTORE_PASSWORD_ENV, "from env")
    assert load_sender(path).address == created.address


def test_the_sender_key_comes_from_the_environment(monkeypatch):
    monkeypatch.delenv(PRIVATE_KEY_ENV, raising=False)
    assert load_sender(None) is None
    account = participant_key(0)
    monkeypatch.setenv(PRIVATE_KEY_ENV, account.key.hex())
    assert load_sender(None).address == account.address
    monkeypatch.setenv(PRIVATE_KEY_ENV, "0x1234")
    with pytest.raises(KeyLoadError, match=f"\\${PRIVATE_KEY_ENV} is not a valid private key"):
        load_sender(None)
