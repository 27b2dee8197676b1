"""The chain access layer against a real anvil that stops, restarts, drops answers and loses transactions.

Faults in the transport are made by a small HTTP relay between the client and the node
(:class:`FaultyLink`): it forwards requests to anvil and, when told, loses a request or its answer
the way a broken connection does.
"""

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
from eth_account.signers.local import LocalAccount

from fedledger.chain import Chain, ChainError, ChainUnavailable, Registry
from fedledger.chain.anvil import AnvilNode, free_port
from fedledger.hashing import keccak256

from helpers import participant_key, reverts, sample_commitment

pytestmark = pytest.mark.anvil

Fault = Callable[["FaultyLink", bytes], bytes | None]


class FaultyLink(ThreadingHTTPServer):
    """Forwards JSON-RPC to ``node_url``; ``fault`` decides the fate of each eth_sendRawTransaction.

    ``fault(link, body)`` returns the answer to send back, or ``None`` to close the connection
    without answering. ``sends`` holds the signed bytes of every eth_sendRawTransaction the node received.
    """

    daemon_threads = True

    def __init__(self, node_url: str) -> None:
        super().__init__(("127.0.0.1", free_port()), _LinkHandler)
        self.node_url = node_url
        self.fault: Fault | None = None
        self.failing_answers = 0
        self.sends: list[str] = []
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def forward(self, body: bytes) -> bytes:
        if b"eth_sendRawTransaction" in body:
            self.sends.append(signed_bytes(body))
        return requests.post(self.node_url, data=body, headers={"Content-Type": "application/json"}).content

    def node(self, method: str, *params: Any) -> Any:
        """Call the node directly, past the link."""
        return rpc(self.node_url, method, *params)


def signed_bytes(body: bytes) -> str:
    return json.loads(body)["params"][0]


def rpc(url: str, method: str, *params: Any) -> Any:
    reply = requests.post(url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).json()
    if "result" not in reply:
        raise RuntimeError(f"{method}: {reply}")
    return reply["result"]


class _LinkHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: FaultyLink

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.server.failing_answers:
            self.server.failing_answers -= 1
            self.send_error(503)
            return
        fault, is_send = self.server.fault, b"eth_sendRawTransaction" in body
        if is_send and fault is not None:
            self.server.fault = None
            answer = fault(self.server, body)
        else:
            answer = self.server.forward(body)
        if answer is None:
            self.close_connection = True
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def link(anvil: AnvilNode) -> Iterator[FaultyLink]:
    server = FaultyLink(anvil.rpc_url)
    yield server
    server.shutdown()
    server.server_close()


def connected(url: str, anvil: AnvilNode, retry_seconds: float = 30) -> tuple[Chain, str, str]:
    """A chain at ``url`` that can send from anvil's first two development accounts."""
    chain = Chain.connect(url, retry_seconds=retry_seconds)
    sender, receiver = (chain.add_signer(account) for account in anvil.dev_accounts()[:2])
    return chain, sender, receiver


def mined_nonce(chain: Chain, address: str) -> int:
    return chain.w3.eth.get_transaction_count(address, "latest")


# Sending: never a second transaction -----------------------------------------------------


def test_an_answer_lost_after_the_node_took_the_transaction_does_not_send_it_again(anvil, link: FaultyLink):
    chain, sender, receiver = connected(link.url, anvil)
    before = mined_nonce(chain, sender)
    link.fault = lambda link, body: link.forward(body) and None

    receipt = chain.send_value(sender, receiver, 7)

    assert len(link.sends) == 1
    assert mined_nonce(chain, sender) == before + 1
    assert chain.w3.eth.get_transaction(receipt.tx_hash)["nonce"] == before


def test_a_request_lost_before_the_node_saw_it_is_sent_again_byte_for_byte(anvil, link: FaultyLink):
    chain, sender, receiver = connected(link.url, anvil)
    before = mined_nonce(chain, sender)
    lost: list[str] = []
    link.fault = lambda link, body: lost.append(signed_bytes(body))

    receipt = chain.send_value(sender, receiver, 7)

    assert link.sends == lost
    assert mined_nonce(chain, sender) == before + 1
    assert chain.receipt(receipt.tx_hash) == receipt


