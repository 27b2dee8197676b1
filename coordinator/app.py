"""The coordinator's Flower ServerApp.

``app`` reads its settings from the run config (``[tool.flwr.app.config]`` or ``flwr run -c``);
``make_server_app`` builds one around given settings and, optionally, an existing chain — the
one-machine runner uses it to share its in-process chain with the coordinator.
"""

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from logging import ERROR, INFO, WARNING
from pathlib import Path

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, MessageType, RecordDict
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import Strategy
from flwr.supercore import log

from fedledger import messages
from fedledger.chain import Chain, ChainUnavailable
from fedledger.client import task_keys
from fedledger.coordinator.ledger import LedgerStrategy, Reaggregation
from fedledger.coordinator.recorder import ROUNDS_FILE, RoundRecorder, RoundReport
from fedledger.coordinator.resume import RunStart, restore_server_optimiser, resumed_run
from fedledger.coordinator.scoring import ConsensusScorer, Scorer
from fedledger.coordinator.session import LedgerSession
from fedledger.coordinator.settings import FederationSettings
from fedledger.coordinator.strategies import build_strategy, describe_strategy
from fedledger.deployment import LedgerLocation
from fedledger.encoding import encode_model, model_hash
from fedledger.errors import FedLedgerError
from fedledger.hashing import to_hex
from fedledger.runconfig import RunConfiguration

SUMMARY_FILE = "federation.json"


class FederationStopped(FedLedgerError):
    """The run stopped before its last round; the message says where it stands and how to resume it."""


