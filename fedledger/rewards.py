"""Reward rules: how a round's token budget is split among its accepted updates.

Amounts are integers (token base units, 18 decimals) computed with exact fractions, so the
coordinator and an auditor get the same numbers on any machine. What a split leaves over by
rounding down is never paid, so a round never grants more than its budget.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fractions import Fraction

from fedledger.manifest import UpdateEntry

TOKEN_DECIMALS = 18
#: ``score`` splits a round's budget in proportion to the aggregated updates' contribution values
#: (``fedledger.valuation``); ``examples`` in proportion to the example counts they report.
RULES = ("score", "examples")


def format_tokens(amount: int) -> str:
    """``amount`` token base units as tokens, exactly and with thousands separators (``1,234.5``)."""
    whole, fraction = divmod(amount, 10**TOKEN_DECIMALS)
    decimals = f"{fraction:0{TOKEN_DECIMALS}d}".rstrip("0")
    return f"{whole:,}" + (f".{decimals}" if decimals else "")


def split_budget(budget: int, weights: Mapping[str, float | int]) -> dict[str, int]:
    """Split ``budget`` in proportion to ``weights``, rounding each share down.

    Participants with zero weight get nothing; if every weight is zero, nobody is paid.

    Raises:
        ValueError: a weight is negative or not finite.
    """
    exact = {}
    for participant, weight in weights.items():
        fraction = Fraction(weight)  # raises on NaN or infinity
        if fraction < 0:
            raise ValueError(f"weight of {participant} is negative: {weight}")
        exact[participant] = fraction
    total = sum(exact.values(), Fraction(0))
    if total == 0:
        return dict.fromkeys(exact, 0)
    return {participant: int(budget * fraction / total) for participant, fraction in exact.items()}


@dataclass(frozen=True)
class RewardRule:
    """How rewards are computed; part of the run configuration, so part of its hash.

    Attributes:
        rule: one of ``RULES``.
        budget: token base units a round can pay out in total.
    """

    rule: str
    budget: int

    def __post_init__(self) -> None:
        if self.rule not in RULES:
            raise ValueError(f"unknown reward rule {self.rule!r}; known: {', '.join(RULES)}")
        if self.budget < 0:
            raise ValueError(f"reward budget must not be negative, got {self.budget}")

    def amounts(self, valued: Iterable[UpdateEntry]) -> dict[str, int]:
        """The amount granted to each participant of ``valued``, the updates the strategy
        aggregated (a missing score counts as 0)."""
        if self.rule == "examples":
            return split_budget(self.budget, {entry.participant: entry.num_examples or 0 for entry in valued})
        return split_budget(self.budget, {entry.participant: entry.score or 0.0 for entry in valued})

    def to_json(self) -> dict:
        return {"rule": self.rule, "budget": str(self.budget)}

    @classmethod
    def from_json(cls, data: dict) -> "RewardRule":
        return cls(rule=data["rule"], budget=int(data["budget"]))
