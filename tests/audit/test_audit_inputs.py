"""`fedledger audit` on runs that are short of their plan, on inputs that are missing or wrong (one
line each, exit 1), on a saved chain given explicitly, and on run directories copied or moved."""

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fedledger.cli import app
from fedledger.cli.audit import EXIT_CODES
from fedledger.coordinator.session import CHAIN_FILE
from fedledger.deployment import LEDGER_FILE, LedgerLocation
from fedledger.errors import FedLedgerError
from fedledger.hashing import keccak256, to_hex
from fedledger.simulations.history import SyntheticHistory

RunWriter = Callable[..., SyntheticHistory]

runner = CliRunner()


def audit(*arguments: str | Path):
    return runner.invoke(app, ["audit", *map(str, arguments)])


def one_error_line(output: str) -> str:
    """The output of a refused input: exactly one line, ``error: ...``."""
    lines = output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), output
    assert "Traceback" not in output
    return lines[0]


def test_the_exit_codes_are_distinct():
    assert EXIT_CODES == {"pass": 0, "fail": 1, "incomplete": 3}


def test_a_run_short_of_its_plan_is_incomplete_in_the_table_the_summary_json_and_html(
    tmp_path: Path, write_run: RunWriter
):
    write_run(tmp_path, planned_rounds=4, committed=2, uncommitted=1)
    report = tmp_path / "audit.html"
    result = audit("--simulation", tmp_path, "--report", report)
    assert result.exit_code == 3, result.output
    assert "run 1: 2 of 4 planned rounds committed, INCOMPLETE" in result.output
    rows = [line for line in result.output.splitlines() if "not committed" in line]
    assert len(rows) == 2 and "manifest stored" in rows[0] and "manifest stored" not in rows[1]
    assert "run 1 [rounds] INCOMPLETE: 2 of 4 planned rounds committed: rounds 3 to 4 never committed" in result.output
    assert "run 1 round 3 [orphans] ORPHAN: manifest 0x" in result.output
    summary = result.output.strip().splitlines()[-2]
    assert summary.startswith("INCOMPLETE: ") and "run 1: 2 of 4 planned rounds committed" in summary
    page = report.read_text()
    assert "class='verdict incomplete'>INCOMPLETE: " in page and "badge incomplete" in page
    assert "round 3 was never committed" in page
    document = json.loads(audit("--simulation", tmp_path, "--json").output)
    assert document["verdict"] == "incomplete"
    assert (document["runs"][0]["planned_rounds"], document["runs"][0]["committed_rounds"]) == (4, 2)


def test_removing_the_last_commit_from_a_saved_chain_is_seen(finished_run):
    directory, _ = finished_run
    assert audit("--simulation", directory).exit_code == 0
    journal = directory / CHAIN_FILE
    journal.write_text("".join(journal.read_text().splitlines(keepends=True)[:-1]))
    result = audit("--simulation", directory)
    assert result.exit_code == 3, result.output
    assert "2 of 3 planned rounds committed" in result.output
    assert "but round 3 was never committed" in result.output


def test_a_re_run_round_stands_out_but_the_run_passes(tmp_path: Path, write_run: RunWriter):
    history = write_run(tmp_path, planned_rounds=2, committed=1, uncommitted=1)
    history.add_round()
    result = audit("--simulation", tmp_path)
    assert result.exit_code == 0, result.output
    assert "pass, run again" in result.output
    assert "run 1 round 2 [orphans] ORPHAN: round 2 was run again" in result.output
    assert result.output.strip().splitlines()[-1].startswith("PASS: ")
    assert "(round 2 was run again)" in result.output


def test_a_store_that_does_not_exist_is_one_line_and_is_not_created(finished_run, tmp_path: Path):
    directory, _ = finished_run
    missing = tmp_path / "nonexistent"
    result = audit("--simulation", directory, "--store", missing)
    assert result.exit_code == 1
    assert one_error_line(result.output) == f"error: no artifact store at {missing}: the directory does not exist"
    assert not missing.exists()
    registry = "0x" + "11" * 20
    result = audit("--chain-file", directory / CHAIN_FILE, "--registry", registry, "--store", missing)
    assert result.exit_code == 1 and "no artifact store" in one_error_line(result.output)
    assert not missing.exists()


