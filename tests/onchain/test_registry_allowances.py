"""Run allowances and planned rounds: a coordinator key mints at most what the admin approved in advance."""

from fedledger.chain import Registry, RewardClaim, RoundCommitment
from fedledger.chain.registry import ADMIN_ROLE, COORDINATOR_ROLE
from fedledger.hashing import keccak256
from fedledger.merkle import MerkleTree, reward_leaf

from helpers import reverts, sample_commitment

CONFIG = keccak256(b"run configuration")
INITIAL_MODEL = keccak256(b"initial model")
UINT128_MAX = 2**128 - 1


def test_a_coordinator_starts_with_no_allowance_and_cannot_start_a_paid_run(registry: Registry, actors):
    coordinator = registry.as_sender(actors.coordinator)
    assert coordinator.run_allowance(actors.coordinator) == 0
    with reverts("RunAllowanceExceeded", coordinator=actors.coordinator, budget=300, allowance=0):
        coordinator.start_run(CONFIG, INITIAL_MODEL, 100, 3)
    assert coordinator.run_count() == 0


def test_a_run_that_pays_nothing_needs_no_allowance(registry: Registry, actors):
    coordinator = registry.as_sender(actors.coordinator)
    run_id, _ = coordinator.start_run(CONFIG, INITIAL_MODEL, 0, 3)
    assert coordinator.run(run_id).budget == 0


def test_the_admin_sets_an_allowance_and_each_run_spends_its_budget(registry: Registry, actors):
    receipt = registry.set_run_allowance(actors.coordinator, 1_000)
    (event,) = registry.contract.events.RunAllowanceSet().get_logs(from_block=receipt.block_number)
    assert event["args"] == {"coordinator": actors.coordinator, "previous": 0, "amount": 1_000}

    coordinator = registry.as_sender(actors.coordinator)
    run_id, receipt = coordinator.start_run(CONFIG, INITIAL_MODEL, 100, 4)
    assert coordinator.run_allowance(actors.coordinator) == 600
    run = coordinator.run(run_id)
    assert (run.reward_per_round, run.planned_rounds, run.budget, run.committed_rounds) == (100, 4, 400, 0)
    (event,) = coordinator.contract.events.RunStarted().get_logs(from_block=receipt.block_number)
    assert (event["args"]["rewardPerRound"], event["args"]["plannedRounds"]) == (100, 4)

    with reverts("RunAllowanceExceeded", coordinator=actors.coordinator, budget=700, allowance=600):
        coordinator.start_run(CONFIG, INITIAL_MODEL, 100, 7)
    assert coordinator.run_allowance(actors.coordinator) == 600
    coordinator.start_run(CONFIG, INITIAL_MODEL, 200, 3)
    assert coordinator.run_allowance(actors.coordinator) == 0
    assert coordinator.run_count() == 2


def test_only_the_admin_sets_allowances(registry: Registry, actors):
    registry.grant_coordinator(actors.outsider)
    for sender in (actors.coordinator, actors.outsider):
        with reverts("AccessControlUnauthorizedAccount", account=sender, neededRole=ADMIN_ROLE):
            registry.as_sender(sender).set_run_allowance(sender, 10**30)
    assert registry.run_allowance(actors.coordinator) == registry.run_allowance(actors.outsider) == 0


def test_an_allowance_spent_meanwhile_is_not_granted_again(registry: Registry, actors):
    registry.set_run_allowance(actors.coordinator, 500)
    seen_by_admin = registry.run_allowance(actors.coordinator)
    registry.as_sender(actors.coordinator).start_run(CONFIG, INITIAL_MODEL, 100, 5)

    with reverts("RunAllowanceChanged", coordinator=actors.coordinator, expected=500, actual=0):
        registry.set_run_allowance(actors.coordinator, 300, expected=seen_by_admin)
    assert registry.run_allowance(actors.coordinator) == 0
    registry.set_run_allowance(actors.coordinator, 300, expected=0)
    assert registry.run_allowance(actors.coordinator) == 300


