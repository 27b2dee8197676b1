"""Reward claims: Merkle-proven against the round's rewards root, once, by registered participants."""

import pytest

from fedledger.chain import Registry, RewardClaim, RoundCommitment
from fedledger.hashing import keccak256
from fedledger.merkle import MerkleTree, reward_leaf

from helpers import reverts

BUDGET = 1_000
ROUNDS = 2


class RewardedRound:
    """A run whose rounds grant rewards to the test participants."""

    def __init__(self, registry: Registry, coordinator: Registry, actors) -> None:
        self.registry = registry
        self.coordinator = coordinator
        self.accounts = actors.participants
        for account in self.accounts:
            registry.add_participant(account.address, keccak256(b"meta"))
        self.run_id, _ = coordinator.start_run(keccak256(b"config"), keccak256(b"model 0"), BUDGET, ROUNDS)
        self.grants: dict[int, dict[str, int]] = {}

    def commit(self, round_number: int, grants: dict[str, int]) -> MerkleTree:
        tree = MerkleTree(
            [reward_leaf(self.run_id, round_number, address, amount) for address, amount in grants.items()]
        )
        commitment = RoundCommitment(
            model_hash=keccak256(b"model %d" % round_number),
            updates_root=keccak256(b"updates"),
            rewards_root=tree.root,
            manifest_hash=keccak256(b"manifest"),
            accepted=len(grants),
            rejected=0,
        )
        self.coordinator.commit_round(self.run_id, round_number, commitment)
        self.grants[round_number] = grants
        return tree

    def proof(self, tree: MerkleTree, round_number: int, address: str) -> list[bytes]:
        return tree.proof(reward_leaf(self.run_id, round_number, address, self.grants[round_number][address]))

    def as_participant(self, index: int) -> Registry:
        return self.registry.as_sender(self.accounts[index].address)


@pytest.fixture
def rewarded(registry: Registry, coordinator: Registry, actors) -> RewardedRound:
    return RewardedRound(registry, coordinator, actors)


def grants_for(rewarded: RewardedRound, amounts: list[int]) -> dict[str, int]:
    return {account.address: amount for account, amount in zip(rewarded.accounts, amounts, strict=False)}


def test_claim_mints_the_granted_amount_once(rewarded: RewardedRound):
    grants = grants_for(rewarded, [400, 300, 200, 100])
    tree = rewarded.commit(1, grants)
    address = rewarded.accounts[0].address

    receipt = rewarded.as_participant(0).claim([RewardClaim(rewarded.run_id, 1, 400, rewarded.proof(tree, 1, address))])

    assert rewarded.registry.token_balance(address) == 400
    assert rewarded.registry.has_claimed(rewarded.run_id, 1, address)
    assert not rewarded.registry.has_claimed(rewarded.run_id, 2, address)
    assert rewarded.registry.claimed_total(rewarded.run_id, 1) == 400
    (event,) = rewarded.registry.contract.events.RewardClaimed().get_logs(from_block=receipt.block_number)
    assert event["args"] == {"runId": rewarded.run_id, "round": 1, "participant": address, "amount": 400}
    with reverts("RewardAlreadyClaimed", runId=rewarded.run_id, round=1, participant=address):
        rewarded.as_participant(0).claim([RewardClaim(rewarded.run_id, 1, 400, rewarded.proof(tree, 1, address))])
    assert rewarded.registry.token_balance(address) == 400


def test_every_participant_claims_its_own_amount(rewarded: RewardedRound):
    amounts = [400, 300, 200, 100]
    tree = rewarded.commit(1, grants_for(rewarded, amounts))
    for index, amount in enumerate(amounts):
        address = rewarded.accounts[index].address
        rewarded.as_participant(index).claim(
            [RewardClaim(rewarded.run_id, 1, amount, rewarded.proof(tree, 1, address))]
        )
        assert rewarded.registry.token_balance(address) == amount
    assert rewarded.registry.claimed_total(rewarded.run_id, 1) == BUDGET


def test_a_wrong_amount_or_someone_elses_proof_is_refused(rewarded: RewardedRound):
    tree = rewarded.commit(1, grants_for(rewarded, [400, 300]))
    mine, theirs = rewarded.accounts[0].address, rewarded.accounts[1].address
    with reverts("InvalidRewardProof", runId=rewarded.run_id, round=1, participant=mine, amount=500):
        rewarded.as_participant(0).claim([RewardClaim(rewarded.run_id, 1, 500, rewarded.proof(tree, 1, mine))])
    with reverts("InvalidRewardProof", participant=mine, amount=300):
        rewarded.as_participant(0).claim([RewardClaim(rewarded.run_id, 1, 300, rewarded.proof(tree, 1, theirs))])
    assert rewarded.registry.token_balance(mine) == 0


def test_a_proof_from_another_round_is_refused(rewarded: RewardedRound):
    grants = grants_for(rewarded, [400, 300])
    first = rewarded.commit(1, grants)
    rewarded.commit(2, grants)
    address = rewarded.accounts[0].address
    with reverts("InvalidRewardProof", round=2):
        rewarded.as_participant(0).claim([RewardClaim(rewarded.run_id, 2, 400, rewarded.proof(first, 1, address))])


def test_unregistered_claimant_is_refused(rewarded: RewardedRound, actors):
    outsider = actors.outsider
    tree = rewarded.commit(1, {outsider: 500, rewarded.accounts[0].address: 500})
    proof = tree.proof(reward_leaf(rewarded.run_id, 1, outsider, 500))
    with reverts("UnknownParticipant", participant=outsider):
        rewarded.registry.as_sender(outsider).claim([RewardClaim(rewarded.run_id, 1, 500, proof)])


