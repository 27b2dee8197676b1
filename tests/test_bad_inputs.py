"""Every bad input a user can give the command line is refused with one line that says what was wrong
and what is allowed, a non-zero exit and no traceback; ``--debug`` shows the traceback instead."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from fedledger.addresses import AddressError, checksum_address
from fedledger.chain.anvil import AnvilNode
from fedledger.cli import app
from fedledger.cli.common import ReportingGroup
from fedledger.keys import KEYSTORE_ENV, KEYSTORE_PASSWORD_ENV, PRIVATE_KEY_ENV, create_keystore

from helpers import participant_key

runner = CliRunner()


def with_one_letter_flipped(address: str) -> str:
    """``address`` with the case of its first hex letter changed: still mixed case, no longer its checksum."""
    index = next(index for index in range(2, len(address)) if address[index].isalpha())
    return address[:index] + address[index].swapcase() + address[index + 1 :]


GOOD = participant_key(0).address
WRONG_CHECKSUM = with_one_letter_flipped(GOOD)
NO_NODE = ("--rpc-url", "http://127.0.0.1:9", "--registry", GOOD)


def refused(*args: str, env: dict[str, str] | None = None, exit_code: int = 1) -> str:
    """Run the command line; check it failed with exactly one ``error:`` line and no traceback; return it."""
    result = runner.invoke(app, list(args), env=env)
    assert isinstance(result.exception, SystemExit), f"{type(result.exception).__name__} escaped: {result.output}"
    assert result.exit_code == exit_code, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.output
    return lines[0]


@pytest.fixture
def files(tmp_path: Path) -> Path:
    """A schema, and data and key files of every wrong kind, in ``tmp_path``."""
    (tmp_path / "schema.json").write_text(json.dumps({"target": "y", "columns": [{"name": "age", "type": "numeric"}]}))
    (tmp_path / "empty.csv").write_bytes(b"")
    (tmp_path / "binary.csv").write_bytes(bytes(range(128, 256)) * 4)
    (tmp_path / "binary.json").write_bytes(bytes(range(128, 256)))
    (tmp_path / "headless.csv").write_text("40,1\n55,0\n")
    (tmp_path / "blank.csv").write_text("\n\n\n")
    (tmp_path / "unclosed.csv").write_text('age,y\n"40,1\n')
    (tmp_path / "garbage.parquet").write_bytes(b"not parquet at all")
    (tmp_path / "records.xlsx").write_bytes(b"PK\x03\x04")
    (tmp_path / "header-only.csv").write_text("age,y\n")
    (tmp_path / "folder.csv").mkdir()
    (tmp_path / "not-a-keystore.json").write_text('{"address": "0x00"}')
    create_keystore(tmp_path / "keystore.json", "right password")
    return tmp_path


def check_data(files: Path, data: str, schema: str = "schema.json") -> str:
    return refused("check-data", "--data", str(files / data), "--schema", str(files / schema))


@pytest.mark.parametrize(
    ("data", "line"),
    [
        ("empty.csv", "error: data file {dir}/empty.csv is empty"),
        (
            "binary.csv",
            "error: data file {dir}/binary.csv is not a CSV text file: byte 0x80 at offset 0 is not UTF-8 text",
        ),
        (
            "headless.csv",
            "error: {dir}/headless.csv: its first line ('40', '1') names none of the schema's columns: "
            "the first line must be a header naming them ('age', 'y')",
        ),
        ("blank.csv", "error: data file {dir}/blank.csv holds no CSV header line (only blank lines)"),
        ("unclosed.csv", "error: data file {dir}/unclosed.csv is not well-formed CSV: Error tokenizing data."),
        ("garbage.parquet", "error: data file {dir}/garbage.parquet is not a Parquet file: "),
        ("records.xlsx", "error: data file {dir}/records.xlsx must be .csv or .parquet, not .xlsx"),
        ("header-only.csv", "error: {dir}/header-only.csv: has no rows"),
        ("absent.csv", "error: data file {dir}/absent.csv does not exist"),
        ("folder.csv", "error: data file {dir}/folder.csv is a directory"),
    ],
)
def test_check_data_names_the_file_and_what_is_wrong_with_it(files: Path, data: str, line: str):
    assert check_data(files, data).startswith(line.format(dir=files))


def test_check_data_names_a_schema_that_is_not_json_text(files: Path):
    line = check_data(files, "header-only.csv", schema="binary.json")
    assert line == f"error: schema file {files}/binary.json is not a JSON text file (it is not UTF-8 text)"


@pytest.mark.parametrize(
    ("keystore", "password", "line"),
    [
        ("binary.json", "x", "error: keystore {dir}/binary.json is not an Ethereum keystore (not a JSON file)"),
        (
            "not-a-keystore.json",
            "x",
            "error: keystore {dir}/not-a-keystore.json is not an Ethereum keystore (it has no 'crypto' section)",
        ),
        ("absent.json", "x", "error: keystore {dir}/absent.json does not exist"),
        ("folder.csv", "x", "error: keystore {dir}/folder.csv is a directory, not a keystore file"),
        ("keystore.json", "wrong password", "error: wrong password for keystore {dir}/keystore.json"),
    ],
)
def test_a_keystore_that_cannot_be_used_is_named_before_any_node_is_asked(
    files: Path, keystore: str, password: str, line: str
):
    path = str(files / keystore)
    env = {KEYSTORE_PASSWORD_ENV: password}
    expected = line.format(dir=files)
    assert refused("participants", "add", GOOD, "--keystore", path, *NO_NODE, env=env) == expected
    assert refused("client", "claim", "--keystore", path, *NO_NODE, "--store", str(files), env=env) == expected
    from_environment = refused("participants", "add", GOOD, *NO_NODE, env={**env, KEYSTORE_ENV: path})
    assert from_environment == f"{expected} (set by ${KEYSTORE_ENV})"


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (
            ("audit", "--registry", "notanaddress"),
            "error: --registry 'notanaddress' is not an Ethereum address: it must start with 0x",
        ),
        (
            ("audit", "--registry", "0x123"),
            "error: --registry '0x123' is not an Ethereum address: it has 3 hex digits, not 40",
        ),
        (
            ("audit", "--registry", "0x" + "zz" * 20),
            f"error: --registry '0x{'zz' * 20}' is not an Ethereum address: it holds characters that are not hex "
            "digits",
        ),
        (
            ("audit", "--registry", WRONG_CHECKSUM),
            f"error: --registry '{WRONG_CHECKSUM}' has a wrong EIP-55 checksum (the case of its letters): "
            "a digit may be mistyped; copy the address again",
        ),
        (
            ("participants", "add", "notanaddress"),
            "error: ADDRESS 'notanaddress' is not an Ethereum address: it must start with 0x",
        ),
        (("participants", "add", "0x123"), "error: ADDRESS '0x123' is not an Ethereum address: it has 3 hex digits"),
        (("participants", "deactivate", WRONG_CHECKSUM), "error: ADDRESS '" + WRONG_CHECKSUM + "' has a wrong EIP-55"),
        (("chain", "deploy", "--coordinator", "nope"), "error: --coordinator 'nope' is not an Ethereum address"),
        (("client", "verify", "--address", "0x12"), "error: --address '0x12' is not an Ethereum address"),
        (
            ("chain", "status", "--rpc-url", "localhost:8545"),
            "error: --rpc-url 'localhost:8545' is not an HTTP(S) URL of a JSON-RPC node "
            "(for example http://127.0.0.1:8545)",
        ),
        (("audit", "--simulation", "absent-run"), "error: absent-run is not a run's directory: no such directory"),
        (
            ("audit", "--store", "/nonexistent/store", *NO_NODE),
            "error: no artifact store at /nonexistent/store: the directory does not exist",
        ),
        (
            ("audit", "--store", "nosuch://store", *NO_NODE),
            "error: artifact store nosuch://store cannot be opened: Protocol not known: nosuch",
        ),
        (
            ("participants", "add", GOOD, "--metadata-hash", "0x12", *NO_NODE),
            "error: --metadata-hash must be 32 bytes (64 hex digits), got 2 digits: '0x12'",
        ),
        (("certs", "--out", "certs", "--host", ""), "error: host '' is neither an IP address nor a DNS name"),
        (
            ("certs", "--out", "certs", "--host", "super link/1"),
            "error: host 'super link/1' is neither an IP address nor a DNS name",
        ),
    ],
)
def test_addresses_urls_stores_hashes_and_hosts_are_checked_where_they_enter(args: tuple[str, ...], line: str):
    assert refused(*args).startswith(line)


def test_an_address_from_the_environment_is_named_by_its_variable():
    line = refused("chain", "status", env={"FEDLEDGER_REGISTRY": WRONG_CHECKSUM, "FEDLEDGER_RPC_URL": NO_NODE[1]})
    assert line.startswith(f"error: $FEDLEDGER_REGISTRY '{WRONG_CHECKSUM}' has a wrong EIP-55 checksum")


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (
            ("certs", "--out", "certs", "--host", "localhost", "--days", "0"),
            "error: Invalid value for '--days': 0 is not in the range x>=1 (see 'fedledger certs --help')",
        ),
        (
            ("chain", "node", "--port", "70000"),
            "error: Invalid value for '--port': 70000 is not in the range 1<=x<=65535 "
            "(see 'fedledger chain node --help')",
        ),
        (
            ("client", "verify", "--address", GOOD, "--run", "0"),
            "error: Invalid value for '--run': 0 is not in the range x>=1 (see 'fedledger client verify --help')",
        ),
        (
            ("participants", "add", GOOD, "--metadata", "absent.json"),
            "error: Invalid value for '--metadata': File 'absent.json' does not exist "
            "(see 'fedledger participants add --help')",
        ),
        (("participants", "add"), "error: Missing argument 'ADDRESS' (see 'fedledger participants add --help')"),
        (
            ("client", "init", "--out", __file__),
            f"error: Invalid value for '--out': Directory '{__file__}' is a file",
        ),
        (
            ("chain", "status", "--no-such-option"),
            "error: No such option '--no-such-option' (see 'fedledger chain status --help')",
        ),
        (("no-such-command",), "error: No such command 'no-such-command' (see 'fedledger --help')"),
    ],
)
def test_usage_errors_are_one_line_too_and_exit_2(args: tuple[str, ...], line: str):
    assert refused(*args, exit_code=2).startswith(line)


def test_an_unexpected_error_is_one_line_naming_its_type_and_debug_lets_it_through():
    group = typer.Typer(cls=ReportingGroup, pretty_exceptions_enable=False)

    @group.callback()
    def options(debug: bool = typer.Option(False, "--debug")) -> None:
        """Options."""

    @group.command()
    def crash() -> None:
        """Fails as no FedLedger code means to."""
        raise KeyError("a key nobody expected")

    result = runner.invoke(group, ["crash"])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    assert result.output == (
        "error: unexpected KeyError: 'a key nobody expected' (run with --debug for the traceback)\n"
    )
    debugged = runner.invoke(group, ["--debug", "crash"])
    assert isinstance(debugged.exception, KeyError)


def test_debug_shows_the_traceback_of_a_fedledger_error_on_the_real_console(files: Path):
    command = [sys.executable, "-m", "fedledger.cli", "check-data", "--data", str(files / "empty.csv")]
    command += ["--schema", str(files / "schema.json")]
    plain = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"})
    assert plain.returncode == 1
    assert plain.stdout == ""
    assert plain.stderr == f"error: data file {files}/empty.csv is empty\n"
    debugged = subprocess.run([*command[:3], "--debug", *command[3:]], capture_output=True, text=True)
    assert debugged.returncode == 1
    assert debugged.stderr.startswith("Traceback (most recent call last)")
    assert debugged.stderr.endswith(f"tabular_app.schema.SchemaError: data file {files}/empty.csv is empty\n")


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (
            ("--scenario", "nosuch"),
            "error: unknown scenario 'nosuch': choose one of hospitals, banks, synthetic, synthetic-iid",
        ),
        (
            ("--strategy", "NoSuch"),
            "error: unknown strategy 'NoSuch': choose one of FedAvg, FedProx, FedAdam, FedYogi, FedAdagrad, "
            "FedAvgM, FedMedian, FedTrimmedAvg, Krum, MultiKrum, Bulyan",
        ),
        (
            ("--clients", "1"),
            "error: the hospitals scenario can be split over exactly 4 sites (one per hospital), not 1",
        ),
        (
            ("--scenario", "banks", "--clients", "34"),
            "error: the banks scenario can be split over 2 to 33 sites "
            "(every bank needs at least 60 applications), not 34",
        ),
        (
            ("--scenario", "synthetic", "--clients", "1"),
            "error: the synthetic scenario can be split over at least 2 sites, not 1",
        ),
        (
            ("--scenario", "synthetic-iid", "--clients", "0"),
            "error: the synthetic-iid scenario can be split over at least 2 sites, not 0",
        ),
        (
            ("--attack", "nosuch"),
            "error: unknown attack 'nosuch': choose one of sign-flip, scaling, label-flip, gaussian-noise, free-rider, "
            "alie, min-max, min-sum, sybil",
        ),
        (
            ("--scenario", "banks", "--clients", "2", "--attack", "sign-flip", "--malicious", "0.9"),
            "error: 2 of the 2 sites would attack or misbehave, leaving no honest site: lower the malicious share",
        ),
        (
            ("--rpc-url", "http://127.0.0.1:9"),
            "error: recording on http://127.0.0.1:9 needs the coordinator's key: "
            f"set ${PRIVATE_KEY_ENV} or ${KEYSTORE_ENV}",
        ),
        (("--misbehave", "1"), "error: --misbehave '1' must be SITE=BEHAVIOUR, e.g. 1=garbage"),
        (("--misbehave", "4=garbage"), "error: site 4 cannot misbehave: the sites are numbered 0 to 3"),
        (
            ("--misbehave", "1=nosuch"),
            "error: unknown behaviour 'nosuch': choose one of nan, wrong-shape, bad-signature, unregistered-key, "
            "stale-base, replay, duplicate, garbage, hang, sign-flip, scaling, label-flip, gaussian-noise, free-rider, "
            "alie, min-max, min-sum, sybil",
        ),
    ],
)
def test_simulate_refuses_what_cannot_run_before_the_simulation_starts(
    tmp_path: Path, monkeypatch, args: tuple[str, ...], line: str
):
    monkeypatch.delenv(PRIVATE_KEY_ENV, raising=False)
    monkeypatch.delenv(KEYSTORE_ENV, raising=False)
    out = tmp_path / "run"
    assert refused("simulate", *args, "--out", str(out)) == line
    assert not out.exists()


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (("--rounds", "0"), "error: Invalid value for '--rounds': 0 is not in the range x>=1"),
        (("--rounds", "-1"), "error: Invalid value for '--rounds': -1 is not in the range x>=1"),
        (("--seed", "-1"), "error: Invalid value for '--seed': -1 is not in the range x>=0"),
        (("--fraction-train", "0"), "error: Invalid value for '--fraction-train': 0.0 is not in the range 0.0<x<=1.0"),
        (("--fraction-train", "1.5"), "error: Invalid value for '--fraction-train': 1.5 is not in the range"),
        (("--malicious", "1"), "error: Invalid value for '--malicious': 1.0 is not in the range 0.0<=x<1.0"),
        (("--rpc-url", "127.0.0.1:8545"), "error: --rpc-url '127.0.0.1:8545' is not an HTTP(S) URL"),
    ],
)
def test_simulate_options_out_of_range_are_refused_as_they_are_read(tmp_path: Path, args: tuple[str, ...], line: str):
    out = tmp_path / "run"
    exit_code = 1 if "--rpc-url" in args else 2
    assert refused("simulate", *args, "--out", str(out), exit_code=exit_code).startswith(line)
    assert not out.exists()


def test_resume_refuses_a_directory_without_a_simulation_and_settings_given_again(tmp_path: Path):
    assert refused("simulate", "--resume", str(tmp_path)) == (
        f"error: {tmp_path} holds no simulation to resume (simulation.json is missing)"
    )
    (tmp_path / "simulation.json").write_text("{not json")
    assert refused("simulate", "--resume", str(tmp_path)).startswith(
        f"error: {tmp_path / 'simulation.json'} is not a simulation request"
    )
    assert refused("simulate", "--resume", str(tmp_path), "--rounds", "3", "--seed", "1") == (
        "error: --resume runs a simulation with the settings it was started with: drop --rounds, --seed"
    )


def test_a_deployment_file_that_is_not_text_is_one_line(tmp_path: Path):
    deployment = tmp_path / "deployment.json"
    deployment.write_bytes(b"\x89PNG\r\n\x00\xff")
    assert refused("chain", "status", "--deployment", str(deployment)).startswith(
        f"error: {deployment} is not a FedLedger deployment file: 'utf-8' codec can't decode"
    )


def test_a_chain_node_on_a_port_in_use_is_one_line(tmp_path: Path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = refused("chain", "node", "--state-dir", str(tmp_path / "anvil"), "--port", str(port))
    assert line == f"error: cannot serve JSON-RPC on 127.0.0.1:{port}: Address already in use"


def test_the_registry_api_refuses_a_wrong_checksum_too(chain, registry):
    with pytest.raises(AddressError, match="wrong EIP-55 checksum"):
        registry.add_participant(WRONG_CHECKSUM, bytes(32))
    assert registry.participant(GOOD) is None


def test_simulate_refuses_an_output_directory_that_is_a_file(tmp_path: Path):
    out = tmp_path / "run"
    out.write_text("")
    line = refused("simulate", "--out", str(out), exit_code=2)
    assert line.startswith(f"error: Invalid value for '--out': Directory '{out}' is a file")


@pytest.mark.anvil
def test_a_live_node_registers_no_malformed_or_miss_checksummed_address(anvil: AnvilNode, tmp_path: Path):
    env = {PRIVATE_KEY_ENV: anvil.dev_accounts()[0].key.to_0x_hex()}
    deployment = str(tmp_path / "deployment.json")
    deployed = runner.invoke(
        app, ["chain", "deploy", "--rpc-url", anvil.rpc_url, "--single-key", "--deployment", deployment], env=env
    )
    assert deployed.exit_code == 0, deployed.output
    for address, line in (
        ("notanaddress", "error: ADDRESS 'notanaddress' is not an Ethereum address: it must start with 0x"),
        ("0x123", "error: ADDRESS '0x123' is not an Ethereum address: it has 3 hex digits, not 40"),
        (WRONG_CHECKSUM, f"error: ADDRESS '{WRONG_CHECKSUM}' has a wrong EIP-55 checksum"),
    ):
        assert refused("participants", "add", address, "--deployment", deployment, env=env).startswith(line)
    listed = runner.invoke(app, ["participants", "list", "--deployment", deployment])
    assert "0x" not in listed.output
    added = runner.invoke(app, ["participants", "add", GOOD.lower(), "--deployment", deployment], env=env)
    assert added.exit_code == 0, added.output
    assert GOOD in runner.invoke(app, ["participants", "list", "--deployment", deployment]).output


def test_addresses_without_a_checksum_are_taken_and_written_checksummed():
    assert checksum_address(GOOD.lower()) == checksum_address("0x" + GOOD[2:].upper()) == GOOD
    with pytest.raises(AddressError, match="wrong EIP-55 checksum"):
        checksum_address(WRONG_CHECKSUM)