def test_a_transaction_the_node_lost_in_a_rollback_is_sent_again(anvil, link: FaultyLink):
    chain, sender, receiver = connected(link.url, anvil)
    before = mined_nonce(chain, sender)

    def mined_then_rolled_back(link: FaultyLink, body: bytes) -> None:
        snapshot = link.node("evm_snapshot")
        link.forward(body)
        link.node("evm_revert", snapshot)

    link.fault = mined_then_rolled_back
    receipt = chain.send_value(sender, receiver, 7)

    assert len(link.sends) == 2 and link.sends[0] == link.sends[1]
    assert mined_nonce(chain, sender) == before + 1
    assert chain.receipt(receipt.tx_hash) == receipt


def test_a_node_that_already_has_the_transaction_is_answered_by_looking_it_up(anvil, link: FaultyLink):
    chain, sender, receiver = connected(link.url, anvil)
    before = mined_nonce(chain, sender)
    answers: list[bytes] = []

    def sent_twice(link: FaultyLink, body: bytes) -> bytes:
        answers.extend([link.forward(body), link.forward(body)])
        return answers[-1]

    link.fault = sent_twice
    receipt = chain.send_value(sender, receiver, 7)

    assert b"nonce too low" in answers[1]
    assert mined_nonce(chain, sender) == before + 1
    assert receipt.gas_used == 21_000


def test_a_nonce_taken_by_another_transaction_is_a_clear_error(anvil, link: FaultyLink):
    chain, sender, receiver = connected(link.url, anvil)
    nonce = mined_nonce(chain, sender)
    account: LocalAccount = anvil.dev_accounts()[0]

    def another_transaction_takes_the_nonce(link: FaultyLink, body: bytes) -> None:
        fees = {"maxFeePerGas": 10**10, "maxPriorityFeePerGas": 10**9}
        other = account.sign_transaction(
            {"to": receiver, "value": 1, "gas": 21_000, "chainId": 31337, "nonce": nonce, **fees}
        )
        link.node("eth_sendRawTransaction", other.raw_transaction.to_0x_hex())

    link.fault = another_transaction_takes_the_nonce
    with pytest.raises(ChainError, match=f"nonce {nonce} of {sender} was taken by another transaction"):
        chain.send_value(sender, receiver, 7)
    assert mined_nonce(chain, sender) == nonce + 1


def test_a_transaction_the_node_refuses_is_named_with_the_node_s_reason(anvil):
    chain, _, receiver = connected(anvil.rpc_url, anvil)
    penniless = chain.add_signer(participant_key(9))
    with pytest.raises(ChainError) as caught:
        chain.send_value(penniless, receiver, 1)
    message = str(caught.value)
    assert message.startswith(f"{anvil.rpc_url} refused transaction 0x")
    assert f"(nonce 0 of {penniless}): " in message and "insufficient funds" in message.lower()


# Retrying calls ---------------------------------------------------------------------------


def test_answers_with_http_5xx_are_retried(anvil, link: FaultyLink, caplog):
    chain, _, _ = connected(link.url, anvil)
    link.failing_answers = 3
    with caplog.at_level(logging.WARNING, "fedledger.chain"):
        assert chain.block_number == int(link.node("eth_blockNumber"), 16)
    assert [record.getMessage().split(" (")[0] for record in caplog.records] == [
        f"node at {link.url} not answering",
        f"node at {link.url} answering again after {caplog.records[1].getMessage().rsplit(' ', 2)[1]} s",
    ]
    assert "(HTTP 503)" in caplog.records[0].getMessage()


def test_a_revert_is_an_answer_and_is_not_retried(anvil, caplog):
    chain, sender, _ = connected(anvil.rpc_url, anvil)
    registry, _ = Registry.deploy(chain, sender)
    run_id, _ = registry.start_run(keccak256(b"config"), keccak256(b"model"), 0, 50)
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, "fedledger.chain"), reverts("RoundOutOfSequence", given=5):
        registry.commit_round(run_id, 5, sample_commitment(5))
    assert time.monotonic() - started < 1
    assert caplog.records == []


