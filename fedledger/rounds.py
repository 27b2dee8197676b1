"""How a judged round becomes its record: rewards, Merkle roots, the manifest and the commitment.

The coordinator seals every round with :func:`seal`; an auditor recomputes the same rewards and
roots from the stored manifest with the functions below, so both sides share one definition.
"""

from collections.abc import Iterable, Mapping
from dataclasses import replace

from fedledger.chain.registry import RoundCommitment
from fedledger.hashing import from_hex, to_hex
from fedledger.manifest import RoundManifest, UpdateEntry
from fedledger.merkle import MerkleTree, reward_leaf, update_leaf
from fedledger.rewards import RewardRule


def grant_rewards(rule: RewardRule, manifest: RoundManifest) -> dict[str, int]:
    """What ``rule`` grants each participant whose update the strategy aggregated (nothing if the
    round failed; an accepted update the strategy left out earns nothing)."""
    if manifest.outcome != "aggregated":
        return {}
    return rule.amounts(manifest.valued)


def updates_tree(run_id: int, round_number: int, accepted: Iterable[UpdateEntry]) -> MerkleTree:
    """The tree whose root is the round's ``updatesRoot``: one leaf per accepted update."""
    return MerkleTree(
        [
            update_leaf(run_id, round_number, entry.participant, from_hex(entry.update_hash), entry.num_examples)
            for entry in accepted
        ]
    )


def rewards_tree(run_id: int, round_number: int, rewards: Mapping[str, int]) -> MerkleTree:
    """The tree whose root is the round's ``rewardsRoot``: one leaf per non-zero reward."""
    return MerkleTree(
        [reward_leaf(run_id, round_number, participant, amount) for participant, amount in rewards.items() if amount]
    )


def reward_proof(run_id: int, round_number: int, rewards: Mapping[str, int], participant: str) -> list[bytes]:
    """The Merkle proof ``claim`` takes for ``participant``'s reward, from the tree of ``rewards``."""
    leaf = reward_leaf(run_id, round_number, participant, rewards[participant])
    return rewards_tree(run_id, round_number, rewards).proof(leaf)


def seal(draft: RoundManifest, rule: RewardRule) -> tuple[RoundManifest, RoundCommitment]:
    """Grant rewards, build both roots and return the final manifest and what to commit on-chain.

    ``draft`` holds everything else: the entries (rewards still zero), hashes, strategy, metrics.
    """
    rewards = grant_rewards(rule, draft)
    entries = tuple(
        replace(entry, reward=rewards.get(entry.participant or "", 0) if entry.status == "accepted" else 0)
        for entry in draft.updates
    )
    manifest = replace(draft, updates=entries)
    updates_root = updates_tree(draft.run_id, draft.round, manifest.accepted).root
    rewards_root = rewards_tree(draft.run_id, draft.round, rewards).root
    manifest = replace(manifest, updates_root=to_hex(updates_root), rewards_root=to_hex(rewards_root))
    commitment = RoundCommitment(
        model_hash=from_hex(manifest.model_hash),
        updates_root=updates_root,
        rewards_root=rewards_root,
        manifest_hash=manifest.manifest_hash,
        accepted=len(manifest.accepted),
        rejected=len(manifest.rejected),
        epsilon_spent=0 if manifest.privacy is None else manifest.privacy.epsilon_spent,
    )
    return manifest, commitment
