"""The chain access layer against a real anvil that stops, restarts, drops answers and loses transactions.

Faults in the transport are made by a small HTTP relay between the client and the node
(:class:`FaultyLink`): it forwards requests to anvil and, when told, loses a request or its answer
the way a broken connection does, or answers with an HTTP error. Put between the relay of
`fedledger chain node` and its anvil, it loses anvil's answers to the relay instead.
"""

import dataclasses
import json
import logging
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
from eth_account.signers.local import LocalAccount
from typer.testing import CliRunner
from web3.contract.contract import ContractFunction

from fedledger.chain import Chain, ChainError, ChainUnavailable, Registry, connection
from fedledger.chain.anvil import AnvilNode, free_port
from fedledger.chain.relay import StateSavingRelay
from fedledger.cli import app
from fedledger.hashing import keccak256, to_hex
from fedledger.keys import PRIVATE_KEY_ENV
from fedledger.rewards import TOKEN_DECIMALS

from helpers import participant_key, reverts, sample_commitment

pytestmark = pytest.mark.anvil

Fault = Callable[["FaultyLink", bytes], bytes | int | None]


class FaultyLink(ThreadingHTTPServer):
    """Forwards JSON-RPC to ``node_url``; ``fault`` decides the fate of each eth_sendRawTransaction.

    ``fault(link, body)`` returns the answer to send back, an HTTP error status to answer with, or
    ``None`` to close the connection without answering. ``sends`` holds the signed bytes of every
    eth_sendRawTransaction the node received, ``methods`` the method of every request the link
    was sent. The next ``failing_answers`` requests are answered with HTTP ``failing_status`` instead.
    """

    daemon_threads = True

    def __init__(self, node_url: str) -> None:
        super().__init__(("127.0.0.1", free_port()), _LinkHandler)
        self.node_url = node_url
        self.fault: Fault | None = None
        self.failing_answers = 0
        self.failing_status = 503
        self.sends: list[str] = []
        self.methods: list[str] = []
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
        decoded = json.loads(body)
        self.server.methods += [request["method"] for request in (decoded if isinstance(decoded, list) else [decoded])]
        if self.server.failing_answers:
            self.server.failing_answers -= 1
            self.send_error(self.server.failing_status)
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
        if isinstance(answer, int):
            self.send_error(answer)
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


class ReorgingMiner(threading.Thread):
    """Mines a block every 50 ms; once a transaction from ``sender`` is mined, drops its block in a reorg (once)."""

    def __init__(self, url: str, sender: str) -> None:
        super().__init__()
        self.url, self.sender = url, sender
        self.first_block = int(rpc(url, "eth_blockNumber"), 16)
        self.reorged: list[str] = []  # the hash of the block the transaction was first mined in
        self.done = threading.Event()

    def run(self) -> None:
        checked = self.first_block  # blocks up to here hold no transaction from ``sender``
        while not self.done.is_set():
            latest = int(rpc(self.url, "eth_blockNumber"), 16)
            mined_in = []
            if not self.reorged:
                blocks = [rpc(self.url, "eth_getBlockByNumber", hex(n), True) for n in range(checked + 1, latest + 1)]
                checked = latest
                mined_in = [
                    block
                    for block in blocks
                    if any(tx["from"].lower() == self.sender.lower() for tx in block["transactions"])
                ]
            if mined_in:
                self.reorged.append(mined_in[0]["hash"])
                rpc(self.url, "anvil_reorg", latest - int(mined_in[0]["number"], 16) + 1, [])
            else:
                rpc(self.url, "anvil_mine", 1)
            time.sleep(0.05)

    def __enter__(self) -> "ReorgingMiner":
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.done.set()
        self.join()


def test_confirmations_wait_for_blocks_and_survive_a_reorg(anvil: AnvilNode):
    chain = Chain.connect(anvil.rpc_url, confirmations=2)
    sender, receiver = (chain.add_signer(account) for account in anvil.dev_accounts()[:2])
    before = mined_nonce(chain, sender)

    with ReorgingMiner(anvil.rpc_url, sender) as miner:
        receipt = chain.send_value(sender, receiver, 7)

    assert miner.reorged, "the transaction was never mined before the reorg"
    assert chain.w3.eth.get_block(receipt.block_number)["hash"].to_0x_hex() != miner.reorged[0]
    assert chain.block_number >= receipt.block_number + 2
    assert mined_nonce(chain, sender) == before + 1
    assert chain.receipt(receipt.tx_hash) == receipt


