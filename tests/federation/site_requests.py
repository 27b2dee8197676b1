"""Ledger requests as the ledger strategy sends them to a simulated site, the site's node context,
and the reason of the error reply ``ledger_mod`` answers with, for the client mod's tests."""

from flwr.app import ConfigRecord, Context, Message, RecordDict
from flwr.common.constant import ErrorCode

from fedledger import messages
from fedledger.client.identity import PARTITION_ID
from fedledger.keys import simulated_participant
from fedledger.signing import SigningDomain

DOMAIN = SigningDomain(chain_id=31337, registry="0x5FbDB2315678afecb367f032d93F642f64180aa3")
RUN_ID, ROUND, KEY_SEED, PARTITION = 4, 3, 7, 2
SITE = simulated_participant(KEY_SEED, PARTITION)


def ledger_config(**changes: object) -> ConfigRecord:
    """The request config the ledger strategy sends to a simulated site, with ``changes`` (``None``
    removes an entry)."""
    config = ConfigRecord(
        {
            messages.CONFIG_ROUND: ROUND,
            messages.CONFIG_CHAIN_ID: DOMAIN.chain_id,
            messages.CONFIG_REGISTRY: DOMAIN.registry,
            messages.CONFIG_RUN_ID: RUN_ID,
            messages.CONFIG_KEY_SEED: KEY_SEED,
            "local-epochs": 1,
        }
    )
    for key, value in changes.items():
        if value is None:
            config.pop(key)
        else:
            config[key] = value
    return config


def node(**node_config: object) -> Context:
    """The context of simulated site ``PARTITION``, with more ``node_config``."""
    return Context(
        run_id=1, node_id=11, node_config={PARTITION_ID: PARTITION, **node_config}, state=RecordDict(), run_config={}
    )


def error_of(reply: Message) -> str:
    assert reply.has_error(), "expected an error reply"
    assert reply.error.code == ErrorCode.CLIENT_APP_RAISED_EXCEPTION
    return reply.error.reason
