"""A participant's two identities: the Ethereum key that signs its updates and claims its rewards,
and the SuperNode key that Flower's SuperLink authenticates its node with."""

import json
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from fedledger.errors import FedLedgerError
from fedledger.keys import create_keystore

KEYSTORE_FILE = "ethereum-keystore.json"
SUPERNODE_KEY_FILE = "supernode-auth-key"
SUPERNODE_PUBLIC_KEY_FILE = "supernode-auth-key.pub"
PARTICIPANT_FILE = "participant.json"


@dataclass(frozen=True)
class ParticipantIdentity:
    """What a new participant hands to the coordinator: its address and its SuperNode public key."""

    address: str
    supernode_public_key: str

    def to_json(self) -> dict[str, str]:
        return {"address": self.address, "supernode_public_key": self.supernode_public_key}


def create_participant(directory: Path, password: str) -> ParticipantIdentity:
    """Create the participant's encrypted Ethereum keystore and its SuperNode key pair in ``directory``.

    The SuperNode key is an ECDSA P-384 key in OpenSSH format, as ``flower-supernode
    --auth-supernode-private-key`` reads it (unencrypted, so readable by its owner only);
    ``flwr supernode register`` takes the ``.pub`` file.

    Raises:
        FedLedgerError: any of the files already exists (keys are never overwritten).
    """
    paths = [directory / name for name in (KEYSTORE_FILE, SUPERNODE_KEY_FILE, SUPERNODE_PUBLIC_KEY_FILE)]
    existing = [str(path) for path in paths if path.exists()]
    if existing:
        raise FedLedgerError(f"refusing to overwrite existing keys: {', '.join(existing)}")
    directory.mkdir(parents=True, exist_ok=True)
    account = create_keystore(directory / KEYSTORE_FILE, password)
    private_key = ec.generate_private_key(ec.SECP384R1())
    private_bytes = private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    )
    public_bytes = private_key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    _write_private(directory / SUPERNODE_KEY_FILE, private_bytes)
    (directory / SUPERNODE_PUBLIC_KEY_FILE).write_bytes(public_bytes + b"\n")
    identity = ParticipantIdentity(account.address, public_bytes.decode())
    (directory / PARTICIPANT_FILE).write_text(json.dumps(identity.to_json(), indent=2) + "\n")
    return identity


def _write_private(path: Path, data: bytes) -> None:
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as handle:
        handle.write(data)
