"""The run configuration: what decides a run's computation, stored in the artifact store and
committed by hash in ``startRun``. The auditor reads the strategy and the reward rule from it.

Its ``details`` say what ran: the planned rounds, the fewest accepted updates a round needs, the
initial model's hash, and the app — its own run config (every key but the ``fedledger.*`` ones),
the model description it gave (or ``None``) and the hash of the Flower App Bundle that ran (or
``None`` outside one), so an auditor knows which code produced the run.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fedledger.canonical import canonical_json, parse_json
from fedledger.contribution import DetectorSettings
from fedledger.privacy import PrivacySettings
from fedledger.rewards import RewardRule
from fedledger.valuation import ValuationSettings

RUN_CONFIG_VERSION = 3


@dataclass(frozen=True)
class RunConfiguration:
    """The strategy and its parameters, the reward rule, how updates are valued (``scoring`` is
    ``None`` when rewards follow example counts) and screened (``detection`` is ``None`` when the
    anomaly detector is off), the differential privacy (``privacy`` is ``None`` in a run without
    it), how updates are stored (``sealing``: the scheme and the public keys every update is sealed
    for; ``None`` when they are stored in clear), and the rest (rounds, model, training)."""

    strategy: dict[str, Any]
    rewards: RewardRule
    scoring: ValuationSettings | None = None
    detection: DetectorSettings | None = None
    privacy: PrivacySettings | None = None
    sealing: dict[str, Any] | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "version": RUN_CONFIG_VERSION,
            "strategy": self.strategy,
            "rewards": self.rewards.to_json(),
            "scoring": None if self.scoring is None else self.scoring.to_json(),
            "detection": None if self.detection is None else self.detection.to_json(),
            "privacy": None if self.privacy is None else self.privacy.to_json(),
            "sealing": self.sealing,
            "details": self.details,
        }

    @property
    def planned_rounds(self) -> int | None:
        """The number of rounds the run plans (``details.num_server_rounds``); ``None`` if it records none."""
        rounds = self.details.get("num_server_rounds")
        if isinstance(rounds, int) and not isinstance(rounds, bool) and rounds > 0:
            return rounds
        return None

    @property
    def app_bundle_hash(self) -> str | None:
        """The sha256 (hex) of the Flower App Bundle that ran (``details.app.fab_hash``); ``None`` if
        the run records none (it ran outside a bundle, or its configuration predates bundles)."""
        app = self.details.get("app")
        recorded = app.get("fab_hash") if isinstance(app, dict) else None
        return recorded if isinstance(recorded, str) and recorded else None

    def to_bytes(self) -> bytes:
        return canonical_json(self.to_json())

    @classmethod
    def from_bytes(cls, data: bytes) -> "RunConfiguration":
        """Parse stored run configuration bytes.

        Raises:
            ValueError: the bytes are not a run configuration of a known version.
        """
        document = parse_json(data, "run configuration")
        if not isinstance(document, dict) or document.get("version") != RUN_CONFIG_VERSION:
            raise ValueError(f"not a version {RUN_CONFIG_VERSION} run configuration")
        try:
            detection = document.get("detection")
            scoring = document.get("scoring")
            privacy = document.get("privacy")
            return cls(
                strategy=document["strategy"],
                rewards=RewardRule.from_json(document["rewards"]),
                scoring=None if scoring is None else ValuationSettings.from_json(scoring),
                detection=None if detection is None else DetectorSettings.from_json(detection),
                privacy=None if privacy is None else PrivacySettings.from_json(privacy),
                sealing=document.get("sealing"),
                details=document.get("details", {}),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"run configuration is missing or mistypes a field: {error}") from None


def run_details(
    num_server_rounds: int,
    min_accepted: int,
    initial_model_hash: str,
    app_config: Mapping[str, Any],
    model: Mapping[str, Any] | None,
    fab_hash: str,
) -> dict[str, Any]:
    """A run configuration's ``details``: ``fab_hash`` ``""`` (no bundle) is recorded as ``None``."""
    return {
        "num_server_rounds": num_server_rounds,
        "min_accepted": min_accepted,
        "initial_model_hash": initial_model_hash,
        "app": {
            "config": dict(app_config),
            "model": None if model is None else dict(model),
            "fab_hash": fab_hash or None,
        },
    }
