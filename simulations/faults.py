"""Faults injected into real runs, and what the record looks like afterwards.

Each fault runs ``fedledger simulate`` as its own process (the coordinator, with Flower's
Simulation Engine), injects one fault — the chain node killed or restarted mid-run, the coordinator
killed and resumed, a site sending garbage every round — lets the run finish, and then compares
three things: the rounds the coordinator was told were mined (``rounds.jsonl`` in the run's
directory), the rounds the registry holds, and the verdict of ``fedledger audit``. Used by the
fault tests and by ``python -m fedledger.simulations.benchmarks.faults``.
"""

import json
import os
import signal
import subprocess
import sys
import time
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from web3 import HTTPProvider, Web3

from fedledger.chain import Chain, Registry, RunRecord
from fedledger.chain.anvil import AnvilNode, free_port
from fedledger.coordinator.recorder import ROUNDS_FILE
from fedledger.deployment import LedgerLocation
from fedledger.hashing import to_hex
from fedledger.keys import PRIVATE_KEY_ENV

#: A small federation that still has rounds to interrupt: four hospitals, six rounds.
PLANNED_ROUNDS = 6
SCENARIO = ("--scenario", "hospitals", "--rounds", str(PLANNED_ROUNDS))
#: The fault strikes once the coordinator has acknowledged this many rounds.
STRIKE_AFTER_ROUNDS = 2
_RUN_TIMEOUT_SECONDS = 600
_POLL_SECONDS = 0.1


@dataclass(frozen=True)
class FaultOutcome:
    """One fault's run, as the record shows it afterwards.

    ``planned``: the rounds the run plans, as the registry holds them.
    ``lost``: rounds the coordinator was told were mined that the registry does not hold as told.
    ``committed_twice``: rounds whose commit was sent in more than one transaction (the registry
    refuses a second commit, but a second transaction mined at all would mean a commit was sent
    again without looking first), or that the coordinator acknowledged more than once.
    ``runs``: runs the registry holds (a resume continues its run; it never starts another).
    """

    fault: str
    planned: int
    committed: int
    lost: int
    committed_twice: int
    resumed: int
    runs: int
    verdict: str
    wall_time_seconds: float


class Fault(ABC):
    """One way for a run to go wrong, injected into a real run in ``directory``; ``resumes`` is how
    many times the coordinator is resumed to finish the run."""

    name: str
    description: str
    resumes: int = 0

    @abstractmethod
    def run(self, directory: Path) -> FaultOutcome: ...

    def __str__(self) -> str:
        return self.name


def fedledger_command(*arguments: str) -> list[str]:
    """The ``fedledger`` command line of this Python environment."""
    return [sys.executable, "-m", "fedledger.cli", *arguments]


