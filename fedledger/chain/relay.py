"""A JSON-RPC relay in front of anvil that saves the chain to disk before answering anything that can change it.

anvil writes its state only on exit or every few seconds, so a killed anvil forgets transactions
whose receipts it had already handed out. The relay closes that gap: every request that is not on
a read-only list is forwarded, then (once anvil has mined what it was sent, or after
``MINING_WAIT_SECONDS`` if it has not) the whole chain is dumped with ``anvil_dumpState`` and
written atomically to the state file, and only then is the answer passed back. Every block a
client can read is on disk; ``anvil --load-state`` brings it back.
"""

import contextlib
import gzip
import http.client
import json
import socket
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from fedledger.files import write_atomically

#: Methods that only read: the chain is not saved after them. Anything else is followed by a save.
READ_ONLY_METHODS = frozenset(
    {
        "web3_clientVersion",
        "web3_sha3",
        "net_version",
        "net_listening",
        "net_peerCount",
        "eth_chainId",
        "eth_protocolVersion",
        "eth_syncing",
        "eth_mining",
        "eth_hashrate",
        "eth_coinbase",
        "eth_accounts",
        "eth_blockNumber",
        "eth_gasPrice",
        "eth_maxPriorityFeePerGas",
        "eth_blobBaseFee",
        "eth_feeHistory",
        "eth_getBalance",
        "eth_getCode",
        "eth_getStorageAt",
        "eth_getTransactionCount",
        "eth_getProof",
        "eth_call",
        "eth_estimateGas",
        "eth_createAccessList",
        "eth_getBlockByNumber",
        "eth_getBlockByHash",
        "eth_getBlockReceipts",
        "eth_getBlockTransactionCountByHash",
        "eth_getBlockTransactionCountByNumber",
        "eth_getTransactionByHash",
        "eth_getTransactionByBlockHashAndIndex",
        "eth_getTransactionByBlockNumberAndIndex",
        "eth_getTransactionReceipt",
        "eth_getLogs",
        "eth_getFilterChanges",
        "eth_getFilterLogs",
        "txpool_status",
        "txpool_content",
        "txpool_inspect",
        "anvil_nodeInfo",
        "anvil_metadata",
        "anvil_getAutomine",
        "anvil_dumpState",
        "debug_traceTransaction",
        "debug_traceCall",
    }
)
#: How long a save waits for anvil to mine the executable transactions it holds (with automine, at once).
MINING_WAIT_SECONDS = 5.0
_UPSTREAM_TIMEOUT_SECONDS = 60.0


class StateSaveError(OSError):
    """The chain could not be written to its state file."""


class AnvilClient:
    """JSON-RPC to anvil on a local port, one connection per request (nothing is ever sent twice)."""

    def __init__(self, port: int) -> None:
        self.port = port

    def post(self, body: bytes) -> tuple[int, bytes]:
        """POST ``body``; the HTTP status and body of the answer. Raises ``OSError`` when anvil is unreachable."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=_UPSTREAM_TIMEOUT_SECONDS)
        try:
            connection.request("POST", "/", body, {"Content-Type": "application/json"})
            response = connection.getresponse()
            return response.status, response.read()
        except http.client.HTTPException as error:
            raise OSError(f"anvil's answer broke off: {error!r}") from error
        finally:
            connection.close()

    def call(self, method: str, params: list[Any] | None = None) -> Any:
        """Call ``method``; its result. Raises ``OSError`` on transport failure or an error answer."""
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []}).encode()
        status, answer = self.post(body)
        reply = json.loads(answer) if status == HTTPStatus.OK else {}
        if "result" not in reply:
            raise OSError(f"anvil answered {method} with HTTP {status}: {answer[:200]!r}")
        return reply["result"]


class StateSaver:
    """Writes anvil's whole chain to ``state_file``, atomically (see :func:`~fedledger.files.write_atomically`)."""

    def __init__(self, anvil: AnvilClient, state_file: Path) -> None:
        self.anvil = anvil
        self.state_file = state_file

    def save(self) -> None:
        """Wait until anvil has mined every executable transaction it holds, then write its chain.

        anvil mines each transaction as it arrives, unless a client switched that off
        (``evm_setAutomine``, ``evm_setIntervalMining``): then the wait ends after
        ``MINING_WAIT_SECONDS`` and the chain is written without the transactions still pending.
        Nobody can have read a receipt of those; each is on disk once a later request has it mined.

        Raises:
            StateSaveError: anvil did not dump its state, or the file could not be written.
        """
        try:
            self._wait_until_mined()
            dump = self.anvil.call("anvil_dumpState")
            write_atomically(self.state_file, gzip.decompress(bytes.fromhex(dump.removeprefix("0x"))))
        except (OSError, ValueError) as error:
            raise StateSaveError(f"cannot save the chain to {self.state_file}: {error}") from error

    def _wait_until_mined(self) -> None:
        # anvil answers eth_sendRawTransaction before it mines: the dump must include the block.
        deadline = time.monotonic() + MINING_WAIT_SECONDS
        while int(self.anvil.call("txpool_status")["pending"], 16) and time.monotonic() < deadline:
            time.sleep(0.001)


