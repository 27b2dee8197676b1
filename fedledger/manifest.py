"""Round manifests: the canonical record of what the coordinator received and did in one round.

A manifest lists every training reply the coordinator received — accepted or rejected, and why —
with the participant, the update hash, the example count and the signature; which nodes each
phase (training, evaluation) asked and which of them never answered; every rejected evaluation
reply and why; the strategy and its parameters; the aggregate hash; which accepted updates the
strategy aggregated; the round's valuation (the validators' signed losses and the values they
give, ``fedledger.valuation``); scores and rewards; metrics. It is
stored as canonical JSON in the artifact store, and ``manifestHash = keccak256(manifest bytes)``
is committed on-chain.
"""

import re
from dataclasses import dataclass, field
from typing import Any, Literal

from eth_utils import is_checksum_address

from fedledger.canonical import canonical_json, parse_json
from fedledger.contribution import AnomalyStatistics
from fedledger.hashing import keccak256
from fedledger.privacy import RoundPrivacy
from fedledger.valuation import RoundValuation

MANIFEST_VERSION = 5

Status = Literal["accepted", "rejected"]
Outcome = Literal["aggregated", "failed"]


@dataclass(frozen=True)
class SignedFields:
    """What a participant says it signed: the EIP-712 message minus the update hash and example
    count (listed beside them); ``clip_norm`` and ``noise_multiplier`` (millionths) are the local-DP
    parameters it applied, 0 without."""

    run_id: int
    round: int
    base_model_hash: str
    clip_norm: int = 0
    noise_multiplier: int = 0


