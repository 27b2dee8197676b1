"""The pinned valuation vectors of ``docs/valuation-vectors.json``: their inputs, and every figure
the reference implementation derives from them.

``test_valuation.py`` checks that the implementation reproduces the stored file and that this
module still writes it. After a deliberate change to the rule, rewrite it with
``.venv/bin/python tests/protocol/valuation_vectors.py``.
"""

import json
from pathlib import Path
from typing import Any

import numpy as np

from fedledger.aggregation import WeightedUpdate
from fedledger.encoding import model_hash
from fedledger.hashing import to_hex
from fedledger.valuation import (
    ValuationSettings,
    contributions_of,
    group_improvements,
    group_values,
    member_scores,
    prepare_valuation,
)

PATH = Path(__file__).parents[2] / "docs" / "valuation-vectors.json"

#: The base model, flattened as ``b`` then ``w`` (row-major): every figure is a short binary fraction.
BASE = [0.125, 0.5, -1.0, 0.25, 2.0]


def arrays(flat: list[float]) -> dict[str, np.ndarray]:
    values = np.array(flat, dtype=np.float32)
    return {"b": values[:1], "w": values[1:].reshape(2, 2)}


def moved(delta: list[float]) -> list[float]:
    return [base + step for base, step in zip(BASE, delta, strict=True)]


def squared_distance(model: dict[str, np.ndarray], target: list[float]) -> float:
    """A validator's loss on its own rows: the squared distance of the model to its optimum."""
    flat = np.concatenate([model["b"].astype(np.float64), model["w"].astype(np.float64).ravel()])
    return float(np.sum((flat - np.array(target)) ** 2))


def encoded(model: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    return [
        {
            "name": name,
            "dtype": str(model[name].dtype),
            "shape": list(model[name].shape),
            "values": model[name].ravel().tolist(),
        }
        for name in sorted(model)
    ]


def vector(
    description: str,
    settings: ValuationSettings,
    run_id: int,
    round_number: int,
    updates: list[tuple[list[float], int]],
    targets: list[list[float]],
    groups: list[int],
) -> dict[str, Any]:
    """One vector: ``updates`` are (delta from the base, example count); validator ``v`` reports
    the squared distance of each candidate to ``targets[v]`` and votes in ``groups[v]``."""
    base = arrays(BASE)
    weighted = [WeightedUpdate(arrays(moved(delta)), weight) for delta, weight in updates]
    prepared = prepare_valuation(settings, run_id, round_number, base, model_hash(base), weighted)
    record: dict[str, Any] = {
        "description": description,
        "settings": settings.to_json(),
        "run_id": run_id,
        "round": round_number,
        "base": encoded(base),
        "updates": [{"weight": update.weight, "arrays": encoded(update.arrays)} for update in weighted],
        "base_model_hash": to_hex(model_hash(base)),
        "players": [list(player) for player in prepared.players],
        "failure": prepared.failure,
        "coalitions": [list(coalition) for coalition in prepared.coalitions],
        "candidate_hashes": [to_hex(digest) for digest in prepared.candidate_hashes],
    }
    if prepared.failure is not None:
        return {**record, "scores": [0.0] * len(weighted)}
    losses = [[squared_distance(model, target) for model in prepared.candidates()] for target in targets]
    players = len(prepared.players)
    values = group_values(players, group_improvements(losses, groups))
    clip, contributions = contributions_of(players, losses, groups)
    return {
        **record,
        "losses": losses,
        "groups": groups,
        "group_values": [
            {"group": group, "alone": list(values[group].alone), "leave_one_out": list(values[group].leave_one_out)}
            for group in sorted(values)
        ],
        "clip": clip,
        "contributions": contributions,
        "scores": member_scores(list(prepared.players), contributions, len(weighted)),
    }


def build() -> list[dict[str, Any]]:
    """The vectors, in the stored file's order."""
    return [
        vector(
            "five updates: two copies (one player) and a free-rider whose own rows gain from the dilution "
            "its update brings but not from its update alone; a sixth validator, not selected, votes alone",
            ValuationSettings(budget=1024, sybil_distance=0.1),
            3,
            5,
            updates=[
                ([0.0, 1.0, 0.0, 0.0, 0.0], 30),
                ([0.5, 0.0, 0.0, 1.0, 1.0], 12),
                ([0.5, 0.0, 0.0, 1.0, 1.0], 20),
                ([-0.5, 0.0, 1.0, 0.0, -1.0], 7),
                ([0.0, 0.0, 0.0, 0.0, -(2.0**-10)], 25),
            ],
            targets=[
                moved([0.0, 1.5, 0.25, 0.0, 0.0]),
                moved([0.75, 0.0, 0.0, 0.75, 1.5]),
                moved([0.75, 0.0, 0.0, 0.75, 1.5]),
                moved([-0.5, -0.25, 1.0, -0.5, -1.0]),
                moved([0.125, 0.25, 0.125, 0.25, 0.25]),
                moved([0.25, 0.5, 0.25, 0.5, 0.25]),
            ],
            groups=[0, 1, 1, 2, 3, 18],
        ),
        vector(
            "five players, budget 11: twelve candidates needed, not valued",
            ValuationSettings(budget=11, sybil_distance=0.1),
            4,
            2,
            updates=[
                ([1.5, -0.5, 2.0, 0.5, -1.25], 5),
                ([0.875, -1.75, 0.375, -1.625, -2.125], 9),
                ([-1.0, -0.5, 1.5, -2.125, -1.875], 14),
                ([0.5, 1.25, 1.875, 0.75, -2.0], 3),
                ([-0.75, 0.125, 0.625, -0.75, -2.125], 21),
            ],
            targets=[],
            groups=[],
        ),
    ]


def main() -> None:
    PATH.write_text(json.dumps(build(), indent=2) + "\n")


if __name__ == "__main__":
    main()