@dataclass(frozen=True)
class FederationSummary:
    """What a finished federation did, round by round, and where its record is (``None`` without a ledger)."""

    ledger: LedgerLocation | None
    initial_model_hash: str
    final_model_hash: str
    wall_time_seconds: float
    rounds: list[RoundReport]

    def save(self, directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / SUMMARY_FILE
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")
        return path


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
    return f"flwr run <app> <federation> --run-config \"resume-run={location.run_id} registry='{location.registry}'\""


def log_round(report: RoundReport) -> None:
    """One line per committed round."""
    accuracy = f"{report.eval_accuracy:.3f}" if report.eval_accuracy is not None else "  -  "
    loss = f"{report.eval_loss:.4f}" if report.eval_loss is not None else "  -   "
    log(
        INFO,
        "round %3d | accepted %3d rejected %3d | loss %s acc %s | gas %s | model %s",
        report.round,
        report.accepted,
        report.rejected,
        loss,
        accuracy,
        f"{report.gas_used:,}" if report.gas_used is not None else "-",
        report.model_hash[:12],
    )


def client_config(settings: FederationSettings) -> ConfigRecord:
    """What every client needs to know to train and evaluate like the others."""
    config = ConfigRecord(
        {
            task_keys.LOCAL_EPOCHS: settings.local_epochs,
            task_keys.BATCH_SIZE: settings.batch_size,
            task_keys.LEARNING_RATE: settings.learning_rate,
            task_keys.MOMENTUM: settings.momentum,
            task_keys.HIDDEN_UNITS: settings.hidden_units,
            task_keys.MODEL_SEED: settings.model_seed,
            task_keys.TEST_FRACTION: settings.test_fraction,
            task_keys.SPLIT_SEED: settings.split_seed,
        }
    )
    if settings.data_dir:
        config[task_keys.SIMULATION_DATA_DIR] = settings.data_dir
        config[messages.CONFIG_KEY_SEED] = settings.key_seed
    return config


def request_initial_model(grid: Grid, settings: FederationSettings) -> dict[str, np.ndarray]:
    """Ask the connected nodes, one at a time in node id order, for a freshly initialised model;
    the first readable, finite answer is the initial model (its arrays, sorted by name).

    Its weights depend only on the model's shape and ``model-seed``, so any participant can
    re-create it and check the initial model hash recorded on-chain. Waits at most
    ``connect-timeout`` for a node to connect and ``round-timeout`` for each answer; a node that
    does not answer, or answers with something that is not a model, is passed over with one line.
    """
    deadline = time.monotonic() + settings.connect_timeout
    while not (nodes := sorted(grid.get_node_ids())):
        if time.monotonic() > deadline:
            raise FedLedgerError(
                f"no node connected within connect-timeout ({settings.connect_timeout:g} s): "
                "cannot obtain the initial model"
            )
        time.sleep(1)
    refusals = []
    for node in nodes:
        query = Message(RecordDict({messages.CONFIG_RECORD: client_config(settings)}), node, MessageType.QUERY)
        replies = list(grid.send_and_receive([query], timeout=settings.round_timeout))
        try:
            return _initial_model(replies, settings)
        except FedLedgerError as refusal:
            log(WARNING, "node %d gave no initial model: %s", node, refusal)
            refusals.append(f"node {node}: {refusal}")
    raise FedLedgerError(f"no node gave an initial model ({'; '.join(refusals)})")


def _initial_model(replies: list[Message], settings: FederationSettings) -> dict[str, np.ndarray]:
    if not replies:
        raise FedLedgerError(f"no answer within round-timeout ({settings.round_timeout:g} s)")
    (reply,) = replies
    if reply.has_error():
        raise FedLedgerError(f"it replied with an error: {reply.error.reason}")
    try:
        record = reply.content.array_records[messages.ARRAYS_RECORD]
        arrays = {name: record[name].numpy() for name in sorted(record)}
        encode_model(arrays)
    except Exception as error:  # the reply is a node's data: whatever it holds, it is refused, not fatal
        raise FedLedgerError(f"its reply holds no readable model: {type(error).__name__}: {error}") from None
    if not arrays:
        raise FedLedgerError("its reply holds an empty model")
    for name, array in arrays.items():
        if not np.all(np.isfinite(array)):
            raise FedLedgerError(f"its model's array {name!r} holds NaN or infinite values")
    return arrays


def run_configuration(
    settings: FederationSettings, strategy: dict, scorer: Scorer, initial_model_hash: bytes
) -> RunConfiguration:
    """The run configuration whose hash ``startRun`` records: what decides the computation."""
    return RunConfiguration(
        strategy=strategy,
        rewards=settings.rewards,
        scoring=scorer.description,
        detection=settings.detection,
        details={
            "num_server_rounds": settings.num_server_rounds,
            "min_accepted": settings.min_accepted,
            "model": {
                "architecture": "TabularClassifier",
                "hidden_units": settings.hidden_units,
                "seed": settings.model_seed,
                "initial_model_hash": to_hex(initial_model_hash),
            },
            "training": {
                "local_epochs": settings.local_epochs,
                "batch_size": settings.batch_size,
                "learning_rate": settings.learning_rate,
                "momentum": settings.momentum,
                "test_fraction": settings.test_fraction,
                "split_seed": settings.split_seed,
            },
        },
    )


def run_federation(
    grid: Grid,
    settings: FederationSettings,
    chain: Chain | None = None,
    on_round: Callable[[RoundReport], None] = log_round,
    scorer: Scorer | None = None,
    on_start: Callable[[LedgerLocation], None] = log_start,
    resume_hint: Callable[[LedgerLocation], str] = flwr_resume_hint,
) -> FederationSummary:
    """Run the federation on ``grid``: with the ledger, every round is recorded; without, it is
    plain Flower (used to measure what the ledger costs). ``scorer`` defaults to ``ConsensusScorer``.

    With ``settings.resume_run``, run that run on from its last committed round instead of starting
    a new one. ``on_start`` is told where the run is recorded before its first round; if the chain
    stays unreachable past its retry budget, the run stops with a ``FederationStopped`` whose
    message ends with ``resume_hint``'s command.
    """
    scorer = scorer or ConsensusScorer()
    started = time.perf_counter()
    strategy = build_strategy(settings)
    if not settings.ledger:
        return _run_without_ledger(grid, settings, strategy, started)

    session = LedgerSession.open(settings, chain)
    description = describe_strategy(strategy)
    reaggregation = Reaggregation.of(description)
    if settings.resume_run:
        start = _resume(session, settings, description, scorer)
        restore_server_optimiser(session, start, strategy, reaggregation)
    else:
        start = _start(grid, session, settings, description, scorer)
    output_dir = Path(settings.output_dir)
    location = LedgerLocation(
        chain_id=session.domain.chain_id,
        registry=session.registry.address,
        run_id=start.run_id,
        store=session.store.location,
        rpc_url=settings.rpc_url or None,
        saved_chain=str(session.chain.journal) if session.chain.journal else None,
    )
    location.save(output_dir)
    on_start(location)

    ledger = LedgerStrategy(
        strategy,
        session=session,
        recorder=RoundRecorder(session, start.run_id, start.configuration, output_dir / ROUNDS_FILE),
        min_accepted=settings.min_accepted,
        detection=settings.detection,
        scorer=scorer,
        reaggregation=reaggregation,
        on_round=on_round,
        connect_timeout=settings.connect_timeout,
        first_round=start.next_round,
    )
    model = ArrayRecord({name: Array(start.model[name]) for name in sorted(start.model)})
    try:
        result = ledger.start(
            grid,
            model,
            start.rounds_left,
            settings.round_timeout,
            client_config(settings),
            client_config(settings),
        )
    except ChainUnavailable as error:
        last = ledger.reports[-1].round if ledger.reports else start.committed_rounds
        raise FederationStopped(
            f"{error}; run {start.run_id} on registry {location.registry} stopped after round {last} "
            f"of {start.planned_rounds}; resume with: {resume_hint(location)}"
        ) from None
    final = {name: array.numpy() for name, array in result.arrays.items()} if result.arrays else start.model
    summary = FederationSummary(
        ledger=location,
        initial_model_hash=to_hex(start.initial_model_hash),
        final_model_hash=to_hex(model_hash(final)),
        wall_time_seconds=time.perf_counter() - started,
        rounds=ledger.reports,
    )
    summary.save(output_dir)
    return summary


def _run_without_ledger(
    grid: Grid, settings: FederationSettings, strategy: Strategy, started: float
) -> FederationSummary:
    """Plain Flower, the same federation with no ledger: what the ledger's cost is measured against."""
    initial = request_initial_model(grid, settings)
    result = strategy.start(
        grid,
        ArrayRecord({name: Array(array) for name, array in initial.items()}),
        settings.num_server_rounds,
        settings.round_timeout,
        client_config(settings),
        client_config(settings),
    )
    final = {name: array.numpy() for name, array in result.arrays.items()}
    summary = FederationSummary(
        ledger=None,
        initial_model_hash=to_hex(model_hash(initial)),
        final_model_hash=to_hex(model_hash(final)),
        wall_time_seconds=time.perf_counter() - started,
        rounds=[],
    )
    summary.save(Path(settings.output_dir))
    return summary


def _start(
    grid: Grid, session: LedgerSession, settings: FederationSettings, strategy: dict, scorer: Scorer
) -> RunStart:
    """A new run of ``strategy`` (as ``describe_strategy`` gives it): the initial model from a node,
    stored, and the run started on-chain."""
    initial = request_initial_model(grid, settings)
    initial_hash = session.store.put(encode_model(initial))
    configuration = run_configuration(settings, strategy, scorer, initial_hash)
    run_id, _ = session.start_run(
        configuration.to_bytes(), initial_hash, settings.rewards.budget, settings.num_server_rounds
    )
    return RunStart(run_id, configuration, initial_hash, 0, settings.num_server_rounds, initial)


def _resume(session: LedgerSession, settings: FederationSettings, strategy: dict, scorer: Scorer) -> RunStart:
    """Where ``settings.resume_run`` stands, once the chain and store confirm it is the run of
    ``strategy`` these settings describe."""
    run = session.registry.run(settings.resume_run)
    configuration = run_configuration(settings, strategy, scorer, run.initial_model_hash)
    return resumed_run(session, run, configuration)


def make_server_app(
    settings: FederationSettings | None = None,
    chain: Chain | None = None,
    on_round: Callable[[RoundReport], None] = log_round,
    on_finish: Callable[[FederationSummary], None] | None = None,
    scorer: Scorer | None = None,
    on_start: Callable[[LedgerLocation], None] = log_start,
    on_error: Callable[[FedLedgerError], None] | None = None,
    resume_hint: Callable[[LedgerLocation], str] = flwr_resume_hint,
) -> ServerApp:
    """A ServerApp running the federation with ``settings`` (default: from the run config).

    A ``FedLedgerError`` that ends the run is handed to ``on_error`` if given (the one-machine runner
    reports it itself); else it is logged as one line and raised, so Flower marks the run failed.
    """
    server_app = ServerApp()

    @server_app.main()
    def main(grid: Grid, context: Context) -> None:
        try:
            resolved = settings or FederationSettings.from_run_config(context.run_config)
            summary = run_federation(grid, resolved, chain, on_round, scorer, on_start, resume_hint)
        except FedLedgerError as error:
            if on_error is None:
                log(ERROR, "%s", error)
                raise
            on_error(error)
            return
        if on_finish is not None:
            on_finish(summary)

    return server_app


app = make_server_app()
