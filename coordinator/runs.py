"""Starting a run on the ledger, or finding where a recorded one stands to resume it."""

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from logging import INFO
from typing import Any

import numpy as np
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy
from flwr.supercore import log

from fedledger.coordinator.config import LedgerSettings
from fedledger.coordinator.resume import CannotResume, RunStart, resumed_run
from fedledger.coordinator.session import LedgerSession
from fedledger.coordinator.waiting import POLL_INTERVAL, TooFewNodes, nodes_needed
from fedledger.encoding import encode_model
from fedledger.errors import FedLedgerError
from fedledger.hashing import to_hex
from fedledger.privacy import PrivacySettings
from fedledger.runconfig import RunConfiguration, run_details

Arrays = dict[str, np.ndarray]


@dataclass(frozen=True)
class AppRecord:
    """What the run configuration records about the app beside its bundle's hash: its own run
    config (``fedledger.*`` keys excluded) and the model description it gave (or ``None``)."""

    config: Mapping[str, Any]
    model: Mapping[str, Any] | None


def unencodable(value: Any, path: str) -> str | None:
    """Why canonical JSON cannot encode ``value`` (``path`` names it in the answer), or ``None`` if it can.

    JSON values are dicts with string keys, lists, strings, finite numbers, booleans and null;
    a NumPy scalar is none of them (``int(value)`` or ``float(value)`` is).
    """
    if value is None or isinstance(value, bool | int | str):
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else f"{path} is {value!r}: JSON has no NaN or infinity"
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                return f"{path} has the key {key!r}, not a string"
            reason = unencodable(item, f"{path}[{key!r}]")
            if reason is not None:
                return reason
        return None
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            reason = unencodable(item, f"{path}[{index}]")
            if reason is not None:
                return reason
        return None
    return f"{path} is a {type(value).__module__}.{type(value).__qualname__} ({value!r}), not a JSON value"


def strategy_name(strategy: Strategy) -> str:
    """The name a strategy is recorded under: the class name of one of Flower's own strategies
    (``flwr.serverapp.strategy``), which the built-in rules re-derive, and ``module.qualname`` for
    any other class, so that an app's own class named like a built-in is never taken for it."""
    kind = type(strategy)
    if kind.__module__.startswith("flwr."):
        return kind.__name__
    return f"{kind.__module__}.{kind.__qualname__}"


def describe_strategy(strategy: Strategy, aggregation: str | None = None) -> dict[str, Any]:
    """The strategy's name (``strategy_name``) and its scalar parameters, as recorded in manifests,
    and the aggregation that re-derives it, if it was wrapped with one.

    The parameters are the public attributes holding a bool, int, str or finite float; a
    non-finite float (say a ``best_loss`` that starts at infinity) is left out, as JSON has none.
    """
    params = {
        name: value
        for name, value in sorted(vars(strategy).items())
        if not name.startswith("_")
        and isinstance(value, bool | int | float | str)
        and not (isinstance(value, float) and not math.isfinite(value))
    }
    description: dict[str, Any] = {"name": strategy_name(strategy), "params": params}
    if aggregation is not None:
        description["aggregation"] = aggregation
    return description


def run_configuration(
    settings: LedgerSettings,
    strategy: Mapping[str, Any],
    initial_model_hash: bytes,
    num_rounds: int,
    app: AppRecord,
    fab_hash: str,
    privacy: PrivacySettings | None = None,
    sealing: dict[str, Any] | None = None,
) -> RunConfiguration:
    """The run configuration whose hash ``startRun`` records: what decides the computation, and
    what ran it (``fab_hash``: the Flower App Bundle's, ``""`` outside one).

    Raises:
        FedLedgerError: a value in it that canonical JSON cannot encode (the message names it).
    """
    configuration = RunConfiguration(
        strategy=dict(strategy),
        rewards=settings.rewards,
        scoring=settings.valuation,
        detection=settings.detection,
        privacy=privacy,
        sealing=sealing,
        details=run_details(
            num_rounds, settings.min_accepted, to_hex(initial_model_hash), app.config, app.model, fab_hash
        ),
    )
    try:
        configuration.to_bytes()
    except (TypeError, ValueError) as error:
        reason = unencodable(configuration.to_json(), "run configuration") or str(error)
        raise FedLedgerError(f"the run configuration cannot be recorded: {reason}") from None
    return configuration


def start_run(
    session: LedgerSession, settings: LedgerSettings, configuration: RunConfiguration, initial: Arrays
) -> RunStart:
    """A new run: the initial model stored, the run configuration stored and started on-chain."""
    initial_hash = session.store.put(encode_model(initial))
    planned = configuration.planned_rounds or 0
    budget = None if configuration.privacy is None else configuration.privacy.to_budget()
    run_id, _ = session.start_run(configuration.to_bytes(), initial_hash, settings.rewards.budget, planned, budget)
    return RunStart(run_id, configuration, initial_hash, 0, planned, initial)


def resume_run(
    session: LedgerSession, settings: LedgerSettings, configuration: RunConfiguration, initial_hash: bytes
) -> RunStart:
    """Where run ``settings.resume_run`` stands, once the chain and store confirm it is the run
    ``configuration`` describes, started from the model that hashes to ``initial_hash``: its model
    and, with the anomaly detector on, what the detector examined in its last committed round.

    Raises:
        CannotResume: another initial model, another configuration, or a run that cannot go on.
    """
    run = session.registry.run(settings.resume_run)
    if initial_hash != run.initial_model_hash:
        raise CannotResume(
            f"the initial arrays given hash to {to_hex(initial_hash)}, but run {run.run_id} started from "
            f"{to_hex(run.initial_model_hash)}: resume it with the same initial arrays"
        )
    return resumed_run(session, run, configuration)


def register_connected_nodes(session: LedgerSession, grid: Grid, strategy: Strategy, settings: LedgerSettings) -> None:
    """Register one simulated participant per node connected when the run starts (partitions
    ``0 .. n - 1``), once the strategy's ``min_available_nodes`` are connected or
    ``connect-timeout`` has passed.

    Raises:
        TooFewNodes: no node connected within ``connect-timeout``.
    """
    needed = max(nodes_needed(strategy, "train"), 1)
    started = time.monotonic()
    while len(nodes := list(grid.get_node_ids())) < needed:
        waited = time.monotonic() - started
        if waited >= settings.connect_timeout:
            if not nodes:
                raise TooFewNodes(0, needed, waited)
            break
        time.sleep(min(POLL_INTERVAL, settings.connect_timeout - waited))
    log(INFO, "registering %d simulated participants, one per connected node", len(nodes))
    session.register_simulated(
        settings.key_seed,
        len(nodes),
        lambda registered, total: log(INFO, "registered %d of %d simulated participants", registered, total),
    )
