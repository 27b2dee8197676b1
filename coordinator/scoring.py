"""How the coordinator scores the accepted updates of a round."""

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import numpy as np

from fedledger.contribution import consensus_scores, delta_gram

Arrays = Mapping[str, np.ndarray]


class Scorer(Protocol):
    """Gives each accepted update a contribution score; ``description`` goes into manifests and
    the run configuration, and says what an auditor needs to recompute the scores."""

    description: dict[str, Any]

    def scores(self, base: Arrays, updates: Sequence[Arrays], weights: Sequence[int]) -> list[float]:
        """One score per update, in order."""
        ...


class ConsensusScorer:
    """``fedledger.contribution.consensus_scores``: recomputable from the stored artifacts alone."""

    def __init__(self) -> None:
        self.description: dict[str, Any] = {"method": "consensus"}

    def scores(self, base: Arrays, updates: Sequence[Arrays], weights: Sequence[int]) -> list[float]:
        return consensus_scores(delta_gram(base, updates))
