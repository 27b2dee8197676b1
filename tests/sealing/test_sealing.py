"""Sealed artifacts: what is sealed opens only with a recipient's key, and every edit is caught by name."""

import json
import struct
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from fedledger.hashing import keccak256
from fedledger.sealing import (
    MAGIC,
    KeyFileError,
    Sealer,
    SealError,
    generate_key_file,
    is_sealed,
    load_key_file,
    open_sealed,
    parse_public_key,
    public_key_hex,
    sealed_header,
)

PLAINTEXT = b"FLMODEL1" + bytes(range(256)) * 40


def key_pair() -> tuple[X25519PrivateKey, bytes]:
    key = X25519PrivateKey.generate()
    return key, key.public_key().public_bytes_raw()


def test_every_recipient_opens_what_is_sealed_and_nobody_else_does():
    (coordinator, coordinator_public), (auditor, auditor_public) = key_pair(), key_pair()
    sealed = Sealer([auditor_public, coordinator_public]).seal(PLAINTEXT)
    assert is_sealed(sealed) and PLAINTEXT not in sealed
    assert open_sealed(sealed, coordinator) == PLAINTEXT
    assert open_sealed(sealed, auditor) == PLAINTEXT
    header = sealed_header(sealed)
    assert header.plaintext_hash == keccak256(PLAINTEXT)
    assert [recipient for recipient, _, _ in header.recipients] == sorted([coordinator_public, auditor_public])
    outsider, outsider_public = key_pair()
    with pytest.raises(SealError, match=f"the key {public_key_hex(outsider_public)} is not among"):
        open_sealed(sealed, outsider)


def test_sealing_twice_gives_different_bytes():
    _, public = key_pair()
    sealer = Sealer([public])
    assert sealer.seal(PLAINTEXT) != sealer.seal(PLAINTEXT)


def split(sealed: bytes) -> tuple[int, dict, bytes]:
    (length,) = struct.unpack(">I", sealed[8:12])
    return length, json.loads(sealed[12 : 12 + length]), sealed[12 + length :]


def rebuilt(header: dict, body: bytes) -> bytes:
    encoded = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    return MAGIC + struct.pack(">I", len(encoded)) + encoded + body


def test_an_edited_ciphertext_or_header_is_refused_by_name():
    key, public = key_pair()
    sealed = Sealer([public]).seal(PLAINTEXT)
    flipped = bytearray(sealed)
    flipped[-40] ^= 1
    with pytest.raises(SealError, match="does not decrypt: its header or ciphertext was edited"):
        open_sealed(bytes(flipped), key)
    _, header, body = split(sealed)
    other_hash = {**header, "plaintext_hash": "0x" + keccak256(b"another update").hex()}
    with pytest.raises(SealError, match="does not decrypt: its header or ciphertext was edited"):
        open_sealed(rebuilt(other_hash, body), key)
    wrapped = header["recipients"][0]["wrapped_key"]
    edited = wrapped[:-1] + ("0" if wrapped[-1] != "0" else "1")
    rewrapped = {**header, "recipients": [{**header["recipients"][0], "wrapped_key": edited}]}
    with pytest.raises(SealError, match="data key does not unwrap"):
        open_sealed(rebuilt(rewrapped, body), key)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (PLAINTEXT, "not a sealed artifact: it does not start with FLSEAL01"),
        (MAGIC + b"\x00", "truncated before its header"),
        (MAGIC + struct.pack(">I", 5000) + b"{}", "header claims 5000 bytes, more than it holds"),
        (MAGIC + struct.pack(">I", 2) + b"{}", "header is malformed"),
    ],
)
def test_bytes_that_are_not_a_sealed_artifact_are_refused_by_name(data: bytes, message: str):
    key, _ = key_pair()
    with pytest.raises(SealError, match=message):
        open_sealed(data, key)


def test_sealing_needs_recipients_of_the_right_size():
    with pytest.raises(SealError, match="at least one recipient"):
        Sealer([])
    with pytest.raises(SealError, match="is 32 bytes, got 31"):
        Sealer([bytes(31)])


def test_a_key_file_is_written_private_loaded_back_and_never_overwritten(tmp_path: Path):
    path = tmp_path / "keys" / "auditor.pem"
    public = generate_key_file(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert load_key_file(path).public_key().public_bytes_raw() == public
    assert parse_public_key(public_key_hex(public)) == public
    with pytest.raises(KeyFileError, match="already exists"):
        generate_key_file(path)
    path.chmod(0o644)
    with pytest.raises(KeyFileError, match=r"readable by others \(mode 644\): chmod 600 it"):
        load_key_file(path)
    path.chmod(0o600)
    path.write_bytes(b"not a key")
    with pytest.raises(KeyFileError, match="is not a PEM private key"):
        load_key_file(path)
    with pytest.raises(KeyFileError, match="cannot read the key file"):
        load_key_file(tmp_path / "missing.pem")


def test_a_public_key_is_0x_and_64_hex_digits():
    with pytest.raises(SealError, match="is not an X25519 public key"):
        parse_public_key("0x1234")
