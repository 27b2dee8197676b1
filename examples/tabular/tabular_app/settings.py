"""The tabular app's own settings (strategy, training, data), read from Flower's run config.

The ledger's settings are the ``fedledger.*`` keys, which ``fedledger.coordinator.Ledger`` reads.
"""

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from fedledger.coordinator import SettingsError, run_config_value

#: The run-config prefix of the ledger's settings, which are not the app's.
LEDGER_PREFIX = "fedledger."

#: The Flower strategies a federation can run (``flwr.serverapp.strategy`` classes of these names),
#: each with the keyword arguments it is given beyond sampling and the setting each is read from.
#: ``tabular_app.strategies`` builds them; this module imports neither Flower nor torch, so the
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


@dataclass(frozen=True)
class FederationSettings:
    """How the tabular app trains: strategy, rounds, training, data.

    Every field can be set in ``[tool.flwr.app.config]`` (or with ``flwr run -c``) under its
    name with dashes, e.g. ``num-server-rounds`` or ``learning-rate``.
    """

    # Federation
    num_server_rounds: int = 10
    strategy: str = "FedAvg"
    fraction_train: float = 1.0
    fraction_evaluate: float = 1.0
    min_nodes: int = 2
    num_malicious_nodes: int = 0
    num_nodes_to_select: int = 2
    trim_beta: float = 0.2
    proximal_mu: float = 0.01
    server_learning_rate: float = 0.1
    server_momentum: float = 0.9
    round_timeout: float = 600.0

    # Training, sent to clients with every request
    local_epochs: int = 1
    batch_size: int = 32
    learning_rate: float = 0.05
    momentum: float = 0.9
    hidden_units: int = 16
    model_seed: int = 0
    test_fraction: float = 0.2
    split_seed: int = 0

    # Where the sites' schema is ("": <data-dir>/schema.json) and, in a simulation, their data
    schema_path: str = ""
    data_dir: str = ""

    def __post_init__(self) -> None:
        """Refuse values no run can use, before anything starts."""
        if self.strategy not in STRATEGY_NAMES:
            raise SettingsError(f"unknown strategy {self.strategy!r}: choose one of {', '.join(STRATEGY_NAMES)}")
        for key, allowed, expected in (
            ("num-server-rounds", self.num_server_rounds >= 1, "at least 1"),
            ("fraction-train", 0 < self.fraction_train <= 1, "in (0, 1]"),
            ("fraction-evaluate", 0 <= self.fraction_evaluate <= 1, "in [0, 1]"),
            ("min-nodes", self.min_nodes >= 1, "at least 1"),
            ("num-malicious-nodes", self.num_malicious_nodes >= 0, "at least 0"),
            ("num-nodes-to-select", self.num_nodes_to_select >= 1, "at least 1"),
            ("trim-beta", 0 <= self.trim_beta < 0.5, "in [0, 0.5)"),
            ("proximal-mu", self.proximal_mu >= 0, "at least 0"),
            ("server-learning-rate", self.server_learning_rate > 0, "above 0"),
            ("server-momentum", 0 <= self.server_momentum < 1, "in [0, 1)"),
            ("round-timeout", self.round_timeout > 0, "above 0 (seconds)"),
            ("local-epochs", self.local_epochs >= 1, "at least 1"),
            ("batch-size", self.batch_size >= 1, "at least 1"),
            ("learning-rate", self.learning_rate > 0, "above 0"),
            ("momentum", 0 <= self.momentum < 1, "in [0, 1)"),
            ("hidden-units", self.hidden_units >= 1, "at least 1"),
            ("model-seed", self.model_seed >= 0, "at least 0"),
            ("test-fraction", 0 < self.test_fraction < 1, "in (0, 1)"),
            ("split-seed", self.split_seed >= 0, "at least 0"),
        ):
            if not allowed:
                value = getattr(self, key.replace("-", "_"))
                raise SettingsError(f"{key!r} must be {expected}, got {value!r}")

    @classmethod
    def from_run_config(cls, run_config: Mapping[str, Any]) -> "FederationSettings":
        """Settings from a Flower run config (the ledger's ``fedledger.*`` keys are left to it);
        unknown keys are an error, so typos do not pass silently.

        Raises:
            SettingsError: an unknown key, a value of the wrong type, or one out of its range.
        """
        known = {field.name.replace("_", "-"): field for field in fields(cls)}
        run_config = {key: value for key, value in run_config.items() if not key.startswith(LEDGER_PREFIX)}
        unknown = sorted(set(run_config) - set(known))
        if unknown:
            raise SettingsError(f"unknown run config keys: {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        values = {}
        for key, value in run_config.items():
            field = known[key]
            values[field.name] = run_config_value(key, value, type(getattr(cls, field.name)))
        try:
            return cls(**values)
        except SettingsError as error:
            raise SettingsError(f"run config: {error}") from None

    def with_changes(self, **changes: Any) -> "FederationSettings":
        return replace(self, **changes)

    @property
    def schema(self) -> str:
        """The sites' schema file: ``schema-path``, or ``schema.json`` in ``data-dir``.

        Raises:
            SettingsError: neither is set.
        """
        if not self.schema_path and not self.data_dir:
            raise SettingsError(
                "the app needs the sites' schema: set 'schema-path' to the federation's schema file, or, in a "
                "simulation, 'data-dir' to the directory of the sites' files "
                "(`python -m fedledger.simulations.prepare hospitals` writes one and prints the data-dir to set)"
            )
        return self.schema_path or f"{self.data_dir}/schema.json"
