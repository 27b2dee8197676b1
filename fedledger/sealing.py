"""Sealed artifacts: bytes encrypted at rest for a list of X25519 recipients (``docs/sealing.md``).

A participant's update (and central DP's noise) is stored sealed: AES-256-GCM under a fresh data
key, the data key wrapped for each recipient (the coordinator, and every auditor the run
configuration lists). The sealed bytes are content-addressed in the artifact store like any
other; the header names the Keccak-256 hash of the plaintext, which is what is signed and
committed, so an auditor without a key still sees which update a sealed artifact claims to hold.

Layout: ``MAGIC`` (8 bytes), the header's length (4 bytes, big-endian), the header (canonical
JSON), then the AES-256-GCM ciphertext and tag of the plaintext, with everything before it as
associated data. Wrapping for one recipient: an ephemeral X25519 key pair; the shared secret with
the recipient's key, through HKDF-SHA256 (salt: the ephemeral public key then the recipient's,
info ``WRAP_INFO``), gives a key-encryption key that wraps the data key (AES key wrap, RFC 3394).
"""

import os
import stat
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap, aes_key_wrap

from fedledger.canonical import canonical_json, parse_json
from fedledger.errors import FedLedgerError
from fedledger.hashing import HASH_SIZE, from_hex, keccak256, to_hex
from fedledger.store import ArtifactStore

MAGIC = b"FLSEAL01"
#: The HKDF info of the key-encryption key: binds it to this scheme and version.
WRAP_INFO = b"fedledger seal v1: data key wrap"
KEY_SIZE = 32
NONCE_SIZE = 12
#: The most header bytes a reader accepts (a header names 32 + 32 + 40 bytes per recipient).
MAX_HEADER_SIZE = 1 << 20
SCHEME = "fedledger-seal-1"
#: The auditor's key file a simulation creates in its output directory (and lists in its run
#: configuration), which ``fedledger audit --simulation DIR`` uses when given no ``--key``.
SIMULATION_AUDITOR_KEY = "auditor-seal.pem"
#: The coordinator's key file in a run's output directory, when ``fedledger.sealing-key`` names none.
COORDINATOR_KEY_FILE = "coordinator-seal.pem"


class SealError(FedLedgerError):
    """Sealed bytes that cannot be read or opened; the message says what failed."""


class KeyFileError(FedLedgerError):
    """A key file that cannot be used; the message says why."""


def public_key_hex(public_key: bytes) -> str:
    """A recipient's public key as the run configuration and the CLI show it: ``0x`` + 64 hex digits."""
    return to_hex(public_key)


def parse_public_key(text: str) -> bytes:
    """Raises:
    SealError: ``text`` is not ``0x`` followed by 64 hex digits.
    """
    try:
        key = from_hex(text, size=KEY_SIZE)
    except ValueError:
        raise SealError(f"{text!r} is not an X25519 public key: 0x followed by 64 hex digits") from None
    return key