def test_a_reorg_after_a_confirmation_wait_longer_than_the_receipt_timeout_is_waited_on_afresh(
    anvil: AnvilNode, monkeypatch
):
    monkeypatch.setattr(connection, "RECEIPT_TIMEOUT_SECONDS", 1.0)
    chain = Chain.connect(anvil.rpc_url, confirmations=20)  # about 2 s of blocks: longer than the timeout
    sender, receiver = (chain.add_signer(account) for account in anvil.dev_accounts()[:2])
    started = time.monotonic()

    with ReorgingMiner(anvil.rpc_url, sender) as miner:
        receipt = chain.send_value(sender, receiver, 7)

    assert miner.reorged and time.monotonic() - started > 2
    assert chain.w3.eth.get_block(receipt.block_number)["hash"].to_0x_hex() != miner.reorged[0]
    assert chain.receipt(receipt.tx_hash) == receipt


# Resending: bounded -----------------------------------------------------------------------


def finished_within(seconds: float, work: Callable[[], Any]) -> Any:
    """What ``work`` returns (or raises); fails the test if it runs longer than ``seconds``."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["result"] = work()
        except BaseException as error:  # handed to the test below
            outcome["error"] = error

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still running after {seconds} s"
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


def test_a_transaction_the_node_keeps_losing_is_given_up_after_a_bounded_number_of_sends(anvil, link: FaultyLink):
    chain, sender, receiver = connected(link.url, anvil)
    nonce = mined_nonce(chain, sender)
    attempts: list[str] = []

    def lost_every_time(link: FaultyLink, body: bytes) -> None:
        attempts.append(signed_bytes(body))
        link.fault = lost_every_time

    link.fault = lost_every_time
    with pytest.raises(ChainError) as caught:
        finished_within(30, lambda: chain.send_value(sender, receiver, 7))

    assert len(attempts) == 1 + connection.MAX_RESENDS and len(set(attempts)) == 1
    tx_hash = "0x" + keccak256(bytes.fromhex(attempts[0][2:])).hex()
    assert str(caught.value) == (
        f"{link.url} lost transaction {tx_hash} (nonce {nonce} of {sender}) each of the "
        f"{1 + connection.MAX_RESENDS} times it was sent; it is not sent again"
    )
    assert link.sends == [] and mined_nonce(chain, sender) == nonce


# Errors that no retry can mend ------------------------------------------------------------


@pytest.mark.parametrize("status", [404, 413])
def test_an_http_error_no_retry_can_mend_is_one_chain_error_naming_the_url_and_the_status(
    anvil, link: FaultyLink, status: int
):
    chain, sender, receiver = connected(link.url, anvil)
    phrase = HTTPStatus(status).phrase
    link.failing_status, link.failing_answers = status, 1
    started = time.monotonic()
    with pytest.raises(ChainError) as caught:
        chain.block_number  # noqa: B018
    assert str(caught.value) == f"{link.url} answered eth_blockNumber with HTTP {status} {phrase}"
    assert time.monotonic() - started < 1

    link.fault = lambda link, body: status
    with pytest.raises(ChainError) as caught:
        chain.send_value(sender, receiver, 7)
    assert str(caught.value) == f"{link.url} answered eth_sendRawTransaction with HTTP {status} {phrase}"
    assert link.sends == []


def test_a_batch_of_reads_rides_out_an_outage_like_a_single_call(anvil, link: FaultyLink):
    chain, sender, _ = connected(link.url, anvil)
    link.failing_answers = 2
    with chain.w3.batch_requests() as batch:
        batch.add(chain.w3.eth.get_block("latest"))
        batch.add(chain.w3.eth.get_balance(sender))
        block, balance = batch.execute()
    assert link.failing_answers == 0
    assert (block["number"], balance) == (chain.block_number, chain.balance(sender))


# Reading a transaction's events -------------------------------------------------------------


def test_events_are_read_from_the_receipt_the_send_waited_for(anvil, link: FaultyLink):
    chain, sender, receiver = connected(link.url, anvil)
    registry, _ = Registry.deploy(chain, sender, admin_transfer_delay=600)

    link.methods.clear()
    run_id, receipt = registry.start_run(keccak256(b"config"), keccak256(b"model"), 0, 5)
    assert run_id == 1 and registry.run(run_id).start_block == receipt.block_number
    pending, _ = registry.begin_admin_transfer(receiver)
    assert pending == registry.pending_admin() and pending.new_admin == receiver

    assert link.methods.count("eth_sendRawTransaction") == 2
    assert link.methods.count("eth_getTransactionReceipt") == 2


# A transaction mined but reverted -----------------------------------------------------------


def send_without_waiting(chain: Chain, call: ContractFunction, account: LocalAccount) -> str:
    """Sign and send ``call`` from ``account``, as a process that crashes right after would; its hash."""
    nonce = chain.w3.eth.get_transaction_count(account.address, "pending")
    signed = account.sign_transaction(call.build_transaction({"from": account.address, "nonce": nonce}))
    return chain.w3.eth.send_raw_transaction(signed.raw_transaction).to_0x_hex()


def mined_in_one_block(chain: Chain, first: Callable[[], str], second: Callable[[], Any]) -> tuple[str, Any]:
    """With mining off, run ``first`` (which sends a transaction), then ``second`` until its transaction
    is pending too, and mine both in one block: ``first``'s hash and what ``second`` returns (or raises)."""

    def pending() -> int:
        return int(chain.w3.provider.make_request("txpool_status", [])["result"]["pending"], 16)

    chain.w3.provider.make_request("evm_setAutomine", [False])
    try:
        first_hash = first()
        with ThreadPoolExecutor(1) as pool:
            later = pool.submit(second)
            while pending() < 2 and not later.done():
                time.sleep(0.01)
            chain.w3.provider.make_request("evm_mine", [])
            return first_hash, later.result(timeout=30)
    finally:
        chain.w3.provider.make_request("evm_setAutomine", [True])


