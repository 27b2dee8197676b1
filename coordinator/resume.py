"""Continuing a run from its last committed round, under the same run id.

The chain says how far the run got; the store holds everything else. The model to continue from
is read from the store by the hash the chain committed (the store re-hashes what it returns), and a
server optimiser's state (FedAdam, FedYogi, FedAdagrad, FedAvgM) is re-derived by replaying every
committed round from its stored updates — each replayed aggregate must hash to the committed model,
so a resumed run continues exactly where the interrupted one stood.
"""

from dataclasses import dataclass

import numpy as np
from flwr.app import Array, ArrayRecord
from flwr.serverapp.strategy import FedAvgM, Strategy
from flwr.serverapp.strategy.fedopt import FedOpt

from coordinator.session import LedgerSession
from fedledger import aggregation
from fedledger.aggregation import Aggregator, UnsupportedStrategy, WeightedUpdate, aggregator_for
from fedledger.encoding import EncodingError, decode_model, model_hash
from fedledger.errors import FedLedgerError
from fedledger.hashing import from_hex, to_hex
from fedledger.manifest import RoundManifest
from fedledger.runconfig import RunConfiguration
from fedledger.store import ArtifactError

Arrays = dict[str, np.ndarray]


class CannotResume(FedLedgerError):
    """The run cannot be continued; the message says why."""


@dataclass(frozen=True)
class ResumePoint:
    """Where an interrupted run stands: its id, configuration, committed rounds and current model."""

    run_id: int
    configuration: RunConfiguration
    initial_model_hash: bytes
    committed_rounds: int
    model: Arrays

    @property
    def next_round(self) -> int:
        return self.committed_rounds + 1


def resume_point(session: LedgerSession, run_id: int, configuration: RunConfiguration) -> ResumePoint:
    """Where run ``run_id`` stands, once the chain and store confirm it is the run ``configuration`` describes.

    Raises:
        CannotResume: the run is another coordinator's, was configured otherwise, is already
            complete, or its current model is not in the store intact.
    """
    run = session.registry.run(run_id)
    if run.coordinator != session.registry.sender:
        raise CannotResume(f"run {run_id} was started by {run.coordinator}, not by this coordinator")
    recorded = _read(session, run.config_hash, f"run {run_id}'s configuration")
    if recorded != configuration.to_bytes():
        try:
            differences = configuration_differences(RunConfiguration.from_bytes(recorded), configuration)
        except ValueError as error:
            raise CannotResume(f"run {run_id}'s recorded configuration cannot be read: {error}") from None
        raise CannotResume(f"the settings differ from run {run_id}'s recorded configuration: {differences}")
    planned = configuration.details["num_server_rounds"]
    if run.committed_rounds >= planned:
        raise CannotResume(f"run {run_id} already committed all {planned} of its rounds: nothing to resume")
    model_hash_now = (
        session.registry.committed_round(run_id, run.committed_rounds).commitment.model_hash
        if run.committed_rounds
        else run.initial_model_hash
    )
    model = _model(session, model_hash_now, f"the model of round {run.committed_rounds}")
    return ResumePoint(run_id, configuration, run.initial_model_hash, run.committed_rounds, model)


def configuration_differences(recorded: RunConfiguration, current: RunConfiguration) -> str:
    """The settings that differ, as ``path: recorded -> current``."""
    before, after = _flatten(recorded.to_json()), _flatten(current.to_json())
    changed = [
        f"{key}: {before.get(key, '(absent)')} -> {after.get(key, '(absent)')}"
        for key in sorted(set(before) | set(after))
        if before.get(key) != after.get(key)
    ]
    return "; ".join(changed) or "the encodings differ"


