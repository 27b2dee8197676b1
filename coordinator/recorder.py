"""Turning a judged round into its record: rewards, Merkle roots, the manifest, the on-chain commit."""

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fedledger.coordinator.session import LedgerSession
from fedledger.coordinator.validation import CheckedEvaluation, CheckedReply
from fedledger.hashing import to_hex
from fedledger.manifest import RejectedEvaluation, Requests, RoundManifest, UpdateEntry
from fedledger.privacy import RoundPrivacy
from fedledger.rounds import seal
from fedledger.runconfig import RunConfiguration
from fedledger.valuation import RoundValuation

#: The coordinator's own log of the commits it was told are mined, one JSON line per round, in the
#: run's output directory: what a fault check compares the chain with afterwards.
ROUNDS_FILE = "rounds.jsonl"


@dataclass(frozen=True)
class JudgedRound:
    """A training round after validation and aggregation, waiting to be committed.

    ``model_hash`` is the aggregate's hash, or the base model's when the round failed;
    ``requests`` names the nodes asked to train and those that did not answer.
    """

    round: int
    base_model_hash: bytes
    model_hash: bytes
    replies: list[CheckedReply]
    reproduction: str
    requests: Requests
    failure: str | None = None
    train_metrics: dict[str, Any] = field(default_factory=dict)
    valuation: RoundValuation | None = None
    privacy: RoundPrivacy | None = None

    @property
    def accepted(self) -> list[CheckedReply]:
        return [reply for reply in self.replies if reply.accepted]


@dataclass(frozen=True)
class JudgedEvaluation:
    """A round's evaluation: whom it asked, every reply and its verdict, and the wrapped
    strategy's aggregate of the accepted ones."""

    requests: Requests
    replies: list[CheckedEvaluation]
    aggregate: dict[str, Any]

    @property
    def metrics(self) -> dict[str, Any]:
        """The evaluation part of a manifest's metrics: the aggregate and each accepted participant's figures."""
        participants = {reply.participant: reply.metrics for reply in self.replies if reply.accepted}
        return {"aggregate": self.aggregate, "participants": participants}

    @property
    def rejected(self) -> tuple[RejectedEvaluation, ...]:
        return tuple(
            RejectedEvaluation(reply.node_id, reply.reason or "", reply.detail or "", reply.participant)
            for reply in self.replies
            if not reply.accepted
        )


@dataclass(frozen=True)
class RoundReport:
    """What a committed round did, for progress lines and summaries."""

    round: int
    accepted: int
    rejected: int
    rejections: dict[int, str]
    model_hash: str
    manifest_hash: str
    gas_used: int | None  # None: the round was already committed on a node that keeps no logs
    block_number: int
    outcome: str
    reproduction: str
    evaluation: dict[str, Any]  # the wrapped strategy's aggregate of the evaluation metrics
    site_evaluation: dict[str, dict[str, Any]]  # each accepted participant's evaluation metrics
    clusters: tuple[tuple[str, ...], ...] = ()  # participants whose near-identical updates share one contribution


class RoundRecorder:
    """Commits judged rounds of one run: seals each (rewards, roots, manifest), stores the manifest,
    commits the round on-chain and, once the commit is mined, appends it to ``acknowledged``."""

    def __init__(
        self, session: LedgerSession, run_id: int, configuration: RunConfiguration, acknowledged: Path
    ) -> None:
        self.session = session
        self.run_id = run_id
        self.configuration = configuration
        self.acknowledged = acknowledged

    @property
    def strategy(self) -> dict[str, Any]:
        return self.configuration.strategy

    def commit(self, judged: JudgedRound, evaluation: JudgedEvaluation) -> RoundReport:
        draft = RoundManifest(
            chain_id=self.session.domain.chain_id,
            registry=self.session.registry.address,
            run_id=self.run_id,
            round=judged.round,
            base_model_hash=to_hex(judged.base_model_hash),
            model_hash=to_hex(judged.model_hash),
            outcome="failed" if judged.failure else "aggregated",
            failure=judged.failure,
            strategy=self.strategy,
            reproduction=judged.reproduction,
            updates=tuple(_entry(reply) for reply in judged.replies),
            updates_root="",
            rewards_root="",
            metrics={"train": judged.train_metrics, "evaluate": evaluation.metrics},
            scoring=None if self.configuration.scoring is None else self.configuration.scoring.to_json(),
            valuation=judged.valuation,
            detection=None if self.configuration.detection is None else self.configuration.detection.to_json(),
            training=judged.requests,
            evaluation=evaluation.requests,
            rejected_evaluations=evaluation.rejected,
            privacy=judged.privacy,
        )
        manifest, commitment = seal(draft, self.configuration.rewards)
        self.session.store.put(manifest.to_bytes())
        self.session.store.put(commitment.encode(self.run_id, judged.round))
        receipt = self.session.registry.commit_round(self.run_id, judged.round, commitment)
        self._acknowledge(judged.round, manifest.model_hash, to_hex(commitment.manifest_hash), receipt.tx_hash)
        return RoundReport(
            round=judged.round,
            accepted=commitment.accepted,
            rejected=commitment.rejected,
            rejections={reply.node_id: reply.reason for reply in judged.replies if reply.reason},
            model_hash=manifest.model_hash,
            manifest_hash=to_hex(commitment.manifest_hash),
            gas_used=receipt.gas_used,
            block_number=receipt.block_number,
            outcome=manifest.outcome,
            reproduction=judged.reproduction,
            evaluation=evaluation.aggregate,
            site_evaluation=evaluation.metrics["participants"],
            clusters=() if judged.valuation is None else tuple(p for p in judged.valuation.players if len(p) > 1),
        )

    def _acknowledge(self, round_number: int, model_hash: str, manifest_hash: str, tx_hash: str) -> None:
        line = {
            "run_id": self.run_id,
            "round": round_number,
            "model_hash": model_hash,
            "manifest_hash": manifest_hash,
            "tx_hash": tx_hash,
        }
        self.acknowledged.parent.mkdir(parents=True, exist_ok=True)
        with self.acknowledged.open("a") as log:
            log.write(json.dumps(line) + "\n")


def _entry(reply: CheckedReply) -> UpdateEntry:
    return UpdateEntry(
        node_id=reply.node_id,
        status="accepted" if reply.accepted else "rejected",
        participant=reply.participant,
        update_hash=to_hex(reply.update_hash) if reply.update_hash else None,
        sealed_hash=to_hex(reply.sealed_hash) if reply.sealed_hash else None,
        num_examples=reply.num_examples,
        signature=to_hex(reply.signature) if reply.signature else None,
        signed=reply.signed,
        reason=reply.reason,
        detail=reply.detail,
        metrics=reply.recorded_metrics,
        score=reply.score,
        anomaly=reply.anomaly,
        selected=reply.selected if reply.accepted else None,
    )