class StateSavingRelay(ThreadingHTTPServer):
    """Serves JSON-RPC on ``address`` by forwarding to anvil on ``anvil_port``; saves the chain after
    every request that can change it, before answering.

    Requests are handled one at a time, so no client can read a state that is not yet saved. A
    request that can change the chain is followed by a save even when anvil's answer to it is lost
    (it may have been applied). If a save fails, the relay answers HTTP 503 to everything from then
    on and ``failure`` says why.
    """

    daemon_threads = True

    def __init__(self, address: tuple[str, int], anvil_port: int, state_file: Path) -> None:
        super().__init__(address, _RelayHandler)
        self.anvil = AnvilClient(anvil_port)
        self.saver = StateSaver(self.anvil, state_file)
        self.failure: str | None = None
        self._lock = threading.Lock()  # one request at a time, its save included
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        self._serving: threading.Thread | None = None

    def start(self) -> None:
        """Serve from a thread of its own."""
        self._serving = threading.Thread(target=self.serve_forever, name="anvil-relay", daemon=True)
        self._serving.start()

    def stop(self) -> None:
        """Stop serving (if it was started) and drop every open connection, so clients reconnect to
        whatever serves next."""
        if self._serving is not None:
            self.shutdown()  # waits for serve_forever to return: it would wait forever had it never run
            self._serving = None
        self.server_close()
        with self._connections_lock:
            for connection in self._connections:
                with contextlib.suppress(OSError):  # already closed by the client
                    connection.shutdown(socket.SHUT_RDWR)

    def save(self) -> None:
        """Save the chain now (between requests).

        Raises:
            StateSaveError: the chain could not be saved; ``failure`` says why, and nothing is served from then on.
        """
        with self._lock:
            self._save()

    def relay(self, body: bytes) -> tuple[int, bytes]:
        """Forward ``body`` to anvil and save the chain if it may have changed; the answer to send back."""
        with self._lock:
            if self.failure is not None:
                return _unavailable(self.failure)
            try:
                status, answer = self.anvil.post(body)
                applied = status == HTTPStatus.OK
            except ConnectionRefusedError as error:
                return _unavailable(f"anvil is not answering: {error}")
            except OSError as error:
                status, answer = _unavailable(f"anvil is not answering: {error}")
                applied = True  # anvil may have applied the request before its answer was lost
            if applied and not _only_reads(body):
                try:
                    self._save()
                except StateSaveError as error:
                    return _unavailable(str(error))
            return status, answer

    def _save(self) -> None:
        try:
            self.saver.save()
        except StateSaveError as error:
            self.failure = str(error)
            raise

    def track(self, connection: socket.socket, open_: bool) -> None:
        with self._connections_lock:
            if open_:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)


class _RelayHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out as separate writes
    server: StateSavingRelay

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection, open_=True)

    def finish(self) -> None:
        self.server.track(self.connection, open_=False)
        super().finish()

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        status, answer = self.server.relay(body)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: one line per request would drown the node's own messages."""


def _only_reads(body: bytes) -> bool:
    """Whether every request in ``body`` (one request or a batch) is on the read-only list."""
    try:
        decoded = json.loads(body)
    except ValueError:
        return True  # anvil rejects what is not JSON without touching the chain
    requests = decoded if isinstance(decoded, list) else [decoded]
    return all(isinstance(request, dict) and request.get("method") in READ_ONLY_METHODS for request in requests)


def _unavailable(reason: str) -> tuple[int, bytes]:
    answer = {"jsonrpc": "2.0", "id": None, "error": {"code": -32603, "message": reason}}
    return HTTPStatus.SERVICE_UNAVAILABLE, json.dumps(answer).encode()
