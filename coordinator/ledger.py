"""The ledger strategy: any Flower strategy, with every round checked, hashed, stored and committed."""

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from functools import cache
from logging import INFO, WARNING
from typing import Any

from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy
from flwr.supercore import log

from fedledger import messages
from fedledger.aggregation import Aggregator, UnsupportedStrategy, WeightedUpdate, aggregator_for
from fedledger.contribution import DetectorSettings, delta_gram, detect
from fedledger.coordinator.recorder import JudgedEvaluation, JudgedRound, RoundRecorder, RoundReport
from fedledger.coordinator.scoring import Scorer
from fedledger.coordinator.session import LedgerSession
from fedledger.coordinator.validation import (
    CheckedReply,
    RoundContext,
    check_evaluation,
    check_reply,
    for_strategy,
    reject_duplicates,
)
from fedledger.coordinator.waiting import BoundedWaitGrid, TooFewNodes, nodes_needed
from fedledger.encoding import encode_model, model_hash
from fedledger.hashing import to_hex
from fedledger.manifest import Requests


def canonical_arrays(record: ArrayRecord) -> ArrayRecord:
    """The same arrays, ordered by name: the order the canonical encoding and the auditor use."""
    return ArrayRecord({name: record[name] for name in sorted(record)})


@dataclass(frozen=True)
class Reaggregation:
    """How the coordinator re-derives each aggregate: with ``aggregator``, the rule an auditor runs,
    or not at all (``None``), and then ``unsupported`` says why."""

    aggregator: Aggregator | None
    unsupported: str = ""

    @classmethod
    def of(cls, strategy: Mapping[str, Any]) -> "Reaggregation":
        """The re-aggregation of ``strategy``, described as a manifest records it."""
        try:
            return cls(aggregator_for(strategy))
        except UnsupportedStrategy as error:
            return cls(None, str(error))


