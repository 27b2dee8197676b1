"""Differential privacy that an auditor can check: clipping, Gaussian noise, privacy accounting.

``docs/privacy.md`` is the specification; the coordinator, the client mod and the auditor all run
this module. In short:

- **Clipping.** An update's delta from its base model, over its floating-point arrays, is scaled
  down to L2 norm at most ``clip_norm``. The norm is computed exactly (each square rounded once, the
  squares summed with ``math.fsum``) so that every machine clips every update by the same factor.
- **Noise.** Central DP adds to the mean of ``n`` clipped updates Gaussian noise of standard
  deviation ``noise_multiplier * clip_norm / n`` (the sensitivity of a mean of ``n`` updates of norm
  at most ``clip_norm`` to one site's update); local DP adds to one site's clipped delta noise of
  standard deviation ``noise_multiplier * clip_norm``. The noise drawn is recorded, so the auditor
  re-derives the model bit for bit and tests that the noise is the size promised.
- **Accounting.** ε for the run's δ after ``k`` releases, from the noise multiplier and the
  sampling rate, with the Rényi-DP accountant of Google's ``dp-accounting`` (the Poisson-subsampled
  Gaussian mechanism composed ``k`` times; integer orders ``ORDERS``).
"""

import math
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib.metadata import version
from typing import Any, Literal

import numpy as np

from fedledger.errors import FedLedgerError
from fedledger.signing import PRIVACY_PARAMETER_SCALE

Arrays = dict[str, np.ndarray]
Mode = Literal["central", "local"]
MODES: tuple[Mode, ...] = ("central", "local")

#: The Rényi orders the accountant optimises over: integers, so every order converges.
ORDERS: tuple[int, ...] = (*range(2, 129), 256, 512, 1024)
#: What the run configuration records as the accountant.
ACCOUNTANT = "dp-accounting RDP"
#: The false-alarm rate of the noise-size test: the chance that honest noise fails it, per round.
NOISE_TEST_FALSE_ALARM = 1e-6
#: The largest noise multiplier calibration considers.
MAX_NOISE_MULTIPLIER = 1e4
#: On-chain, ε is an integer number of millionths; δ one of units of 1e-18.
EPSILON_SCALE = 10**6
DELTA_SCALE = 10**18


class PrivacyError(FedLedgerError, ValueError):
    """Privacy settings no run can honour; the message says which and why."""


@dataclass(frozen=True)
class PrivacyBudget:
    """A run's (ε, δ) budget as the registry holds it: ε in units of 1 / ``EPSILON_SCALE``, δ in
    units of 1 / ``DELTA_SCALE``; (0, 0) for a run without differential privacy."""

    epsilon: int
    delta: int


