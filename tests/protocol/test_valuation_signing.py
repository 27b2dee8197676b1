"""EIP-712 valuation signatures: a site's reported values bind to the candidates, run, round and metric."""

import struct
from dataclasses import replace

import pytest

from fedledger.hashing import keccak256
from fedledger.signing import (
    SigningDomain,
    UpdateMessage,
    ValuationMessage,
    recover_update_signer,
    recover_valuation_signer,
    sign_valuation,
    valuation_results_hash,
)

from helpers import participant_key

SIGNER = participant_key(1)
DOMAIN = SigningDomain(chain_id=31337, registry="0x5FbDB2315678afecb367f032d93F642f64180aa3")
CANDIDATES = [keccak256(b"base"), keccak256(b"coalition {0}"), keccak256(b"coalition {0, 1}")]
VALUES = [0.693, 0.61, 0.58]


def _message(values: list[float] = VALUES) -> ValuationMessage:
    return ValuationMessage(
        run_id=2, round=5, metric="eval-loss", results_hash=valuation_results_hash(CANDIDATES, values)
    )


def test_the_results_hash_is_the_keccak_of_each_hash_and_its_big_endian_double():
    expected = keccak256(b"".join(h + struct.pack(">d", v) for h, v in zip(CANDIDATES, VALUES, strict=True)))
    assert valuation_results_hash(CANDIDATES, VALUES) == expected


def test_a_valuation_signature_recovers_to_its_signer():
    signature = sign_valuation(DOMAIN, _message(), SIGNER.key)
    assert recover_valuation_signer(DOMAIN, _message(), signature) == SIGNER.address


@pytest.mark.parametrize(
    "moved",
    [
        _message([0.693, 0.61, 0.57]),
        replace(_message(), round=6),
        replace(_message(), run_id=3),
        replace(_message(), metric="eval-accuracy"),
    ],
    ids=["another value", "another round", "another run", "another metric"],
)
def test_a_valuation_signature_does_not_move(moved: ValuationMessage):
    signature = sign_valuation(DOMAIN, _message(), SIGNER.key)
    assert recover_valuation_signer(DOMAIN, moved, signature) != SIGNER.address


def test_a_valuation_signature_is_no_update_signature():
    signature = sign_valuation(DOMAIN, _message(), SIGNER.key)
    update = UpdateMessage(2, 5, CANDIDATES[0], CANDIDATES[1], 1)
    assert recover_update_signer(DOMAIN, update, signature) != SIGNER.address


def test_mismatched_results_are_refused():
    with pytest.raises(ValueError, match="2 candidate hashes but 3 values"):
        valuation_results_hash(CANDIDATES[:2], VALUES)
    with pytest.raises(ValueError, match="32 bytes"):
        valuation_results_hash([b"short"], [1.0])
