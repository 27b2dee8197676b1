"""The ledger strategy: any Flower strategy, with every round checked, hashed, stored and committed."""

import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from logging import INFO, WARNING
from pathlib import Path

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Result, Strategy
from flwr.supercore import log

from fedledger import messages
from fedledger.aggregation import WeightedUpdate, settled
from fedledger.audit.recompute import Reaggregation
from fedledger.chain import ChainUnavailable
from fedledger.contribution import delta_gram, detect, step_responses
from fedledger.coordinator.config import LedgerSettings
from fedledger.coordinator.host import Host
from fedledger.coordinator.recorder import ROUNDS_FILE, JudgedEvaluation, JudgedRound, RoundRecorder, RoundReport
from fedledger.coordinator.resume import Examined, RunStart, restore_server_optimiser
from fedledger.coordinator.runs import (
    AppRecord,
    describe_strategy,
    register_connected_nodes,
    resume_run,
    run_configuration,
    start_run,
)
from fedledger.coordinator.session import LedgerSession
from fedledger.coordinator.summary import FederationStopped, FederationSummary
from fedledger.coordinator.validation import (
    CheckedReply,
    RoundContext,
    check_evaluation,
    check_reply,
    for_strategy,
    reject_duplicates,
)
from fedledger.coordinator.valuing import PendingValuation, RoundValuer
from fedledger.coordinator.vault import Vault
from fedledger.coordinator.waiting import BoundedWaitGrid, TooFewNodes, nodes_needed
from fedledger.deployment import LedgerLocation
from fedledger.encoding import EncodingError, encode_model, model_hash
from fedledger.errors import FedLedgerError
from fedledger.hashing import keccak256, to_hex
from fedledger.manifest import Requests
from fedledger.privacy import (
    CHARGED_REASONS,
    PrivacySettings,
    RoundPrivacy,
    add_noise,
    clip_update,
    draw_noise,
    local_epsilons,
    local_parameters,
    to_fixed_epsilon,
)


class StrategyError(FedLedgerError, TypeError):
    """A strategy the ledger cannot record: the message names its class and what it does differently."""


def strategy_attribute(strategy: Strategy, name: str, default: str) -> str:
    """``strategy``'s attribute ``name``, or that of the strategy a Flower differential-privacy
    wrapper holds in ``.strategy``, or ``default``."""
    for holder in (strategy, getattr(strategy, "strategy", None)):
        value = getattr(holder, name, None)
        if value is not None:
            return str(value)
    return default


def check_wrappable(strategy: Strategy) -> None:
    """Refuse a strategy the ledger cannot run round by round.

    Raises:
        StrategyError: it overrides ``start`` (the ledger runs Flower's loop over its methods
            itself), or it sends its config under another ConfigRecord than ``"config"``.
    """
    name = type(strategy).__qualname__
    if type(strategy).start is not Strategy.start:
        raise StrategyError(
            f"{name} overrides start(): the ledger runs Flower's own start() over the strategy's "
            f"configure and aggregate methods, so a strategy with its own loop cannot be recorded"
        )
    key = strategy_attribute(strategy, "configrecord_key", messages.CONFIG_RECORD)
    if key != messages.CONFIG_RECORD:
        raise StrategyError(
            f"{name} sends its config as the ConfigRecord {key!r}, but the client mod reads "
            f"{messages.CONFIG_RECORD!r}: build it with configrecord_key={messages.CONFIG_RECORD!r}"
        )


def canonical_arrays(record: ArrayRecord) -> ArrayRecord:
    """The same arrays, ordered by name: the order the canonical encoding and the auditor use."""
    return ArrayRecord({name: record[name] for name in sorted(record)})


