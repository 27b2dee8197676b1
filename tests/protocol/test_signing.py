"""EIP-712 update signatures: sign, recover, verify, and every way of moving one must fail."""

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fedledger.chain import Registry
from fedledger.hashing import keccak256
from fedledger.signing import (
    InvalidSignature,
    SigningDomain,
    UpdateMessage,
    recover_update_signer,
    sign_update,
    signable_update,
    verify_update,
)

from helpers import participant_key

SIGNER = participant_key(0)
DOMAIN = SigningDomain(chain_id=31337, registry="0x5FbDB2315678afecb367f032d93F642f64180aa3")
MESSAGE = UpdateMessage(
    run_id=3,
    round=7,
    base_model_hash=keccak256(b"global model 6"),
    update_hash=keccak256(b"update"),
    num_examples=250,
)


def test_a_signature_recovers_to_its_signer():
    signature = sign_update(DOMAIN, MESSAGE, SIGNER.key)
    assert len(signature) == 65
    assert recover_update_signer(DOMAIN, MESSAGE, signature) == SIGNER.address
    assert verify_update(DOMAIN, MESSAGE, signature, SIGNER.address)
    assert verify_update(DOMAIN, MESSAGE, signature, SIGNER.address.lower())


def test_another_key_does_not_verify():
    signature = sign_update(DOMAIN, MESSAGE, participant_key(1).key)
    assert not verify_update(DOMAIN, MESSAGE, signature, SIGNER.address)


@pytest.mark.parametrize(
    "moved",
    [
        pytest.param(replace(MESSAGE, round=8), id="next round"),
        pytest.param(replace(MESSAGE, round=6), id="previous round"),
        pytest.param(replace(MESSAGE, run_id=4), id="other run"),
        pytest.param(replace(MESSAGE, base_model_hash=keccak256(b"stale model")), id="other base model"),
        pytest.param(replace(MESSAGE, update_hash=keccak256(b"other update")), id="other update"),
        pytest.param(replace(MESSAGE, num_examples=251), id="other example count"),
    ],
)
def test_a_signature_moved_to_another_message_fails(moved):
    signature = sign_update(DOMAIN, MESSAGE, SIGNER.key)
    assert not verify_update(DOMAIN, moved, signature, SIGNER.address)


@pytest.mark.parametrize(
    "domain",
    [
        pytest.param(replace(DOMAIN, chain_id=1), id="other chain"),
        pytest.param(replace(DOMAIN, registry="0x" + "ab" * 20), id="other registry"),
    ],
)
def test_a_signature_moved_to_another_chain_or_contract_fails(domain):
    signature = sign_update(DOMAIN, MESSAGE, SIGNER.key)
    assert not verify_update(domain, MESSAGE, signature, SIGNER.address)


def test_a_tampered_signature_fails():
    signature = bytearray(sign_update(DOMAIN, MESSAGE, SIGNER.key))
    signature[10] ^= 0x01
    assert not verify_update(DOMAIN, MESSAGE, bytes(signature), SIGNER.address)


@pytest.mark.parametrize("signature", [b"", b"\x00" * 64, b"\x00" * 65, b"\xff" * 65])
def test_malformed_signatures_are_reported(signature):
    with pytest.raises(InvalidSignature):
        recover_update_signer(DOMAIN, MESSAGE, signature)
    assert not verify_update(DOMAIN, MESSAGE, signature, SIGNER.address)


def test_messages_out_of_range_are_refused():
    with pytest.raises(ValueError, match="update_hash must be 32 bytes"):
        replace(MESSAGE, update_hash=b"short")
    with pytest.raises(ValueError, match="round must fit in uint32"):
        replace(MESSAGE, round=2**32)
    with pytest.raises(ValueError, match="num_examples must fit in uint64"):
        replace(MESSAGE, num_examples=-1)


@given(
    run_id=st.integers(0, 2**256 - 1),
    round_number=st.integers(0, 2**32 - 1),
    examples=st.integers(0, 2**64 - 1),
)
def test_sign_and_recover_round_trip(run_id, round_number, examples):
    message = replace(MESSAGE, run_id=run_id, round=round_number, num_examples=examples)
    assert recover_update_signer(DOMAIN, message, sign_update(DOMAIN, message, SIGNER.key)) == SIGNER.address


def test_the_registry_computes_the_same_digest_and_signer(registry: Registry):
    domain = registry.signing_domain()
    assert domain == SigningDomain(chain_id=registry.chain.chain_id, registry=registry.address)
    signable = signable_update(domain, MESSAGE)
    assert registry.update_digest(MESSAGE) == keccak256(b"\x19" + signable.version + signable.header + signable.body)

    signature = sign_update(domain, MESSAGE, SIGNER.key)
    on_chain = registry.contract.functions.recoverUpdateSigner(
        MESSAGE.run_id,
        MESSAGE.round,
        MESSAGE.base_model_hash,
        MESSAGE.update_hash,
        MESSAGE.num_examples,
        signature,
    ).call()
    assert on_chain == SIGNER.address