@pytest.mark.parametrize(
    ("contents", "problem"),
    [
        (None, "holds no run's record (ledger.json is missing: the run never started)"),
        (b"{not json", "is not a ledger location: Expecting property name"),
        (b"\x89PNG\r\n\x1a\n\x00\xff", "is not a ledger location: 'utf-8' codec can't decode"),
        (b"[1, 2]", "is not a ledger location: it holds no JSON object"),
        (b'{"chain_id": 1}', "is not a ledger location: it misses registry, run_id, store"),
        (
            b'{"chain_id": 1, "registry": "0x", "run_id": "one", "store": "store"}',
            "is not a ledger location: run_id should be an integer, not 'one'",
        ),
        (
            b'{"chain_id": 1, "registry": "0x", "run_id": 1, "store": "store", "node": 1}',
            "is not a ledger location: it holds unknown fields node",
        ),
    ],
)
def test_a_missing_or_malformed_ledger_file_is_one_line(tmp_path: Path, contents: bytes | None, problem: str):
    if contents is not None:
        (tmp_path / LEDGER_FILE).write_bytes(contents)
    result = audit("--simulation", tmp_path)
    assert result.exit_code == 1
    assert problem in one_error_line(result.output)


def test_a_run_directory_that_does_not_exist_is_one_line(tmp_path: Path):
    result = audit("--simulation", tmp_path / "nowhere")
    assert result.exit_code == 1
    assert one_error_line(result.output) == f"error: {tmp_path / 'nowhere'} is not a run's directory: no such directory"


def test_a_ledger_file_naming_no_chain_is_one_line(tmp_path: Path, write_run: RunWriter):
    history = write_run(tmp_path)
    LedgerLocation(history.domain.chain_id, history.registry.address, 1, str(tmp_path / "store")).save(tmp_path)
    result = audit("--simulation", tmp_path)
    assert result.exit_code == 1
    assert "names neither a node nor a saved chain: pass --rpc-url or --chain-file" in one_error_line(result.output)
    assert audit("--simulation", tmp_path, "--chain-file", tmp_path / CHAIN_FILE).exit_code == 0


def test_the_saved_chain_can_be_given_explicitly(finished_run, tmp_path: Path):
    directory, history = finished_run
    chain_file, store, registry = directory / CHAIN_FILE, directory / "store", history.registry.address
    result = audit("--chain-file", chain_file, "--registry", registry, "--store", store)
    assert result.exit_code == 0, result.output
    assert "run 1: 3 of 3 planned rounds committed, PASS" in result.output

    (tmp_path / "shorter.jsonl").write_text("".join(chain_file.read_text().splitlines(keepends=True)[:-1]))
    assert audit("--simulation", directory, "--chain-file", tmp_path / "shorter.jsonl").exit_code == 3


def test_a_chain_file_with_a_node_or_without_a_registry_or_that_is_missing_is_one_line(finished_run):
    directory, history = finished_run
    chain_file, store, registry = directory / CHAIN_FILE, directory / "store", history.registry.address
    both = audit(
        "--chain-file", chain_file, "--rpc-url", "http://127.0.0.1:9", "--registry", registry, "--store", store
    )
    assert both.exit_code == 1 and "or --chain-file, not both" in one_error_line(both.output)
    unnamed = audit("--chain-file", chain_file, "--store", store)
    assert unnamed.exit_code == 1 and "pass --registry" in one_error_line(unnamed.output)
    missing = audit("--chain-file", directory / "none.json", "--registry", registry, "--store", store)
    assert missing.exit_code == 1 and "no saved chain at" in one_error_line(missing.output)


def test_a_run_that_the_registry_does_not_hold_is_one_line(finished_run):
    directory, history = finished_run
    result = audit("--simulation", directory, "--run", "2")
    assert result.exit_code == 1
    assert (
        one_error_line(result.output) == f"error: registry {history.registry.address} has no run 2: it has run 1 only"
    )


