"""The reference aggregation (fedledger.aggregation) reproduces docs/aggregation-vectors.json, and
the vectors are what their generator writes."""

import json

import aggregation_vectors
import pytest

VECTORS = json.loads(aggregation_vectors.PATH.read_text())


def test_the_stored_vectors_are_what_their_generator_writes():
    assert aggregation_vectors.build() == VECTORS


def test_the_vectors_cover_every_built_in_rule():
    from fedledger.aggregation import BUILT_IN_RULES

    assert {vector["strategy"]["name"] for vector in VECTORS} == set(BUILT_IN_RULES)


@pytest.mark.parametrize(
    "name", ["FedAdam", "FedYogi", "FedAvgM"], ids=lambda name: f"{name} carries its state across rounds"
)
def test_stateful_vectors_span_several_rounds(name: str):
    assert any(len(vector["rounds"]) > 1 for vector in VECTORS if vector["strategy"]["name"] == name)
