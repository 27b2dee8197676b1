"""`fedledger chain node`: acknowledged transactions survive a SIGKILL of anvil; no anvil outlives the node."""

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from fedledger.chain import Chain
from fedledger.chain.anvil import AnvilNode, free_port
from fedledger.chain.relay import StateSavingRelay

pytestmark = pytest.mark.anvil


def send_transfers(chain: Chain, count: int) -> list[str]:
    sender, receiver = chain.signers[:2]
    return [chain.send_value(sender, receiver, index + 1).tx_hash for index in range(count)]


def connected(url: str, accounts_from: AnvilNode) -> Chain:
    chain = Chain.connect(url, retry_seconds=30)
    for account in accounts_from.dev_accounts()[:2]:
        chain.add_signer(account)
    return chain


def test_every_acknowledged_transaction_survives_a_sigkill_of_anvil(anvil: AnvilNode):
    chain = connected(anvil.rpc_url, anvil)
    hashes = send_transfers(chain, 40)
    block = chain.block_number

    os.kill(anvil.anvil_pid, signal.SIGKILL)
    anvil.stop()
    anvil.start()

    chain = connected(anvil.rpc_url, anvil)
    assert chain.block_number == block
    assert all(chain.receipt(tx_hash) is not None for tx_hash in hashes)
    assert chain.w3.eth.get_transaction_count(chain.signers[0]) == 40


def test_a_batch_holding_a_write_is_saved_before_it_is_answered_and_reads_are_not(anvil: AnvilNode):
    def post(payload: object) -> object:
        return requests.post(anvil.rpc_url, json=payload).json()

    saved = anvil.state_file.stat().st_mtime_ns
    for _ in range(3):
        post({"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []})
    assert anvil.state_file.stat().st_mtime_ns == saved

    answers = post(
        [
            {"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []},
            {"jsonrpc": "2.0", "id": 2, "method": "anvil_mine", "params": [3]},
        ]
    )
    assert [answer["id"] for answer in answers] == [1, 2]
    os.kill(anvil.anvil_pid, signal.SIGKILL)
    anvil.stop()
    anvil.start()
    assert Chain.connect(anvil.rpc_url).block_number == 3


def anvil_children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` and that run anvil."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        parent = int(status.rsplit(")", 1)[1].split()[1])
        if parent == pid and b"anvil" in command:
            found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_until(condition: Callable[[], bool], seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.02)


@contextmanager
def chain_node(state_dir: Path, port: int) -> Iterator[tuple[subprocess.Popen[str], int]]:
    """`fedledger chain node` in its own process, once it serves; yields it and its anvil's pid."""
    process = subprocess.Popen(
        [sys.executable, "-m", "fedledger.cli", "chain", "node", "--state-dir", str(state_dir), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "300"},
    )
    try:
        line = process.stdout.readline()
        assert line.startswith(f"anvil serving http://127.0.0.1:{port}"), line + process.stderr.read()
        (anvil_pid,) = anvil_children(process.pid)
        yield process, anvil_pid
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_chain_node_stops_its_anvil_when_it_is_stopped(tmp_path: Path, stop: signal.Signals):
    with chain_node(tmp_path / "anvil", free_port()) as (node, anvil_pid):
        node.send_signal(stop)
        assert node.wait(timeout=30) == 0
        assert "anvil stopped; chain saved" in node.stdout.read()
        assert not alive(anvil_pid)


def test_no_anvil_outlives_a_sigkilled_chain_node(tmp_path: Path):
    with chain_node(tmp_path / "anvil", free_port()) as (node, anvil_pid):
        node.kill()
        node.wait()
        wait_until(lambda: not alive(anvil_pid))


def test_a_killed_anvil_ends_chain_node_in_one_line_and_the_same_command_resumes_the_chain(tmp_path: Path):
    state_dir, port = tmp_path / "anvil", free_port()
    with chain_node(state_dir, port) as (node, anvil_pid):
        accounts = AnvilNode(state_dir)
        chain = connected(f"http://127.0.0.1:{port}", accounts)
        hashes = send_transfers(chain, 10)
        with ThreadPoolExecutor(1) as pool:
            os.kill(anvil_pid, signal.SIGKILL)
            assert node.wait(timeout=30) == 1
            # a client busy during the outage waits for the node to come back
            busy = pool.submit(send_transfers, chain, 5)
            error = node.stderr.read()
            with chain_node(state_dir, port):
                hashes += busy.result(timeout=60)
                assert all(chain.receipt(tx_hash) is not None for tx_hash in hashes)
                assert chain.w3.eth.get_transaction_count(chain.signers[0]) == 15

    lines = error.strip().splitlines()
    assert len(lines) == 1
    assert lines[0] == (
        f"error: anvil was killed by signal 9 (its output is in {state_dir / 'anvil.log'}); the chain is saved up "
        f"to its last answered request: restart it with `fedledger chain node --state-dir {state_dir} "
        f"--port {port} --host 127.0.0.1`"
    )


def test_a_node_whose_first_save_fails_stops_its_anvil_and_exits_in_one_line(tmp_path: Path):
    state_dir, port = tmp_path / "anvil", free_port()
    (state_dir / "state.json.tmp").mkdir(parents=True)  # where a save writes before it renames
    command = ["chain", "node", "--state-dir", str(state_dir), "--port", str(port)]
    node = subprocess.Popen(
        [sys.executable, "-m", "fedledger.cli", *command],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "300"},
    )
    try:
        _, error = node.communicate(timeout=60)
    finally:
        node.kill()
    assert node.returncode == 1
    assert error.startswith(f"error: cannot save the chain to {state_dir / 'state.json'}: ")
    assert len(error.strip().splitlines()) == 1
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5)


def test_a_relay_that_never_served_stops_at_once(tmp_path: Path):
    relay = StateSavingRelay(("127.0.0.1", free_port()), free_port(), tmp_path / "state.json")
    stopping = threading.Thread(target=relay.stop, daemon=True)
    stopping.start()
    stopping.join(10)
    assert not stopping.is_alive(), "stop() waited for a relay that never served"
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(relay.server_address, timeout=5)


def test_a_restarted_node_keeps_what_anvil_wrote_to_its_log_before(anvil: AnvilNode):
    anvil.stop()
    with anvil.log_file.open("a") as log:
        log.write("the last words of an anvil that crashed\n")
    anvil.start()
    assert "the last words of an anvil that crashed" in anvil.log_file.read_text()
