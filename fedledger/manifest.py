"""Round manifests: the canonical record of what the coordinator received and did in one round.

A manifest lists every training reply the coordinator received — accepted or rejected, and why —
with the participant, the update hash, the example count and the signature; which nodes each
phase (training, evaluation) asked and which of them never answered; every rejected evaluation
reply and why; the strategy and its parameters; the aggregate hash; rewards; metrics. It is
stored as canonical JSON in the artifact store, and ``manifestHash = keccak256(manifest bytes)``
is committed on-chain.
"""

from dataclasses import dataclass, field
from typing import Any, Literal

from fedledger.canonical import canonical_json, parse_json
from fedledger.contribution import AnomalyStatistics
from fedledger.hashing import keccak256

MANIFEST_VERSION = 2

Status = Literal["accepted", "rejected"]
Outcome = Literal["aggregated", "failed"]


@dataclass(frozen=True)
class SignedFields:
    """What a participant says it signed: the EIP-712 message minus the update hash."""

    run_id: int
    round: int
    base_model_hash: str


@dataclass(frozen=True)
class UpdateEntry:
    """One reply to a training request, as received and judged.

    Attributes:
        node_id: the Flower node that sent the reply.
        status: ``accepted`` into the aggregate, or ``rejected``.
        participant: the Ethereum address the reply claims (``None`` if it names none).
        update_hash: hash of the canonical encoding of the returned arrays (``None`` if none).
        num_examples: the example count the reply reports.
        signature: the EIP-712 signature, hex.
        signed: the run, round and base model the participant says it signed for.
        reason: machine-readable rejection code (``None`` when accepted).
        detail: what exactly was wrong, for people.
        reward: token base units granted for this round.
        train_loss: the training loss the participant reports.
        score: the contribution score of an accepted update (see ``fedledger.contribution``).
        anomaly: the anomaly detector's statistics, for every update it examined.
    """

    node_id: int
    status: Status
    participant: str | None = None
    update_hash: str | None = None
    num_examples: int | None = None
    signature: str | None = None
    signed: SignedFields | None = None
    reason: str | None = None
    detail: str | None = None
    reward: int = 0
    train_loss: float | None = None
    score: float | None = None
    anomaly: AnomalyStatistics | None = None

    def to_json(self) -> dict[str, Any]:
        data = {
            "node_id": self.node_id,
            "status": self.status,
            "participant": self.participant,
            "update_hash": self.update_hash,
            "num_examples": self.num_examples,
            "signature": self.signature,
            "signed": None if self.signed is None else vars(self.signed),
            "reason": self.reason,
            "detail": self.detail,
            "reward": str(self.reward),
            "train_loss": _finite_or_none(self.train_loss),
            "score": self.score,
            "anomaly": None if self.anomaly is None else self.anomaly.to_json(),
        }
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "UpdateEntry":
        signed = data.get("signed")
        return cls(
            node_id=data["node_id"],
            status=data["status"],
            participant=data.get("participant"),
            update_hash=data.get("update_hash"),
            num_examples=data.get("num_examples"),
            signature=data.get("signature"),
            signed=None if signed is None else SignedFields(**signed),
            reason=data.get("reason"),
            detail=data.get("detail"),
            reward=int(data.get("reward", "0")),
            train_loss=data.get("train_loss"),
            score=data.get("score"),
            anomaly=None if data.get("anomaly") is None else AnomalyStatistics.from_json(data["anomaly"]),
        )

    @property
    def sort_key(self) -> tuple[int, str, str, int]:
        """Accepted entries first, then by participant, update hash and node."""
        return (
            0 if self.status == "accepted" else 1,
            self.participant or "",
            self.update_hash or "",
            self.node_id,
        )


@dataclass(frozen=True)
class Requests:
    """The requests one phase of a round (training or evaluation) sent.

    Attributes:
        asked: the nodes the phase sent a request to.
        silent: the nodes among them that sent no reply within the round timeout.
        skipped: why the phase sent no request at all (too few nodes connected), else ``None``.
    """

    asked: tuple[int, ...] = ()
    silent: tuple[int, ...] = ()
    skipped: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"asked": sorted(self.asked), "silent": sorted(self.silent), "skipped": self.skipped}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Requests":
        return cls(asked=tuple(data["asked"]), silent=tuple(data["silent"]), skipped=data["skipped"])


@dataclass(frozen=True)
class RejectedEvaluation:
    """An evaluation reply that was not aggregated, and why.

    Attributes:
        node_id: the Flower node that sent the reply.
        participant: the address the reply names, if it names a well-formed one.
        reason: machine-readable rejection code (those of training replies).
        detail: what exactly was wrong, for people.
    """

    node_id: int
    reason: str
    detail: str
    participant: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"node_id": self.node_id, "participant": self.participant, "reason": self.reason, "detail": self.detail}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "RejectedEvaluation":
        return cls(
            node_id=data["node_id"], participant=data["participant"], reason=data["reason"], detail=data["detail"]
        )

    @property
    def sort_key(self) -> tuple[int, str, str, str]:
        return (self.node_id, self.participant or "", self.reason, self.detail)