def test_the_zero_address_gets_no_allowance(registry: Registry):
    with reverts("ZeroAddress"):
        registry.set_run_allowance("0x" + "00" * 20, 100, expected=0)


def test_a_run_needs_planned_rounds(coordinator: Registry):
    with reverts("NoPlannedRounds"):
        coordinator.start_run(CONFIG, INITIAL_MODEL, 100, 0)


def test_a_reward_per_round_beyond_128_bits_is_refused(registry: Registry, actors):
    registry.set_run_allowance(actors.coordinator, 2**200)
    coordinator = registry.as_sender(actors.coordinator)
    with reverts("RewardPerRoundTooLarge", rewardPerRound=UINT128_MAX + 1, maximum=UINT128_MAX):
        coordinator.start_run(CONFIG, INITIAL_MODEL, UINT128_MAX + 1, 1)
    run_id, _ = coordinator.start_run(CONFIG, INITIAL_MODEL, UINT128_MAX, 2**32 - 1)
    assert coordinator.run(run_id).budget == UINT128_MAX * (2**32 - 1)
    assert coordinator.run_allowance(actors.coordinator) == 2**200 - UINT128_MAX * (2**32 - 1)


def test_no_round_is_committed_past_the_plan(coordinator: Registry):
    run_id, _ = coordinator.start_run(CONFIG, INITIAL_MODEL, 100, 2)
    with reverts("RoundBeyondPlan", runId=run_id, round=3, plannedRounds=2):
        coordinator.commit_round(run_id, 3, sample_commitment(3))
    coordinator.commit_round(run_id, 1, sample_commitment(1))
    coordinator.commit_round(run_id, 2, sample_commitment(2))
    with reverts("RoundBeyondPlan", runId=run_id, round=3, plannedRounds=2):
        coordinator.commit_round(run_id, 3, sample_commitment(3))
    assert coordinator.run(run_id).committed_rounds == 2


def test_a_revoked_coordinator_cannot_spend_its_allowance(registry: Registry, actors):
    registry.set_run_allowance(actors.coordinator, 1_000)
    registry.chain.transact(registry.contract.functions.revokeRole(COORDINATOR_ROLE, actors.coordinator), actors.admin)
    with reverts("AccessControlUnauthorizedAccount", account=actors.coordinator, neededRole=COORDINATOR_ROLE):
        registry.as_sender(actors.coordinator).start_run(CONFIG, INITIAL_MODEL, 100, 1)
    assert registry.run_allowance(actors.coordinator) == 1_000


def test_a_coordinator_key_makes_the_token_mint_no_more_than_its_allowance(registry: Registry, actors):
    """The coordinator grants every round's whole budget to one registered participant and claims it all."""
    receiver = actors.participants[0]
    registry.add_participant(receiver.address, keccak256(b"meta"))
    allowance, rounds = 900, 3
    registry.set_run_allowance(actors.coordinator, allowance)
    coordinator = registry.as_sender(actors.coordinator)
    run_id, _ = coordinator.start_run(CONFIG, INITIAL_MODEL, allowance // rounds, rounds)

    claimant = registry.as_sender(receiver.address)
    for round_number in range(1, rounds + 1):
        leaf = reward_leaf(run_id, round_number, receiver.address, allowance // rounds)
        tree = MerkleTree([leaf])
        commitment = RoundCommitment(
            keccak256(b"model"), keccak256(b"updates"), tree.root, keccak256(b"manifest"), 1, 0
        )
        coordinator.commit_round(run_id, round_number, commitment)
        claimant.claim([RewardClaim(run_id, round_number, allowance // rounds, tree.proof(leaf))])

    assert registry.token_balance(receiver.address) == allowance
    assert registry.token.functions.totalSupply().call() == allowance
    with reverts("RoundBeyondPlan", runId=run_id, round=rounds + 1, plannedRounds=rounds):
        coordinator.commit_round(run_id, rounds + 1, sample_commitment(rounds + 1))
    with reverts("RunAllowanceExceeded", coordinator=actors.coordinator, budget=1, allowance=0):
        coordinator.start_run(CONFIG, INITIAL_MODEL, 1, 1)