def test_a_run_of_sends_rides_out_a_node_restart(anvil: AnvilNode, caplog):
    chain, sender, _ = connected(anvil.rpc_url, anvil)
    registry, _ = Registry.deploy(chain, sender)
    run_id, _ = registry.start_run(keccak256(b"config"), keccak256(b"model"), 0, 50)
    before = mined_nonce(chain, sender)

    def commit_rounds() -> list[int]:
        return [registry.commit_round(run_id, n, sample_commitment(n)).block_number for n in range(1, 21)]

    watcher = Registry(Chain.connect(anvil.rpc_url), registry.address)
    with caplog.at_level(logging.WARNING, "fedledger.chain"), ThreadPoolExecutor(1) as pool:
        committing = pool.submit(commit_rounds)
        while watcher.run(run_id).committed_rounds < 3:
            time.sleep(0.01)
        anvil.stop()  # mid-run: the client is between calls, or in one
        time.sleep(1)
        anvil.start()
        blocks = committing.result(timeout=60)

    assert registry.run(run_id).committed_rounds == 20
    assert mined_nonce(chain, sender) == before + 20
    assert blocks == sorted(set(blocks))
    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 2, messages
    assert messages[0].startswith(f"node at {anvil.rpc_url} not answering (")
    assert messages[0].endswith("retrying for up to 30 s")
    assert messages[1].startswith(f"node at {anvil.rpc_url} answering again after ")


def test_an_outage_longer_than_the_budget_ends_in_one_line(tmp_path: Path):
    with AnvilNode(tmp_path / "anvil", port=free_port()) as node:
        chain, _, _ = connected(node.rpc_url, node, retry_seconds=1)
    started = time.monotonic()
    with pytest.raises(ChainUnavailable) as caught:
        chain.block_number  # noqa: B018
    assert 1 <= time.monotonic() - started < 3
    assert str(caught.value) == f"node at {node.rpc_url} did not answer for 1 s (connection refused)"


def test_a_node_that_was_never_there_is_reported_at_once(tmp_path: Path):
    url = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    with pytest.raises(ChainError, match=f"no Ethereum JSON-RPC node answers at {url} \\(connection refused\\)"):
        Chain.connect(url)
    assert time.monotonic() - started < 1


# Confirmations ----------------------------------------------------------------------------


def test_confirmations_wait_for_blocks_and_survive_a_reorg(anvil: AnvilNode):
    chain = Chain.connect(anvil.rpc_url, confirmations=2)
    sender, receiver = (chain.add_signer(account) for account in anvil.dev_accounts()[:2])
    before, first_block = mined_nonce(chain, sender), chain.block_number
    reorged: list[str] = []  # the hash of the block the transaction was first mined in
    done = threading.Event()

    def miner() -> None:
        """Mines a block every 50 ms; once the transaction is mined, drops its block in a reorg."""
        while not done.is_set():
            latest = int(rpc(anvil.rpc_url, "eth_blockNumber"), 16)
            blocks = [
                rpc(anvil.rpc_url, "eth_getBlockByNumber", hex(n), True) for n in range(first_block + 1, latest + 1)
            ]
            mined_in = [
                block for block in blocks if any(tx["from"].lower() == sender.lower() for tx in block["transactions"])
            ]
            if mined_in and not reorged:
                reorged.append(mined_in[0]["hash"])
                rpc(anvil.rpc_url, "anvil_reorg", latest - int(mined_in[0]["number"], 16) + 1, [])
            else:
                rpc(anvil.rpc_url, "anvil_mine", 1)
            time.sleep(0.05)

    thread = threading.Thread(target=miner)
    thread.start()
    try:
        receipt = chain.send_value(sender, receiver, 7)
    finally:
        done.set()
        thread.join()

    assert reorged, "the transaction was never mined before the reorg"
    assert chain.w3.eth.get_block(receipt.block_number)["hash"].to_0x_hex() != reorged[0]
    assert chain.block_number >= receipt.block_number + 2
    assert mined_nonce(chain, sender) == before + 1
    assert chain.receipt(receipt.tx_hash) == receipt
