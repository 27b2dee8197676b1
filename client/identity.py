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
from fedledger.signer import AccountSigner, Signer, SocketSigner

#: Node config key Flower's simulation gives every virtual node.
PARTITION_ID = "partition-id"
#: Node config key of a real install: its encrypted keystore (password in $FEDLEDGER_KEYSTORE_PASSWORD).
KEYSTORE = "keystore"
#: Node config key of a real install whose key a local signer holds (``fedledger client signer``):
#: the signer's Unix socket. It takes precedence over ``keystore``.
SIGNER = "fedledger.signer"


class IdentityError(FedLedgerError):
    """The node has no key to sign with."""


def participant_signer(node_config: UserConfig, config: ConfigRecord) -> Signer:
    """What signs for the node: its local signer, or its keystore, in a real install; a derived key
    in a simulation."""
    if SIGNER in node_config:
        return SocketSigner.connect(Path(str(node_config[SIGNER])))
    if KEYSTORE in node_config:
        return AccountSigner(_keystore(Path(str(node_config[KEYSTORE]))))
    key_seed = config.get(messages.CONFIG_KEY_SEED)
    if isinstance(key_seed, int) and PARTITION_ID in node_config:
        return AccountSigner(simulated_participant(key_seed, int(node_config[PARTITION_ID])))
    raise IdentityError(f"this node has no signing key: set {SIGNER!r} or {KEYSTORE!r} in its node config")


def participant_address(node_config: UserConfig, config: ConfigRecord) -> str:
    """The node's address, read without decrypting its keystore (evaluation replies need only the
    address; decrypting costs seconds of scrypt in every ClientApp process)."""
    if SIGNER not in node_config and KEYSTORE in node_config:
        return keystore_address(Path(str(node_config[KEYSTORE])))
    return participant_signer(node_config, config).address


@cache
def _keystore(path: Path) -> LocalAccount:
    password = os.environ.get(KEYSTORE_PASSWORD_ENV)
    if password is None:
        raise IdentityError(f"set ${KEYSTORE_PASSWORD_ENV} to the password of the keystore {path}")
    return load_keystore(path, password)
