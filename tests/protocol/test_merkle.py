"""Merkle trees: proofs verify here and in OpenZeppelin's MerkleProof on-chain."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fedledger.chain import Registry, RoundCommitment
from fedledger.hashing import ZERO_HASH, keccak256
from fedledger.merkle import MerkleTree, hash_pair, reward_leaf, update_leaf, verify_proof

leaves = st.lists(st.binary(min_size=32, max_size=32), min_size=1, max_size=40, unique=True)


@given(leaves)
def test_every_leaf_has_a_proof_that_verifies(values):
    tree = MerkleTree(values)
    for leaf in values:
        assert verify_proof(tree.proof(leaf), tree.root, leaf)


@given(leaves, st.data())
def test_a_proof_proves_nothing_else(values, data):
    tree = MerkleTree(values)
    leaf = data.draw(st.sampled_from(values))
    proof = tree.proof(leaf)
    stranger = keccak256(b"not a leaf" + leaf)
    assert not verify_proof(proof, tree.root, stranger)
    if proof:
        index = data.draw(st.integers(0, len(proof) - 1))
        forged = [*proof[:index], keccak256(proof[index]), *proof[index + 1 :]]
        assert not verify_proof(forged, tree.root, leaf)


@given(leaves, st.randoms())
def test_the_root_does_not_depend_on_leaf_order(values, random):
    shuffled = list(values)
    random.shuffle(shuffled)
    assert MerkleTree(shuffled).root == MerkleTree(values).root


def test_small_trees():
    a, b, c = (keccak256(bytes([i])) for i in range(3))
    assert MerkleTree([]).root == ZERO_HASH
    assert MerkleTree([a]).root == a and MerkleTree([a]).proof(a) == []
    assert MerkleTree([a, b]).root == hash_pair(a, b)
    assert hash_pair(a, b) == hash_pair(b, a)
    three = MerkleTree([a, b, c])
    assert all(verify_proof(three.proof(leaf), three.root, leaf) for leaf in (a, b, c))


def test_bad_input_is_refused():
    leaf = keccak256(b"x")
    with pytest.raises(ValueError, match="duplicate leaf"):
        MerkleTree([leaf, leaf])
    with pytest.raises(ValueError, match="32 bytes"):
        MerkleTree([b"short"])
    with pytest.raises(KeyError, match="not in the tree"):
        MerkleTree([leaf]).proof(keccak256(b"y"))


def test_leaves_bind_every_field():
    address = "0x" + "11" * 20
    base = update_leaf(1, 2, address, keccak256(b"u"), 10)
    assert base != update_leaf(2, 2, address, keccak256(b"u"), 10)
    assert base != update_leaf(1, 3, address, keccak256(b"u"), 10)
    assert base != update_leaf(1, 2, "0x" + "22" * 20, keccak256(b"u"), 10)
    assert base != update_leaf(1, 2, address, keccak256(b"v"), 10)
    assert base != update_leaf(1, 2, address, keccak256(b"u"), 11)
    assert reward_leaf(1, 2, address, 5) != reward_leaf(1, 2, address, 6)


class OnChainRounds:
    """Commits one round per tree so that the registry can check proofs against its roots."""

    def __init__(self, coordinator: Registry) -> None:
        self.coordinator = coordinator
        self.run_id, _ = coordinator.start_run(keccak256(b"config"), keccak256(b"model"), 0, planned_rounds=1)
        self.round = 0

    def commit(self, updates_root: bytes) -> int:
        self.round += 1
        commitment = RoundCommitment(keccak256(b"m"), updates_root, ZERO_HASH, keccak256(b"manifest"), 1, 0)
        self.coordinator.commit_round(self.run_id, self.round, commitment)
        return self.round


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.integers(min_value=1, max_value=40), st.data())
def test_openzeppelin_merkle_proof_accepts_our_update_proofs(coordinator: Registry, count, data):
    rounds = OnChainRounds(coordinator)
    round_number = rounds.round + 1
    participants = [f"0x{index + 1:040x}" for index in range(count)]
    entries = [(address, keccak256(address.encode()), 10 + index) for index, address in enumerate(participants)]
    tree = MerkleTree([update_leaf(rounds.run_id, round_number, *entry) for entry in entries])
    rounds.commit(tree.root)

    address, update_hash, examples = data.draw(st.sampled_from(entries))
    proof = tree.proof(update_leaf(rounds.run_id, round_number, address, update_hash, examples))
    committed = coordinator.committed_round(rounds.run_id, round_number)
    assert coordinator.is_update_included(committed, address, update_hash, examples, proof)
    assert not coordinator.is_update_included(committed, address, update_hash, examples + 1, proof)