def _flatten(document: object, prefix: str = "") -> dict[str, object]:
    if not isinstance(document, dict):
        return {prefix: document}
    flat: dict[str, object] = {}
    for key, value in document.items():
        flat.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def restore_server_optimiser(session: LedgerSession, point: ResumePoint, strategy: Strategy) -> Aggregator | None:
    """Give ``strategy`` the server-optimiser state it had after the last committed round; return the
    re-aggregation rule carrying the same state (``None`` for a strategy that has none).

    Stateless strategies need nothing. For the FedOpt family and FedAvgM, every committed round is
    replayed from its stored updates with the re-aggregation rule the auditor uses; each replayed
    aggregate must hash to the committed model.

    Raises:
        CannotResume: a round cannot be replayed or replays to another model.
    """
    try:
        aggregator = aggregator_for(point.configuration.strategy)
    except UnsupportedStrategy as error:
        if isinstance(strategy, FedOpt | FedAvgM):
            raise CannotResume(f"the server optimiser's state cannot be rebuilt: {error}") from None
        return None
    if not aggregator.stateful:
        return None
    _replay(session, point, aggregator)
    _transfer(aggregator, strategy, point.model)
    return aggregator


def _replay(session: LedgerSession, point: ResumePoint, aggregator: Aggregator) -> None:
    registry = session.registry
    base = _model(session, point.initial_model_hash, "the initial model")
    for round_number in range(1, point.committed_rounds + 1):
        commitment = registry.committed_round(point.run_id, round_number).commitment
        manifest = RoundManifest.from_bytes(
            _read(session, commitment.manifest_hash, f"round {round_number}'s manifest")
        )
        if manifest.outcome != "aggregated":
            continue
        updates = [
            WeightedUpdate(
                _model(session, from_hex(entry.update_hash or ""), f"an update of round {round_number}"),
                entry.num_examples or 0,
            )
            for entry in manifest.accepted
        ]
        replayed = aggregator.aggregate(round_number, base, updates)
        if model_hash(replayed) != commitment.model_hash:
            raise CannotResume(
                f"round {round_number} replays to model {to_hex(model_hash(replayed))}, "
                f"not the committed {to_hex(commitment.model_hash)}: the server optimiser's state cannot be rebuilt"
            )
        base = replayed


def _transfer(aggregator: Aggregator, strategy: Strategy, model: Arrays) -> None:
    """Copy the replayed optimiser state into Flower's strategy, in the form Flower keeps it."""
    if isinstance(aggregator, aggregation.ServerOptimiser) and isinstance(strategy, FedOpt):
        strategy.m_t = _copy(aggregator.m_t)
        strategy.v_t = _copy(aggregator.v_t)
    elif isinstance(aggregator, aggregation.FedAvgM) and isinstance(strategy, FedAvgM):
        names = sorted(model)
        momentum = aggregator.momentum_vector
        strategy.momentum_vector = None if momentum is None else [momentum[name].copy() for name in names]
        strategy.current_arrays = ArrayRecord({name: Array(model[name]) for name in names})
    else:
        raise CannotResume(
            f"no rule to restore {type(strategy).__name__}'s state from a {type(aggregator).__name__} replay"
        )


def _copy(arrays: Arrays | None) -> Arrays | None:
    return None if arrays is None else {name: value.copy() for name, value in arrays.items()}


def _read(session: LedgerSession, digest: bytes, what: str) -> bytes:
    try:
        return session.store.get(digest)
    except ArtifactError as error:
        raise CannotResume(f"{what} cannot be read: {error}") from None


def _manifest(session: LedgerSession, digest: bytes, round_number: int) -> RoundManifest:
    try:
        return RoundManifest.from_bytes(_read(session, digest, f"round {round_number}'s manifest"))
    except ValueError as error:
        raise CannotResume(f"round {round_number}'s manifest cannot be read: {error}") from None


def _model(session: LedgerSession, digest: bytes, what: str) -> Arrays:
    try:
        return decode_model(_read(session, digest, what))
    except EncodingError as error:
        raise CannotResume(f"{what} cannot be decoded: {error}") from None
