"""The participant allow-list: who may change it, what it records, and history for audits."""

from fedledger.chain import Registry
from fedledger.chain.registry import ADMIN_ROLE
from fedledger.hashing import keccak256

from helpers import reverts

METADATA = keccak256(b"site metadata")


def test_admin_adds_a_participant_and_the_record_is_readable(registry: Registry, actors):
    address = actors.participants[0].address
    receipt = registry.add_participant(address, METADATA)

    record = registry.participant(address)
    assert record is not None
    assert record.metadata_hash == METADATA
    assert record.registered_at_block == receipt.block_number
    assert record.active
    (event,) = registry.contract.events.ParticipantAdded().get_logs(from_block=receipt.block_number)
    assert event["args"] == {"participant": address, "metadataHash": METADATA}


def test_participants_are_listed_in_registration_order(registry: Registry, actors):
    for account in reversed(actors.participants):
        registry.add_participant(account.address, METADATA)
    listed = [record.address for record in registry.participants()]
    assert listed == [account.address for account in reversed(actors.participants)]


def test_unknown_address_has_no_record(registry: Registry, actors):
    assert registry.participant(actors.outsider) is None
    assert registry.participants() == []


def test_non_admin_cannot_add(registry: Registry, actors):
    for sender in (actors.outsider, actors.coordinator):
        with reverts("AccessControlUnauthorizedAccount", account=sender, neededRole=ADMIN_ROLE):
            registry.as_sender(sender).add_participant(actors.participants[0].address, METADATA)


def test_non_admin_cannot_deactivate(registry: Registry, actors):
    address = actors.participants[0].address
    registry.add_participant(address, METADATA)
    with reverts("AccessControlUnauthorizedAccount", account=actors.outsider, neededRole=ADMIN_ROLE):
        registry.as_sender(actors.outsider).deactivate_participant(address)
    assert registry.participant(address).active


def test_adding_twice_reverts(registry: Registry, actors):
    address = actors.participants[0].address
    registry.add_participant(address, METADATA)
    with reverts("ParticipantAlreadyRegistered", participant=address):
        registry.add_participant(address, keccak256(b"other metadata"))
    assert registry.participant(address).metadata_hash == METADATA


def test_zero_address_is_refused(registry: Registry):
    with reverts("ZeroAddress"):
        registry.add_participant("0x" + "00" * 20, METADATA)


def test_deactivation_is_final_and_keeps_the_record(registry: Registry, actors):
    address = actors.participants[0].address
    registry.add_participant(address, METADATA)
    receipt = registry.deactivate_participant(address)

    record = registry.participant(address)
    assert not record.active
    assert record.deactivated_at_block == receipt.block_number
    with reverts("ParticipantNotActive", participant=address):
        registry.deactivate_participant(address)
    with reverts("ParticipantAlreadyRegistered", participant=address):
        registry.add_participant(address, METADATA)
    (event,) = registry.contract.events.ParticipantDeactivated().get_logs(from_block=receipt.block_number)
    assert event["args"]["participant"] == address


def test_deactivating_an_unknown_address_reverts(registry: Registry, actors):
    with reverts("UnknownParticipant", participant=actors.outsider):
        registry.deactivate_participant(actors.outsider)


def test_active_at_block_follows_registration_and_deactivation(registry: Registry, actors):
    address = actors.participants[0].address
    added = registry.add_participant(address, METADATA).block_number
    registry.add_participant(actors.participants[1].address, METADATA)
    removed = registry.deactivate_participant(address).block_number

    assert not registry.is_active_at(address, added - 1)
    assert registry.is_active_at(address, added)
    assert registry.is_active_at(address, removed - 1)
    assert not registry.is_active_at(address, removed)
    assert not registry.is_active_at(actors.outsider, removed)
