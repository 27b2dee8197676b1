"""The in-process chain's journal: written as transactions are mined, restored exactly, refused when edited."""

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from fedledger.chain import Chain, ChainError, Registry
from fedledger.chain.journal import JOURNAL_FORMAT
from fedledger.hashing import keccak256

from helpers import participant_key, sample_commitment


def recorded_history(chain: Chain) -> tuple[Registry, int]:
    """A registry with a participant, a run and two committed rounds; the run id."""
    admin = chain.signers[0]
    registry, _ = Registry.deploy(chain, admin)
    registry.add_participant(participant_key(0).address, keccak256(b"meta"))
    run_id, _ = registry.start_run(keccak256(b"config"), keccak256(b"model 0"), 0, 10)
    for round_number in (1, 2):
        registry.commit_round(run_id, round_number, sample_commitment(round_number))
    return registry, run_id


def journal_lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def test_every_mined_transaction_is_in_the_journal_as_soon_as_it_is_acknowledged(tmp_path: Path):
    chain = Chain.in_process()
    journal = tmp_path / "run" / "chain.jsonl"
    chain.journal_to(journal)
    header = json.loads(journal_lines(journal)[0])
    assert header == {"format": JOURNAL_FORMAT, "chain_id": chain.chain_id}
    receipt = chain.send_value(chain.signers[0], chain.signers[1], 5)
    entries = [json.loads(line) for line in journal_lines(journal)[1:]]
    assert [entry["hash"] for entry in entries] == [receipt.tx_hash]
    assert entries[0]["status"] == 1
    recorded_history(chain)
    assert len(journal_lines(journal)) == 1 + 1 + 5  # header, the transfer, deploy, add, start, two commits
    assert chain.journal == journal


def test_a_journal_started_late_holds_the_transactions_mined_before(tmp_path: Path):
    chain = Chain.in_process()
    registry, run_id = recorded_history(chain)
    chain.journal_to(tmp_path / "chain.jsonl")
    restored = Registry(Chain.restore(tmp_path / "chain.jsonl"), registry.address)
    assert restored.committed_round(run_id, 2).commitment == sample_commitment(2)


def test_a_new_chain_never_replaces_the_journal_of_another(tmp_path: Path):
    journal = tmp_path / "chain.jsonl"
    first = Chain.in_process()
    first.journal_to(journal)
    registry, run_id = recorded_history(first)
    kept = journal.read_bytes()

    with pytest.raises(ChainError, match=r"holds another chain \(5 transactions\)"):
        Chain.in_process().journal_to(journal)

    assert journal.read_bytes() == kept
    restored = Chain.restore(journal)
    restored.journal_to(journal)  # its own history: kept, and appended to from here on
    restored.send_value(restored.signers[0], restored.signers[1], 1)
    again = Registry(Chain.restore(journal), registry.address)
    assert again.committed_round(run_id, 2).commitment == sample_commitment(2)


def test_the_journal_restores_the_same_state(tmp_path: Path):
    chain = Chain.in_process()
    chain.journal_to(tmp_path / "chain.jsonl")
    registry, run_id = recorded_history(chain)

    restored_chain = Chain.restore(tmp_path / "chain.jsonl")
    restored = Registry(restored_chain, registry.address)
    assert restored_chain.block_number == chain.block_number
    assert restored.participant(participant_key(0).address) == registry.participant(participant_key(0).address)
    assert restored.run(run_id) == registry.run(run_id)
    for round_number in (1, 2):
        assert restored.committed_round(run_id, round_number) == registry.committed_round(run_id, round_number)
    assert restored_chain.balance(chain.signers[0]) == chain.balance(chain.signers[0])
    assert restored_chain.journal is None


def test_a_restored_chain_asked_to_keep_its_journal_extends_it(tmp_path: Path):
    journal = tmp_path / "chain.jsonl"
    chain = Chain.in_process()
    chain.journal_to(journal)
    registry, run_id = recorded_history(chain)

    resumed = Chain.restore(journal)
    resumed.journal_to(journal)
    Registry(resumed, registry.address, resumed.signers[0]).commit_round(run_id, 3, sample_commitment(3))

    again = Registry(Chain.restore(journal), registry.address)
    assert again.run(run_id).committed_rounds == 3
    assert again.committed_round(run_id, 3).commitment == sample_commitment(3)


def test_a_torn_final_line_was_never_acknowledged_and_is_ignored(tmp_path: Path):
    journal = tmp_path / "chain.jsonl"
    chain = Chain.in_process()
    chain.journal_to(journal)
    registry, run_id = recorded_history(chain)
    complete = journal.read_text()
    torn_commit = journal_lines(journal)[-1][:57]
    journal.write_text(complete + torn_commit)

    restored = Registry(Chain.restore(journal), registry.address)
    assert restored.run(run_id).committed_rounds == 2