class Coordinator:
    """``fedledger simulate`` as a process of its own session (it starts Ray's processes beside it),
    recording in ``directory/run``, its output in ``directory/coordinator-N.log``."""

    def __init__(self, directory: Path, environment: dict[str, str] | None = None) -> None:
        self.directory = directory
        self.environment = {**os.environ, **(environment or {})}
        self.starts = 0
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def output_dir(self) -> Path:
        return self.directory / "run"

    def start(self, *arguments: str) -> None:
        """Start a new simulation with ``arguments`` (plus ``--out``), or resume it if it was started before."""
        command = ["--resume", str(self.output_dir)] if self.starts else [*arguments, "--out", str(self.output_dir)]
        self.starts += 1
        log = (self.directory / f"coordinator-{self.starts}.log").open("wb")
        self._process = subprocess.Popen(
            fedledger_command("simulate", *command),
            stdout=log,
            stderr=subprocess.STDOUT,
            env=self.environment,
            start_new_session=True,
        )

    def acknowledged(self) -> list[dict]:
        """The commits the coordinator was told are mined, in order."""
        path = self.output_dir / ROUNDS_FILE
        if not path.exists():
            return []
        lines = path.read_text().split("\n")[:-1]  # a last line without its newline was never finished
        return [json.loads(line) for line in lines]

    def wait_for_rounds(self, count: int) -> None:
        """Block until ``count`` rounds are acknowledged.

        Raises:
            RuntimeError: the coordinator exited or took too long first; the message holds its log.
        """
        deadline = time.monotonic() + _RUN_TIMEOUT_SECONDS
        while len(self.acknowledged()) < count:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the coordinator did not reach round {count}: {self.log_tail()}")
            time.sleep(_POLL_SECONDS)

    def kill(self) -> None:
        """SIGKILL the coordinator and every process of its session, as a crash of its host would."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def finish(self) -> int:
        """Wait for the coordinator to exit; its exit code."""
        try:
            return self.process.wait(timeout=_RUN_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            self.kill()
            raise RuntimeError(f"the coordinator did not finish: {self.log_tail()}") from None

    @property
    def process(self) -> subprocess.Popen[bytes]:
        if self._process is None:
            raise RuntimeError("the coordinator was not started")
        return self._process

    def stop_line(self) -> str:
        """The one ``error:`` line a coordinator that stopped on its own printed last."""
        lines = [line for line in self.log_tail().splitlines() if line.startswith("error: ")]
        if not lines:
            raise RuntimeError(f"the coordinator stopped without an error line: {self.log_tail()}")
        return lines[-1]

    def log_tail(self) -> str:
        log = self.directory / f"coordinator-{self.starts}.log"
        return log.read_text(errors="replace")[-3000:] if log.exists() else "(no output)"


class ChainNode:
    """``fedledger chain node`` as a process, on a fixed port, its chain kept in ``state_dir``."""

    def __init__(self, directory: Path) -> None:
        self.state_dir = directory / "anvil"
        self.port = free_port()
        self.starts = 0
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def rpc_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.starts += 1
        log = (self.state_dir.parent / f"chain-node-{self.starts}.log").open("wb")
        self._process = subprocess.Popen(
            fedledger_command("chain", "node", "--state-dir", str(self.state_dir), "--port", str(self.port)),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        _wait_until(lambda: Web3(HTTPProvider(self.rpc_url)).is_connected(), f"the chain node on {self.rpc_url}")

    def coordinator_key(self) -> str:
        """The first development account's key: the coordinator's, on this node."""
        return AnvilNode(self.state_dir).dev_accounts()[0].key.to_0x_hex()

    def kill_anvil(self) -> None:
        """SIGKILL the anvil process the node runs, and wait for the node to notice and exit."""
        children = _children(self.process.pid)
        if len(children) != 1:
            raise RuntimeError(f"the chain node should run one anvil process, it runs {children}")
        os.kill(children[0], signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        """Stop the node as an operator would (SIGTERM): it saves the chain and stops anvil."""
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            self._process.wait(timeout=30)

    @property
    def process(self) -> subprocess.Popen[bytes]:
        if self._process is None:
            raise RuntimeError("the chain node was not started")
        return self._process


@contextmanager
def running_node(directory: Path) -> Iterator[ChainNode]:
    node = ChainNode(directory)
    node.start()
    try:
        yield node
    finally:
        node.stop()


def _children(pid: int) -> list[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(child) for child in text.split()]


def _wait_until(condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} not ready within {timeout:.0f} s")
        time.sleep(_POLL_SECONDS)


def outcome(fault: str, coordinator: Coordinator, chain: Chain, started: float) -> FaultOutcome:
    """Compare what the coordinator acknowledged with what the registry holds, and audit the run."""
    location = LedgerLocation.load(coordinator.output_dir)
    registry = Registry(chain, location.registry)
    run = registry.run(location.run_id)
    held = {
        number: to_hex(registry.committed_round(run.run_id, number).commitment.manifest_hash)
        for number in range(1, run.committed_rounds + 1)
    }
    acknowledged = coordinator.acknowledged()
    lost = {entry["round"] for entry in acknowledged if held.get(entry["round"]) != entry["manifest_hash"]}
    sent = _commit_transactions(registry, run)
    twice = {number for number, count in sent.items() if count > 1}
    twice |= {number for number, count in Counter(entry["round"] for entry in acknowledged).items() if count > 1}
    audit = subprocess.run(
        fedledger_command("audit", "--simulation", str(coordinator.output_dir), "--json"),
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        verdict = json.loads(audit.stdout)["verdict"]
    except (json.JSONDecodeError, KeyError):
        verdict = f"error: {(audit.stderr or audit.stdout).strip()[-300:]}"
    return FaultOutcome(
        fault=fault,
        planned=run.planned_rounds,
        committed=run.committed_rounds,
        lost=len(lost),
        committed_twice=len(twice),
        resumed=coordinator.starts - 1,
        runs=registry.run_count(),
        verdict=verdict,
        wall_time_seconds=time.perf_counter() - started,
    )


def _commit_transactions(registry: Registry, run: RunRecord) -> Counter[int]:
    """How many ``commitRound`` transactions for each round of ``run`` were mined, reverted ones included."""
    w3, sent = registry.chain.w3, Counter[int]()
    for number in range(run.start_block, w3.eth.block_number + 1):
        for transaction in w3.eth.get_block(number, full_transactions=True)["transactions"]:
            if transaction["to"] != registry.address:
                continue
            payload = transaction["input"] if "input" in transaction else transaction["data"]  # eth-tester: "data"
            function, arguments = registry.contract.decode_function_input(payload)
            if function.fn_name == "commitRound" and arguments["runId"] == run.run_id:
                sent[arguments["round"]] += 1
    return sent


def _saved_chain(coordinator: Coordinator) -> Chain:
    """The in-process chain the coordinator journaled, rebuilt."""
    location = LedgerLocation.load(coordinator.output_dir)
    if location.saved_chain is None:
        raise RuntimeError(f"{coordinator.output_dir} names no saved chain: the run was not on the in-process chain")
    return Chain.restore(Path(location.saved_chain))


class AnvilKilled(Fault):
    name = "chain node: anvil SIGKILL"
    description = "the anvil process of `fedledger chain node` is killed mid-run, and the node restarted 2 s later"
    outage_seconds = 2.0

    def run(self, directory: Path) -> FaultOutcome:
        started = time.perf_counter()
        with running_node(directory) as node:
            coordinator = Coordinator(directory, {PRIVATE_KEY_ENV: node.coordinator_key()})
            coordinator.start(*SCENARIO, "--rpc-url", node.rpc_url)
            coordinator.wait_for_rounds(STRIKE_AFTER_ROUNDS)
            node.kill_anvil()
            time.sleep(self.outage_seconds)
            node.start()
            coordinator.finish()
            return outcome(self.name, coordinator, Chain.connect(node.rpc_url), started)


class NodeRestarted(Fault):
    name = "chain node: restart"
    description = "`fedledger chain node` is stopped (SIGTERM) mid-run and started again at once"

    def run(self, directory: Path) -> FaultOutcome:
        started = time.perf_counter()
        with running_node(directory) as node:
            coordinator = Coordinator(directory, {PRIVATE_KEY_ENV: node.coordinator_key()})
            coordinator.start(*SCENARIO, "--rpc-url", node.rpc_url)
            coordinator.wait_for_rounds(STRIKE_AFTER_ROUNDS)
            node.stop()
            node.start()
            coordinator.finish()
            return outcome(self.name, coordinator, Chain.connect(node.rpc_url), started)


class NodeDownPastBudget(Fault):
    name = "chain node: down past the retry budget"
    description = (
        "the node stays down longer than the coordinator's retry budget (5 s): the run stops with one line "
        "naming the command that resumes it; the node comes back and the run is resumed"
    )
    resumes = 1
    retry_seconds = 5

    def run(self, directory: Path) -> FaultOutcome:
        started = time.perf_counter()
        with running_node(directory) as node:
            coordinator = Coordinator(directory, {PRIVATE_KEY_ENV: node.coordinator_key()})
            coordinator.start(*SCENARIO, "--rpc-url", node.rpc_url, "--rpc-retry-seconds", str(self.retry_seconds))
            coordinator.wait_for_rounds(STRIKE_AFTER_ROUNDS)
            node.stop()
            if coordinator.finish() == 0 or "simulate --resume" not in coordinator.stop_line():
                raise RuntimeError(f"the coordinator did not stop with the resume command: {coordinator.log_tail()}")
            node.start()
            coordinator.start()
            coordinator.finish()
            return outcome(self.name, coordinator, Chain.connect(node.rpc_url), started)


class CoordinatorKilled(Fault):
    name = "coordinator: SIGKILL, resume"
    description = "the coordinator (in-process chain) is killed mid-run and resumed with `simulate --resume`"
    resumes = 1

    def run(self, directory: Path) -> FaultOutcome:
        started = time.perf_counter()
        coordinator = Coordinator(directory)
        coordinator.start(*SCENARIO)
        coordinator.wait_for_rounds(STRIKE_AFTER_ROUNDS)
        coordinator.kill()
        coordinator.start()
        coordinator.finish()
        return outcome(self.name, coordinator, _saved_chain(coordinator), started)


class CoordinatorKilledOnNode(Fault):
    name = "coordinator on a node: SIGKILL, resume"
    description = "the coordinator recording on `fedledger chain node` is killed mid-run and resumed"
    resumes = 1

    def run(self, directory: Path) -> FaultOutcome:
        started = time.perf_counter()
        with running_node(directory) as node:
            coordinator = Coordinator(directory, {PRIVATE_KEY_ENV: node.coordinator_key()})
            coordinator.start(*SCENARIO, "--rpc-url", node.rpc_url)
            coordinator.wait_for_rounds(STRIKE_AFTER_ROUNDS)
            coordinator.kill()
            coordinator.start()
            coordinator.finish()
            return outcome(self.name, coordinator, Chain.connect(node.rpc_url), started)


class GarbageSite(Fault):
    name = "site: garbage every round"
    description = "one registered site answers every training and evaluation request with a malformed reply"

    def run(self, directory: Path) -> FaultOutcome:
        started = time.perf_counter()
        coordinator = Coordinator(directory)
        coordinator.start(*SCENARIO, "--misbehave", "1=garbage")
        coordinator.finish()
        return outcome(self.name, coordinator, _saved_chain(coordinator), started)


FAULTS: tuple[Fault, ...] = (
    AnvilKilled(),
    NodeRestarted(),
    NodeDownPastBudget(),
    CoordinatorKilled(),
    CoordinatorKilledOnNode(),
    GarbageSite(),
)