def test_the_ledger_file_holds_paths_relative_to_its_directory(finished_run):
    directory, _ = finished_run
    document = json.loads((directory / LEDGER_FILE).read_text())
    assert (document["store"], document["saved_chain"]) == ("store", CHAIN_FILE)
    location = LedgerLocation.load(directory)
    assert (location.store, location.saved_chain) == (str(directory / "store"), str(directory / CHAIN_FILE))


def test_locations_outside_the_directory_are_absolute_and_urls_stay_as_given(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "run"
    LedgerLocation(1, "0x" + "11" * 20, 1, "shared/store", saved_chain="memory://chains/chain.json").save(run)
    document = json.loads((run / LEDGER_FILE).read_text())
    assert document["store"] == str(tmp_path / "shared" / "store")
    assert document["saved_chain"] == "memory://chains/chain.json"
    LedgerLocation(1, "0x" + "11" * 20, 1, "s3://bucket/store").save(run)
    assert LedgerLocation.load(run).store == "s3://bucket/store"


def test_a_copied_run_directory_audits_its_own_store(finished_run, tmp_path: Path):
    directory, _ = finished_run
    copy = tmp_path.parent / f"{tmp_path.name}-copy"
    shutil.copytree(directory, copy)
    shutil.rmtree(directory / "store")
    result = audit("--simulation", copy)
    assert result.exit_code == 0, result.output
    assert f"store {copy / 'store'}" in result.output
    assert "no artifact store" in one_error_line(audit("--simulation", directory).output)


def test_a_moved_run_directory_can_still_be_audited(finished_run, tmp_path: Path):
    directory, _ = finished_run
    moved = tmp_path.parent / f"{tmp_path.name}-moved" / "run"
    shutil.move(directory, moved)
    result = audit("--simulation", moved)
    assert result.exit_code == 0, result.output
    assert "PASS: " in result.output


def test_an_unreadable_run_directory_is_a_fedledger_error(tmp_path: Path):
    (tmp_path / LEDGER_FILE).mkdir()
    with pytest.raises(FedLedgerError, match="cannot be read"):
        LedgerLocation.load(tmp_path)


def test_a_participant_verifies_its_inclusion_from_a_saved_chain_given_explicitly(finished_run):
    directory, history = finished_run
    result = runner.invoke(
        app,
        [
            "client",
            "verify",
            "--chain-file",
            str(directory / CHAIN_FILE),
            "--registry",
            history.registry.address,
            "--store",
            str(directory / "store"),
            "--address",
            history.participants[0].address,
        ],
    )
    assert result.exit_code == 0, result.output
    assert result.output.count("yes (proof verified on-chain)") == 3


@pytest.mark.parametrize(
    ("rehash", "problem"),
    [(False, "was altered: its signed bytes hash otherwise"), (True, "does not replay: ")],
)
def test_an_edited_saved_chain_is_one_line_naming_the_file_and_the_first_transaction(
    finished_run, rehash: bool, problem: str
):
    directory, _ = finished_run
    journal = directory / CHAIN_FILE
    lines = journal.read_text().splitlines(keepends=True)
    edited = json.loads(lines[2])
    raw = bytearray(bytes.fromhex(edited["raw"][2:]))
    raw[-40] ^= 0x01  # inside the signature
    edited["raw"] = "0x" + raw.hex()
    if rehash:  # an editor who also fixes the recorded hash
        edited["hash"] = to_hex(keccak256(bytes(raw)))
    journal.write_text("".join([*lines[:2], json.dumps(edited) + "\n", *lines[3:]]))
    result = audit("--simulation", directory)
    assert result.exit_code == 1
    line = one_error_line(result.output)
    assert line.startswith(f"error: {journal}: transaction 1 (0x")
    assert problem in line


def test_a_registry_address_that_holds_another_contract_is_one_line(finished_run):
    directory, history = finished_run
    result = audit("--simulation", directory, "--registry", history.registry.token_address)
    assert result.exit_code == 1
    assert f"{history.registry.token_address} on in-process is not a FedLedger registry" in one_error_line(
        result.output
    )
