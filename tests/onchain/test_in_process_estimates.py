"""The in-process EVM estimates gas in two runs of the call: enough for the transaction, no more
than a fifth above what it consumes, and a revert still raises its custom error before anything
is sent."""

from dataclasses import astuple, replace

from fedledger.chain import Chain, Registry, RewardClaim
from fedledger.hashing import keccak256
from fedledger.rounds import reward_proof, rewards_tree

from helpers import participant_key, reverts, sample_commitment


def test_an_estimate_is_enough_and_at_most_a_fifth_above_the_gas_consumed():
    chain = Chain.in_process()
    coordinator = chain.signers[0]
    registry, _ = Registry.deploy(chain, coordinator)
    registry.set_run_allowance(coordinator, 10**24)
    run_id, _ = registry.start_run(keccak256(b"config"), keccak256(b"model"), 10**18, 5)
    for round_number in (1, 2):
        call = registry.contract.functions.commitRound(run_id, round_number, astuple(sample_commitment(round_number)))
        estimate = chain.estimate_gas(call, coordinator)
        receipt = chain.transact(call, coordinator, gas=estimate)
        assert receipt.gas_used <= estimate <= 1.2 * receipt.gas_used + 5_000, (estimate, receipt.gas_used)


def test_a_claim_that_calls_the_token_goes_through_on_its_estimate():
    chain = Chain.in_process()
    coordinator = chain.signers[0]
    claimant = participant_key(5)
    registry, _ = Registry.deploy(chain, coordinator)
    registry.set_run_allowance(coordinator, 10**24)
    registry.add_participant(claimant.address, keccak256(b"site"))
    run_id, _ = registry.start_run(keccak256(b"config"), keccak256(b"model"), 10**18, 1)
    rewards = {claimant.address: 10**18}
    registry.commit_round(run_id, 1, replace(sample_commitment(1), rewards_root=rewards_tree(run_id, 1, rewards).root))
    chain.send_value(coordinator, claimant.address, 10**17)
    sender = registry.as_sender(chain.add_signer(claimant))
    sender.claim([RewardClaim(run_id, 1, 10**18, reward_proof(run_id, 1, rewards, claimant.address))])
    assert registry.token_balance(claimant.address) == 10**18


def test_a_call_that_reverts_raises_its_error_and_mines_nothing():
    chain = Chain.in_process()
    coordinator = chain.signers[0]
    registry, _ = Registry.deploy(chain, coordinator)
    registry.set_run_allowance(coordinator, 10**24)
    run_id, _ = registry.start_run(keccak256(b"config"), keccak256(b"model"), 10**18, 5)
    block = chain.block_number
    with reverts("RoundOutOfSequence", expected=1, given=3):
        registry.commit_round(run_id, 3, sample_commitment(3))
    assert chain.block_number == block