@dataclass(frozen=True)
class PrivacySettings:
    """A run's differential privacy (part of the run configuration, recorded in its ``privacy``).

    Attributes:
        mode: ``central`` (the coordinator clips and noises the aggregate) or ``local`` (each site
            clips and noises its own update before signing it).
        epsilon: the run's budget: the most ε it may spend (for local DP, each site's).
        delta: the δ every ε is computed for.
        clip_norm: the L2 norm every update's delta is clipped to.
        noise_multiplier: the noise's standard deviation over its sensitivity.
        sampling_rate: the share of sites asked to train each round (1 for local DP: a site is
            accounted for every round it trains in).
    """

    mode: Mode
    epsilon: float
    delta: float
    clip_norm: float
    noise_multiplier: float
    sampling_rate: float = 1.0

    def __post_init__(self) -> None:
        """Raises:
        PrivacyError: a mode not in ``MODES``, or a parameter out of its range.
        """
        if self.mode not in MODES:
            raise PrivacyError(f"unknown privacy mode {self.mode!r}: choose one of {', '.join(MODES)}")
        for name, allowed, expected in (
            ("epsilon", 0 < self.epsilon < math.inf, "a finite number above 0"),
            ("delta", 0 < self.delta < 1, "between 0 and 1, exclusive"),
            ("clip_norm", 0 < self.clip_norm < math.inf, "a finite number above 0"),
            (
                "noise_multiplier",
                0 < self.noise_multiplier <= MAX_NOISE_MULTIPLIER,
                f"in (0, {MAX_NOISE_MULTIPLIER:g}]",
            ),
            ("sampling_rate", 0 < self.sampling_rate <= 1, "in (0, 1]"),
        ):
            if not allowed:
                raise PrivacyError(f"privacy {name} must be {expected}, got {getattr(self, name)!r}")
        if self.to_budget().epsilon == 0 or self.to_budget().delta == 0:
            raise PrivacyError(f"privacy budget (ε={self.epsilon}, δ={self.delta}) rounds to zero on-chain")

    def epsilon_after(self, releases: int) -> float:
        """The ε spent after ``releases`` noised releases (rounds aggregated, or a site's updates)."""
        return epsilon_spent(self.noise_multiplier, self.sampling_rate, releases, self.delta)

    def noise_stddev(self, aggregated: int = 1) -> float:
        """The noise's standard deviation: on the mean of ``aggregated`` updates (central), or on one
        site's delta (local, ``aggregated`` 1)."""
        return self.noise_multiplier * self.clip_norm / aggregated

    def to_budget(self) -> PrivacyBudget:
        """The budget as ``startRun`` records it (fixed point, rounded down)."""
        return PrivacyBudget(math.floor(self.epsilon * EPSILON_SCALE), math.floor(self.delta * DELTA_SCALE))

    def to_json(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "epsilon": self.epsilon,
            "delta": self.delta,
            "clip_norm": self.clip_norm,
            "noise_multiplier": self.noise_multiplier,
            "sampling_rate": self.sampling_rate,
            "accountant": ACCOUNTANT,
            "accountant_version": version("dp-accounting"),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "PrivacySettings":
        """Raises:
        PrivacyError: a field is missing or out of range, or the accountant is not ``ACCOUNTANT``.
        """
        if data.get("accountant") != ACCOUNTANT:
            raise PrivacyError(f"privacy accountant {data.get('accountant')!r} is not {ACCOUNTANT!r}")
        try:
            return cls(
                mode=data["mode"],
                epsilon=float(data["epsilon"]),
                delta=float(data["delta"]),
                clip_norm=float(data["clip_norm"]),
                noise_multiplier=float(data["noise_multiplier"]),
                sampling_rate=float(data["sampling_rate"]),
            )
        except (KeyError, TypeError) as error:
            raise PrivacyError(f"privacy settings are missing or mistype a field: {error}") from None

    @classmethod
    def calibrated(
        cls, mode: Mode, epsilon: float, delta: float, clip_norm: float, sampling_rate: float, releases: int
    ) -> "PrivacySettings":
        """The settings whose noise multiplier is the smallest (to four significant digits) that keeps
        ε within ``epsilon`` (as committed on-chain, rounded up) after ``releases`` releases.

        Raises:
            PrivacyError: the budget cannot be met with a noise multiplier up to ``MAX_NOISE_MULTIPLIER``.
        """
        budget = math.floor(epsilon * EPSILON_SCALE)

        def fits(multiplier: float) -> bool:
            return to_fixed_epsilon(epsilon_spent(multiplier, sampling_rate, releases, delta)) <= budget

        if not fits(MAX_NOISE_MULTIPLIER):
            raise PrivacyError(
                f"ε={epsilon} at δ={delta} over {releases} rounds needs a noise multiplier "
                f"above {MAX_NOISE_MULTIPLIER:g}"
            )
        low, high = 0.0, MAX_NOISE_MULTIPLIER
        while high - low > 1e-5 * high:
            middle = (low + high) / 2
            low, high = (low, middle) if fits(middle) else (middle, high)
        step = 10.0 ** (math.floor(math.log10(high)) - 3)
        multiplier = float(f"{math.ceil(high / step) * step:.4g}")
        while not fits(multiplier):
            multiplier = float(f"{multiplier + step:.4g}")
        return cls(mode, epsilon, delta, clip_norm, multiplier, sampling_rate)


@lru_cache(maxsize=4096)
def epsilon_spent(noise_multiplier: float, sampling_rate: float, releases: int, delta: float) -> float:
    """ε at ``delta`` after ``releases`` Gaussian releases of noise multiplier ``noise_multiplier``,
    each on a Poisson sample of rate ``sampling_rate`` (no sampling at rate 1)."""
    if releases < 0:
        raise PrivacyError(f"releases must be at least 0, got {releases}")
    if releases == 0:
        return 0.0
    from dp_accounting import dp_event, rdp

    event: Any = dp_event.GaussianDpEvent(noise_multiplier)
    if sampling_rate < 1:
        event = dp_event.PoissonSampledDpEvent(sampling_rate, event)
    accountant = rdp.RdpAccountant(list(ORDERS))
    accountant.compose(dp_event.SelfComposedDpEvent(event, releases))
    return float(accountant.get_epsilon(delta))


def to_fixed_epsilon(epsilon: float) -> int:
    """ε as committed on-chain: micro-units, rounded up, so the commitment never understates it."""
    return math.ceil(epsilon * EPSILON_SCALE)


def floating(arrays: Mapping[str, np.ndarray]) -> list[str]:
    """The names of the floating-point arrays: the ones clipped and noised."""
    return [name for name, array in arrays.items() if np.issubdtype(array.dtype, np.floating)]


def delta_norm(base: Mapping[str, np.ndarray], arrays: Mapping[str, np.ndarray]) -> float:
    """The L2 norm of ``arrays - base`` over the floating-point arrays, computed exactly: the
    difference and its squares in float64, summed with ``math.fsum``."""
    squares = (
        math.fsum(np.square(arrays[name].astype(np.float64) - base[name].astype(np.float64)).ravel().tolist())
        for name in floating(arrays)
    )
    return math.sqrt(math.fsum(squares))


def clip_update(base: Mapping[str, np.ndarray], arrays: Mapping[str, np.ndarray], clip_norm: float) -> Arrays:
    """``arrays`` with their delta from ``base`` scaled to L2 norm at most ``clip_norm``: each
    floating-point array becomes ``base + (arrays - base) * min(1, clip_norm / norm)``, computed in
    float64 and rounded once to the array's dtype; other arrays are kept as they are."""
    norm = delta_norm(base, arrays)
    if norm <= clip_norm:
        return {name: np.asarray(array) for name, array in arrays.items()}
    factor = clip_norm / norm
    clipped = {name: np.asarray(array) for name, array in arrays.items()}
    for name in floating(arrays):
        wide = base[name].astype(np.float64)
        clipped[name] = (wide + (arrays[name].astype(np.float64) - wide) * factor).astype(arrays[name].dtype)
    return clipped


def draw_noise(arrays: Mapping[str, np.ndarray], stddev: float) -> Arrays:
    """Gaussian noise of standard deviation ``stddev`` for each floating-point array of ``arrays``,
    in its dtype and shape, from a generator seeded by the operating system's random source."""
    generator = np.random.default_rng(secrets.randbits(128))
    return {
        name: (generator.standard_normal(arrays[name].shape) * stddev).astype(arrays[name].dtype)
        for name in floating(arrays)
    }


def add_noise(arrays: Mapping[str, np.ndarray], noise: Mapping[str, np.ndarray]) -> Arrays:
    """``arrays`` plus ``noise`` (one addition in each array's dtype); arrays without noise are kept.

    Raises:
        PrivacyError: the noise names an array ``arrays`` lacks, lacks a floating-point one, or
            differs from it in dtype or shape.
    """
    if sorted(noise) != sorted(floating(arrays)):
        raise PrivacyError(f"the noise has arrays {sorted(noise)}, the model's floating arrays are {floating(arrays)}")
    noised = {name: np.asarray(array) for name, array in arrays.items()}
    for name, values in noise.items():
        if values.dtype != arrays[name].dtype or values.shape != arrays[name].shape:
            raise PrivacyError(
                f"the noise of {name!r} is {values.dtype}{list(values.shape)}, "
                f"the array is {arrays[name].dtype}{list(arrays[name].shape)}"
            )
        noised[name] = arrays[name] + values
    return noised


@dataclass(frozen=True)
class NoiseTest:
    """Whether recorded noise is Gaussian of the promised standard deviation: the sum of its squares
    over ``stddev²`` is χ² with ``count`` degrees of freedom; the test fails if it lies in either tail
    of probability ``NOISE_TEST_FALSE_ALARM / 2``."""

    count: int
    stddev: float
    measured: float  # the noise's root mean square

    @classmethod
    def of(cls, noise: Mapping[str, np.ndarray], stddev: float) -> "NoiseTest":
        values = [np.asarray(array, dtype=np.float64).ravel() for array in noise.values()]
        count = sum(value.size for value in values)
        squares = math.fsum(math.fsum(np.square(value).tolist()) for value in values)
        return cls(count, stddev, math.sqrt(squares / count) if count else 0.0)

    @property
    def p_value(self) -> float:
        """The two-sided p-value of the χ² statistic (1 when there is no noise to test and none promised)."""
        from scipy.stats import chi2  # imported here: 0.9 s, and only an audit of central DP needs it

        if self.count == 0:
            return 1.0
        statistic = self.count * (self.measured / self.stddev) ** 2
        return float(min(1.0, 2 * min(chi2.cdf(statistic, self.count), chi2.sf(statistic, self.count))))

    @property
    def passed(self) -> bool:
        return self.count > 0 and self.p_value >= NOISE_TEST_FALSE_ALARM


@dataclass(frozen=True)
class RoundPrivacy:
    """What a round of a private run records about its privacy (the manifest's ``privacy``).

    Attributes:
        releases: the noised releases of the run so far, this round's included (central: rounds
            aggregated; local: the most rounds any one site has trained in).
        epsilon: the run's ε after this round, as the accountant gives it.
        epsilon_spent: ``epsilon`` in the fixed point committed on-chain (rounded up).
        aggregated: central DP: the number of clipped updates averaged (the noise's divisor).
        noise_stddev: central DP: the standard deviation of the noise added to the aggregate.
        noise_hash: central DP: the hash of the noise's canonical encoding (``None`` when nothing was
            aggregated).
        noise_sealed_hash: central DP: the hash of the sealed artifact the noise is stored as.
        participants: local DP: each participant's own ε after this round.
    """

    releases: int
    epsilon: float
    epsilon_spent: int
    aggregated: int | None = None
    noise_stddev: float | None = None
    noise_hash: str | None = None
    noise_sealed_hash: str | None = None
    participants: dict[str, float] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "releases": self.releases,
            "epsilon": self.epsilon,
            "epsilon_spent": self.epsilon_spent,
            "aggregated": self.aggregated,
            "noise_stddev": self.noise_stddev,
            "noise_hash": self.noise_hash,
            "noise_sealed_hash": self.noise_sealed_hash,
            "participants": self.participants,
        }

    @classmethod
    def from_json(cls, data: object) -> "RoundPrivacy":
        """Raises:
        ValueError: a field is missing or of the wrong type; the message names it.
        """
        if not isinstance(data, dict):
            raise ValueError("the manifest's privacy must be a JSON object")

        def field_of(key: str, kinds: tuple[type, ...], optional: bool = False) -> Any:
            value = data.get(key)
            if (value is None and optional) or (isinstance(value, kinds) and not isinstance(value, bool)):
                return value
            raise ValueError(f"the manifest's privacy.{key} must be {' or '.join(k.__name__ for k in kinds)}")

        participants = field_of("participants", (dict,), optional=True)
        if participants is not None and not all(
            isinstance(value, int | float) and not isinstance(value, bool) for value in participants.values()
        ):
            raise ValueError("the manifest's privacy.participants must map addresses to numbers")
        noise_stddev = field_of("noise_stddev", (int, float), optional=True)
        return cls(
            releases=field_of("releases", (int,)),
            epsilon=float(field_of("epsilon", (int, float))),
            epsilon_spent=field_of("epsilon_spent", (int,)),
            aggregated=field_of("aggregated", (int,), optional=True),
            noise_stddev=None if noise_stddev is None else float(noise_stddev),
            noise_hash=field_of("noise_hash", (str,), optional=True),
            noise_sealed_hash=field_of("noise_sealed_hash", (str,), optional=True),
            participants=None if participants is None else {k: float(v) for k, v in participants.items()},
        )