def straight_to_anvil(anvil: AnvilNode) -> tuple[Chain, LocalAccount, Registry]:
    """A chain on anvil's own port (mining switched off is not waited on there), its first account, a registry."""
    chain = Chain.connect(f"http://127.0.0.1:{anvil.anvil_port}")
    account = anvil.dev_accounts()[0]
    registry, _ = Registry.deploy(chain, chain.add_signer(account))
    return chain, account, registry


def test_a_transaction_mined_reverted_raises_the_contract_s_custom_error(anvil: AnvilNode):
    chain, account, registry = straight_to_anvil(anvil)
    participant = participant_key(0).address
    add = registry.contract.functions.addParticipants([participant], [keccak256(b"first")])

    with reverts("ParticipantAlreadyRegistered", participant=participant):
        mined_in_one_block(
            chain,
            lambda: send_without_waiting(chain, add, account),
            lambda: registry.add_participant(participant, keccak256(b"second")),
        )

    block = chain.w3.eth.get_block("latest", full_transactions=True)
    assert [chain.w3.eth.get_transaction_receipt(tx["hash"])["status"] for tx in block["transactions"]] == [1, 0]


@pytest.mark.parametrize("same", [True, False])
def test_a_commit_mined_just_after_one_sent_before_a_crash_is_settled_by_the_registry(anvil: AnvilNode, same: bool):
    chain, account, registry = straight_to_anvil(anvil)
    run_id, _ = registry.start_run(keccak256(b"config"), keccak256(b"model 0"), 0, 5)
    before_crash = sample_commitment(1)
    again = sample_commitment(1 if same else 2)
    commit = registry.contract.functions.commitRound(run_id, 1, dataclasses.astuple(before_crash))

    def commit_again() -> Any:
        try:
            return registry.commit_round(run_id, 1, again)
        except ChainError as error:
            return error

    first_hash, outcome = mined_in_one_block(chain, lambda: send_without_waiting(chain, commit, account), commit_again)

    assert registry.committed_round(run_id, 1).commitment == before_crash
    if same:
        assert outcome == chain.receipt(first_hash)
    else:
        assert str(outcome) == (
            f"run {run_id} round 1 is already committed with manifest {to_hex(before_crash.manifest_hash)}, "
            f"not {to_hex(again.manifest_hash)}"
        )


