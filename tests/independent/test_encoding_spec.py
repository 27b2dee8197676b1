"""The encoding written from docs/model-encoding.md alone reproduces every vector of
docs/model-encoding-vectors.json and refuses every invalid one for the rule it breaks."""

import json
from pathlib import Path

import numpy as np
import pytest

from independent.encoding import DATA_TYPES, Refused, decode, encode, model_hash

VECTORS = json.loads((Path(__file__).parents[2] / "docs" / "model-encoding-vectors.json").read_text())
VALID = VECTORS["valid"]
INVALID = VECTORS["invalid"]


def arrays_of(vector: dict) -> dict[str, np.ndarray]:
    """The vector's arrays as the page describes them: ``values`` flattened in C order, or ``data``
    holding the little-endian element bytes."""
    arrays = {}
    for entry in vector["arrays"]:
        dtype = DATA_TYPES[entry["dtype"]]
        if "data" in entry:
            flat = np.frombuffer(bytes.fromhex(entry["data"]), dtype=dtype)
        else:
            flat = np.array(entry["values"], dtype=dtype)
        arrays[entry["name"]] = flat.reshape(entry["shape"])
    return arrays


def test_the_file_is_version_1_with_both_sections():
    assert VECTORS["magic"] == "FLMODEL1"
    assert len(VALID) >= 20
    assert {vector["rule"] for vector in INVALID} == {
        "magic",
        "truncated",
        "trailing-bytes",
        "name-empty",
        "name-utf8",
        "name-unassigned",
        "name-nfc",
        "name-order",
        "dtype",
        "ndim",
        "shape",
        "bool-byte",
    }


@pytest.mark.parametrize("vector", VALID, ids=[vector["description"] for vector in VALID])
def test_every_valid_vector_encodes_hashes_and_decodes(vector):
    arrays = arrays_of(vector)
    assert encode(arrays).hex() == vector["encoding"]
    assert model_hash(arrays) == vector["hash"]
    decoded = decode(bytes.fromhex(vector["encoding"]))
    assert list(decoded) == sorted(arrays, key=lambda name: name.encode("utf-8"))
    for name, array in arrays.items():
        assert decoded[name].dtype == array.dtype
        assert decoded[name].shape == array.shape
        assert decoded[name].tobytes() == array.tobytes()
    assert encode(decoded).hex() == vector["encoding"]


@pytest.mark.parametrize("vector", INVALID, ids=[vector["description"] for vector in INVALID])
def test_every_invalid_vector_is_refused_for_its_rule(vector):
    with pytest.raises(Refused) as refused:
        decode(bytes.fromhex(vector["encoding"]))
    assert refused.value.rule == vector["rule"]


def test_the_worked_example():
    assert encode({"w": np.array(1.5, dtype=np.float32)}).hex() == (
        "464c4d4f44454c3101000000010000007707666c6f61743332000000c03f"
    )
    assert model_hash({}) == "0xa957c5ee0aa78843fab89a6f95f3d8669c6fc5b7c4f8c12d1ef271e5f092ac21"


@pytest.mark.parametrize(
    ("name", "rule"), [("cafe\u0301", "name-nfc"), ("\u0378", "name-unassigned"), ("", "name-empty")]
)
def test_the_encoder_refuses_names_the_page_forbids(name, rule):
    with pytest.raises(Refused) as refused:
        encode({name: np.zeros(1, np.float32)})
    assert refused.value.rule == rule


def test_a_true_bool_held_as_another_byte_encodes_as_0x01():
    odd = np.frombuffer(b"\x02\xff\x00", dtype=np.bool_)
    assert encode({"m": odd}) == encode({"m": np.array([True, True, False])})
