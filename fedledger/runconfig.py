"""The run configuration: what decides a run's computation, stored in the artifact store and
committed by hash in ``startRun``. The auditor reads the strategy and the reward rule from it."""

from dataclasses import dataclass, field
from typing import Any

from fedledger.canonical import canonical_json, parse_json
from fedledger.rewards import RewardRule

RUN_CONFIG_VERSION = 1


@dataclass(frozen=True)
class RunConfiguration:
    """The strategy and its parameters, the reward rule, and the rest (rounds, model, training)."""

    strategy: dict[str, Any]
    rewards: RewardRule
    details: dict[str, Any] = field(default_factory=dict)

    def to_bytes(self) -> bytes:
        return canonical_json(
            {
                "version": RUN_CONFIG_VERSION,
                "strategy": self.strategy,
                "rewards": self.rewards.to_json(),
                "details": self.details,
            }
        )

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
            return cls(document["strategy"], RewardRule.from_json(document["rewards"]), document.get("details", {}))
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"run configuration is missing or mistypes a field: {error}") from None
