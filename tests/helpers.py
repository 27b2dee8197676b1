"""Helpers for tests: deterministic accounts and sample commitments."""

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from fedledger.chain import ContractRevert, RoundCommitment
from fedledger.hashing import keccak256

PARTICIPANT_FUNDING_WEI = 10**18


def participant_key(index: int) -> LocalAccount:
    """A deterministic participant account, so failures are reproducible."""
    return Account.from_key(keccak256(f"test participant {index}".encode()))


def sample_commitment(seed: int, accepted: int = 4, rejected: int = 0) -> RoundCommitment:
    """A round commitment with distinct, non-zero hashes derived from ``seed``."""
    return RoundCommitment(
        model_hash=keccak256(b"model %d" % seed),
        updates_root=keccak256(b"updates %d" % seed),
        rewards_root=keccak256(b"rewards %d" % seed),
        manifest_hash=keccak256(b"manifest %d" % seed),
        accepted=accepted,
        rejected=rejected,
    )


@contextmanager
def reverts(name: str, **arguments: object) -> Iterator[None]:
    """Expect the block to revert with custom error ``name`` and (at least) these ``arguments``."""
    with pytest.raises(ContractRevert) as caught:
        yield
    assert caught.value.name == name, f"expected {name}, got {caught.value}"
    for key, expected in arguments.items():
        assert caught.value.arguments[key] == expected, f"{key}: {caught.value}"
