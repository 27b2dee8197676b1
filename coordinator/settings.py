"""Everything a federation run is configured with, read from Flower's run config."""

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from fedledger.addresses import checksum_address
from fedledger.contribution import DetectorSettings
from fedledger.errors import FedLedgerError
from fedledger.rewards import RULES, TOKEN_DECIMALS, RewardRule

#: The Flower strategies a federation can run (``flwr.serverapp.strategy`` classes of these names),
#: each with the keyword arguments it is given beyond sampling and the setting each is read from.
#: ``coordinator.strategies`` builds them; this module imports neither Flower nor torch, so the
#: command line can list the names without loading either.
STRATEGY_PARAMETERS: dict[str, dict[str, str]] = {
    "FedAvg": {},
    "FedProx": {"proximal_mu": "proximal_mu"},
    "FedAdam": {"eta": "server_learning_rate", "eta_l": "learning_rate"},
    "FedYogi": {"eta": "server_learning_rate", "eta_l": "learning_rate"},
    "FedAdagrad": {"eta": "server_learning_rate", "eta_l": "learning_rate"},
    "FedAvgM": {"server_momentum": "server_momentum"},
    "FedMedian": {},
    "FedTrimmedAvg": {"beta": "trim_beta"},
    "Krum": {"num_malicious_nodes": "num_malicious_nodes"},
    "MultiKrum": {"num_malicious_nodes": "num_malicious_nodes", "num_nodes_to_select": "num_nodes_to_select"},
    "Bulyan": {"num_malicious_nodes": "num_malicious_nodes"},
}
STRATEGY_NAMES = tuple(STRATEGY_PARAMETERS)


class SettingsError(FedLedgerError, ValueError):
    """A setting no federation can run with; the message names it (as in the run config) and what it allows."""


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
    rpc_retry_seconds: float = 120.0
    confirmations: int = 0
    resume_run: int = 0  # a run of `registry` to continue from its last committed round; 0 starts a new run

    def __post_init__(self) -> None:
        """Refuse values no run can use, before anything starts."""
        for key, name, names in (("strategy", self.strategy, STRATEGY_NAMES), ("reward-rule", self.reward_rule, RULES)):
            if name not in names:
                raise SettingsError(f"unknown {key} {name!r}: choose one of {', '.join(names)}")
        for key, allowed, expected in (
            ("num-server-rounds", self.num_server_rounds >= 1, "at least 1"),
            ("fraction-train", 0 < self.fraction_train <= 1, "in (0, 1]"),
            ("fraction-evaluate", 0 <= self.fraction_evaluate <= 1, "in [0, 1]"),
            ("min-nodes", self.min_nodes >= 1, "at least 1"),
            ("min-accepted", self.min_accepted >= 1, "at least 1"),
            ("num-malicious-nodes", self.num_malicious_nodes >= 0, "at least 0"),
            ("num-nodes-to-select", self.num_nodes_to_select >= 1, "at least 1"),
            ("trim-beta", 0 <= self.trim_beta < 0.5, "in [0, 0.5)"),
            ("proximal-mu", self.proximal_mu >= 0, "at least 0"),
            ("server-learning-rate", self.server_learning_rate > 0, "above 0"),
            ("server-momentum", 0 <= self.server_momentum < 1, "in [0, 1)"),
            ("round-timeout", self.round_timeout > 0, "above 0 (seconds)"),
            ("connect-timeout", self.connect_timeout >= 0, "at least 0 (seconds)"),
            ("local-epochs", self.local_epochs >= 1, "at least 1"),
            ("batch-size", self.batch_size >= 1, "at least 1"),
            ("learning-rate", self.learning_rate > 0, "above 0"),
            ("momentum", 0 <= self.momentum < 1, "in [0, 1)"),
            ("hidden-units", self.hidden_units >= 1, "at least 1"),
            ("model-seed", self.model_seed >= 0, "at least 0"),
            ("test-fraction", 0 < self.test_fraction < 1, "in (0, 1)"),
            ("split-seed", self.split_seed >= 0, "at least 0"),
            ("simulated-participants", self.simulated_participants >= 0, "at least 0"),
            ("key-seed", self.key_seed >= 0, "at least 0"),
            ("anomaly-threshold", self.anomaly_threshold > 0, "above 0"),
            ("anomaly-min-updates", self.anomaly_min_updates >= 2, "at least 2"),
            ("reward-per-round", self.reward_per_round >= 0, "at least 0"),
            ("rpc-retry-seconds", self.rpc_retry_seconds >= 0, "at least 0 (seconds)"),
            ("confirmations", self.confirmations >= 0, "at least 0"),
            ("resume-run", self.resume_run >= 0, "at least 0 (0 starts a new run)"),
        ):
            if not allowed:
                value = getattr(self, key.replace("-", "_"))
                raise SettingsError(f"{key!r} must be {expected}, got {value!r}")
        if self.registry:
            checksum_address(self.registry, "'registry'")
        elif self.resume_run:
            raise SettingsError(f"'resume-run' {self.resume_run} needs 'registry', the registry the run is recorded on")

    @classmethod
    def from_run_config(cls, run_config: Mapping[str, Any]) -> "FederationSettings":
        """Settings from a Flower run config; unknown keys are an error, so typos do not pass silently.

        Raises:
            SettingsError: an unknown key, a value of the wrong type, or one out of its range.
        """
        known = {field.name.replace("_", "-"): field for field in fields(cls)}
        unknown = sorted(set(run_config) - set(known))
        if unknown:
            raise SettingsError(f"unknown run config keys: {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        values = {}
        for key, value in run_config.items():
            field = known[key]
            values[field.name] = _coerce(key, value, type(getattr(cls, field.name)))
        try:
            return cls(**values)
        except FedLedgerError as error:
            raise SettingsError(f"run config: {error}") from None

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
        raise SettingsError(f"run config {key!r} must be true or false, got {value!r}")
    if kind is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
        return value
    raise SettingsError(f"run config {key!r} must be {kind.__name__}, got {value!r}")
