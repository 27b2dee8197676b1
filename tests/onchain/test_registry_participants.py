"""The participant allow-list: who may change it, what it records, and history for audits."""

from fedledger.chain import Registry
from fedledger.chain import registry as registry_module
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


def test_a_batch_registers_every_participant_in_order_in_one_block(registry: Registry, actors):
    entries = [(account.address, keccak256(account.address.encode())) for account in actors.participants]
    (receipt,) = registry.add_participants(entries)

    records = registry.participants()
    assert [(record.address, record.metadata_hash) for record in records] == entries
    assert {record.registered_at_block for record in records} == {receipt.block_number}
    events = registry.contract.events.ParticipantAdded().get_logs(from_block=receipt.block_number)
    assert [event["args"]["participant"] for event in events] == [address for address, _ in entries]


def test_a_long_list_goes_in_batches_and_reports_its_progress(registry: Registry, actors, monkeypatch):
    monkeypatch.setattr(registry_module, "REGISTRATION_BATCH", 2)
    progress: list[int] = []
    entries = [(account.address, METADATA) for account in actors.participants[:3]]
    receipts = registry.add_participants(entries, on_batch=progress.append)
    assert len(receipts) == 2
    assert progress == [2, 3]
    assert registry.participant_count() == 3


def test_a_batch_with_one_bad_entry_registers_nobody(registry: Registry, actors):
    first, second = (account.address for account in actors.participants[:2])
    with reverts("ParticipantAlreadyRegistered", participant=first):
        registry.add_participants([(first, METADATA), (second, METADATA), (first, METADATA)])
    with reverts("ZeroAddress"):
        registry.add_participants([(second, METADATA), ("0x" + "00" * 20, METADATA)])
    assert registry.participant_count() == 0
    call = registry.contract.functions.addParticipants([first, second], [METADATA])
    with reverts("LengthMismatch", participants=2, metadataHashes=1):
        registry.chain.transact(call, registry.sender)