@dataclass(frozen=True)
class RoundManifest:
    """Everything about one committed round that the chain only holds the hash of."""

    chain_id: int
    registry: str
    run_id: int
    round: int
    base_model_hash: str
    model_hash: str
    outcome: Outcome
    strategy: dict[str, Any]
    updates: tuple[UpdateEntry, ...]
    updates_root: str
    rewards_root: str
    reproduction: str
    failure: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    scoring: dict[str, Any] = field(default_factory=dict)
    detection: dict[str, Any] | None = None
    training: Requests = Requests()
    evaluation: Requests = Requests()
    rejected_evaluations: tuple[RejectedEvaluation, ...] = ()

    @property
    def accepted(self) -> tuple[UpdateEntry, ...]:
        return tuple(entry for entry in self.updates if entry.status == "accepted")

    @property
    def rejected(self) -> tuple[UpdateEntry, ...]:
        return tuple(entry for entry in self.updates if entry.status == "rejected")

    @property
    def rewards(self) -> dict[str, int]:
        """What each accepted participant is granted: the leaves of the round's ``rewardsRoot``."""
        return {entry.participant: entry.reward for entry in self.accepted if entry.participant}

    def to_json(self) -> dict[str, Any]:
        return {
            "version": MANIFEST_VERSION,
            "chain_id": self.chain_id,
            "registry": self.registry,
            "run_id": self.run_id,
            "round": self.round,
            "base_model_hash": self.base_model_hash,
            "model_hash": self.model_hash,
            "outcome": self.outcome,
            "failure": self.failure,
            "strategy": self.strategy,
            "reproduction": self.reproduction,
            "updates": [entry.to_json() for entry in sorted(self.updates, key=lambda entry: entry.sort_key)],
            "accepted": len(self.accepted),
            "rejected": len(self.rejected),
            "updates_root": self.updates_root,
            "rewards_root": self.rewards_root,
            "metrics": _without_non_finite(self.metrics),
            "scoring": self.scoring,
            "detection": self.detection,
            "training": self.training.to_json(),
            "evaluation": self.evaluation.to_json(),
            "rejected_evaluations": [
                entry.to_json() for entry in sorted(self.rejected_evaluations, key=lambda entry: entry.sort_key)
            ],
        }

    def to_bytes(self) -> bytes:
        """The canonical JSON bytes that are stored and hashed."""
        return canonical_json(self.to_json())

    @property
    def manifest_hash(self) -> bytes:
        return keccak256(self.to_bytes())

    @classmethod
    def from_bytes(cls, data: bytes) -> "RoundManifest":
        """Parse stored manifest bytes.

        Raises:
            ValueError: the bytes are not a manifest of a known version.
        """
        document = parse_json(data, "manifest")
        if not isinstance(document, dict) or document.get("version") != MANIFEST_VERSION:
            raise ValueError(f"not a version {MANIFEST_VERSION} round manifest")
        try:
            return cls(
                chain_id=document["chain_id"],
                registry=document["registry"],
                run_id=document["run_id"],
                round=document["round"],
                base_model_hash=document["base_model_hash"],
                model_hash=document["model_hash"],
                outcome=document["outcome"],
                failure=document.get("failure"),
                strategy=document["strategy"],
                reproduction=document["reproduction"],
                updates=tuple(UpdateEntry.from_json(entry) for entry in document["updates"]),
                updates_root=document["updates_root"],
                rewards_root=document["rewards_root"],
                metrics=document.get("metrics", {}),
                scoring=document.get("scoring", {}),
                detection=document.get("detection"),
                training=Requests.from_json(document["training"]),
                evaluation=Requests.from_json(document["evaluation"]),
                rejected_evaluations=tuple(
                    RejectedEvaluation.from_json(entry) for entry in document["rejected_evaluations"]
                ),
            )
        except (KeyError, TypeError) as error:
            raise ValueError(f"manifest is missing or mistypes a field: {error}") from None


def _finite_or_none(value: float | None) -> float | None:
    return value if value is not None and value == value and abs(value) != float("inf") else None


def _without_non_finite(value: Any) -> Any:
    """``value`` with NaN and infinities replaced by None, at any depth (JSON has neither)."""
    if isinstance(value, float):
        return _finite_or_none(value)
    if isinstance(value, dict):
        return {key: _without_non_finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_without_non_finite(item) for item in value]
    return value