def test_deactivated_participant_cannot_claim(rewarded: RewardedRound):
    tree = rewarded.commit(1, grants_for(rewarded, [400, 300]))
    address = rewarded.accounts[0].address
    rewarded.registry.deactivate_participant(address)
    with reverts("ParticipantNotActive", participant=address):
        rewarded.as_participant(0).claim([RewardClaim(rewarded.run_id, 1, 400, rewarded.proof(tree, 1, address))])


def test_claims_need_a_committed_round_and_a_positive_amount(rewarded: RewardedRound):
    tree = rewarded.commit(1, grants_for(rewarded, [400]))
    participant = rewarded.as_participant(0)
    proof = rewarded.proof(tree, 1, rewarded.accounts[0].address)
    with reverts("RoundNotCommitted", runId=rewarded.run_id, round=2):
        participant.claim([RewardClaim(rewarded.run_id, 2, 400, proof)])
    with reverts("RunNotStarted", runId=99):
        participant.claim([RewardClaim(99, 1, 400, proof)])
    with reverts("NothingToClaim"):
        participant.claim([RewardClaim(rewarded.run_id, 1, 0, proof)])


def test_claims_never_exceed_the_round_budget(rewarded: RewardedRound):
    """Even a coordinator that grants more than the budget cannot make the registry mint it."""
    tree = rewarded.commit(1, grants_for(rewarded, [700, 600]))
    first, second = rewarded.accounts[0].address, rewarded.accounts[1].address
    rewarded.as_participant(0).claim([RewardClaim(rewarded.run_id, 1, 700, rewarded.proof(tree, 1, first))])
    with reverts("RewardBudgetExceeded", runId=rewarded.run_id, round=1, requested=600, remaining=300):
        rewarded.as_participant(1).claim([RewardClaim(rewarded.run_id, 1, 600, rewarded.proof(tree, 1, second))])
    assert rewarded.registry.claimed_total(rewarded.run_id, 1) == 700


def test_only_the_registry_mints_tokens(registry: Registry, actors):
    assert registry.token.functions.minter().call() == registry.address
    with reverts("UnauthorizedMinter", caller=actors.admin):
        registry.chain.transact(registry.token.functions.mint(actors.admin, 1), actors.admin)
    assert registry.token.functions.totalSupply().call() == 0


def test_many_rounds_are_claimed_and_minted_in_one_transaction(rewarded: RewardedRound):
    first = rewarded.commit(1, grants_for(rewarded, [400, 300]))
    second = rewarded.commit(2, grants_for(rewarded, [250, 500]))
    address = rewarded.accounts[0].address
    claims = [
        RewardClaim(rewarded.run_id, 1, 400, rewarded.proof(first, 1, address)),
        RewardClaim(rewarded.run_id, 2, 250, rewarded.proof(second, 2, address)),
    ]

    receipt = rewarded.as_participant(0).claim(claims)

    assert rewarded.registry.token_balance(address) == 650
    events = rewarded.registry.contract.events.RewardClaimed().get_logs(from_block=receipt.block_number)
    assert [(event["args"]["round"], event["args"]["amount"]) for event in events] == [(1, 400), (2, 250)]
    assert all(rewarded.registry.has_claimed(rewarded.run_id, round_number, address) for round_number in (1, 2))
    assert rewarded.registry.claimed_total(rewarded.run_id, 2) == 250


def test_a_batch_with_one_bad_claim_claims_nothing(rewarded: RewardedRound):
    first = rewarded.commit(1, grants_for(rewarded, [400, 300]))
    second = rewarded.commit(2, grants_for(rewarded, [250, 500]))
    address = rewarded.accounts[0].address
    participant = rewarded.as_participant(0)
    participant.claim([RewardClaim(rewarded.run_id, 1, 400, rewarded.proof(first, 1, address))])
    with reverts("RewardAlreadyClaimed", runId=rewarded.run_id, round=1, participant=address):
        participant.claim(
            [
                RewardClaim(rewarded.run_id, 2, 250, rewarded.proof(second, 2, address)),
                RewardClaim(rewarded.run_id, 1, 400, rewarded.proof(first, 1, address)),
            ]
        )
    assert not rewarded.registry.has_claimed(rewarded.run_id, 2, address)
    assert rewarded.registry.token_balance(address) == 400
    with reverts("NothingToClaim"):
        participant.claim([])


def test_a_claim_against_a_record_that_was_not_committed_is_refused(rewarded: RewardedRound):
    """A participant cannot bring its own rewards root: the record must hash to the stored commitment."""
    rewarded.commit(1, grants_for(rewarded, [400, 300]))
    address = rewarded.accounts[0].address
    greedy = MerkleTree([reward_leaf(rewarded.run_id, 1, address, BUDGET)])
    committed = rewarded.registry.committed_round(rewarded.run_id, 1).commitment
    forged = RoundCommitment(**{**vars(committed), "rewards_root": greedy.root})
    claim = RewardClaim(
        rewarded.run_id, 1, BUDGET, greedy.proof(reward_leaf(rewarded.run_id, 1, address, BUDGET)), forged
    )
    with reverts("RoundRecordMismatch", runId=rewarded.run_id, round=1):
        rewarded.as_participant(0).claim([claim])
    uncommitted = RewardClaim(rewarded.run_id, 2, 400, [], committed)
    with reverts("RoundNotCommitted", runId=rewarded.run_id, round=2):
        rewarded.as_participant(0).claim([uncommitted])
    with reverts("RunNotStarted", runId=99):
        rewarded.as_participant(0).claim([RewardClaim(99, 1, 400, [], committed)])
