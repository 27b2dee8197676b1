"""The ledger's settings: the run-config keys prefixed ``fedledger.``; every other key is the app's.

All have defaults, so a plain Flower app needs no new config line to be recorded on the embedded
chain. This module imports neither Flower nor torch.
"""

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from fedledger.addresses import checksum_address
from fedledger.contribution import DetectorSettings
from fedledger.errors import FedLedgerError
from fedledger.privacy import MODES, Mode, PrivacyError, PrivacySettings
from fedledger.rewards import RULES, TOKEN_DECIMALS, RewardRule
from fedledger.sealing import SealError, parse_public_key
from fedledger.valuation import ValuationSettings

#: The prefix of the ledger's run-config keys.
PREFIX = "fedledger."


class SettingsError(FedLedgerError, ValueError):
    """A setting no run can use; the message names it (as in the run config) and what it allows."""


@dataclass(frozen=True)
class LedgerSettings:
    """Where and how a run is recorded. Each field is the run-config key ``fedledger.<name>``, with
    dashes for underscores (``fedledger.rpc-url``); ``enabled = false`` runs plain Flower."""

    enabled: bool = True
    rpc_url: str = ""  # "" = an in-process chain, journaled to <output-dir>/chain.jsonl
    registry: str = ""  # "" = deploy a registry (the coordinator's key is then its admin too)
    store: str = ".fedledger/store"
    output_dir: str = ".fedledger/run"
    reward_rule: str = "score"
    reward_per_round: int = 100
    min_accepted: int = 2
    connect_timeout: float = 120.0
    rpc_retry_seconds: float = 120.0
    confirmations: int = 0
    resume_run: int = 0  # a run of `registry` to continue from its last committed round; 0 starts a new run
    detector: bool = True
    anomaly_threshold: float = 5.0
    anomaly_min_updates: int = 5
    value_metric: str = "eval-loss"  # what validators report for each candidate model; lower is better
    valuation_budget: int = 1024  # the most candidate models valued per round
    sybil_distance: float = 0.1  # updates closer than this share of the median update norm form one player
    key_seed: int = 0
    simulated_participants: int = 0  # 0: on a chain it deploys in-process, one per node connected at the start
    dp: str = ""  # "" (no differential privacy), "central" or "local"
    dp_epsilon: float = 0.0  # the run's ε budget; required with dp
    dp_delta: float = 1e-5
    dp_clip: float = 1.0  # the L2 norm every update's delta is clipped to
    dp_noise_multiplier: float = 0.0  # 0: the smallest that keeps the planned rounds within dp-epsilon
    sealing_key: str = ""  # the coordinator's X25519 key file; "" = coordinator-seal.pem in output-dir
    auditor_keys: str = ""  # the auditors' X25519 public keys (0x + 64 hex digits), comma-separated

    def __post_init__(self) -> None:
        """Refuse values no run can use, before anything starts."""
        if self.reward_rule not in RULES:
            raise SettingsError(f"unknown {PREFIX}reward-rule {self.reward_rule!r}: choose one of {', '.join(RULES)}")
        for key, allowed, expected in (
            ("reward-per-round", self.reward_per_round >= 0, "at least 0"),
            ("min-accepted", self.min_accepted >= 1, "at least 1"),
            ("connect-timeout", self.connect_timeout >= 0, "at least 0 (seconds)"),
            ("rpc-retry-seconds", self.rpc_retry_seconds >= 0, "at least 0 (seconds)"),
            ("confirmations", self.confirmations >= 0, "at least 0"),
            ("resume-run", self.resume_run >= 0, "at least 0 (0 starts a new run)"),
            ("anomaly-threshold", self.anomaly_threshold > 0, "above 0"),
            ("anomaly-min-updates", self.anomaly_min_updates >= 2, "at least 2"),
            ("valuation-budget", self.valuation_budget >= 2, "at least 2"),
            ("sybil-distance", 0 <= self.sybil_distance < math.inf, "a finite number at least 0"),
            ("key-seed", self.key_seed >= 0, "at least 0"),
            ("simulated-participants", self.simulated_participants >= 0, "at least 0"),
        ):
            if not allowed:
                value = getattr(self, key.replace("-", "_"))
                raise SettingsError(f"{PREFIX + key!r} must be {expected}, got {value!r}")
        self._check_privacy()
        _ = self.auditor_public_keys  # refuses a malformed key now, not when the run starts
        if not self.value_metric:
            raise SettingsError(f"'{PREFIX}value-metric' must name the metric validators report, got ''")
        if self.registry:
            checksum_address(self.registry, f"'{PREFIX}registry'")
        elif self.resume_run:
            raise SettingsError(
                f"'{PREFIX}resume-run' {self.resume_run} needs '{PREFIX}registry', the registry the run is recorded on"
            )

    def _check_privacy(self) -> None:
        if not self.dp:
            return
        if self.dp not in MODES:
            raise SettingsError(f"'{PREFIX}dp' must be '' (off) or one of {', '.join(MODES)}, got {self.dp!r}")
        if not 0 < self.dp_epsilon < math.inf:
            raise SettingsError(f"'{PREFIX}dp' {self.dp} needs '{PREFIX}dp-epsilon', the run's ε budget, above 0")
        if self.dp_noise_multiplier < 0:
            raise SettingsError(f"'{PREFIX}dp-noise-multiplier' must be at least 0, got {self.dp_noise_multiplier}")
        if self.dp == "central" and self.reward_rule == "score":
            raise SettingsError(
                f"'{PREFIX}dp' central needs '{PREFIX}reward-rule' examples: valuing updates sends the validators "
                "candidate models built from un-noised updates"
            )

    def privacy(self, sampling_rate: float, rounds: int) -> PrivacySettings | None:
        """The run's differential privacy for ``rounds`` planned rounds that each sample
        ``sampling_rate`` of the sites (central DP; local DP accounts a site for every round it
        trains in), or ``None`` without ``dp``.

        Raises:
            SettingsError: the budget cannot be met, or a parameter is out of range.
        """
        if not self.dp:
            return None
        mode: Mode = "central" if self.dp == "central" else "local"
        rate = sampling_rate if mode == "central" else 1.0
        try:
            if self.dp_noise_multiplier:
                settings = PrivacySettings(
                    mode, self.dp_epsilon, self.dp_delta, self.dp_clip, self.dp_noise_multiplier, rate
                )
                if settings.epsilon_after(rounds) > self.dp_epsilon:
                    raise PrivacyError(
                        f"noise multiplier {self.dp_noise_multiplier} spends ε={settings.epsilon_after(rounds):.3f} "
                        f"over {rounds} rounds, above the budget {self.dp_epsilon}"
                    )
                return settings
            return PrivacySettings.calibrated(mode, self.dp_epsilon, self.dp_delta, self.dp_clip, rate, rounds)
        except PrivacyError as error:
            raise SettingsError(f"run config: {error}") from None

    @classmethod
    def from_run_config(cls, run_config: Mapping[str, Any]) -> "LedgerSettings":
        """The settings the ``fedledger.*`` keys of a Flower run config give; other keys are ignored.

        Raises:
            SettingsError: an unknown ``fedledger.*`` key, a value of the wrong type, or one out of its range.
        """
        known = {PREFIX + field.name.replace("_", "-"): field for field in fields(cls)}
        ours = {key: value for key, value in run_config.items() if key.startswith(PREFIX)}
        unknown = sorted(set(ours) - set(known))
        if unknown:
            raise SettingsError(f"unknown run config keys: {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        values = {
            known[key].name: run_config_value(key, value, type(getattr(cls, known[key].name)))
            for key, value in ours.items()
        }
        try:
            return cls(**values)
        except FedLedgerError as error:
            raise SettingsError(f"run config: {error}") from None

    @property
    def auditor_public_keys(self) -> tuple[bytes, ...]:
        """The auditors' public keys that every stored update is sealed for.

        Raises:
            SettingsError: one is not ``0x`` followed by 64 hex digits.
        """
        try:
            return tuple(parse_public_key(key.strip()) for key in self.auditor_keys.split(",") if key.strip())
        except SealError as error:
            raise SettingsError(f"'{PREFIX}auditor-keys': {error}") from None

    @property
    def rewards(self) -> RewardRule:
        return RewardRule(self.reward_rule, self.reward_per_round * 10**TOKEN_DECIMALS)

    @property
    def valuation(self) -> ValuationSettings | None:
        """How updates are valued, or ``None`` when rewards follow example counts and need no valuation."""
        if self.reward_rule != "score":
            return None
        return ValuationSettings(self.value_metric, self.valuation_budget, self.sybil_distance)

    @property
    def detection(self) -> DetectorSettings | None:
        """The anomaly detector's settings, or ``None`` when it is off."""
        if not self.detector:
            return None
        return DetectorSettings(self.anomaly_threshold, self.anomaly_min_updates, self.sybil_distance)

    @property
    def in_process_chain(self) -> bool:
        return not self.rpc_url


def app_config(run_config: Mapping[str, Any]) -> dict[str, Any]:
    """The app's own keys of a run config: every key but the ledger's, sorted."""
    return {key: run_config[key] for key in sorted(run_config) if not key.startswith(PREFIX)}


def run_config_value(key: str, value: Any, kind: type) -> Any:
    """``value`` of run-config ``key`` as ``kind`` (an int is a fine float; a bool is not an int): how
    the ledger reads its own settings, and how an app may read its own with the same refusals.

    Raises:
        SettingsError: ``value`` is not of ``kind``.
    """
    if kind is bool:
        if isinstance(value, bool):
            return value
        raise SettingsError(f"run config {key!r} must be true or false, got {value!r}")
    if kind is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
        return value
    raise SettingsError(f"run config {key!r} must be {kind.__name__}, got {value!r}")
