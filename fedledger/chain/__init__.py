"""Chain access: connections, the registry contract, decoded reverts and a local anvil node."""

from fedledger.chain.connection import Chain, Receipt
from fedledger.chain.errors import ChainError, ContractRevert
from fedledger.chain.registry import (
    CommittedRound,
    ParticipantRecord,
    PendingAdmin,
    Registry,
    RewardClaim,
    RoundCommitment,
    RunRecord,
)
from fedledger.chain.transport import DEFAULT_RETRY_SECONDS, ChainUnavailable

__all__ = [
    "DEFAULT_RETRY_SECONDS",
    "Chain",
    "ChainError",
    "ChainUnavailable",
    "CommittedRound",
    "ContractRevert",
    "ParticipantRecord",
    "PendingAdmin",
    "Receipt",
    "Registry",
    "RewardClaim",
    "RoundCommitment",
    "RunRecord",
]
