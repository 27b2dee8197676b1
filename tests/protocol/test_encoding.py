"""The canonical model encoding against its specification (docs/model-encoding.md)."""

import json
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from fedledger.encoding import DTYPES, EncodingError, decode_model, encode_model, model_hash
from fedledger.hashing import keccak256, to_hex

VECTORS = json.loads((Path(__file__).parents[2] / "docs" / "model-encoding-vectors.json").read_text())


def arrays_of(vector: dict) -> dict[str, np.ndarray]:
    return {
        entry["name"]: np.array(entry["values"], dtype=DTYPES[entry["dtype"]]).reshape(entry["shape"])
        for entry in vector["arrays"]
    }


@pytest.mark.parametrize("vector", VECTORS, ids=[vector["description"] for vector in VECTORS])
def test_vectors_encode_hash_and_decode(vector):
    arrays = arrays_of(vector)
    encoding = encode_model(arrays)
    assert encoding.hex() == vector["encoding"]
    assert to_hex(model_hash(arrays)) == vector["hash"]
    assert to_hex(keccak256(encoding)) == vector["hash"]
    decoded = decode_model(bytes.fromhex(vector["encoding"]))
    assert list(decoded) == sorted(arrays, key=lambda name: name.encode())
    for name, array in arrays.items():
        assert decoded[name].dtype == array.dtype
        assert decoded[name].shape == array.shape
        np.testing.assert_array_equal(decoded[name], array)


def test_the_layout_is_the_one_the_spec_describes():
    """Build the bytes by hand from the spec's grammar, independently of the encoder."""
    weight = np.array([[1, 2], [3, 4]], dtype=np.float32)
    bias = np.array([0.5, -1.0], dtype=np.float32)

    def entry(name: str, array: np.ndarray) -> bytes:
        return (
            struct.pack("<I", len(name))
            + name.encode()
            + struct.pack("<B", 7)
            + b"float32"
            + struct.pack("<B", array.ndim)
            + b"".join(struct.pack("<Q", dim) for dim in array.shape)
            + b"".join(struct.pack("<f", value) for value in array.ravel())
        )

    expected = b"FLMODEL1" + struct.pack("<I", 2) + entry("bias", bias) + entry("weight", weight)
    assert encode_model({"weight": weight, "bias": bias}) == expected


def test_byte_order_and_memory_layout_do_not_change_the_hash():
    values = np.arange(12, dtype=np.float64).reshape(3, 4)
    big_endian = values.astype(">f8")
    fortran = np.asfortranarray(values)
    transposed_view = np.ascontiguousarray(values.T).T
    reference = model_hash({"x": values})
    for variant in (big_endian, fortran, transposed_view):
        assert model_hash({"x": variant}) == reference


def test_every_value_bit_counts():
    assert model_hash({"x": np.array([0.0], np.float32)}) != model_hash({"x": np.array([-0.0], np.float32)})
    assert model_hash({"x": np.zeros(2, np.float32)}) != model_hash({"x": np.zeros(2, np.float64)})
    assert model_hash({"x": np.zeros((2, 3), np.float32)}) != model_hash({"x": np.zeros((3, 2), np.float32)})
    assert model_hash({"x": np.zeros(1, np.float32)}) != model_hash({"y": np.zeros(1, np.float32)})


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"": np.zeros(1)}, "non-empty"),
        ({"z": np.zeros(1, np.complex64)}, "array 'z': dtype complex64 is not supported"),
        ({"s": np.array(["text"])}, "array 's'"),
        ({"o": np.array([object()])}, "array 'o'"),
    ],
)
def test_unencodable_models_are_refused_by_name(arrays, message):
    with pytest.raises(EncodingError, match=message):
        encode_model(arrays)


VALID = bytes.fromhex(VECTORS[2]["encoding"])


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"NOTMODEL" + VALID[8:], "bad magic"),
        (VALID[:-1], "truncated"),
        (VALID + b"\x00", "1 trailing bytes"),
        (b"FLMODEL1" + struct.pack("<I", 1), "truncated"),
    ],
)
def test_malformed_encodings_are_refused(data, message):
    with pytest.raises(EncodingError, match=message):
        decode_model(data)


def test_non_canonical_encodings_are_refused():
    def raw_entry(name: bytes, dtype: bytes) -> bytes:
        return (
            struct.pack("<I", len(name)) + name + bytes([len(dtype)]) + dtype + b"\x01" + struct.pack("<Q", 1) + b"\x00"
        )

    out_of_order = b"FLMODEL1" + struct.pack("<I", 2) + raw_entry(b"b", b"uint8") + raw_entry(b"a", b"uint8")
    repeated = b"FLMODEL1" + struct.pack("<I", 2) + raw_entry(b"a", b"uint8") + raw_entry(b"a", b"uint8")
    unknown_dtype = b"FLMODEL1" + struct.pack("<I", 1) + raw_entry(b"a", b"bfloat8")
    for data, message in [
        (out_of_order, "increasing byte order"),
        (repeated, "increasing byte order"),
        (unknown_dtype, "unknown dtype 'bfloat8'"),
    ]:
        with pytest.raises(EncodingError, match=message):
            decode_model(data)


names = st.text(min_size=1, max_size=12)
arrays = st.sampled_from(sorted(DTYPES)).flatmap(
    lambda dtype: hnp.arrays(
        dtype=DTYPES[dtype], shape=hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=5)
    )
)
models = st.dictionaries(names, arrays, max_size=6)


@given(models)
def test_round_trip_preserves_every_array(model):
    decoded = decode_model(encode_model(model))
    assert decoded.keys() == model.keys()
    for name, array in model.items():
        assert decoded[name].dtype == array.dtype
        assert decoded[name].shape == array.shape
        assert decoded[name].tobytes() == array.tobytes()


@given(models)
def test_encoding_is_canonical(model):
    """Re-encoding a decoded model gives the same bytes, and insertion order never matters."""
    encoding = encode_model(model)
    assert encode_model(decode_model(encoding)) == encoding
    assert encode_model(dict(reversed(list(model.items())))) == encoding
    assert model_hash(model) == keccak256(encoding)
