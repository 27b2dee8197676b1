"""Merkle trees whose proofs OpenZeppelin's ``MerkleProof.verify`` accepts.

The tree is built the way OpenZeppelin's ``StandardMerkleTree`` builds it: leaves are sorted,
laid out as the leaves of a complete binary tree stored in an array, and each inner node is the
Keccak-256 of its two children in ascending order. Leaves are double-hashed ABI encodings, so a
leaf can never be mistaken for an inner node.
"""

from collections.abc import Sequence

from eth_abi import encode

from fedledger.hashing import HASH_SIZE, ZERO_HASH, keccak256


def hash_pair(left: bytes, right: bytes) -> bytes:
    """The parent of two nodes: Keccak-256 of the smaller followed by the larger."""
    return keccak256(left + right if left <= right else right + left)


def abi_leaf(types: Sequence[str], values: Sequence[object]) -> bytes:
    """``keccak256(bytes.concat(keccak256(abi.encode(values))))``, as Solidity computes it."""
    return keccak256(keccak256(encode(list(types), list(values))))


def update_leaf(run_id: int, round_number: int, participant: str, update_hash: bytes, num_examples: int) -> bytes:
    """The leaf of an accepted update in a round's ``updatesRoot``."""
    return abi_leaf(
        ("uint256", "uint32", "address", "bytes32", "uint64"),
        (run_id, round_number, participant, update_hash, num_examples),
    )


def reward_leaf(run_id: int, round_number: int, participant: str, amount: int) -> bytes:
    """The leaf of a reward in a round's ``rewardsRoot``; the registry's ``claim`` checks this leaf."""
    return abi_leaf(("uint256", "uint32", "address", "uint256"), (run_id, round_number, participant, amount))


class MerkleTree:
    """A Merkle tree over distinct 32-byte leaves.

    The tree of no leaves has the all-zero root (and no proofs); the tree of one leaf has that
    leaf as its root and an empty proof.
    """

    def __init__(self, leaves: Sequence[bytes]) -> None:
        for leaf in leaves:
            if len(leaf) != HASH_SIZE:
                raise ValueError(f"a leaf is {HASH_SIZE} bytes, got {len(leaf)}")
        ordered = sorted(leaves)
        if len(set(ordered)) != len(ordered):
            raise ValueError("duplicate leaf: every leaf of a tree must be distinct")
        count = len(ordered)
        self._nodes: list[bytes] = [ZERO_HASH] * max(2 * count - 1, 0)
        self._position: dict[bytes, int] = {}
        for offset, leaf in enumerate(ordered):
            index = len(self._nodes) - 1 - offset
            self._nodes[index] = leaf
            self._position[leaf] = index
        for index in range(len(self._nodes) - count - 1, -1, -1):
            self._nodes[index] = hash_pair(self._nodes[2 * index + 1], self._nodes[2 * index + 2])

    def __len__(self) -> int:
        return len(self._position)

    def __contains__(self, leaf: object) -> bool:
        return leaf in self._position

    @property
    def root(self) -> bytes:
        return self._nodes[0] if self._nodes else ZERO_HASH

    def proof(self, leaf: bytes) -> list[bytes]:
        """The sibling hashes from ``leaf`` up to the root.

        Raises:
            KeyError: ``leaf`` is not in the tree.
        """
        if leaf not in self._position:
            raise KeyError(f"leaf 0x{leaf.hex()} is not in the tree")
        index = self._position[leaf]
        siblings = []
        while index > 0:
            siblings.append(self._nodes[index - 1 if index % 2 == 0 else index + 1])
            index = (index - 1) // 2
        return siblings


def verify_proof(proof: Sequence[bytes], root: bytes, leaf: bytes) -> bool:
    """Whether ``proof`` proves ``leaf`` against ``root``, exactly as ``MerkleProof.verify`` decides."""
    node = leaf
    for sibling in proof:
        node = hash_pair(node, sibling)
    return node == root
