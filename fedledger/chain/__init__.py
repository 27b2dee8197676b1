"""Chain access: connections, the registry contract, decoded reverts and a local anvil node."""

from fedledger.chain.connection import IN_PROCESS, Chain, Receipt
from fedledger.chain.errors import ChainError, ContractRevert
from fedledger.chain.registry import (
    CommittedRound,
    ParticipantRecord,
    PendingAdmin,
    Registry,
    RoundCommitment,
    RunRecord,
)

__all__ = [
    "IN_PROCESS",
    "Chain",
    "ChainError",
    "CommittedRound",
    "ContractRevert",
    "ParticipantRecord",
    "PendingAdmin",
    "Receipt",
    "Registry",
    "RoundCommitment",
    "RunRecord",
]
