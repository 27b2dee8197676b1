"""The privacy budget on-chain: a run's (ε, δ) recorded by startRun, every commit's ε spent within
it, and the admin's limit on what any run may be started with."""

from dataclasses import replace

from fedledger.chain import Registry
from fedledger.hashing import keccak256
from fedledger.privacy import DELTA_SCALE, EPSILON_SCALE, PrivacyBudget

from helpers import reverts, sample_commitment

CONFIG = keccak256(b"private run configuration")
INITIAL_MODEL = keccak256(b"initial model")
ROUNDS = 3
BUDGET = PrivacyBudget(3 * EPSILON_SCALE, DELTA_SCALE // 100_000)  # ε = 3, δ = 1e-5


def spent(round_number: int, epsilon: int):
    return replace(sample_commitment(round_number), epsilon_spent=epsilon)


def test_a_run_records_its_budget_and_every_rounds_epsilon(coordinator: Registry):
    run_id, receipt = coordinator.start_run(CONFIG, INITIAL_MODEL, 1_000, ROUNDS, BUDGET)
    run = coordinator.run(run_id)
    assert (run.epsilon_budget, run.delta_budget) == (BUDGET.epsilon, BUDGET.delta)
    (started,) = coordinator.contract.events.RunStarted().get_logs(from_block=receipt.block_number)
    assert (started["args"]["epsilonBudget"], started["args"]["deltaBudget"]) == (BUDGET.epsilon, BUDGET.delta)

    for round_number, epsilon in ((1, 1_700_000), (2, 2_500_000), (3, BUDGET.epsilon)):
        receipt = coordinator.commit_round(run_id, round_number, spent(round_number, epsilon))
        assert coordinator.committed_round(run_id, round_number).commitment.epsilon_spent == epsilon
        (event,) = coordinator.contract.events.RoundCommitted().get_logs(from_block=receipt.block_number)
        assert event["args"]["record"]["epsilonSpent"] == epsilon


def test_a_commit_past_the_budget_reverts_naming_the_numbers(coordinator: Registry):
    run_id, _ = coordinator.start_run(CONFIG, INITIAL_MODEL, 1_000, ROUNDS, BUDGET)
    coordinator.commit_round(run_id, 1, spent(1, 2_000_000))
    over = BUDGET.epsilon + 1
    with reverts("PrivacyBudgetExceeded", runId=run_id, round=2, spent=over, budget=BUDGET.epsilon):
        coordinator.commit_round(run_id, 2, spent(2, over))
    assert coordinator.run(run_id).committed_rounds == 1


def test_a_run_without_a_budget_commits_no_epsilon(coordinator: Registry):
    run_id, _ = coordinator.start_run(CONFIG, INITIAL_MODEL, 1_000, ROUNDS)
    assert (coordinator.run(run_id).epsilon_budget, coordinator.run(run_id).delta_budget) == (0, 0)
    with reverts("PrivacyBudgetExceeded", runId=run_id, round=1, spent=1, budget=0):
        coordinator.commit_round(run_id, 1, spent(1, 1))
    coordinator.commit_round(run_id, 1, sample_commitment(1))


def test_a_budget_gives_both_epsilon_and_delta(coordinator: Registry):
    with reverts("InvalidPrivacyBudget", epsilonBudget=BUDGET.epsilon, deltaBudget=0):
        coordinator.start_run(CONFIG, INITIAL_MODEL, 1_000, ROUNDS, PrivacyBudget(BUDGET.epsilon, 0))


def test_the_admins_limit_refuses_runs_without_a_budget_and_above_it(registry: Registry, coordinator: Registry, actors):
    assert registry.privacy_limit() == PrivacyBudget(0, 0)
    receipt = registry.set_privacy_limit(8 * EPSILON_SCALE, DELTA_SCALE // 10_000)
    (event,) = registry.contract.events.PrivacyLimitSet().get_logs(from_block=receipt.block_number)
    assert event["args"] == {
        "previousEpsilon": 0,
        "previousDelta": 0,
        "maxEpsilon": 8 * EPSILON_SCALE,
        "maxDelta": DELTA_SCALE // 10_000,
    }
    assert registry.privacy_limit() == PrivacyBudget(8 * EPSILON_SCALE, DELTA_SCALE // 10_000)
    with reverts("PrivacyBudgetRequired"):
        coordinator.start_run(CONFIG, INITIAL_MODEL, 1_000, ROUNDS)
    above = PrivacyBudget(9 * EPSILON_SCALE, BUDGET.delta)
    with reverts("PrivacyBudgetAboveLimit", epsilonBudget=above.epsilon, maxEpsilon=8 * EPSILON_SCALE):
        coordinator.start_run(CONFIG, INITIAL_MODEL, 1_000, ROUNDS, above)
    loose_delta = PrivacyBudget(BUDGET.epsilon, DELTA_SCALE // 1_000)
    with reverts("PrivacyBudgetAboveLimit", deltaBudget=loose_delta.delta, maxDelta=DELTA_SCALE // 10_000):
        coordinator.start_run(CONFIG, INITIAL_MODEL, 1_000, ROUNDS, loose_delta)
    run_id, _ = coordinator.start_run(CONFIG, INITIAL_MODEL, 1_000, ROUNDS, BUDGET)
    assert coordinator.run(run_id).epsilon_budget == BUDGET.epsilon
    registry.set_privacy_limit(0, 0)
    coordinator.start_run(CONFIG, INITIAL_MODEL, 1_000, ROUNDS)


def test_only_the_admin_sets_the_limit_and_it_gives_both_parts(registry: Registry, coordinator: Registry, actors):
    with reverts("AccessControlUnauthorizedAccount", account=actors.coordinator):
        coordinator.set_privacy_limit(EPSILON_SCALE, DELTA_SCALE // 100_000)
    with reverts("InvalidPrivacyBudget", epsilonBudget=EPSILON_SCALE, deltaBudget=0):
        registry.set_privacy_limit(EPSILON_SCALE, 0)