#: Rejection reasons a coordinator decides only after an update's signature verified: an update
#: listed with one of them (or accepted) was released by its participant, and counts against its
#: local-DP budget. A reply rejected before (a forged one among them) charges nobody.
CHARGED_REASONS = frozenset(
    {None, "unregistered", "inactive", "non-finite", "duplicate-participant", "anomalous", "round-failed"}
)


def to_millionths(value: float) -> int:
    """A clip norm or noise multiplier as a signed update carries it (``PRIVACY_PARAMETER_SCALE``)."""
    return round(value * PRIVACY_PARAMETER_SCALE)


def local_parameters(settings: PrivacySettings) -> tuple[int, int]:
    """The (clip norm, noise multiplier) in millionths that every site of a local-DP run applies and signs.

    Raises:
        PrivacyError: a parameter is not a whole number of millionths, so sites could not apply it exactly.
    """
    for name in ("clip_norm", "noise_multiplier"):
        value = getattr(settings, name)
        if to_millionths(value) / PRIVACY_PARAMETER_SCALE != value:
            raise PrivacyError(f"local DP's {name} {value!r} is not a whole number of millionths")
    return to_millionths(settings.clip_norm), to_millionths(settings.noise_multiplier)


def local_epsilons(settings: PrivacySettings, releases: Mapping[str, int]) -> dict[str, float]:
    """Each participant's own ε after the updates it released (local DP: no sampling)."""
    return {participant: settings.epsilon_after(count) for participant, count in sorted(releases.items())}


def privatise(
    base: Mapping[str, np.ndarray], arrays: Mapping[str, np.ndarray], clip_norm: int, noise_multiplier: int
) -> Arrays:
    """A site's update under local DP: its change from ``base`` clipped to ``clip_norm`` and Gaussian
    noise of standard deviation ``noise_multiplier * clip_norm`` added (both in millionths)."""
    clip, multiplier = clip_norm / PRIVACY_PARAMETER_SCALE, noise_multiplier / PRIVACY_PARAMETER_SCALE
    clipped = clip_update(base, arrays, clip)
    return add_noise(clipped, draw_noise(clipped, multiplier * clip))
