"""A local anvil node (Foundry's Ethereum node) whose chain persists in a state directory."""

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import HTTPProvider, Web3

from contracts import CONTRACTS_DIR
from fedledger.chain.errors import ChainError

ANVIL_ENV = "FEDLEDGER_ANVIL"
_NPM_ANVIL = CONTRACTS_DIR.parent / "node_modules" / ".bin" / "anvil"
_START_TIMEOUT_SECONDS = 30


def find_anvil() -> Path:
    """The anvil executable: ``$FEDLEDGER_ANVIL``, the project's npm install, or the PATH.

    Raises:
        ChainError: saying how to install anvil when none is found.
    """
    candidates = [os.environ.get(ANVIL_ENV), str(_NPM_ANVIL), shutil.which("anvil")]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    raise ChainError(
        "anvil not found: run `npm ci` in the project (it installs @foundry-rs/anvil-linux-amd64), "
        f"put anvil on the PATH, or set ${ANVIL_ENV}"
    )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class AnvilNode:
    """An anvil process serving JSON-RPC on ``host:port``, its chain kept in ``state_dir``.

    The chain (blocks, receipts and logs) is loaded from ``state_dir/state.json`` at start, saved
    there every ``save_interval`` seconds and on stop, so a restarted node continues it.
    ``state_dir/anvil.json`` lists the node's funded development accounts and their keys.
    """

    def __init__(
        self,
        state_dir: Path,
        port: int = 8545,
        host: str = "127.0.0.1",
        chain_id: int = 31337,
        save_interval: int = 5,
    ) -> None:
        self.state_dir = state_dir
        self.port = port
        self.host = host
        self.chain_id = chain_id
        self.save_interval = save_interval
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def rpc_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def state_file(self) -> Path:
        return self.state_dir / "state.json"

    @property
    def accounts_file(self) -> Path:
        return self.state_dir / "anvil.json"

    def command(self) -> list[str]:
        return [
            str(find_anvil()),
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--chain-id",
            str(self.chain_id),
            "--state",
            str(self.state_file),
            "--state-interval",
            str(self.save_interval),
            "--config-out",
            str(self.accounts_file),
            "--silent",
        ]

    def start(self) -> "AnvilNode":
        """Start anvil and wait until it answers JSON-RPC.

        Raises:
            ChainError: anvil exited or did not answer in time; the message carries its output.
        """
        self.state_dir.mkdir(parents=True, exist_ok=True)
        # A session of its own: a Ctrl-C meant for us must not reach anvil mid-save; stop() signals it.
        with (self.state_dir / "anvil.log").open("wb") as log:
            self._process = subprocess.Popen(
                self.command(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + _START_TIMEOUT_SECONDS
        w3 = Web3(HTTPProvider(self.rpc_url, request_kwargs={"timeout": 2}))
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise ChainError(f"anvil exited with code {self._process.returncode}: {self._log_tail()}")
            if w3.is_connected():
                return self
            time.sleep(0.1)
        self.stop()
        raise ChainError(f"anvil did not answer on {self.rpc_url} within {_START_TIMEOUT_SECONDS} s")

    def stop(self) -> None:
        """Stop anvil, letting it save its state first."""
        if self._process is None or self._process.poll() is not None:
            return
        self._process.send_signal(signal.SIGINT)
        try:
            self._process.wait(timeout=_START_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()

    def wait(self) -> int:
        """Block until anvil exits; returns its exit code."""
        if self._process is None:
            raise ChainError("anvil was not started")
        return self._process.wait()

    def dev_accounts(self) -> list[LocalAccount]:
        """The node's funded development accounts (from ``anvil.json``)."""
        keys = json.loads(self.accounts_file.read_text())["private_keys"]
        return [Account.from_key(key) for key in keys]

    def _log_tail(self) -> str:
        log = self.state_dir / "anvil.log"
        return log.read_text(errors="replace")[-2000:] if log.exists() else "(no output)"

    def __enter__(self) -> "AnvilNode":
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()