class LedgerStrategy(Strategy):
    """Wraps a Flower strategy without changing it, and records every round it runs.

    ``start`` (Flower's ``Strategy.start``, with the same parameters) first opens the ledger —
    chain, registry, artifact store, as ``settings`` say — and starts the run on-chain with the
    given initial arrays (stored, their hash recorded) and ``num_rounds`` planned rounds, or, with
    ``fedledger.resume-run``, goes on from that run's last committed round. It saves where the run
    is recorded (``ledger.json``) before round 1, runs Flower's loop over this strategy's methods,
    and writes ``federation.json`` at the end.

    For each round it lets the wrapped strategy sample nodes, waiting at most ``connect-timeout``
    seconds for enough of them to be connected (``coordinator.waiting``); with too few, the round
    sends nothing and is committed as failed. It checks every training reply
    (``coordinator.validation``), stores every update it can read, screens the valid ones with the
    anomaly detector (flagged updates are rejected as ``anomalous``), hands only the accepted ones
    to the wrapped strategy — normalised to the protocol's records and sorted by participant,
    arrays sorted by name, so the aggregate can be re-derived — hashes and stores the aggregate,
    re-derives it to confirm that an auditor can, records which accepted updates the strategy built
    it from (Krum, MultiKrum and Bulyan leave some out, and those earn nothing) and values those
    (``coordinator.valuing``): with the round's evaluation requests, the validators evaluate the
    round's candidate models and sign the losses they find, and each update scores its share of the
    value. Evaluation replies are checked and normalised the same way before the wrapped strategy
    aggregates them.
    Once the round's evaluation is in, it stores the manifest and commits the round on-chain. A
    round with fewer than ``min-accepted`` valid updates is not aggregated; it is committed as
    failed, with the global model unchanged. The manifest names, for training and for evaluation,
    the nodes asked and those that never answered.

    Hashing happens before the wrapped strategy sees the replies, because some strategies
    (FedMedian, FedTrimmedAvg, Bulyan) consume the arrays of the replies they are given.

    A resumed run starts at its next round: Flower counts its rounds from 1, and every round number
    it passes in is shifted to the run's own before anything (the wrapped strategy, the clients,
    ``evaluate_fn``, the record) sees it.

    The wrapped strategy must build its training requests as Flower's do, from the config and
    arrays it is given: each must carry the ConfigRecord ``"config"`` the ledger filled in and one
    ArrayRecord, the round's model; otherwise ``start`` stops with a ``StrategyError`` before the
    round's requests are sent. A round whose evaluation replies are all rejected has no evaluation
    metrics: the wrapped strategy's ``aggregate_evaluate`` is not called with none.

    Parameters
    ----------
    inner : Strategy
        The Flower strategy that samples nodes and aggregates.
    settings : LedgerSettings
        Where and how the run is recorded (the run config's ``fedledger.*`` keys).
    app : AppRecord
        What the run configuration records about the app.
    host : Host
        What the process hosting the app lends the ledger (chain, callbacks).
    aggregation : str | None
        The registered aggregation that re-derives ``inner``'s aggregates, if it is not a Flower
        built-in (``fedledger.aggregation.register_aggregation``).
    """

    def __init__(
        self,
        inner: Strategy,
        *,
        settings: LedgerSettings,
        app: AppRecord,
        host: Host,
        aggregation: str | None = None,
    ) -> None:
        self.inner = inner
        self.settings = settings
        self.app = app
        self.host = host
        self.description = describe_strategy(inner, aggregation)
        self.detection = settings.detection
        self.reaggregation = Reaggregation.of(self.description)
        self.reports: list[RoundReport] = []
        self.location: LedgerLocation | None = None
        self.first_round = 1
        self._session: LedgerSession | None = None
        self._recorder: RoundRecorder | None = None
        self._base: dict | None = None
        self._base_hash = b""
        self._examined: Examined | None = None
        self._training = Requests()
        self._evaluation = Requests()
        self._judged: JudgedRound | None = None
        self._valuer: RoundValuer | None = None
        self._pending: PendingValuation | None = None
        self._valuation_config = ConfigRecord()
        self.privacy: PrivacySettings | None = None
        self._releases = 0  # central DP: the rounds aggregated (each one noised release)
        self._charged: Counter[str] = Counter()  # local DP: the rounds each participant released an update in

    @property
    def session(self) -> LedgerSession:
        if self._session is None:
            raise RuntimeError("the ledger is opened by start()")
        return self._session

    @property
    def recorder(self) -> RoundRecorder:
        if self._recorder is None:
            raise RuntimeError("the run is started by start()")
        return self._recorder

    @property
    def weight_key(self) -> str:
        """The MetricRecord key holding each reply's example count: the wrapped strategy's
        ``weighted_by_key`` (under a differential-privacy wrapper, that of the strategy it wraps)."""
        return strategy_attribute(self.inner, "weighted_by_key", messages.NUM_EXAMPLES)

    @property
    def simulated_participants(self) -> bool:
        """Whether sites sign with keys derived from ``fedledger.key-seed`` (sent to them with every request)."""
        return self.settings.in_process_chain or self.settings.simulated_participants > 0

    def summary(self) -> None:
        if self._session is not None and self._recorder is not None:
            log(INFO, "\t├──> Ledger: registry %s, run %d", self.session.registry.address, self.recorder.run_id)
            log(INFO, "\t│\t└── store %s", self.session.store.location)
        self.inner.summary()

    def start(
        self,
        grid: Grid,
        initial_arrays: ArrayRecord,
        num_rounds: int = 3,
        timeout: float = 3600,
        train_config: ConfigRecord | None = None,
        evaluate_config: ConfigRecord | None = None,
        evaluate_fn: Callable[[int, ArrayRecord], MetricRecord | None] | None = None,
    ) -> Result:
        """Run ``num_rounds`` rounds of the wrapped strategy as Flower's ``Strategy.start`` does,
        every one recorded on the ledger; returns Flower's ``Result`` (rounds numbered from 1 in
        this call, also when resuming).

        Raises:
            FederationStopped: the chain stayed unreachable past its retry budget; says how to resume.
            FedLedgerError: the run cannot start or resume (the message says why), or the wrapped
                strategy builds a training request the sites could not sign for (``StrategyError``).
        """
        try:
            return self._start(grid, initial_arrays, num_rounds, timeout, train_config, evaluate_config, evaluate_fn)
        except FedLedgerError as error:
            self.host.on_error(error)
            raise

    def _start(
        self,
        grid: Grid,
        initial_arrays: ArrayRecord,
        num_rounds: int,
        timeout: float,
        train_config: ConfigRecord | None,
        evaluate_config: ConfigRecord | None,
        evaluate_fn: Callable[[int, ArrayRecord], MetricRecord | None] | None,
    ) -> Result:
        started = time.perf_counter()
        if num_rounds < 1:
            raise FedLedgerError(f"num_rounds must be at least 1, got {num_rounds}")
        initial = _initial_model(initial_arrays)
        initial_hash = model_hash(initial)
        self.privacy = self._privacy(num_rounds)
        vault = Vault.open(self.settings)
        configuration = run_configuration(
            self.settings,
            self.description,
            initial_hash,
            num_rounds,
            self.app,
            grid.run.fab_hash or "",
            self.privacy,
            vault.to_json(),
        )
        self._session = session = LedgerSession.open(self.settings, self.host.chain, vault)
        if self.settings.resume_run:
            run = resume_run(session, self.settings, configuration, initial_hash)
            restore_server_optimiser(session, run, self.inner, self.reaggregation)
        else:
            if self.settings.simulated_participants == 0 and self.settings.in_process_chain and session.deployed:
                register_connected_nodes(session, grid, self.inner, self.settings)
            run = start_run(session, self.settings, configuration, initial)
        self._examined = run.examined
        self._releases, self._charged = run.releases, Counter(run.charged)
        output_dir = Path(self.settings.output_dir)
        self.location = location = LedgerLocation(
            chain_id=session.domain.chain_id,
            registry=session.registry.address,
            run_id=run.run_id,
            store=session.store.location,
            rpc_url=self.settings.rpc_url or None,
            saved_chain=str(session.chain.journal) if session.chain.journal else None,
        )
        location.save(output_dir)
        self.host.on_start(location)
        self._recorder = RoundRecorder(session, run.run_id, run.configuration, output_dir / ROUNDS_FILE)
        if self.settings.valuation is not None:
            self._valuer = RoundValuer(self.settings.valuation, session.domain, run.run_id)
        self._valuation_config = ConfigRecord(dict(evaluate_config or train_config or ConfigRecord()))
        self.first_round = run.next_round
        try:
            result = super().start(
                grid,
                _record(run.model),
                run.rounds_left,
                timeout,
                train_config,
                evaluate_config,
                None if evaluate_fn is None else self._in_run_rounds(evaluate_fn),
            )
        except ChainUnavailable as error:
            last = self.reports[-1].round if self.reports else run.committed_rounds
            raise FederationStopped(
                f"{error}; run {run.run_id} on registry {location.registry} stopped after round {last} "
                f"of {run.planned_rounds}; resume with: {self.host.resume_hint(location)}"
            ) from None
        self._finish(run, result, time.perf_counter() - started, output_dir)
        return result

    def _privacy(self, num_rounds: int) -> PrivacySettings | None:
        """The run's differential privacy, its noise calibrated to the planned rounds and the
        wrapped strategy's ``fraction_train``.

        Raises:
            StrategyError: central DP over a strategy the auditor cannot re-derive, or one that keeps
                server-side state (its state would follow its own aggregate, not the noised one).
        """
        privacy = self.settings.privacy(float(strategy_attribute(self.inner, "fraction_train", "1.0")), num_rounds)
        if privacy is not None and privacy.mode == "central":
            aggregator = self.reaggregation.aggregator
            if aggregator is None or aggregator.stateful:
                raise StrategyError(
                    f"central differential privacy needs a strategy that is re-derived and keeps no server-side "
                    f"state (FedAvg, FedProx, FedMedian, FedTrimmedAvg, Krum, MultiKrum, Bulyan); "
                    f"{type(self.inner).__qualname__} is not one"
                )
        return privacy

    def _in_run_rounds(
        self, evaluate_fn: Callable[[int, ArrayRecord], MetricRecord | None]
    ) -> Callable[[int, ArrayRecord], MetricRecord | None]:
        """``evaluate_fn``, called with the run's round numbers instead of Flower's (on a resumed
        run, Flower's round 0 is the run's last committed round)."""

        def evaluate(flower_round: int, arrays: ArrayRecord) -> MetricRecord | None:
            return evaluate_fn(self._run_round(flower_round), arrays)

        return evaluate

    def _finish(self, run: RunStart, result: Result, wall_time: float, output_dir: Path) -> None:
        final = {name: array.numpy() for name, array in result.arrays.items()} if result.arrays else run.model
        if self.location is None:
            raise RuntimeError("the run finishes after it starts")
        summary = FederationSummary(
            ledger=self.location,
            initial_model_hash=to_hex(run.initial_model_hash),
            final_model_hash=to_hex(model_hash(final)),
            wall_time_seconds=wall_time,
            rounds=self.reports,
        )
        summary.save(output_dir)
        if self.host.on_finish is not None:
            self.host.on_finish(summary)

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        server_round = self._run_round(server_round)
        self._pending = None
        arrays = canonical_arrays(arrays)
        self._base = {name: array.numpy() for name, array in arrays.items()}
        self._base_hash = model_hash(self._base)
        self._bind(config, server_round)
        self._training, sent = self._sample(
            "train",
            server_round,
            lambda waiting: self.inner.configure_train(server_round, arrays, config, waiting),
            grid,
        )
        checked: set[int] = set()  # the ArrayRecords already found to be the round's model
        for message in sent:
            self._check_request(message, checked)
        return sent

    def configure_evaluate(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        server_round = self._run_round(server_round)
        self._bind(config, server_round)
        self._evaluation, sent = self._sample(
            "evaluate",
            server_round,
            lambda waiting: self.inner.configure_evaluate(server_round, arrays, config, waiting),
            grid,
        )
        if self._valuer is None or self._pending is None:
            return sent
        valuation_config = ConfigRecord(dict(self._valuation_config))
        self._bind(valuation_config, server_round)
        return self._valuer.requests(self._pending, sent, valuation_config)

    def _sample(
        self, phase: str, server_round: int, configure: Callable[[Grid], Iterable[Message]], grid: Grid
    ) -> tuple[Requests, list[Message]]:
        """The wrapped strategy's messages for ``phase``, sampled with a bounded wait for nodes;
        none, and the reason, if too few nodes were connected in time."""
        try:
            sent = list(
                configure(BoundedWaitGrid(grid, nodes_needed(self.inner, phase), self.settings.connect_timeout))
            )
        except TooFewNodes as shortage:
            log(
                WARNING,
                "round %d: no %s: %d nodes connected, %d needed; waited %.1f s (connect-timeout)",
                server_round,
                "training" if phase == "train" else "evaluation",
                shortage.connected,
                shortage.needed,
                shortage.waited,
            )
            return Requests(skipped=str(shortage)), []
        return Requests(asked=tuple(sorted(message.metadata.dst_node_id for message in sent))), sent

    def _run_round(self, flower_round: int) -> int:
        return flower_round + self.first_round - 1

    def _bind(self, config: ConfigRecord, server_round: int) -> None:
        """Tell clients which round of which run, on which chain and registry, to sign for, which
        metric holds their example count, and, when their keys are simulated, the seed they derive
        them from."""
        config[messages.CONFIG_ROUND] = server_round
        config[messages.CONFIG_CHAIN_ID] = self.session.domain.chain_id
        config[messages.CONFIG_REGISTRY] = self.session.domain.registry
        config[messages.CONFIG_RUN_ID] = self.recorder.run_id
        config[messages.CONFIG_WEIGHT_KEY] = self.weight_key
        if self.simulated_participants:
            config[messages.CONFIG_KEY_SEED] = self.settings.key_seed
        if self.privacy is not None and self.privacy.mode == "local":
            clip_norm, noise_multiplier = local_parameters(self.privacy)
            config[messages.CONFIG_DP_CLIP_NORM] = clip_norm
            config[messages.CONFIG_DP_NOISE_MULTIPLIER] = noise_multiplier

    def _check_request(self, message: Message, checked: set[int]) -> None:
        """Refuse a training request the client mod could not sign for: it needs the config the
        ledger bound (ConfigRecord ``"config"`` with ``fedledger.run-id``) and exactly one
        ArrayRecord, the round's base model.

        Raises:
            StrategyError: names the wrapped strategy's class and what the request lacks.
        """
        problem = None
        config = message.content.config_records.get(messages.CONFIG_RECORD)
        arrays = list(message.content.array_records.values())
        if config is None or messages.CONFIG_RUN_ID not in config:
            problem = f"no ConfigRecord {messages.CONFIG_RECORD!r} holding {messages.CONFIG_RUN_ID!r}"
        elif len(arrays) != 1:
            problem = f"{len(arrays)} ArrayRecords, not exactly one"
        elif id(arrays[0]) not in checked:
            if model_hash({name: arrays[0][name].numpy() for name in sorted(arrays[0])}) != self._base_hash:
                problem = "arrays that are not the round's model"
            checked.add(id(arrays[0]))
        if problem is not None:
            raise StrategyError(
                f"{type(self.inner).__qualname__}.configure_train built a request to node "
                f"{message.metadata.dst_node_id} with {problem}: it must send the config and arrays it is "
                "given, as Flower's strategies do (docs/ledger-api.md)"
            )

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        server_round = self._run_round(server_round)
        base = self._base
        if base is None:
            raise RuntimeError("configure_train runs before aggregate_train")
        replies = list(replies)
        self._training = _with_silent(self._training, replies, server_round, "train")
        local = self.privacy is not None and self.privacy.mode == "local"
        context = RoundContext(
            self.session.domain,
            self.recorder.run_id,
            server_round,
            self._base_hash,
            base,
            self.weight_key,
            local_parameters(self.privacy) if self.privacy is not None and local else (0, 0),
        )
        checked = [
            reply if reply.encoding is None else replace(reply, sealed_hash=self._seal(reply.encoding))
            for reply in reject_duplicates(
                [check_reply(reply, context, self.session.participant_status) for reply in replies]
            )
        ]
        checked = self._screen(server_round, checked, base)
        accepted = sorted((reply for reply in checked if reply.accepted), key=lambda reply: reply.participant or "")
        if self._training.skipped is not None:
            return self._fail(server_round, checked, self._training.skipped)
        if len(accepted) < self.settings.min_accepted:
            return self._fail(
                server_round, checked, f"{len(accepted)} valid updates, at least {self.settings.min_accepted} needed"
            )

        aggregated = self._clipped(base, accepted)
        aggregate, metrics = self.inner.aggregate_train(server_round, for_strategy(aggregated))
        if aggregate is None:
            return self._fail(server_round, checked, f"{type(self.inner).__name__} produced no aggregate")

        updates = [reply.as_update() for reply in aggregated]
        flower = {name: array.numpy() for name, array in canonical_arrays(aggregate).items()}
        arrays, reproduction = self._settle(server_round, base, updates, flower)
        selected = self._selection(updates)
        arrays, privacy = self._noised(arrays, len(selected), checked)
        aggregate = ArrayRecord({name: Array(arrays[name]) for name in sorted(arrays)})
        aggregate_hash = self.session.store.put(encode_model(arrays))
        valued = [accepted[index] for index in selected]
        if self._valuer is not None:
            self._pending = self._valuer.prepare(server_round, base, self._base_hash, valued, accepted)
        valued_nodes = {reply.node_id for reply in valued}
        self._judged = JudgedRound(
            round=server_round,
            base_model_hash=self._base_hash,
            model_hash=aggregate_hash,
            replies=[
                replace(reply, selected=reply.node_id in valued_nodes) if reply.accepted else reply for reply in checked
            ],
            reproduction=reproduction,
            requests=self._training,
            train_metrics=dict(metrics or {}),
            privacy=privacy,
        )
        return aggregate, metrics

    def _clipped(self, base: dict, accepted: list[CheckedReply]) -> list[CheckedReply]:
        """The accepted updates as the wrapped strategy aggregates them: as they are, or under central
        DP each clipped to ``clip_norm`` and weighing 1, so that no site moves the mean by more than
        ``clip_norm`` over the number aggregated (docs/privacy.md)."""
        if self.privacy is None or self.privacy.mode != "central":
            return accepted
        clip_norm = self.privacy.clip_norm
        return [
            replace(
                reply,
                arrays=clip_update(base, reply.arrays or {}, clip_norm),
                num_examples=1,
                metrics={**(reply.metrics or {}), self.weight_key: 1},
            )
            for reply in accepted
        ]

    def _noised(
        self, arrays: dict[str, np.ndarray], aggregated: int, replies: list[CheckedReply]
    ) -> tuple[dict[str, np.ndarray], RoundPrivacy | None]:
        """The model to commit and the round's privacy record: under central DP the aggregate plus
        Gaussian noise for the mean of ``aggregated`` clipped updates, the noise stored for the auditor."""
        if self.privacy is None:
            return arrays, None
        if self.privacy.mode != "central":
            return arrays, self._round_privacy(replies)
        stddev = self.privacy.noise_stddev(aggregated)
        noise = draw_noise(arrays, stddev)
        encoding = encode_model(noise)
        sealed_hash = self._seal(encoding)
        self._releases += 1
        record = self._round_privacy(replies)
        if record is None:
            raise RuntimeError("a private run has a privacy record")
        noised = replace(
            record,
            aggregated=aggregated,
            noise_stddev=stddev,
            noise_hash=to_hex(keccak256(encoding)),
            noise_sealed_hash=to_hex(sealed_hash),
        )
        return add_noise(arrays, noise), noised

    def _seal(self, plaintext: bytes) -> bytes:
        """Store ``plaintext`` sealed for the coordinator and the run's auditors; the sealed artifact's hash."""
        return self.session.vault.put(self.session.store, plaintext)

    def _round_privacy(self, replies: list[CheckedReply]) -> RoundPrivacy | None:
        """What the run has spent after this round. Central DP: one release per round aggregated.
        Local DP: each participant has released an update in every round the manifest lists one of
        its signed updates (once per round); the run's ε is the largest participant's."""
        if self.privacy is None:
            return None
        if self.privacy.mode == "central":
            epsilon = self.privacy.epsilon_after(self._releases)
            return RoundPrivacy(self._releases, epsilon, to_fixed_epsilon(epsilon))
        self._charged.update(
            {reply.participant for reply in replies if reply.participant and reply.reason in CHARGED_REASONS}
        )
        epsilons = local_epsilons(self.privacy, self._charged)
        epsilon = max(epsilons.values(), default=0.0)
        releases = max(self._charged.values(), default=0)
        return RoundPrivacy(releases, epsilon, to_fixed_epsilon(epsilon), participants=epsilons)

    def _selection(self, updates: list[WeightedUpdate]) -> list[int]:
        """The indices of the accepted updates the wrapped strategy aggregated: those its
        re-derivation selects (Krum, MultiKrum, Bulyan leave some out), else all of them."""
        aggregator = self.reaggregation.aggregator
        return list(range(len(updates))) if aggregator is None else aggregator.selection(updates)

    def _screen(self, server_round: int, checked: list[CheckedReply], base: dict) -> list[CheckedReply]:
        """Run the anomaly detector over the valid updates; flagged ones are rejected as ``anomalous``.

        Each update's response to the last global step is measured against the same participant's
        update the detector examined in the previous round.
        """
        if self.detection is None:
            return checked
        positions = [index for index, reply in enumerate(checked) if reply.accepted]
        arrays = [checked[index].as_update().arrays for index in positions]
        participants = [checked[index].participant or "" for index in positions]
        responses = None
        if self._examined is not None and self._examined[0] == server_round - 1:
            _, previous_base, previous = self._examined
            responses = step_responses(previous_base, base, [previous.get(name) for name in participants], arrays)
        self._examined = (server_round, base, dict(zip(participants, arrays, strict=True)))
        statistics = detect(delta_gram(base, arrays), self.detection, responses)
        if statistics is None:
            return checked
        screened = list(checked)
        for index, stats in zip(positions, statistics, strict=True):
            reply = replace(checked[index], anomaly=stats)
            screened[index] = (
                reply.rejected("anomalous", stats.describe(self.detection.threshold)) if stats.flags else reply
            )
        return screened

    def _fail(
        self, server_round: int, checked: list[CheckedReply], failure: str
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        log(INFO, "round %d failed: %s; the global model stays as it was", server_round, failure)
        judged_replies = [reply.rejected("round-failed", failure) if reply.accepted else reply for reply in checked]
        self._judged = JudgedRound(
            round=server_round,
            base_model_hash=self._base_hash,
            model_hash=self._base_hash,
            replies=judged_replies,
            reproduction="not aggregated",
            requests=self._training,
            failure=failure,
            privacy=self._round_privacy(judged_replies),
        )
        return None, None

    def _settle(
        self, server_round: int, base: dict, updates: list[WeightedUpdate], flower: dict[str, np.ndarray]
    ) -> tuple[dict[str, np.ndarray], str]:
        """The aggregate to commit, and how it relates to Flower's: re-derive it from the accepted
        updates — the arrays whose encodings were stored, in the same order — as an auditor will.
        The specified aggregate is committed when Flower's is it, or, for a strategy whose Flower
        arithmetic leaves its last bits to the machine, differs from it only there
        (docs/aggregation.md); otherwise Flower's, as a mismatch."""
        aggregator = self.reaggregation.aggregator
        if aggregator is None:
            return flower, self.reaggregation.not_reproduced
        derived = aggregator.aggregate(server_round, base, updates)
        if model_hash(derived) == model_hash(flower):
            return flower, "verified"
        difference = settled(derived, flower) if aggregator.settles_last_bits else None
        if difference is None:
            return flower, f"mismatch: re-derived {to_hex(model_hash(derived))}"
        return derived, f"verified: Flower's own aggregate differs in its last bits ({difference:.1e} relative)"

    def aggregate_evaluate(self, server_round: int, replies: Iterable[Message]) -> MetricRecord | None:
        server_round = self._run_round(server_round)
        replies = list(replies)
        judged, self._judged = self._judged, None
        if judged is not None:
            judged = self._scored(judged, replies)
        asked = set(self._evaluation.asked)
        replies = [reply for reply in replies if reply.metadata.src_node_id in asked]
        requests = _with_silent(self._evaluation, replies, server_round, "evaluate")
        checked = reject_duplicates(
            [check_evaluation(reply, self.session.participant_status, self.weight_key) for reply in replies]
        )
        accepted = sorted((reply for reply in checked if reply.accepted), key=lambda reply: reply.participant or "")
        metrics = self.inner.aggregate_evaluate(server_round, for_strategy(accepted)) if accepted else None
        if judged is None:
            return metrics
        report = self.recorder.commit(judged, JudgedEvaluation(requests, checked, dict(metrics or {})))
        self.reports.append(report)
        self.host.on_round(report)
        return metrics

    def _scored(self, judged: JudgedRound, replies: list[Message]) -> JudgedRound:
        """``judged`` with the round's valuation and each selected update's score, read from the
        validators' replies; as it is when rewards follow example counts."""
        pending, self._pending = self._pending, None
        if self._valuer is None or pending is None:
            return judged
        valuation, scores = self._valuer.conclude(pending, {reply.metadata.src_node_id: reply for reply in replies})
        scored = dict(zip((reply.node_id for reply in pending.valued), scores, strict=True))
        return replace(
            judged,
            valuation=valuation,
            replies=[
                replace(reply, score=scored.get(reply.node_id, 0.0)) if reply.accepted else reply
                for reply in judged.replies
            ],
        )


def _with_silent(requests: Requests, replies: list[Message], server_round: int, phase: str) -> Requests:
    """``requests`` with the nodes that were asked and sent no reply (within the round timeout)."""
    answered = {reply.metadata.src_node_id for reply in replies}
    silent = tuple(node for node in requests.asked if node not in answered)
    if silent:
        log(
            INFO,
            "round %d: %d of %d nodes asked to %s did not answer within round-timeout: %s",
            server_round,
            len(silent),
            len(requests.asked),
            phase,
            ", ".join(str(node) for node in silent),
        )
    return replace(requests, silent=silent)


def _initial_model(initial_arrays: ArrayRecord) -> dict[str, np.ndarray]:
    """The initial arrays, sorted by name, once they are known to be a model the ledger can hash.

    Raises:
        FedLedgerError: no arrays, an array the canonical encoding refuses, or one holding NaN or infinity.
    """
    arrays = {name: initial_arrays[name].numpy() for name in sorted(initial_arrays)}
    if not arrays:
        raise FedLedgerError("the initial arrays are empty: the run needs a model to start from")
    try:
        encode_model(arrays)
    except EncodingError as error:
        raise FedLedgerError(f"the initial arrays cannot be recorded: {error}") from None
    for name, array in arrays.items():
        if not np.all(np.isfinite(array)):
            raise FedLedgerError(f"the initial array {name!r} holds NaN or infinite values")
    return arrays


def _record(arrays: Mapping[str, np.ndarray]) -> ArrayRecord:
    return ArrayRecord({name: Array(np.asarray(arrays[name])) for name in sorted(arrays)})
