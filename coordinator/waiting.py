"""Waiting for enough nodes to be connected, for a bounded time.

Flower's strategies sample nodes with ``sample_nodes``, which waits — without limit — until
enough nodes are connected. The ledger strategy hands the wrapped strategy a :class:`BoundedWaitGrid`
instead of the real grid while it samples: its ``get_node_ids`` waits at most ``timeout`` seconds
for the nodes the strategy needs, then raises :class:`TooFewNodes`, so a round never hangs on
sampling and the coordinator can record why it sent nothing.

Once enough nodes are connected, the grid answers every later ``get_node_ids`` of the phase with
the same nodes. Flower's FedAvg family counts the connected nodes once to size its sample (at most
that count) and then has ``sample_nodes`` wait until at least the sample size are connected; were
the second count taken afresh, a node that dropped between the two would leave it waiting forever.
A sampled node that has dropped is sent its message, does not answer, and is recorded as silent.
"""

import time
from collections.abc import Iterable

from flwr.app import Message, RecordDict
from flwr.proto.node_pb2 import NodeInfo  # type: ignore[attr-defined]
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg, Strategy
from flwr.supercore.run import Run

from fedledger.errors import FedLedgerError

#: How often the connected nodes are counted while waiting, in seconds.
POLL_INTERVAL = 0.5


class TooFewNodes(FedLedgerError):
    """Fewer nodes than a strategy needs were connected when the wait ran out."""

    def __init__(self, connected: int, needed: int, waited: float) -> None:
        super().__init__(f"too few nodes connected: {connected} connected, {needed} needed; waited {waited:.1f} s")
        self.connected = connected
        self.needed = needed
        self.waited = waited


def nodes_needed(strategy: Strategy, phase: str) -> int:
    """How many connected nodes ``strategy`` waits for before it samples for ``phase``
    (``train`` or ``evaluate``): what Flower's ``sample_nodes`` waits for. A strategy outside
    Flower's FedAvg family is waited for until one node is connected."""
    if not isinstance(strategy, FedAvg):
        return 1
    fraction, minimum = (
        (strategy.fraction_train, strategy.min_train_nodes)
        if phase == "train"
        else (strategy.fraction_evaluate, strategy.min_evaluate_nodes)
    )
    if fraction == 0.0:
        return 0
    return max(strategy.min_available_nodes, minimum)


class BoundedWaitGrid(Grid):
    """A grid for one phase's sampling, whose ``get_node_ids`` waits at most ``timeout`` seconds
    (from creation) for ``needed`` connected nodes, then raises :class:`TooFewNodes`; once that
    many were connected, it returns those nodes on every call. Everything else is ``grid``'s."""

    def __init__(self, grid: Grid, needed: int, timeout: float) -> None:
        self.grid = grid
        self.needed = needed
        self.timeout = timeout
        self.started = time.monotonic()
        self._connected: list[int] | None = None

    def get_node_ids(self) -> Iterable[int]:
        if self._connected is None:
            self._connected = self._wait_for_nodes()
        return list(self._connected)

    def _wait_for_nodes(self) -> list[int]:
        while len(nodes := list(self.grid.get_node_ids())) < self.needed:
            waited = time.monotonic() - self.started
            if waited >= self.timeout:
                raise TooFewNodes(len(nodes), self.needed, waited)
            time.sleep(min(POLL_INTERVAL, self.timeout - waited))
        return nodes

    def get_nodes(self) -> Iterable[NodeInfo]:
        return self.grid.get_nodes()

    def set_run(self, run: Run) -> None:
        self.grid.set_run(run)

    @property
    def run(self) -> Run:
        return self.grid.run

    def create_message(
        self, content: RecordDict, message_type: str, dst_node_id: int, group_id: str, ttl: float | None = None
    ) -> Message:
        return self.grid.create_message(content, message_type, dst_node_id, group_id, ttl)

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        return self.grid.push_messages(messages)

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        return self.grid.pull_messages(message_ids)

    def send_and_receive(self, messages: Iterable[Message], *, timeout: float | None = None) -> Iterable[Message]:
        return self.grid.send_and_receive(messages, timeout=timeout)
