"""Continuing a run from its last committed round, under the same run id.

The chain says how far the run got and how far it may go; the store holds everything else. The
model to continue from is read from the store by the hash the chain committed (the store re-hashes
what it returns), and a server optimiser's state (FedAdam, FedYogi, FedAdagrad, FedAvgM) is
re-derived by replaying every committed round from its stored updates — each replayed aggregate
must hash to the committed model, so a resumed run continues exactly where the interrupted one stood.
With the anomaly detector on, the updates it examined in the last committed round are read back
too, with that round's base model: the next round's responses to the global step are measured
against them, as the auditor measures them. With differential privacy, what the run has released
so far is read back from its manifests: the rounds aggregated (central DP), or the rounds each
participant released an update in (local DP), so that ε goes on from where it stood.
"""

import json
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
from flwr.app import Array, ArrayRecord
from flwr.serverapp.strategy import FedAvgM, Strategy
from flwr.serverapp.strategy.fedopt import FedOpt

from fedledger import aggregation
from fedledger.aggregation import Aggregator, WeightedUpdate
from fedledger.audit.recompute import Reaggregation, examined_entries
from fedledger.chain import RunRecord
from fedledger.coordinator.session import LedgerSession
from fedledger.encoding import EncodingError, decode_model, model_hash
from fedledger.errors import FedLedgerError
from fedledger.hashing import from_hex, to_hex
from fedledger.manifest import RoundManifest, UpdateEntry
from fedledger.privacy import CHARGED_REASONS
from fedledger.runconfig import RunConfiguration
from fedledger.sealing import SealError
from fedledger.store import ArtifactError

Arrays = dict[str, np.ndarray]

#: A round's number, its base model, and the updates the anomaly detector examined in it, by participant.
Examined = tuple[int, Arrays, dict[str, Arrays]]

#: How ``configuration_differences`` shows a setting one configuration has and the other lacks.
ABSENT = "(absent)"


class CannotResume(FedLedgerError):
    """The run cannot be continued; the message says why."""


@dataclass(frozen=True)
class RunStart:
    """Where a run starts this time: its id and configuration, how many of its planned rounds are
    already committed (0 for a new run), the model it goes on from, and, with the anomaly detector
    on, what it examined in the last committed round (``None`` for a new run); with differential
    privacy, the noised releases so far (``releases``: rounds aggregated, central DP) and the rounds
    each participant released an update in (``charged``, local DP)."""

    run_id: int
    configuration: RunConfiguration
    initial_model_hash: bytes
    committed_rounds: int
    planned_rounds: int
    model: Arrays
    examined: Examined | None = None
    releases: int = 0
    charged: Counter[str] = field(default_factory=Counter)

    @property
    def next_round(self) -> int:
        return self.committed_rounds + 1

    @property
    def rounds_left(self) -> int:
        return self.planned_rounds - self.committed_rounds


def resumed_run(session: LedgerSession, run: RunRecord, configuration: RunConfiguration) -> RunStart:
    """Where ``run`` stands, once the chain and store confirm it is the run ``configuration`` describes.

    Raises:
        CannotResume: the run is another coordinator's, was configured otherwise, has committed
            all the rounds the registry planned for it, or its current model (with the detector on:
            the last committed round's base model or an update its detector examined) is not in the
            store intact.
    """
    if run.coordinator != session.registry.sender:
        raise CannotResume(f"run {run.run_id} was started by {run.coordinator}, not by this coordinator")
    recorded = _read(session, run.config_hash, f"run {run.run_id}'s configuration")
    if recorded != configuration.to_bytes():
        try:
            differences = configuration_differences(RunConfiguration.from_bytes(recorded), configuration)
        except ValueError as error:
            raise CannotResume(f"run {run.run_id}'s recorded configuration cannot be read: {error}") from None
        raise CannotResume(f"the settings differ from run {run.run_id}'s recorded configuration: {differences}")
    if run.committed_rounds >= run.planned_rounds:
        raise CannotResume(
            f"run {run.run_id} already committed all {run.planned_rounds} of its rounds: nothing to resume"
        )
    current_model_hash = (
        session.registry.committed_round(run.run_id, run.committed_rounds, session.store).commitment.model_hash
        if run.committed_rounds
        else run.initial_model_hash
    )
    model = _model(session, current_model_hash, f"the model of round {run.committed_rounds}")
    examined = (
        _examined(session, run, run.committed_rounds)
        if configuration.detection is not None and run.committed_rounds
        else None
    )
    releases, charged = _released(session, run) if configuration.privacy is not None else (0, Counter())
    return RunStart(
        run.run_id,
        configuration,
        run.initial_model_hash,
        run.committed_rounds,
        run.planned_rounds,
        model,
        examined,
        releases,
        charged,
    )


def _released(session: LedgerSession, run: RunRecord) -> tuple[int, Counter[str]]:
    """What a private run released in its committed rounds: the last round's count of releases, and
    the rounds each participant released a signed update in (as ``fedledger.privacy`` charges them)."""
    releases, charged = 0, Counter[str]()
    for round_number in range(1, run.committed_rounds + 1):
        commitment = session.registry.committed_round(run.run_id, round_number, session.store).commitment
        manifest = _manifest(session, commitment.manifest_hash, round_number)
        if manifest.privacy is None:
            raise CannotResume(f"round {round_number} of the private run {run.run_id} records no privacy")
        releases = manifest.privacy.releases
        charged.update(
            {entry.participant for entry in manifest.updates if entry.participant and entry.reason in CHARGED_REASONS}
        )
    return releases, charged


