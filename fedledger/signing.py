"""EIP-712 signatures over model updates and over sites' valuations of candidate models.

A participant signs, with its Ethereum key, a typed message that binds its update to one chain,
one registry contract, one run, one round and the model it trained from. The registry contract
computes the same digest (``updateDigest``), so a signature checked here is checked on-chain too.
A site that clipped and noised its update (local differential privacy) signs a ``PrivateUpdate``
instead, which adds the clip norm and noise multiplier it applied; that one is checked off-chain.
Moving a signature to another round, run, chain or registry changes the digest, so the signature
recovers to a different address and verification fails.

A site signs its valuation too: the metric it reports (a loss) for each candidate model the
coordinator asked it to evaluate, so that an auditor can recompute contribution values from the
sites' own signed figures (``fedledger.valuation``). Valuations are checked off-chain only.
"""

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from eth_account import Account
from eth_account.messages import SignableMessage, encode_typed_data
from eth_keys.exceptions import BadSignature
from eth_typing import ChecksumAddress
from eth_utils import to_checksum_address

from fedledger.errors import FedLedgerError
from fedledger.hashing import HASH_SIZE, keccak256

DOMAIN_NAME = "FedLedger"
DOMAIN_VERSION = "1"
SIGNATURE_SIZE = 65

UPDATE_TYPES = {
    "Update": [
        {"name": "runId", "type": "uint256"},
        {"name": "round", "type": "uint32"},
        {"name": "baseModelHash", "type": "bytes32"},
        {"name": "updateHash", "type": "bytes32"},
        {"name": "numExamples", "type": "uint64"},
    ]
}

#: The update message of a site that clipped and noised its update (local differential privacy):
#: the clip norm and noise multiplier it applied, in millionths, are part of what it signs.
PRIVATE_UPDATE_TYPES = {
    "PrivateUpdate": [
        *UPDATE_TYPES["Update"],
        {"name": "clipNorm", "type": "uint64"},
        {"name": "noiseMultiplier", "type": "uint64"},
    ]
}
#: The unit of ``clipNorm`` and ``noiseMultiplier``: millionths.
PRIVACY_PARAMETER_SCALE = 10**6

VALUATION_TYPES = {
    "Valuation": [
        {"name": "runId", "type": "uint256"},
        {"name": "round", "type": "uint32"},
        {"name": "metric", "type": "string"},
        {"name": "resultsHash", "type": "bytes32"},
    ]
}


class InvalidSignature(FedLedgerError, ValueError):
    """A signature is malformed and recovers to no address."""


@dataclass(frozen=True)
class SigningDomain:
    """The EIP-712 domain of one registry contract on one chain."""

    chain_id: int
    registry: str

    def as_eip712(self) -> dict[str, Any]:
        return {
            "name": DOMAIN_NAME,
            "version": DOMAIN_VERSION,
            "chainId": self.chain_id,
            "verifyingContract": to_checksum_address(self.registry),
        }


@dataclass(frozen=True)
class UpdateMessage:
    """What a participant vouches for when it sends an update.

    Attributes:
        run_id: the registry's id of the training run.
        round: the round the update answers, counted from 1.
        base_model_hash: hash of the global model the participant trained from.
        update_hash: hash of the canonical encoding of the participant's model update.
        num_examples: number of local training examples behind the update.
        clip_norm: under local differential privacy, the L2 norm the site clipped its update's
            change to, in millionths; 0 without (the message is then an ``Update``, else a
            ``PrivateUpdate``).
        noise_multiplier: under local differential privacy, the noise multiplier it applied, in
            millionths; 0 without.
    """

    run_id: int
    round: int
    base_model_hash: bytes
    update_hash: bytes
    num_examples: int
    clip_norm: int = 0
    noise_multiplier: int = 0

    def __post_init__(self) -> None:
        for field in ("base_model_hash", "update_hash"):
            if len(getattr(self, field)) != HASH_SIZE:
                raise ValueError(f"{field} must be {HASH_SIZE} bytes, got {len(getattr(self, field))}")
        if not 0 <= self.round < 2**32:
            raise ValueError(f"round must fit in uint32, got {self.round}")
        if not 0 <= self.num_examples < 2**64:
            raise ValueError(f"num_examples must fit in uint64, got {self.num_examples}")
        if self.run_id < 0:
            raise ValueError(f"run_id must not be negative, got {self.run_id}")
        for field in ("clip_norm", "noise_multiplier"):
            if not 0 <= getattr(self, field) < 2**64:
                raise ValueError(f"{field} must fit in uint64, got {getattr(self, field)}")
        if (self.clip_norm == 0) != (self.noise_multiplier == 0):
            raise ValueError("clip_norm and noise_multiplier are both 0 (no local DP) or both above 0")

    @property
    def private(self) -> bool:
        """Whether the site says it clipped and noised the update (a ``PrivateUpdate``)."""
        return self.noise_multiplier > 0

    @property
    def types(self) -> dict[str, list[dict[str, str]]]:
        return PRIVATE_UPDATE_TYPES if self.private else UPDATE_TYPES

    def as_eip712(self) -> dict[str, Any]:
        fields = {
            "runId": self.run_id,
            "round": self.round,
            "baseModelHash": self.base_model_hash,
            "updateHash": self.update_hash,
            "numExamples": self.num_examples,
        }
        if self.private:
            fields |= {"clipNorm": self.clip_norm, "noiseMultiplier": self.noise_multiplier}
        return fields


