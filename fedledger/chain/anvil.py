"""A local anvil node (Foundry's Ethereum node) whose chain is on disk before any client hears of a change."""

import contextlib
import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from eth_account import Account
from eth_account.signers.local import LocalAccount

from fedledger.chain.errors import ChainError
from fedledger.chain.relay import AnvilClient, StateSaveError, StateSavingRelay
from fedledger.contracts import CONTRACTS_DIR

ANVIL_ENV = "FEDLEDGER_ANVIL"
_NPM_ANVIL = CONTRACTS_DIR.parent / "node_modules" / ".bin" / "anvil"
_START_TIMEOUT_SECONDS = 30
_PR_SET_PDEATHSIG = 1


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
    """anvil behind a :class:`~fedledger.chain.relay.StateSavingRelay`, serving JSON-RPC on ``host:port``.

    anvil itself listens on a private local port and never writes its state; the relay saves the
    whole chain to ``state_dir/state.json`` after every request that can change it, before
    answering, so every transaction a client was told about survives anvil being killed. A
    restarted node loads that file and continues the chain. ``state_dir/anvil.json`` lists the
    node's funded development accounts and their keys; anvil's output is appended to
    ``state_dir/anvil.log``, so a restart keeps what a crashed anvil wrote.

    anvil runs in a session of its own (a Ctrl-C meant for this process must not reach it mid-save;
    :meth:`stop` stops it) and, on Linux, is killed when the thread that started it ends, so it
    cannot outlive this process.
    """

    def __init__(self, state_dir: Path, port: int = 8545, host: str = "127.0.0.1", chain_id: int = 31337) -> None:
        self.state_dir = state_dir
        self.port = port
        self.host = host
        self.chain_id = chain_id
        self._process: subprocess.Popen[bytes] | None = None
        self._relay: StateSavingRelay | None = None
        self._log_start = 0  # where this start's output begins in the log

    @property
    def rpc_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def state_file(self) -> Path:
        return self.state_dir / "state.json"

    @property
    def accounts_file(self) -> Path:
        return self.state_dir / "anvil.json"

    @property
    def log_file(self) -> Path:
        return self.state_dir / "anvil.log"

    @property
    def anvil_port(self) -> int | None:
        """anvil's own local port while it runs: the same chain, answered without being saved (for measurements)."""
        return self._relay.anvil.port if self._relay is not None else None

    @property
    def anvil_pid(self) -> int | None:
        """The anvil process's id while it runs."""
        return self._process.pid if self._process is not None and self._process.poll() is None else None

    def command(self, anvil_port: int) -> list[str]:
        """anvil's command line: a private port, and the saved chain if there is one."""
        command = [
            str(find_anvil()),
            "--host",
            "127.0.0.1",
            "--port",
            str(anvil_port),
            "--chain-id",
            str(self.chain_id),
            "--config-out",
            str(self.accounts_file),
            "--silent",
        ]
        if self.state_file.exists():
            command += ["--load-state", str(self.state_file)]
        return command

    def start(self) -> "AnvilNode":
        """Start anvil, save its chain, and serve it on ``rpc_url``.

        Raises:
            ChainError: anvil exited or did not answer in time (the message carries its output),
                the chain could not be saved, or ``host:port`` is taken.
        """
        self.state_dir.mkdir(parents=True, exist_ok=True)
        anvil_port = free_port()
        with self.log_file.open("ab") as log:
            self._log_start = log.tell()
            self._process = subprocess.Popen(
                self.command(anvil_port),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent(),
            )
        self._wait_until_answering(AnvilClient(anvil_port))
        try:
            self._relay = StateSavingRelay((self.host, self.port), anvil_port, self.state_file)
        except OSError as error:
            self.stop()
            raise ChainError(f"cannot serve JSON-RPC on {self.host}:{self.port}: {error.strerror or error}") from None
        try:
            self._relay.save()
        except StateSaveError as error:
            self.stop()
            raise ChainError(str(error)) from None
        self._relay.start()
        return self

    def stop(self) -> None:
        """Stop serving, save the chain a last time, and stop anvil: whatever of it was started."""
        relay, self._relay = self._relay, None
        if relay is not None:
            relay.stop()
        if self._process is None or self._process.poll() is not None:
            return
        if relay is not None and relay.failure is None:
            with contextlib.suppress(StateSaveError):  # every change was already saved as it happened
                relay.save()
        self._process.send_signal(signal.SIGTERM)
        try:
            self._process.wait(timeout=_START_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()

    def wait(self) -> int:
        """Block until anvil exits; its exit code (negative: the signal that ended it).

        Raises:
            ChainError: the chain could not be saved (anvil is stopped: nothing unsaved is served).
        """
        if self._process is None:
            raise ChainError("anvil was not started")
        while (code := self._process.poll()) is None:
            if self._relay is not None and self._relay.failure is not None:
                failure = self._relay.failure
                self.stop()
                raise ChainError(failure)
            time.sleep(0.2)
        return code

    def dev_accounts(self) -> list[LocalAccount]:
        """The node's funded development accounts (from ``anvil.json``)."""
        keys = json.loads(self.accounts_file.read_text())["private_keys"]
        return [Account.from_key(key) for key in keys]

    def _wait_until_answering(self, anvil: AnvilClient) -> None:
        if self._process is None:
            raise ChainError("anvil was not started")
        deadline = time.monotonic() + _START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise ChainError(f"anvil exited with code {self._process.returncode}: {self._log_tail()}")
            try:
                anvil.call("eth_chainId")
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise ChainError(f"anvil did not answer within {_START_TIMEOUT_SECONDS} s: {self._log_tail()}")

    def _log_tail(self) -> str:
        """The end of what anvil wrote since this start, on one line."""
        with self.log_file.open("rb") as log:
            log.seek(self._log_start)
            text = log.read().decode(errors="replace")
        return " ".join(text[-2000:].split()) or "(no output)"

    def __enter__(self) -> "AnvilNode":
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()


def _die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` that has Linux kill the child when the thread that started it ends."""
    if not sys.platform.startswith("linux"):
        return None
    parent = os.getpid()
    libc = ctypes.CDLL(None, use_errno=True)

    def arrange() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return arrange
