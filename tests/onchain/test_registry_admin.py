"""The admin key (one holder, handed over in two steps with a delay), and telling a registry from other contracts."""

import pytest

from fedledger.chain import Chain, ChainError, PendingAdmin, Registry
from fedledger.chain.registry import ADMIN_ROLE, DEFAULT_ADMIN_TRANSFER_DELAY, REGISTRY_INTERFACE_ID
from fedledger.hashing import keccak256

from helpers import participant_key, reverts

ERC165_ID = bytes.fromhex("01ffc9a7")
DELAY = 3_600


def pass_time(chain: Chain, seconds: int) -> None:
    """Mine the in-process chain's next block ``seconds`` after its latest one."""
    latest = chain.w3.eth.get_block("latest")["timestamp"]
    chain.w3.provider.ethereum_tester.time_travel(latest + seconds)


@pytest.fixture
def slow_registry(chain: Chain, actors) -> Registry:
    """A registry whose admin role takes ``DELAY`` seconds to hand over; this handle sends as the admin."""
    deployed, _ = Registry.deploy(chain, actors.admin, coordinator=actors.coordinator, admin_transfer_delay=DELAY)
    return deployed


def test_the_deployment_names_one_admin_and_the_transfer_delay(registry: Registry, actors):
    assert registry.admin() == actors.admin
    assert registry.admin_transfer_delay() == DEFAULT_ADMIN_TRANSFER_DELAY == 86_400
    assert registry.pending_admin() is None
    assert registry.is_admin(actors.admin) and not registry.is_admin(actors.coordinator)
    assert registry.is_coordinator(actors.coordinator) and not registry.is_coordinator(actors.admin)


def test_the_admin_role_cannot_be_granted_or_revoked_directly(registry: Registry, actors):
    with reverts("AccessControlEnforcedDefaultAdminRules"):
        registry.chain.transact(registry.contract.functions.grantRole(ADMIN_ROLE, actors.outsider), actors.admin)
    with reverts("AccessControlEnforcedDefaultAdminRules"):
        registry.chain.transact(registry.contract.functions.revokeRole(ADMIN_ROLE, actors.admin), actors.admin)
    assert registry.admin() == actors.admin


def test_the_new_admin_accepts_only_after_the_delay(slow_registry: Registry, actors):
    scheduled, receipt = slow_registry.begin_admin_transfer(actors.outsider)
    started_at = slow_registry.chain.w3.eth.get_block(receipt.block_number)["timestamp"]
    assert scheduled == PendingAdmin(actors.outsider, started_at + DELAY)
    assert slow_registry.pending_admin() == scheduled
    (event,) = slow_registry.contract.events.DefaultAdminTransferScheduled().get_logs(from_block=receipt.block_number)
    assert event["args"] == {"newAdmin": actors.outsider, "acceptSchedule": started_at + DELAY}

    new_admin = slow_registry.as_sender(actors.outsider)
    with reverts("AccessControlEnforcedDefaultAdminDelay", schedule=started_at + DELAY):
        new_admin.accept_admin_transfer()
    assert slow_registry.admin() == actors.admin

    pass_time(slow_registry.chain, DELAY + 1)
    new_admin.accept_admin_transfer()
    assert slow_registry.admin() == actors.outsider
    assert slow_registry.pending_admin() is None
    new_admin.set_run_allowance(actors.coordinator, 100)
    for write in (
        lambda: slow_registry.set_run_allowance(actors.coordinator, 200),
        lambda: slow_registry.add_participant(participant_key(0).address, keccak256(b"meta")),
    ):
        with reverts("AccessControlUnauthorizedAccount", account=actors.admin, neededRole=ADMIN_ROLE):
            write()


def test_only_the_pending_admin_accepts(slow_registry: Registry, actors):
    slow_registry.begin_admin_transfer(actors.outsider)
    pass_time(slow_registry.chain, DELAY + 1)
    for sender in (actors.coordinator, actors.admin):
        with reverts("AccessControlInvalidDefaultAdmin", defaultAdmin=sender):
            slow_registry.as_sender(sender).accept_admin_transfer()
    assert slow_registry.admin() == actors.admin


def test_only_the_admin_begins_or_cancels_a_transfer(slow_registry: Registry, actors):
    coordinator = slow_registry.as_sender(actors.coordinator)
    with reverts("AccessControlUnauthorizedAccount", account=actors.coordinator, neededRole=ADMIN_ROLE):
        coordinator.begin_admin_transfer(actors.coordinator)
    slow_registry.begin_admin_transfer(actors.outsider)
    with reverts("AccessControlUnauthorizedAccount", account=actors.coordinator, neededRole=ADMIN_ROLE):
        coordinator.cancel_admin_transfer()
    assert slow_registry.pending_admin() is not None


def test_a_cancelled_transfer_cannot_be_accepted(slow_registry: Registry, actors):
    slow_registry.begin_admin_transfer(actors.outsider)
    receipt = slow_registry.cancel_admin_transfer()
    assert slow_registry.pending_admin() is None
    assert slow_registry.contract.events.DefaultAdminTransferCanceled().get_logs(from_block=receipt.block_number)
    pass_time(slow_registry.chain, DELAY + 1)
    with reverts("AccessControlInvalidDefaultAdmin", defaultAdmin=actors.outsider):
        slow_registry.as_sender(actors.outsider).accept_admin_transfer()
    assert slow_registry.admin() == actors.admin


def test_a_registry_needs_an_admin_and_a_coordinator(chain: Chain, actors):
    zero = "0x" + "00" * 20
    with reverts("AccessControlInvalidDefaultAdmin", defaultAdmin=zero):
        Registry.deploy(chain, actors.admin, admin=zero, coordinator=actors.coordinator)
    with reverts("ZeroAddress"):
        Registry.deploy(chain, actors.admin, coordinator=zero)


def test_the_registry_reports_its_interfaces_through_erc165(registry: Registry):
    supports = registry.contract.functions.supportsInterface
    assert supports(REGISTRY_INTERFACE_ID).call()
    assert supports(ERC165_ID).call()
    assert not supports(bytes.fromhex("ffffffff")).call()


def test_the_token_contract_is_not_taken_for_a_registry(registry: Registry):
    with pytest.raises(ChainError) as caught:
        Registry(registry.chain, registry.token_address)
    message = str(caught.value)
    assert f"{registry.token_address} on in-process is not a FedLedger registry of this version" in message
    assert "0x" + REGISTRY_INTERFACE_ID.hex() in message


def test_an_account_without_code_is_not_taken_for_a_registry(chain: Chain, actors):
    with pytest.raises(ChainError, match=f"{actors.outsider} is not a FedLedger registry: no contract there"):
        Registry(chain, actors.outsider)