def _examined(session: LedgerSession, run: RunRecord, round_number: int) -> Examined:
    """The base model of round ``round_number`` and the updates its anomaly detector examined
    (``fedledger.audit.recompute.examined_entries``), read back from the store."""
    commitment = session.registry.committed_round(run.run_id, round_number, session.store).commitment
    manifest = _manifest(session, commitment.manifest_hash, round_number)
    base = _model(session, from_hex(manifest.base_model_hash), f"round {round_number}'s base model")
    updates = {}
    for index in examined_entries(manifest):
        entry = manifest.updates[index]
        what = f"round {round_number}'s examined update from node {entry.node_id}"
        updates[entry.participant or ""] = _update(session, entry, what)
    return round_number, base, updates


def configuration_differences(recorded: RunConfiguration, current: RunConfiguration) -> str:
    """The settings that differ, as ``path: recorded -> current`` (``(absent)`` for a setting one of
    them does not have, even where the other holds ``None``)."""
    before, after = _flatten(recorded.to_json()), _flatten(current.to_json())
    changed = [
        f"{key}: {before.get(key, ABSENT)} -> {after.get(key, ABSENT)}"
        for key in sorted(before.keys() | after.keys())
        if _encoded(before, key) != _encoded(after, key)
    ]
    return "; ".join(changed) or "the encodings differ"


def _flatten(document: object, prefix: str = "") -> dict[str, object]:
    if not isinstance(document, dict) or not document:
        return {prefix: document}
    flat: dict[str, object] = {}
    for key, value in document.items():
        flat.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def _encoded(flat: dict[str, object], key: str) -> str | None:
    """The setting as JSON (so ``1``, ``1.0`` and ``true`` differ), or ``None`` if it is absent."""
    return json.dumps(flat[key]) if key in flat else None


def restore_server_optimiser(
    session: LedgerSession, start: RunStart, strategy: Strategy, reaggregation: Reaggregation
) -> None:
    """Give ``strategy``, and ``reaggregation``'s rule, the server-optimiser state they had after
    the last committed round.

    Stateless strategies need nothing. For the FedOpt family and FedAvgM, every committed round is
    replayed from its stored updates with the re-aggregation rule the auditor uses; each replayed
    aggregate must hash to the committed model.

    Raises:
        CannotResume: the strategy keeps a state that no re-aggregation rule rebuilds, or a round
            cannot be replayed, or replays to another model.
    """
    aggregator = reaggregation.aggregator
    if aggregator is None:
        if isinstance(strategy, FedOpt | FedAvgM):
            raise CannotResume(f"the server optimiser's state cannot be rebuilt: {reaggregation.unsupported}")
        return
    if not aggregator.stateful:
        return
    _replay(session, start, aggregator)
    _transfer(aggregator, strategy, start.model)


def _replay(session: LedgerSession, start: RunStart, aggregator: Aggregator) -> None:
    base = _model(session, start.initial_model_hash, "the initial model")
    for round_number in range(1, start.committed_rounds + 1):
        commitment = session.registry.committed_round(start.run_id, round_number, session.store).commitment
        manifest = _manifest(session, commitment.manifest_hash, round_number)
        if manifest.outcome != "aggregated":
            continue
        updates = [_accepted_update(session, entry, round_number) for entry in manifest.accepted]
        replayed = aggregator.aggregate(round_number, base, updates)
        if model_hash(replayed) != commitment.model_hash:
            raise CannotResume(
                f"round {round_number} replays to model {to_hex(model_hash(replayed))}, "
                f"not the committed {to_hex(commitment.model_hash)}: the server optimiser's state cannot be rebuilt"
            )
        base = replayed


def _accepted_update(session: LedgerSession, entry: UpdateEntry, round_number: int) -> WeightedUpdate:
    what = f"round {round_number}'s accepted update from node {entry.node_id}"
    if entry.update_hash is None or entry.num_examples is None:
        raise CannotResume(f"{what} is recorded without its update hash or example count")
    return WeightedUpdate(_update(session, entry, what), entry.num_examples)


def _update(session: LedgerSession, entry: UpdateEntry, what: str) -> Arrays:
    """The arrays of a listed update: opened from its sealed artifact with the coordinator's key, or
    read in clear from a run that stores updates so."""
    if entry.update_hash is None:
        raise CannotResume(f"{what} is recorded without its update hash")
    try:
        digest = from_hex(entry.update_hash, what="its update hash")
        if entry.sealed_hash is None:
            return _model(session, digest, what)
        data = session.vault.get(session.store, from_hex(entry.sealed_hash, what="its sealed hash"), digest)
    except (ValueError, ArtifactError, SealError) as error:
        raise CannotResume(f"{what} cannot be read: {error}") from None
    try:
        return decode_model(data)
    except EncodingError as error:
        raise CannotResume(f"{what} cannot be decoded: {error}") from None


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
    data = _read(session, digest, f"round {round_number}'s manifest")
    try:
        return RoundManifest.from_bytes(data)
    except ValueError as error:
        raise CannotResume(f"round {round_number}'s manifest cannot be read: {error}") from None


def _model(session: LedgerSession, digest: bytes, what: str) -> Arrays:
    data = _read(session, digest, what)
    try:
        return decode_model(data)
    except EncodingError as error:
        raise CannotResume(f"{what} cannot be decoded: {error}") from None