@dataclass(frozen=True)
class ValuationMessage:
    """What a site vouches for when it reports its evaluation of a round's candidate models.

    Attributes:
        run_id: the registry's id of the training run.
        round: the round whose candidate models were evaluated.
        metric: the name of the metric reported (the app's own, such as ``eval-loss``).
        results_hash: ``valuation_results_hash`` of the candidates' hashes and the values reported.
    """

    run_id: int
    round: int
    metric: str
    results_hash: bytes

    def __post_init__(self) -> None:
        if len(self.results_hash) != HASH_SIZE:
            raise ValueError(f"results_hash must be {HASH_SIZE} bytes, got {len(self.results_hash)}")
        if not 0 <= self.round < 2**32:
            raise ValueError(f"round must fit in uint32, got {self.round}")
        if self.run_id < 0:
            raise ValueError(f"run_id must not be negative, got {self.run_id}")

    def as_eip712(self) -> dict[str, Any]:
        return {"runId": self.run_id, "round": self.round, "metric": self.metric, "resultsHash": self.results_hash}


def valuation_results_hash(candidate_hashes: Sequence[bytes], values: Sequence[float]) -> bytes:
    """``keccak256`` of each candidate's 32-byte model hash followed by the value reported for it
    as an IEEE-754 binary64, big-endian, candidates in order.

    Raises:
        ValueError: the counts differ, or a hash is not 32 bytes.
    """
    if len(candidate_hashes) != len(values):
        raise ValueError(f"{len(candidate_hashes)} candidate hashes but {len(values)} values")
    parts = []
    for candidate, value in zip(candidate_hashes, values, strict=True):
        if len(candidate) != HASH_SIZE:
            raise ValueError(f"a candidate hash must be {HASH_SIZE} bytes, got {len(candidate)}")
        parts.append(candidate + struct.pack(">d", value))
    return keccak256(b"".join(parts))


def _signable(domain: SigningDomain, message: UpdateMessage | ValuationMessage) -> SignableMessage:
    types = message.types if isinstance(message, UpdateMessage) else VALUATION_TYPES
    return encode_typed_data(domain_data=domain.as_eip712(), message_types=types, message_data=message.as_eip712())


def signable_update(domain: SigningDomain, message: UpdateMessage) -> SignableMessage:
    """The EIP-712 encoding of ``message`` in ``domain``, ready to sign or recover."""
    return _signable(domain, message)


def _sign(domain: SigningDomain, message: UpdateMessage | ValuationMessage, private_key: bytes | str) -> bytes:
    return bytes(Account.sign_message(_signable(domain, message), private_key).signature)


def _recover(domain: SigningDomain, message: UpdateMessage | ValuationMessage, signature: bytes) -> ChecksumAddress:
    if len(signature) != SIGNATURE_SIZE:
        raise InvalidSignature(f"a signature is {SIGNATURE_SIZE} bytes, got {len(signature)}")
    try:
        return Account.recover_message(_signable(domain, message), signature=signature)
    except (BadSignature, ValueError) as error:
        raise InvalidSignature(f"malformed signature: {error}") from error


def sign_update(domain: SigningDomain, message: UpdateMessage, private_key: bytes | str) -> bytes:
    """Sign ``message`` with ``private_key``; returns the 65-byte signature (r, s, v)."""
    return _sign(domain, message, private_key)


def recover_update_signer(domain: SigningDomain, message: UpdateMessage, signature: bytes) -> ChecksumAddress:
    """The address whose key produced ``signature`` over ``message`` in ``domain``.

    Raises:
        InvalidSignature: the signature is not 65 bytes or is not a valid secp256k1 signature.
    """
    return _recover(domain, message, signature)


def sign_valuation(domain: SigningDomain, message: ValuationMessage, private_key: bytes | str) -> bytes:
    """Sign a site's valuation with ``private_key``; returns the 65-byte signature (r, s, v)."""
    return _sign(domain, message, private_key)


def recover_valuation_signer(domain: SigningDomain, message: ValuationMessage, signature: bytes) -> ChecksumAddress:
    """The address whose key produced ``signature`` over the valuation ``message`` in ``domain``.

    Raises:
        InvalidSignature: the signature is not 65 bytes or is not a valid secp256k1 signature.
    """
    return _recover(domain, message, signature)


def verify_update(domain: SigningDomain, message: UpdateMessage, signature: bytes, signer: str) -> bool:
    """Whether ``signature`` is ``signer``'s signature over ``message`` in ``domain``."""
    try:
        return recover_update_signer(domain, message, signature) == to_checksum_address(signer)
    except InvalidSignature:
        return False
