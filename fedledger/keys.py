"""Ethereum keys for sending transactions and signing updates, from a keystore or the environment.

Keys never appear in code or on the command line: an encrypted JSON keystore (Web3 Secret
Storage) whose password comes from an environment variable or a prompt, or a raw private key in
an environment variable for automated setups.
"""

import getpass
import json
import os
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_keyfile.exceptions import EthKeyfileValueError
from eth_utils import is_address, to_checksum_address

from fedledger.errors import FedLedgerError
from fedledger.hashing import keccak256

PRIVATE_KEY_ENV = "FEDLEDGER_PRIVATE_KEY"
KEYSTORE_PASSWORD_ENV = "FEDLEDGER_KEYSTORE_PASSWORD"
KEYSTORE_ENV = "FEDLEDGER_KEYSTORE"


class KeyLoadError(FedLedgerError):
    """A key could not be loaded; the message says where from and why."""


def load_keystore(path: Path, password: str | None = None) -> LocalAccount:
    """Decrypt the keystore at ``path``.

    The password is ``password`` if given, else ``$FEDLEDGER_KEYSTORE_PASSWORD``, else a prompt.

    Raises:
        KeyLoadError: naming the file: it is missing or not a keystore, or the password is wrong.
    """
    encrypted = _read_keystore(path)
    if password is None:
        password = os.environ.get(KEYSTORE_PASSWORD_ENV)
    if password is None:
        password = getpass.getpass(f"Password for {path}: ")
    try:
        return Account.from_key(Account.decrypt(encrypted, password))
    except EthKeyfileValueError:
        raise KeyLoadError(f"wrong password for keystore {path}") from None
    except (KeyError, TypeError, ValueError, NotImplementedError) as error:
        raise KeyLoadError(f"keystore {path} is not a usable Ethereum keystore: {error!r}") from None


def keystore_address(path: Path) -> str:
    """The address a keystore names in its clear-text ``address`` field, without decrypting it.

    Decrypting costs a deliberately slow key derivation (scrypt); reading the address does not.

    Raises:
        KeyLoadError: naming the file: it is missing, not a keystore, or names no valid address.
    """
    address = _read_keystore(path).get("address")
    if not isinstance(address, str) or not is_address(address):
        raise KeyLoadError(f"keystore {path} names no valid address")
    return to_checksum_address(address)


def _read_keystore(path: Path) -> dict[str, Any]:
    """The keystore's JSON object, checked to have the encrypted key a keystore holds."""
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError:
        raise KeyLoadError(f"keystore {path} does not exist") from None
    except IsADirectoryError:
        raise KeyLoadError(f"keystore {path} is a directory, not a keystore file") from None
    except OSError as error:
        raise KeyLoadError(f"cannot read keystore {path}: {error.strerror}") from None
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise KeyLoadError(f"keystore {path} is not an Ethereum keystore (not a JSON file)") from None
    if not isinstance(document, dict) or not isinstance(document.get("crypto", document.get("Crypto")), dict):
        raise KeyLoadError(f"keystore {path} is not an Ethereum keystore (it has no 'crypto' section)")
    return document


def create_keystore(path: Path, password: str) -> LocalAccount:
    """Create a new random key and write it, encrypted with ``password``, to ``path``.

    Raises:
        KeyLoadError: ``path`` already exists (keys are never overwritten) or the password is empty.
    """
    if path.exists():
        raise KeyLoadError(f"{path} already exists; refusing to overwrite a key")
    if not password:
        raise KeyLoadError("a keystore password must not be empty")
    account = Account.create()
    path.parent.mkdir(parents=True, exist_ok=True)
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as handle:
        json.dump(Account.encrypt(account.key, password), handle)
    return account


def load_sender(keystore: Path | None) -> LocalAccount | None:
    """The account to send transactions from: the keystore at ``keystore`` or ``$FEDLEDGER_KEYSTORE``,
    else the key in ``$FEDLEDGER_PRIVATE_KEY``; ``None`` when none is set.
    """
    if keystore is not None:
        return load_keystore(keystore)
    if os.environ.get(KEYSTORE_ENV):
        try:
            return load_keystore(Path(os.environ[KEYSTORE_ENV]))
        except KeyLoadError as error:
            raise KeyLoadError(f"{error} (set by ${KEYSTORE_ENV})") from None
    raw = os.environ.get(PRIVATE_KEY_ENV)
    if raw is None:
        return None
    try:
        return Account.from_key(raw.strip())
    except ValueError as error:
        raise KeyLoadError(f"${PRIVATE_KEY_ENV} is not a valid private key: {error}") from None


#: What a simulated participant is sent to pay for its reward claims: 0.1 ether.
SIMULATED_GAS_MONEY = 10**17


def simulated_participant(key_seed: int, partition_id: int) -> LocalAccount:
    """The key of simulated participant ``partition_id``: derived from the seed, so a simulation's
    coordinator can register the same addresses its simulated clients sign with. Never for real sites."""
    return Account.from_key(keccak256(f"fedledger simulated participant {key_seed} {partition_id}".encode()))
