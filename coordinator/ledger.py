"""The ledger strategy: any Flower strategy, with every round checked, hashed, stored and committed."""

from collections.abc import Callable, Iterable
from dataclasses import replace
from logging import INFO

from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy
from flwr.supercore import log

from coordinator.recorder import JudgedRound, RoundRecorder, RoundReport
from coordinator.scoring import Scorer
from coordinator.session import LedgerSession
from coordinator.validation import CheckedReply, RoundContext, check_reply, reject_duplicates
from fedledger import messages
from fedledger.aggregation import Aggregator, UnsupportedStrategy, WeightedUpdate, aggregator_for
from fedledger.contribution import DetectorSettings, delta_gram, detect
from fedledger.encoding import decode_model, encode_model, model_hash
from fedledger.hashing import to_hex


def canonical_arrays(record: ArrayRecord) -> ArrayRecord:
    """The same arrays, ordered by name: the order the canonical encoding and the auditor use."""
    return ArrayRecord({name: record[name] for name in sorted(record)})


class LedgerStrategy(Strategy):
    """Wraps a Flower strategy without changing it, and records every round it runs.

    For each round it checks every training reply (``coordinator.validation``), stores every
    update it can read, screens the valid ones with the anomaly detector (``detection``; flagged
    updates are rejected as ``anomalous``), hands only the accepted ones to the wrapped strategy
    (sorted by participant, arrays sorted by name, so the aggregate can be re-derived), hashes and
    stores the aggregate, re-derives it to confirm that an auditor can, scores each accepted update
    (``scorer``), and — once the round's evaluation is in — stores the manifest and commits the
    round on-chain. A round with fewer than ``min_accepted`` valid updates is not aggregated; it is
    committed as failed, with the global model unchanged.

    Hashing happens before the wrapped strategy sees the replies, because some strategies
    (FedMedian, FedTrimmedAvg, Bulyan) consume the arrays of the replies they are given.

    A resumed run starts at ``first_round``: Flower counts its rounds from 1, and every round
    number it passes in is shifted to the run's own before anything (the wrapped strategy, the
    clients, the record) sees it. ``replayed`` is the re-aggregation rule with the state the
    rounds before it left (a server optimiser's), so the first resumed round re-derives too.
    """

    def __init__(
        self,
        inner: Strategy,
        session: LedgerSession,
        recorder: RoundRecorder,
        min_accepted: int,
        detection: DetectorSettings | None,
        scorer: Scorer,
        on_round: Callable[[RoundReport], None],
        first_round: int = 1,
        replayed: Aggregator | None = None,
    ) -> None:
        self.inner = inner
        self.first_round = first_round
        self.session = session
        self.recorder = recorder
        self.min_accepted = min_accepted
        self.detection = detection
        self.scorer = scorer
        self.on_round = on_round
        self.reports: list[RoundReport] = []
        self._base: dict | None = None
        self._base_hash = b""
        self._judged: JudgedRound | None = None
        self._aggregator: Aggregator | None = replayed
        self._unsupported = ""
        if replayed is None:
            try:
                self._aggregator = aggregator_for(recorder.strategy)
            except UnsupportedStrategy as error:
                self._unsupported = str(error)

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
        return self.inner.configure_train(server_round, arrays, config, grid)

    def configure_evaluate(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        server_round = self._run_round(server_round)
        self._bind(config)
        return self.inner.configure_evaluate(server_round, arrays, config, grid)

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
        assert self._base is not None, "configure_train runs before aggregate_train"
        context = RoundContext(self.session.domain, self.recorder.run_id, server_round, self._base_hash, self._base)
        checked = reject_duplicates([check_reply(reply, context, self.session.participant_status) for reply in replies])
        for reply in checked:
            if reply.encoding is not None:
                self.session.store.put(reply.encoding)
        checked = self._screen(checked)
        accepted = sorted((reply for reply in checked if reply.accepted), key=lambda reply: reply.participant or "")
        if len(accepted) < self.min_accepted:
            return self._fail(
                server_round, checked, f"{len(accepted)} valid updates, at least {self.min_accepted} needed"
            )

        for reply in accepted:
            assert reply.message is not None
            content = reply.message.content
            key = next(iter(content.array_records))
            content[key] = canonical_arrays(content.array_records[key])
        aggregate, metrics = self.inner.aggregate_train(server_round, [reply.message for reply in accepted])
        if aggregate is None:
            return self._fail(server_round, checked, f"{type(self.inner).__name__} produced no aggregate")

        aggregate = canonical_arrays(aggregate)
        arrays = {name: array.numpy() for name, array in aggregate.items()}
        aggregate_hash = self.session.store.put(encode_model(arrays))
        stored = [decode_model(reply.encoding) for reply in accepted]
        weights = [reply.num_examples for reply in accepted]
        given = self.scorer.scores(self._base, stored, weights)
        scores = {reply.participant: score for reply, score in zip(accepted, given, strict=True)}
        self._judged = JudgedRound(
            round=server_round,
            base_model_hash=self._base_hash,
            model_hash=aggregate_hash,
            replies=[replace(reply, score=scores[reply.participant]) if reply.accepted else reply for reply in checked],
            reproduction=self._reproduce(server_round, stored, weights, aggregate_hash),
            train_metrics=dict(metrics or {}),
        )
        return aggregate, metrics

    def _screen(self, checked: list[CheckedReply]) -> list[CheckedReply]:
        """Run the anomaly detector over the valid updates; flagged ones are rejected as ``anomalous``."""
        if self.detection is None:
            return checked
        positions = [index for index, reply in enumerate(checked) if reply.accepted]
        assert self._base is not None
        statistics = detect(
            delta_gram(self._base, [decode_model(checked[index].encoding) for index in positions]), self.detection
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
            failure=failure,
        )
        return None, None

    def _reproduce(self, server_round: int, stored: list[dict], weights: list[int], aggregate_hash: bytes) -> str:
        """Re-derive the aggregate from the stored encodings, as an auditor will."""
        if self._aggregator is None:
            return f"unsupported: {self._unsupported}"
        assert self._base is not None
        updates = [WeightedUpdate(arrays, weight) for arrays, weight in zip(stored, weights, strict=True)]
        derived = model_hash(self._aggregator.aggregate(server_round, self._base, updates))
        if derived != aggregate_hash:
            return f"mismatch: re-derived {to_hex(derived)}"
        return "verified"

    def aggregate_evaluate(self, server_round: int, replies: Iterable[Message]) -> MetricRecord | None:
        server_round = self._run_round(server_round)
        replies = list(replies)
        metrics = self.inner.aggregate_evaluate(server_round, replies)
        judged, self._judged = self._judged, None
        if judged is None:
            return metrics
        report = self.recorder.commit(judged, _evaluation(replies, metrics))
        self.reports.append(report)
        self.on_round(report)
        return metrics


def _evaluation(replies: list[Message], aggregate: MetricRecord | None) -> dict:
    """The evaluation part of a manifest: the aggregate and each participant's own figures."""
    participants = {}
    for reply in replies:
        if reply.has_error() or messages.LEDGER_RECORD not in reply.content.config_records:
            continue
        participant = reply.content.config_records[messages.LEDGER_RECORD].get(messages.PARTICIPANT)
        record = next(iter(reply.content.metric_records.values()), None)
        if isinstance(participant, str) and record is not None:
            participants[participant] = dict(record)
    return {"aggregate": dict(aggregate or {}), "participants": participants}
