"""Hosting a Flower app in one's own process: what the host lends the ledger.

``fedledger simulate`` runs an app's ServerApp on Flower's Simulation Engine in its own process.
To show progress and audit the run afterwards, it lends the ledger an in-process chain (so the
run is recorded on a chain it can read back), a round callback, and the callbacks that
say where the run is recorded and how it resumes. It does so for the duration of a ``with``
block::

    with hosting(Host(chain=chain, on_round=printer)):
        run_simulation(server_app=with_run_config(app, run_config), ...)

``Ledger.from_context`` picks up the host in effect when the app calls it. One host at a time
per process: a second ``hosting`` inside the first is refused.
"""

import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from logging import ERROR, INFO, WARNING
from typing import Any

from flwr.app import Context
from flwr.serverapp import Grid, ServerApp
from flwr.supercore import log

from fedledger.chain import Chain
from fedledger.coordinator.recorder import RoundReport
from fedledger.coordinator.summary import FederationSummary
from fedledger.deployment import LedgerLocation
from fedledger.errors import FedLedgerError


def log_start(location: LedgerLocation) -> None:
    """Where the run is recorded, before its first round: what an operator needs to find or resume it."""
    log(
        INFO,
        "run %d on registry %s (chain %d), store %s",
        location.run_id,
        location.registry,
        location.chain_id,
        location.store,
    )


def flwr_resume_hint(location: LedgerLocation) -> str:
    """How a deployment resumes a run: the same run config, naming the run and its registry."""
    return (
        f"flwr run <app> <federation> --run-config "
        f"\"fedledger.resume-run={location.run_id} fedledger.registry='{location.registry}'\""
    )


def log_round(report: RoundReport) -> None:
    """One line per committed round, with the evaluation metrics the app reports, whatever their names."""
    metrics = " ".join(f"{name} {_figure(value)}" for name, value in sorted(report.evaluation.items()))
    log(
        INFO,
        "round %3d | accepted %3d rejected %3d | %s | gas %s | model %s",
        report.round,
        report.accepted,
        report.rejected,
        metrics or "no evaluation",
        f"{report.gas_used:,}" if report.gas_used is not None else "-",
        report.model_hash[:12],
    )
    for cluster in report.clusters:
        log(WARNING, "round %3d | near-identical updates share one contribution: %s", report.round, ", ".join(cluster))


def _figure(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def log_error(error: FedLedgerError) -> None:
    """An error that ends the run, as one line (Flower then marks the run failed)."""
    log(ERROR, "%s", error)


@dataclass(frozen=True)
class Host:
    """What a process hosting an app lends its ledger; the defaults are what a ServerApp under
    ``flwr run`` gets.

    Attributes:
        chain: The chain to record on (``None``: the one ``fedledger.rpc-url`` names, or a new
            in-process chain).
        on_start: Told where the run is recorded, before its first round.
        on_round: Told about each committed round.
        on_finish: Told what the finished run did.
        on_error: Told about an error that ends the run, before it is raised.
        resume_hint: The command that resumes a stopped run, for the error that says it stopped.
    """

    chain: Chain | None = None
    on_start: Callable[[LedgerLocation], None] = log_start
    on_round: Callable[[RoundReport], None] = log_round
    on_finish: Callable[[FederationSummary], None] | None = None
    on_error: Callable[[FedLedgerError], None] = log_error
    resume_hint: Callable[[LedgerLocation], str] = flwr_resume_hint


_lock = threading.Lock()
_current: Host | None = None


@contextmanager
def hosting(host: Host) -> Iterator[Host]:
    """Lend ``host`` to every ledger built in this process until the block ends.

    Raises:
        FedLedgerError: another host is already in effect.
    """
    global _current
    with _lock:
        if _current is not None:
            raise FedLedgerError("this process already hosts an app: one host at a time")
        _current = host
    try:
        yield host
    finally:
        with _lock:
            _current = None


def current_host() -> Host:
    """The host in effect, or the defaults of an app that runs under ``flwr run``."""
    return _current or Host()


def with_run_config(app: ServerApp, run_config: Mapping[str, Any]) -> ServerApp:
    """``app``, run with ``run_config`` laid over its context's run config, as ``flwr run -c`` does
    (the Simulation Engine's ``run_simulation`` gives a ServerApp an empty run config)."""
    hosted = ServerApp()

    @hosted.main()
    def main(grid: Grid, context: Context) -> None:
        context.run_config.update(run_config)
        app(grid, context)

    return hosted