# The relay of `fedledger chain node`, when anvil's answer is lost ----------------------------


@pytest.mark.parametrize("save_fails", [False, True])
def test_a_write_whose_answer_anvil_lost_is_saved_before_the_relay_answers(
    anvil: AnvilNode, tmp_path: Path, save_fails: bool
):
    to_anvil = FaultyLink(f"http://127.0.0.1:{anvil.anvil_port}")  # between the relay and anvil
    relay = StateSavingRelay(("127.0.0.1", free_port()), to_anvil.server_address[1], tmp_path / "state.json")
    relay.save()
    relay.start()
    account, receiver = anvil.dev_accounts()[:2]
    fees = {"maxFeePerGas": 10**10, "maxPriorityFeePerGas": 10**9, "gas": 21_000, "chainId": 31337}
    nonce = int(rpc(to_anvil.node_url, "eth_getTransactionCount", account.address, "latest"), 16)
    transfer = account.sign_transaction({"to": receiver.address, "value": 1, "nonce": nonce, **fees})

    def applied_but_answer_lost(link: FaultyLink, body: bytes) -> None:
        link.forward(body)
        if save_fails:
            link.failing_answers = 10**6

    to_anvil.fault = applied_but_answer_lost
    relay_url = f"http://127.0.0.1:{relay.server_address[1]}"
    try:
        body = {"jsonrpc": "2.0", "id": 1, "method": "eth_sendRawTransaction"}
        answer = requests.post(relay_url, json={**body, "params": [transfer.raw_transaction.to_0x_hex()]})
        assert answer.status_code == 503
        if save_fails:
            assert relay.failure is not None and relay.failure.startswith(f"cannot save the chain to {tmp_path}")
            read = requests.post(relay_url, json={"jsonrpc": "2.0", "id": 2, "method": "eth_blockNumber"})
            assert read.status_code == 503 and read.json()["error"]["message"] == relay.failure
            return
        assert relay.failure is None
    finally:
        relay.stop()
        to_anvil.shutdown()
        to_anvil.server_close()

    saved = tmp_path / "reloaded"
    saved.mkdir()
    shutil.copy(tmp_path / "state.json", saved / "state.json")
    with AnvilNode(saved, port=free_port()) as reloaded:
        assert Chain.connect(reloaded.rpc_url).receipt(transfer.hash) is not None


# `fedledger chain deploy` on a node that refuses the allowance ----------------------------------


def test_deploy_records_the_registry_before_granting_the_allowance_and_says_how_to_grant_it(
    anvil: AnvilNode, link: FaultyLink, tmp_path: Path
):
    admin, coordinator = anvil.dev_accounts()[:2]
    deployment = tmp_path / "deployment.json"
    refusal = {"jsonrpc": "2.0", "id": 0, "error": {"code": -32003, "message": "txpool is full"}}

    def deployed_then_refused(link: FaultyLink, body: bytes) -> bytes:
        link.fault = lambda link, body: json.dumps({**refusal, "id": json.loads(body)["id"]}).encode()
        return link.forward(body)

    link.fault = deployed_then_refused
    options = ["--rpc-url", link.url, "--coordinator", coordinator.address, "--deployment", str(deployment)]
    result = CliRunner().invoke(
        app, ["chain", "deploy", *options, "--allowance", "500"], env={PRIVATE_KEY_ENV: admin.key.to_0x_hex()}
    )

    assert result.exit_code == 1, result.output
    registry = Registry(Chain.connect(anvil.rpc_url), json.loads(deployment.read_text())["registry"])
    assert registry.run_allowance(coordinator.address) == 0
    grant = f"fedledger chain allowance {coordinator.address} 500 --deployment {deployment}"
    error = result.output.strip().splitlines()[-1]
    assert error.startswith(f"error: registry {registry.address} is deployed and recorded in {deployment}, but ")
    assert "txpool is full" in error and error.endswith(f"grant it with `{grant}` and the admin's key")

    granted = CliRunner().invoke(app, grant.split()[1:], env={PRIVATE_KEY_ENV: admin.key.to_0x_hex()})
    assert granted.exit_code == 0, granted.output
    assert registry.run_allowance(coordinator.address) == 500 * 10**TOKEN_DECIMALS