@dataclass(frozen=True)
class UpdateEntry:
    """One reply to a training request, as received and judged.

    Attributes:
        node_id: the Flower node that sent the reply.
        status: ``accepted`` into the aggregate, or ``rejected``.
        participant: the Ethereum address the reply claims (``None`` if it names none).
        update_hash: hash of the canonical encoding of the returned arrays (``None`` if none).
        sealed_hash: hash of the sealed artifact the encoding is stored as (``fedledger.sealing``);
            ``None`` when the run stores updates in clear, or the reply carried no readable arrays.
        num_examples: the example count the reply reports.
        signature: the EIP-712 signature, hex.
        signed: the run, round and base model the participant says it signed for.
        reason: machine-readable rejection code (``None`` when accepted).
        detail: what exactly was wrong, for people.
        reward: token base units granted for this round.
        metrics: the reply's metrics, each finite single number but the example count (the app's
            own names, such as a training loss).
        score: the contribution score of an accepted update (see ``fedledger.valuation``).
        anomaly: the anomaly detector's statistics, for every update it examined.
        selected: for an accepted update, whether the strategy built the aggregate from it
            (Krum, MultiKrum and Bulyan leave some out; those earn nothing); ``None`` when rejected.
    """

    node_id: int
    status: Status
    participant: str | None = None
    update_hash: str | None = None
    sealed_hash: str | None = None
    num_examples: int | None = None
    signature: str | None = None
    signed: SignedFields | None = None
    reason: str | None = None
    detail: str | None = None
    reward: int = 0
    metrics: dict[str, float] = field(default_factory=dict)
    score: float | None = None
    anomaly: AnomalyStatistics | None = None
    selected: bool | None = None

    def to_json(self) -> dict[str, Any]:
        data = {
            "node_id": self.node_id,
            "status": self.status,
            "participant": self.participant,
            "update_hash": self.update_hash,
            "sealed_hash": self.sealed_hash,
            "num_examples": self.num_examples,
            "signature": self.signature,
            "signed": None if self.signed is None else vars(self.signed),
            "reason": self.reason,
            "detail": self.detail,
            "reward": str(self.reward),
            "metrics": {key: value for key, value in self.metrics.items() if _finite_or_none(value) is not None},
            "score": self.score,
            "anomaly": None if self.anomaly is None else self.anomaly.to_json(),
            "selected": self.selected,
        }
        return data

    @classmethod
    def from_json(cls, data: object) -> "UpdateEntry":
        """Raises:
        ValueError: a field is missing or of the wrong type or form.
        """
        fields = _Fields(data, "an update entry")
        signed = fields.optional("signed", dict)
        anomaly = fields.optional("anomaly", dict)
        return cls(
            node_id=fields.integer("node_id"),
            status=fields.choice("status", ("accepted", "rejected")),
            participant=fields.optional_address("participant"),
            update_hash=fields.optional_hash("update_hash"),
            sealed_hash=fields.optional_hash("sealed_hash"),
            num_examples=fields.optional("num_examples", int),
            signature=fields.optional_hex("signature"),
            signed=None if signed is None else _signed_fields(signed),
            reason=fields.optional("reason", str),
            detail=fields.optional("detail", str),
            reward=fields.decimal("reward"),
            metrics=fields.numbers("metrics"),
            score=fields.optional_number("score"),
            anomaly=None if anomaly is None else _anomaly(anomaly),
            selected=fields.optional("selected", bool),
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
    def from_json(cls, data: object) -> "Requests":
        """Raises:
        ValueError: a field is missing or of the wrong type.
        """
        fields = _Fields(data, "a phase's requests")
        return cls(
            asked=fields.integers("asked"), silent=fields.integers("silent"), skipped=fields.optional("skipped", str)
        )


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
    def from_json(cls, data: object) -> "RejectedEvaluation":
        """Raises:
        ValueError: a field is missing or of the wrong type or form.
        """
        fields = _Fields(data, "a rejected evaluation")
        return cls(
            node_id=fields.integer("node_id"),
            participant=fields.optional_address("participant"),
            reason=fields.required("reason", str),
            detail=fields.required("detail", str),
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
    scoring: dict[str, Any] | None = None
    detection: dict[str, Any] | None = None
    training: Requests = Requests()
    evaluation: Requests = Requests()
    rejected_evaluations: tuple[RejectedEvaluation, ...] = ()
    valuation: RoundValuation | None = None
    privacy: RoundPrivacy | None = None

    @property
    def accepted(self) -> tuple[UpdateEntry, ...]:
        return tuple(entry for entry in self.updates if entry.status == "accepted")

    @property
    def rejected(self) -> tuple[UpdateEntry, ...]:
        return tuple(entry for entry in self.updates if entry.status == "rejected")

    @property
    def valued(self) -> tuple[UpdateEntry, ...]:
        """The accepted updates the strategy built the aggregate from: those the valuation scores."""
        return tuple(entry for entry in self.accepted if entry.selected is not False)

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
            "valuation": None if self.valuation is None else self.valuation.to_json(),
            "privacy": None if self.privacy is None else self.privacy.to_json(),
        }

    def to_bytes(self) -> bytes:
        """The canonical JSON bytes that are stored and hashed."""
        return canonical_json(self.to_json())

    @property
    def manifest_hash(self) -> bytes:
        return keccak256(self.to_bytes())

    @classmethod
    def from_bytes(cls, data: bytes) -> "RoundManifest":
        """Parse stored manifest bytes, checking every field's type and form: a manifest is data
        from whoever wrote the store, and what is read from it must be safe to check.

        Raises:
            ValueError: the bytes are not a manifest of a known version, or a field is missing or of
                the wrong type or form; the message names the field.
        """
        document = parse_json(data, "manifest")
        if not isinstance(document, dict) or document.get("version") != MANIFEST_VERSION:
            raise ValueError(f"not a version {MANIFEST_VERSION} round manifest")
        fields = _Fields(document, "the manifest")
        valuation = fields.optional("valuation", dict)
        privacy = fields.optional("privacy", dict)
        return cls(
            chain_id=fields.integer("chain_id"),
            registry=fields.address("registry"),
            run_id=fields.integer("run_id"),
            round=fields.integer("round"),
            base_model_hash=fields.hash("base_model_hash"),
            model_hash=fields.hash("model_hash"),
            outcome=fields.choice("outcome", ("aggregated", "failed")),
            failure=fields.optional("failure", str),
            strategy=fields.required("strategy", dict),
            reproduction=fields.required("reproduction", str),
            updates=tuple(UpdateEntry.from_json(entry) for entry in fields.required("updates", list)),
            updates_root=fields.hash("updates_root"),
            rewards_root=fields.hash("rewards_root"),
            metrics=fields.required("metrics", dict),
            scoring=fields.optional("scoring", dict),
            detection=fields.optional("detection", dict),
            training=Requests.from_json(fields.required("training", dict)),
            evaluation=Requests.from_json(fields.required("evaluation", dict)),
            rejected_evaluations=tuple(
                RejectedEvaluation.from_json(entry) for entry in fields.required("rejected_evaluations", list)
            ),
            valuation=None if valuation is None else RoundValuation.from_json(valuation),
            privacy=None if privacy is None else RoundPrivacy.from_json(privacy),
        )


_KIND_NAMES = {int: "an integer", str: "a string", dict: "a JSON object", list: "a list", bool: "true or false"}
_HASH = re.compile(r"0x[0-9a-f]{64}")
_HEX = re.compile(r"0x(?:[0-9a-f]{2})*")


class _Fields:
    """Typed reads of one JSON object of a manifest; every failure is a ``ValueError`` naming the field."""

    def __init__(self, document: object, what: str) -> None:
        if not isinstance(document, dict):
            raise ValueError(f"{what} must be a JSON object, got {type(document).__name__}")
        self.document = document
        self.what = what

    def _fail(self, key: str, expected: str) -> ValueError:
        return ValueError(f"{self.what}'s {key!r} must be {expected}, got {self.document.get(key)!r}")

    def required(self, key: str, kind: type) -> Any:
        value = self.document.get(key)
        if key not in self.document or not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            raise self._fail(key, _KIND_NAMES[kind])
        return value

    def optional(self, key: str, kind: type) -> Any:
        return None if self.document.get(key) is None else self.required(key, kind)

    def integer(self, key: str) -> int:
        return self.required(key, int)

    def integers(self, key: str) -> tuple[int, ...]:
        values = self.required(key, list)
        if not all(isinstance(value, int) and not isinstance(value, bool) for value in values):
            raise self._fail(key, "a list of integers")
        return tuple(values)

    def choice(self, key: str, allowed: tuple[str, ...]) -> Any:
        value = self.document.get(key)
        if value not in allowed:
            raise self._fail(key, " or ".join(allowed))
        return value

    def decimal(self, key: str) -> int:
        """An amount written as a decimal string (JSON numbers lose precision past 2**53)."""
        value = self.document.get(key)
        if not isinstance(value, str) or not value.isdigit():
            raise self._fail(key, "a decimal string of digits")
        return int(value)

    def optional_number(self, key: str) -> float | None:
        value = self.document.get(key)
        if value is None:
            return None
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise self._fail(key, "a number")
        return value

    def numbers(self, key: str) -> dict[str, float]:
        """A JSON object whose values are all numbers."""
        values = self.required(key, dict)
        if not all(isinstance(value, int | float) and not isinstance(value, bool) for value in values.values()):
            raise self._fail(key, "a JSON object of numbers")
        return values

    def hash(self, key: str) -> str:
        value = self.document.get(key)
        if not isinstance(value, str) or not _HASH.fullmatch(value):
            raise self._fail(key, "a 32-byte hash in lower-case hex with 0x")
        return value

    def optional_hash(self, key: str) -> str | None:
        return None if self.document.get(key) is None else self.hash(key)

    def optional_hex(self, key: str) -> str | None:
        value = self.document.get(key)
        if value is not None and (not isinstance(value, str) or not _HEX.fullmatch(value)):
            raise self._fail(key, "bytes in lower-case hex with 0x")
        return value

    def address(self, key: str) -> str:
        value = self.document.get(key)
        if not isinstance(value, str) or not is_checksum_address(value):
            raise self._fail(key, "an EIP-55 checksummed address")
        return value

    def optional_address(self, key: str) -> str | None:
        return None if self.document.get(key) is None else self.address(key)


def _signed_fields(data: dict[str, Any]) -> SignedFields:
    fields = _Fields(data, "the signed fields")
    return SignedFields(
        fields.integer("run_id"),
        fields.integer("round"),
        fields.hash("base_model_hash"),
        fields.integer("clip_norm"),
        fields.integer("noise_multiplier"),
    )


def _anomaly(data: dict[str, Any]) -> AnomalyStatistics:
    fields = _Fields(data, "the anomaly statistics")
    numbers = [
        fields.optional_number(key) for key in ("norm", "spread", "agreement", "norm_z", "spread_z", "agreement_z")
    ]
    flags = fields.required("flags", list)
    if any(number is None for number in numbers) or not all(isinstance(flag, str) for flag in flags):
        raise ValueError(f"the anomaly statistics must hold six numbers and a list of flag names, got {data!r}")
    response = fields.optional_number("response")
    if response is not None and _finite_or_none(response) is None:
        raise ValueError(f"the anomaly statistics's 'response' must be a finite number or null, got {response!r}")
    return AnomalyStatistics.from_json(data)


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
