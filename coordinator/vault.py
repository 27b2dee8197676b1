"""The coordinator's vault: every participant update, and every noise vector central DP adds, is
stored sealed (``fedledger.sealing``) for the coordinator and for each auditor the run names.

The coordinator's own X25519 key is the file ``fedledger.sealing-key``; with none given, the key
file ``COORDINATOR_KEY_FILE`` in the run's output directory, created by the first run there. The
auditors' public keys are ``fedledger.auditor-keys``. The run configuration records every
recipient, so an auditor sees whether its key can open the run's updates.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from fedledger.coordinator.config import LedgerSettings, SettingsError
from fedledger.sealing import (
    COORDINATOR_KEY_FILE,
    SCHEME,
    KeyFileError,
    Sealer,
    ensure_key_file,
    load_key_file,
    public_key_hex,
)
from fedledger.sealing import stored_plaintext as read_sealed
from fedledger.store import ArtifactStore


@dataclass(frozen=True)
class Vault:
    """Seals what the coordinator stores for itself and the run's auditors, and opens it again."""

    key: X25519PrivateKey
    auditors: tuple[bytes, ...]

    @classmethod
    def open(cls, settings: LedgerSettings) -> "Vault":
        """The coordinator's key (created in the output directory if the settings name no file and
        none is there yet) and the auditors' public keys.

        Raises:
            SettingsError: the key file named cannot be used.
        """
        named = Path(settings.sealing_key) if settings.sealing_key else None
        path = named or Path(settings.output_dir) / COORDINATOR_KEY_FILE
        try:
            key = load_key_file(path) if named is not None else ensure_key_file(path)
        except KeyFileError as error:
            raise SettingsError(f"'fedledger.sealing-key': {error}") from None
        return cls(key, settings.auditor_public_keys)

    @property
    def recipients(self) -> tuple[bytes, ...]:
        """Every key a sealed artifact opens with: the coordinator's and the auditors', sorted."""
        return tuple(sorted({self.key.public_key().public_bytes_raw(), *self.auditors}))

    def to_json(self) -> dict[str, Any]:
        """What the run configuration records: the scheme and every recipient's public key."""
        return {"scheme": SCHEME, "recipients": [public_key_hex(key) for key in self.recipients]}

    def put(self, store: ArtifactStore, plaintext: bytes) -> bytes:
        """Store ``plaintext`` sealed; returns the sealed artifact's hash."""
        return store.put(Sealer(self.recipients).seal(plaintext))

    def get(self, store: ArtifactStore, sealed_hash: bytes, plaintext_hash: bytes) -> bytes:
        """What the sealed artifact holds, checked against ``plaintext_hash``.

        Raises:
            ArtifactError: the sealed artifact is missing or corrupted.
            SealError: it names another plaintext, or does not open with the coordinator's key.
        """
        plaintext = read_sealed(store, sealed_hash, plaintext_hash, self.key)
        if plaintext is None:
            raise RuntimeError("the coordinator always holds its key")
        return plaintext
