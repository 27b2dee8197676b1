"""How the coordinator re-derives each aggregate, as an auditor will."""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fedledger.aggregation import Aggregator, UnsupportedStrategy, aggregator_for


@dataclass(frozen=True)
class Reaggregation:
    """How the coordinator re-derives each aggregate: with ``aggregator``, the rule an auditor runs,
    or not at all (``None``), and then ``unsupported`` says why."""

    aggregator: Aggregator | None
    unsupported: str = ""

    @classmethod
    def of(cls, strategy: Mapping[str, Any]) -> "Reaggregation":
        """The re-aggregation of ``strategy``, described as a manifest records it."""
        try:
            return cls(aggregator_for(strategy))
        except UnsupportedStrategy as error:
            return cls(None, str(error))