def test_a_journal_cut_inside_a_line_loses_only_that_line(tmp_path: Path):
    journal = tmp_path / "chain.jsonl"
    chain = Chain.in_process()
    chain.journal_to(journal)
    registry, run_id = recorded_history(chain)
    lines = journal_lines(journal)
    journal.write_text("\n".join(lines[:-1]) + "\n" + lines[-1][:-10])

    restored = Registry(Chain.restore(journal), registry.address)
    assert restored.run(run_id).committed_rounds == 1


def one_line_error(path: Path) -> str:
    with pytest.raises(ChainError) as caught:
        Chain.restore(path)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_an_edited_transaction_is_named_by_index_and_hash(tmp_path: Path):
    journal = tmp_path / "chain.jsonl"
    chain = Chain.in_process()
    chain.journal_to(journal)
    recorded_history(chain)
    lines = journal_lines(journal)
    entry = json.loads(lines[4])  # transaction 3: startRun
    raw = bytearray.fromhex(entry["raw"][2:])
    raw[-40] ^= 0x01  # a bit of the signature
    forged = {"hash": "0x" + keccak256(bytes(raw)).hex(), "status": 1, "raw": "0x" + raw.hex()}
    lines[4] = json.dumps(forged)
    journal.write_text("\n".join(lines) + "\n")

    message = one_line_error(journal)
    assert message.startswith(f"{journal}: transaction 3 ({forged['hash']}) does not replay: ")
    assert len(message) > len(f"{journal}: transaction 3 ({forged['hash']}) does not replay: ")


def test_bytes_that_do_not_match_their_recorded_hash_are_refused(tmp_path: Path):
    journal = tmp_path / "chain.jsonl"
    chain = Chain.in_process()
    chain.journal_to(journal)
    recorded_history(chain)
    lines = journal_lines(journal)
    entry = json.loads(lines[5])  # transaction 4: the first commit
    raw = entry["raw"]
    entry["raw"] = raw[:-4] + ("00" if raw[-4:-2] != "00" else "01") + raw[-2:]
    lines[5] = json.dumps(entry)
    journal.write_text("\n".join(lines) + "\n")

    message = one_line_error(journal)
    assert message == f"{journal}: transaction 4 ({entry['hash']}) was altered: its signed bytes hash otherwise"


def test_a_journal_of_another_chain_is_refused(tmp_path: Path):
    journal = tmp_path / "chain.jsonl"
    chain = Chain.in_process()
    chain.journal_to(journal)
    recorded_history(chain)
    lines = journal_lines(journal)
    lines[0] = json.dumps({"format": JOURNAL_FORMAT, "chain_id": 1})
    journal.write_text("\n".join(lines) + "\n")

    assert one_line_error(journal) == f"{journal} holds chain 1, not the in-process chain {chain.chain_id}"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("", "is not a saved chain: it is empty"),
        ("PK\x03\x04 binary\n", "line 1 is not JSON"),
        ('{"format": "something-else/1", "chain_id": 1}\n', "(format: 'something-else/1')"),
        ('{"format": "fedledger-in-process-chain/1", "chain_id": 1, "transactions": []}\n', "(format: 'fedledger-"),
        (json.dumps({"format": JOURNAL_FORMAT, "chain_id": 131277322940537}) + "\n[1, 2]\n", "transaction 0 (line 2)"),
    ],
)
def test_what_is_not_a_journal_is_refused_in_one_line(tmp_path: Path, content: str, expected: str):
    path = tmp_path / "chain.jsonl"
    path.write_text(content)
    message = one_line_error(path)
    assert message.startswith(str(path))
    assert expected in message


def test_a_missing_journal_is_named(tmp_path: Path):
    assert one_line_error(tmp_path / "nothing.jsonl") == f"no saved chain at {tmp_path / 'nothing.jsonl'}"


@pytest.mark.anvil
def test_only_the_in_process_chain_keeps_a_journal(anvil, tmp_path: Path):
    node = Chain.connect(anvil.rpc_url)
    assert not node.is_in_process
    with pytest.raises(ChainError, match="only the in-process chain keeps a journal"):
        node.journal_to(tmp_path / "chain.jsonl")


WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from fedledger.chain import Chain

    chain = Chain.in_process()
    chain.journal_to(Path(sys.argv[1]))
    sender, receiver = chain.signers[:2]
    while True:
        receipt = chain.send_value(sender, receiver, 1)
        print(receipt.tx_hash, flush=True)
    """
)


def test_a_killed_process_loses_no_transaction_it_acknowledged(tmp_path: Path):
    journal = tmp_path / "chain.jsonl"
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(journal)], stdout=subprocess.PIPE, text=True, env=os.environ.copy()
    )
    acknowledged = [writer.stdout.readline().strip() for _ in range(25)]
    writer.send_signal(signal.SIGKILL)
    writer.wait()

    restored = Chain.restore(journal)
    for tx_hash in acknowledged:
        receipt = restored.receipt(tx_hash)
        assert receipt is not None and receipt.gas_used == 21_000
