"""Everything a federation run is configured with, read from Flower's run config."""

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from fedledger.contribution import DetectorSettings
from fedledger.rewards import TOKEN_DECIMALS, RewardRule


@dataclass(frozen=True)
class FederationSettings:
    """How a federation runs: strategy, training, data, chain and store.

    Every field can be set in ``[tool.flwr.app.config]`` (or with ``flwr run -c``) under its
    name with dashes, e.g. ``num-server-rounds`` or ``rpc-url``.
    """

    # Federation
    num_server_rounds: int = 10
    strategy: str = "FedAvg"
    fraction_train: float = 1.0
    fraction_evaluate: float = 1.0
    min_nodes: int = 2
    min_accepted: int = 2
    num_malicious_nodes: int = 0
    num_nodes_to_select: int = 2
    trim_beta: float = 0.2
    proximal_mu: float = 0.01
    server_learning_rate: float = 0.1
    server_momentum: float = 0.9
    round_timeout: float = 600.0
    connect_timeout: float = 120.0

    # Training, sent to clients with every request
    local_epochs: int = 1
    batch_size: int = 32
    learning_rate: float = 0.05
    momentum: float = 0.9
    hidden_units: int = 16
    model_seed: int = 0
    test_fraction: float = 0.2
    split_seed: int = 0

    # Simulation: where simulated sites find their data, and their keys
    data_dir: str = ""
    simulated_participants: int = 0
    key_seed: int = 0

    # Poisoning defence
    detector: bool = True
    anomaly_threshold: float = 5.0
    anomaly_min_updates: int = 5

    # Ledger
    ledger: bool = True
    rpc_url: str = ""
    registry: str = ""
    store: str = ".fedledger/store"
    output_dir: str = ".fedledger/run"
    reward_rule: str = "score"
    reward_per_round: int = 100

    @classmethod
    def from_run_config(cls, run_config: Mapping[str, Any]) -> "FederationSettings":
        """Settings from a Flower run config; unknown keys are an error, so typos do not pass silently."""
        known = {field.name.replace("_", "-"): field for field in fields(cls)}
        unknown = sorted(set(run_config) - set(known))
        if unknown:
            raise ValueError(f"unknown run config keys: {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        values = {}
        for key, value in run_config.items():
            field = known[key]
            values[field.name] = _coerce(key, value, type(getattr(cls, field.name)))
        return cls(**values)

    def with_changes(self, **changes: Any) -> "FederationSettings":
        return replace(self, **changes)

    @property
    def rewards(self) -> RewardRule:
        return RewardRule(self.reward_rule, self.reward_per_round * 10**TOKEN_DECIMALS)

    @property
    def detection(self) -> DetectorSettings | None:
        """The anomaly detector's settings, or ``None`` when it is off."""
        return DetectorSettings(self.anomaly_threshold, self.anomaly_min_updates) if self.detector else None

    @property
    def in_process_chain(self) -> bool:
        return not self.rpc_url


def _coerce(key: str, value: Any, kind: type) -> Any:
    if kind is bool:
        if isinstance(value, bool):
            return value
        raise ValueError(f"run config {key!r} must be true or false, got {value!r}")
    if kind is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
        return value
    raise ValueError(f"run config {key!r} must be {kind.__name__}, got {value!r}")
