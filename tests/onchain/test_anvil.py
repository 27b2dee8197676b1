"""The registry on a real anvil node over JSON-RPC, and a chain that survives a restart."""

import pytest

from fedledger.chain import Chain, Registry
from fedledger.chain.anvil import AnvilNode
from fedledger.hashing import keccak256

from helpers import participant_key, reverts, sample_commitment

pytestmark = pytest.mark.anvil


def test_the_registry_works_over_json_rpc_and_survives_a_restart(anvil: AnvilNode):
    chain = Chain.connect(anvil.rpc_url)
    admin = chain.add_signer(anvil.dev_accounts()[0])
    registry, _ = Registry.deploy(chain, admin)
    participant = participant_key(0).address
    registry.add_participant(participant, keccak256(b"meta"))
    registry.set_run_allowance(admin, 100 * 3)
    run_id, _ = registry.start_run(keccak256(b"config"), keccak256(b"model 0"), 100, planned_rounds=3)
    registry.commit_round(run_id, 1, sample_commitment(1))
    with reverts("RoundOutOfSequence", runId=run_id, expected=2, given=3):
        registry.commit_round(run_id, 3, sample_commitment(3))
    outsider = chain.add_signer(anvil.dev_accounts()[1])
    with reverts("AccessControlUnauthorizedAccount", account=outsider):
        registry.as_sender(outsider).add_participant(participant_key(1).address, keccak256(b"meta"))
    block = chain.block_number

    anvil.stop()
    anvil.start()

    chain = Chain.connect(anvil.rpc_url)
    chain.add_signer(anvil.dev_accounts()[0])
    restored = Registry(chain, registry.address, admin)
    assert chain.block_number == block
    assert restored.participant(participant).active
    assert restored.committed_round(run_id, 1).commitment == sample_commitment(1)
    assert len(restored.contract.events.RoundCommitted().get_logs(from_block=0)) == 1
    restored.commit_round(run_id, 2, sample_commitment(2))
    assert restored.run(run_id).committed_rounds == 2