class LedgerStrategy(Strategy):
    """Wraps a Flower strategy without changing it, and records every round it runs.

    For each round it lets the wrapped strategy sample nodes, waiting at most ``connect_timeout``
    seconds for enough of them to be connected (``coordinator.waiting``); with too few, the round
    sends nothing and is committed as failed. It checks every training reply
    (``coordinator.validation``), stores every update it can read, screens the valid ones with the
    anomaly detector (``detection``; flagged updates are rejected as ``anomalous``), hands only the
    accepted ones to the wrapped strategy — normalised to the protocol's records and sorted by
    participant, arrays sorted by name, so the aggregate can be re-derived — hashes and stores the
    aggregate, re-derives it to confirm that an auditor can, and scores each accepted update
    (``scorer``). Evaluation replies are checked and normalised the same way before the wrapped
    strategy aggregates them. Once the round's evaluation is in, it stores the manifest and commits
    the round on-chain. A round with fewer than ``min_accepted`` valid updates is not aggregated;
    it is committed as failed, with the global model unchanged. The manifest names, for training
    and for evaluation, the nodes asked and those that never answered.

    Hashing happens before the wrapped strategy sees the replies, because some strategies
    (FedMedian, FedTrimmedAvg, Bulyan) consume the arrays of the replies they are given.

    ``reaggregation`` is the rule each aggregate is re-derived with; for a resumed run, it carries
    the state the rounds before left (a server optimiser's), so the first resumed round re-derives
    too. A resumed run starts at ``first_round``: Flower counts its rounds from 1, and every round
    number it passes in is shifted to the run's own before anything (the wrapped strategy, the
    clients, the record) sees it.
    """

    def __init__(
        self,
        inner: Strategy,
        *,
        session: LedgerSession,
        recorder: RoundRecorder,
        min_accepted: int,
        detection: DetectorSettings | None,
        scorer: Scorer,
        reaggregation: Reaggregation,
        on_round: Callable[[RoundReport], None],
        connect_timeout: float,
        first_round: int = 1,
    ) -> None:
        self.inner = inner
        self.session = session
        self.recorder = recorder
        self.min_accepted = min_accepted
        self.detection = detection
        self.scorer = scorer
        self.reaggregation = reaggregation
        self.on_round = on_round
        self.connect_timeout = connect_timeout
        self.first_round = first_round
        self.reports: list[RoundReport] = []
        self._base: dict | None = None
        self._base_hash = b""
        self._training = Requests()
        self._evaluation = Requests()
        self._judged: JudgedRound | None = None

    def summary(self) -> None:
        log(INFO, "\t├──> Ledger: registry %s, run %d", self.session.registry.address, self.recorder.run_id)
        log(INFO, "\t│\t└── store %s", self.session.store.location)
        self.inner.summary()

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        server_round = self._run_round(server_round)
        arrays = canonical_arrays(arrays)
        self._base = {name: array.numpy() for name, array in arrays.items()}
        self._base_hash = model_hash(self._base)
        self._bind(config)
        self._training, sent = self._sample(
            "train",
            server_round,
            lambda waiting: self.inner.configure_train(server_round, arrays, config, waiting),
            grid,
        )
        return sent

    def configure_evaluate(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        server_round = self._run_round(server_round)
        self._bind(config)
        self._evaluation, sent = self._sample(
            "evaluate",
            server_round,
            lambda waiting: self.inner.configure_evaluate(server_round, arrays, config, waiting),
            grid,
        )
        return sent

    def _sample(
        self, phase: str, server_round: int, configure: Callable[[Grid], Iterable[Message]], grid: Grid
    ) -> tuple[Requests, list[Message]]:
        """The wrapped strategy's messages for ``phase``, sampled with a bounded wait for nodes;
        none, and the reason, if too few nodes were connected in time."""
        try:
            sent = list(configure(BoundedWaitGrid(grid, nodes_needed(self.inner, phase), self.connect_timeout)))
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

    def _bind(self, config: ConfigRecord) -> None:
        """Tell clients which chain, registry and run to sign for."""
        config[messages.CONFIG_CHAIN_ID] = self.session.domain.chain_id
        config[messages.CONFIG_REGISTRY] = self.session.domain.registry
        config[messages.CONFIG_RUN_ID] = self.recorder.run_id

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        server_round = self._run_round(server_round)
        base = self._base
        if base is None:
            raise RuntimeError("configure_train runs before aggregate_train")
        replies = list(replies)
        self._training = _with_silent(self._training, replies, server_round, "train")
        weight_key = getattr(self.inner, "weighted_by_key", messages.NUM_EXAMPLES)
        context = RoundContext(
            self.session.domain, self.recorder.run_id, server_round, self._base_hash, base, weight_key
        )
        is_active = cache(self.session.participant_status)  # one registry read per address and phase
        checked = reject_duplicates([check_reply(reply, context, is_active) for reply in replies])
        for reply in checked:
            if reply.encoding is not None:
                self.session.store.put(reply.encoding)
        checked = self._screen(checked, base)
        accepted = sorted((reply for reply in checked if reply.accepted), key=lambda reply: reply.participant or "")
        if self._training.skipped is not None:
            return self._fail(server_round, checked, self._training.skipped)
        if len(accepted) < self.min_accepted:
            return self._fail(
                server_round, checked, f"{len(accepted)} valid updates, at least {self.min_accepted} needed"
            )

        aggregate, metrics = self.inner.aggregate_train(server_round, for_strategy(accepted))
        if aggregate is None:
            return self._fail(server_round, checked, f"{type(self.inner).__name__} produced no aggregate")

        aggregate = canonical_arrays(aggregate)
        arrays = {name: array.numpy() for name, array in aggregate.items()}
        aggregate_hash = self.session.store.put(encode_model(arrays))
        updates = [reply.as_update() for reply in accepted]
        given = self.scorer.scores(base, [update.arrays for update in updates], [update.weight for update in updates])
        scores = {reply.participant: score for reply, score in zip(accepted, given, strict=True)}
        self._judged = JudgedRound(
            round=server_round,
            base_model_hash=self._base_hash,
            model_hash=aggregate_hash,
            replies=[replace(reply, score=scores[reply.participant]) if reply.accepted else reply for reply in checked],
            reproduction=self._reproduce(server_round, base, updates, aggregate_hash),
            requests=self._training,
            train_metrics=dict(metrics or {}),
        )
        return aggregate, metrics

    def _screen(self, checked: list[CheckedReply], base: dict) -> list[CheckedReply]:
        """Run the anomaly detector over the valid updates; flagged ones are rejected as ``anomalous``."""
        if self.detection is None:
            return checked
        positions = [index for index, reply in enumerate(checked) if reply.accepted]
        statistics = detect(
            delta_gram(base, [checked[index].as_update().arrays for index in positions]), self.detection
        )
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
        self._judged = JudgedRound(
            round=server_round,
            base_model_hash=self._base_hash,
            model_hash=self._base_hash,
            replies=[reply.rejected("round-failed", failure) if reply.accepted else reply for reply in checked],
            reproduction="not aggregated",
            requests=self._training,
            failure=failure,
        )
        return None, None

    def _reproduce(self, server_round: int, base: dict, updates: list[WeightedUpdate], aggregate_hash: bytes) -> str:
        """Re-derive the aggregate from the accepted updates — the arrays whose encodings were
        stored, in the same order — as an auditor will."""
        aggregator = self.reaggregation.aggregator
        if aggregator is None:
            return f"unsupported: {self.reaggregation.unsupported}"
        derived = model_hash(aggregator.aggregate(server_round, base, updates))
        if derived != aggregate_hash:
            return f"mismatch: re-derived {to_hex(derived)}"
        return "verified"

    def aggregate_evaluate(self, server_round: int, replies: Iterable[Message]) -> MetricRecord | None:
        server_round = self._run_round(server_round)
        replies = list(replies)
        requests = _with_silent(self._evaluation, replies, server_round, "evaluate")
        is_active = cache(self.session.participant_status)
        weight_key = getattr(self.inner, "weighted_by_key", messages.NUM_EXAMPLES)
        checked = reject_duplicates([check_evaluation(reply, is_active, weight_key) for reply in replies])
        accepted = sorted((reply for reply in checked if reply.accepted), key=lambda reply: reply.participant or "")
        metrics = self.inner.aggregate_evaluate(server_round, for_strategy(accepted))
        judged, self._judged = self._judged, None
        if judged is None:
            return metrics
        report = self.recorder.commit(judged, JudgedEvaluation(requests, checked, dict(metrics or {})))
        self.reports.append(report)
        self.on_round(report)
        return metrics


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
