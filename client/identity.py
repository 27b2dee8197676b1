"""The participant's Ethereum key, which signs its updates."""

import os
from functools import cache
from pathlib import Path

from eth_account.signers.local import LocalAccount
from flwr.app import ConfigRecord
from flwr.app.user_config import UserConfig

from fedledger import messages
from fedledger.errors import FedLedgerError
from fedledger.keys import KEYSTORE_PASSWORD_ENV, keystore_address, load_keystore, simulated_participant

#: Node config key Flower's simulation gives every virtual node.
PARTITION_ID = "partition-id"
#: Node config key of a real install: its encrypted keystore (password in $FEDLEDGER_KEYSTORE_PASSWORD).
KEYSTORE = "keystore"


class IdentityError(FedLedgerError):
    """The node has no key to sign with."""


def participant_key(node_config: UserConfig, config: ConfigRecord) -> LocalAccount:
    """The node's signing key: its keystore in a real install; a derived key in a simulation."""
    if KEYSTORE in node_config:
        return _keystore(Path(str(node_config[KEYSTORE])))
    key_seed = config.get(messages.CONFIG_KEY_SEED)
    if isinstance(key_seed, int) and PARTITION_ID in node_config:
        return simulated_participant(key_seed, int(node_config[PARTITION_ID]))
    raise IdentityError(f"this node has no signing key: set {KEYSTORE!r} in its node config")


def participant_address(node_config: UserConfig, config: ConfigRecord) -> str:
    """The node's address, read from its keystore without decrypting it (evaluation replies need
    only the address; decrypting costs seconds of scrypt in every ClientApp process)."""
    if KEYSTORE in node_config:
        return keystore_address(Path(str(node_config[KEYSTORE])))
    return participant_key(node_config, config).address


@cache
def _keystore(path: Path) -> LocalAccount:
    password = os.environ.get(KEYSTORE_PASSWORD_ENV)
    if password is None:
        raise IdentityError(f"set ${KEYSTORE_PASSWORD_ENV} to the password of the keystore {path}")
    return load_keystore(path, password)