@dataclass(frozen=True)
class SealedHeader:
    """What anyone can read of a sealed artifact: the hash of what it holds, and for whom."""

    plaintext_hash: bytes
    nonce: bytes
    recipients: tuple[tuple[bytes, bytes, bytes], ...]  # (public key, ephemeral public key, wrapped data key)

    def to_bytes(self) -> bytes:
        return canonical_json(
            {
                "scheme": SCHEME,
                "plaintext_hash": to_hex(self.plaintext_hash),
                "nonce": to_hex(self.nonce),
                "recipients": [
                    {"public_key": to_hex(key), "ephemeral_key": to_hex(ephemeral), "wrapped_key": to_hex(wrapped)}
                    for key, ephemeral, wrapped in self.recipients
                ],
            }
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> "SealedHeader":
        document = parse_json(data, "the sealed artifact's header")
        try:
            if document["scheme"] != SCHEME:
                raise SealError(f"the sealed artifact uses scheme {document['scheme']!r}, this reader knows {SCHEME}")
            return cls(
                from_hex(document["plaintext_hash"], size=HASH_SIZE),
                from_hex(document["nonce"], size=NONCE_SIZE),
                tuple(
                    (
                        from_hex(entry["public_key"], size=KEY_SIZE),
                        from_hex(entry["ephemeral_key"], size=KEY_SIZE),
                        from_hex(entry["wrapped_key"], size=KEY_SIZE + 8),
                    )
                    for entry in document["recipients"]
                ),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise SealError(f"the sealed artifact's header is malformed: {error}") from None


def _key_encryption_key(shared: bytes, ephemeral: bytes, recipient: bytes) -> bytes:
    return HKDF(algorithm=SHA256(), length=KEY_SIZE, salt=ephemeral + recipient, info=WRAP_INFO).derive(shared)


class Sealer:
    """Seals bytes for a fixed set of recipients (32-byte X25519 public keys)."""

    def __init__(self, recipients: Sequence[bytes]) -> None:
        """Raises:
        SealError: no recipient, or a key that is not 32 bytes.
        """
        if not recipients:
            raise SealError("sealing needs at least one recipient public key")
        for key in recipients:
            if len(key) != KEY_SIZE:
                raise SealError(f"an X25519 public key is {KEY_SIZE} bytes, got {len(key)}")
        self.recipients = tuple(sorted(set(recipients)))

    def seal(self, plaintext: bytes) -> bytes:
        """``plaintext`` encrypted under a fresh data key, wrapped for every recipient."""
        data_key, nonce = AESGCM.generate_key(bit_length=256), os.urandom(NONCE_SIZE)
        wrapped = []
        for recipient in self.recipients:
            ephemeral = X25519PrivateKey.generate()
            ephemeral_public = ephemeral.public_key().public_bytes_raw()
            shared = ephemeral.exchange(X25519PublicKey.from_public_bytes(recipient))
            kek = _key_encryption_key(shared, ephemeral_public, recipient)
            wrapped.append((recipient, ephemeral_public, aes_key_wrap(kek, data_key)))
        header = SealedHeader(keccak256(plaintext), nonce, tuple(wrapped)).to_bytes()
        prefix = MAGIC + struct.pack(">I", len(header)) + header
        return prefix + AESGCM(data_key).encrypt(nonce, plaintext, prefix)


def _split(sealed: bytes) -> tuple[bytes, SealedHeader, bytes]:
    if not sealed.startswith(MAGIC):
        raise SealError(f"not a sealed artifact: it does not start with {MAGIC.decode()}")
    if len(sealed) < len(MAGIC) + 4:
        raise SealError("the sealed artifact is truncated before its header")
    (length,) = struct.unpack(">I", sealed[len(MAGIC) : len(MAGIC) + 4])
    end = len(MAGIC) + 4 + length
    if length > MAX_HEADER_SIZE or end > len(sealed):
        raise SealError(f"the sealed artifact's header claims {length} bytes, more than it holds")
    return sealed[:end], SealedHeader.from_bytes(sealed[len(MAGIC) + 4 : end]), sealed[end:]


def is_sealed(data: bytes) -> bool:
    return data.startswith(MAGIC)


def sealed_header(sealed: bytes) -> SealedHeader:
    """The header of a sealed artifact, readable without a key.

    Raises:
        SealError: the bytes are not a sealed artifact, or its header is malformed.
    """
    return _split(sealed)[1]


def open_sealed(sealed: bytes, private_key: X25519PrivateKey) -> bytes:
    """The plaintext of ``sealed``, once it is known to hash to what the header says.

    Raises:
        SealError: not a sealed artifact; the key is not a recipient; the wrapped key, the header
            or the ciphertext was edited; or the plaintext does not hash to the header's hash.
    """
    prefix, header, ciphertext = _split(sealed)
    own = private_key.public_key().public_bytes_raw()
    entry = next((item for item in header.recipients if item[0] == own), None)
    if entry is None:
        raise SealError(f"the key {public_key_hex(own)} is not among the sealed artifact's recipients")
    _, ephemeral, wrapped = entry
    shared = private_key.exchange(X25519PublicKey.from_public_bytes(ephemeral))
    try:
        data_key = aes_key_unwrap(_key_encryption_key(shared, ephemeral, own), wrapped)
    except InvalidUnwrap:
        raise SealError("the data key does not unwrap with this key: its wrapping was edited") from None
    try:
        plaintext = AESGCM(data_key).decrypt(header.nonce, ciphertext, prefix)
    except InvalidTag:
        raise SealError("the sealed artifact does not decrypt: its header or ciphertext was edited") from None
    actual = keccak256(plaintext)
    if actual != header.plaintext_hash:
        raise SealError(
            f"the sealed plaintext hashes to {to_hex(actual)}, not the {to_hex(header.plaintext_hash)} its header names"
        )
    return plaintext


def generate_key_file(path: Path) -> bytes:
    """Write a new X25519 private key to ``path`` (PKCS #8 PEM, mode 0600); return its public key.

    Raises:
        KeyFileError: ``path`` exists.
    """
    key = X25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise KeyFileError(f"{path} already exists: a key file is never overwritten") from None
    with os.fdopen(descriptor, "wb") as file:
        file.write(pem)
    return key.public_key().public_bytes_raw()


def ensure_key_file(path: Path) -> X25519PrivateKey:
    """The key in ``path``, created there first if there is none (see :func:`generate_key_file`).

    Raises:
        KeyFileError: the file exists and cannot be used.
    """
    if not path.exists():
        generate_key_file(path)
    return load_key_file(path)


def simulation_auditor(directory: Path) -> str:
    """The public key of the auditor a simulation in ``directory`` seals its updates for: its key file
    ``SIMULATION_AUDITOR_KEY`` there, created by the first call."""
    key = ensure_key_file(directory / SIMULATION_AUDITOR_KEY)
    return public_key_hex(key.public_key().public_bytes_raw())


def load_key_file(path: Path) -> X25519PrivateKey:
    """Read an X25519 private key written by :func:`generate_key_file`.

    Raises:
        KeyFileError: the file is missing, readable by group or others, or not an X25519 private key.
    """
    try:
        mode = path.stat().st_mode
        data = path.read_bytes()
    except OSError as error:
        raise KeyFileError(f"cannot read the key file {path}: {error.strerror}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileError(f"the key file {path} is readable by others (mode {stat.S_IMODE(mode):o}): chmod 600 it")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as error:
        raise KeyFileError(f"{path} is not a PEM private key: {error}") from None
    if not isinstance(key, X25519PrivateKey):
        raise KeyFileError(f"{path} holds a {type(key).__name__}, not an X25519 private key")
    return key


def stored_plaintext(
    store: ArtifactStore, sealed_hash: bytes, plaintext_hash: bytes, key: X25519PrivateKey | None
) -> bytes | None:
    """What the sealed artifact ``sealed_hash`` in ``store`` holds, once its header names
    ``plaintext_hash``; ``None`` without a key (only the header is checked then).

    Raises:
        ArtifactError: the sealed artifact is missing or corrupted in the store.
        SealError: it is not a sealed artifact, names another plaintext, or does not open (see
            :func:`open_sealed`).
    """
    sealed = store.get(sealed_hash)
    named = sealed_header(sealed).plaintext_hash
    if named != plaintext_hash:
        raise SealError(
            f"the sealed artifact {to_hex(sealed_hash)} holds {to_hex(named)}, not the listed {to_hex(plaintext_hash)}"
        )
    return None if key is None else open_sealed(sealed, key)
