"""The canonical model encoding against its specification (docs/model-encoding.md)."""

import json
import struct
import unicodedata

import model_encoding_vectors
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from fedledger.encoding import DTYPES, EncodingError, decode_model, encode_model, model_hash, name_problem
from fedledger.hashing import keccak256, to_hex

VECTORS = json.loads(model_encoding_vectors.PATH.read_text())
VALID_VECTORS = VECTORS["valid"]
INVALID_VECTORS = VECTORS["invalid"]

#: The hashes of the vectors the file held first: models hashed with them are on chains.
ORIGINAL_HASHES = [
    "0xa957c5ee0aa78843fab89a6f95f3d8669c6fc5b7c4f8c12d1ef271e5f092ac21",
    "0xa18521536c5b480ba225ac81700831bfe5feff702d66369b088eaba3287bb280",
    "0xb0b5280a474df1051ceb5c17783f91b8b8ccc2778c1aa481dc7a4326f3045d4c",
    "0x546c5cb0c444932207ac3950ba601fc3b8fa8e505a3c4246692c75e41cf38783",
    "0xd4ae0268afee1f80dd7c31a2d535aecfc9c1a641133b8ecb812865cd35da3272",
    "0x6d99008dc4358eb041e8ef253a16dba46345aaa8a2d139cfac3a25cdf7434f03",
    "0xea286682d1ab0ff5cf73de1d7ec474f771a9ce28b7414cfe38bf95e6f7db0ef0",
]

#: What the reference decoder's error says for each rule of the vector file.
MESSAGES = {
    "magic": r"unknown magic b'.*': this decoder reads FLMODEL1",
    "truncated": r"truncated: needed \d+ bytes at offset \d+",
    "trailing-bytes": r"trailing bytes after the last array: \d+ at offset \d+",
    "name-empty": r"array 0: name '' is empty",
    "name-utf8": r"array 0: name 0x[0-9a-f]+ is not valid UTF-8",
    "name-unassigned": r"holds U\+[0-9A-F]+, a code point unassigned in Unicode 14\.0\.0",
    "name-nfc": r"is not in Unicode NFC: .* names must be NFC-normalised",
    "name-order": r"array 1 .*: does not come after .*; names must be unique and in increasing order of their UTF-8",
    "dtype": r"array 0 'a': unknown dtype",
    "ndim": r"array 0 'a': 65 dimensions; at most 64",
    "shape": r"array 0 'a': shape \(.*\) describes more than 2\*\*63 - 1 bytes",
    "bool-byte": r"array 0 '\w+': bool element \d+ is byte 0x[0-9a-f]{2} at offset \d+; a bool is 0x00 \(false\)",
}


def arrays_of(vector: dict) -> dict[str, np.ndarray]:
    arrays = {}
    for entry in vector["arrays"]:
        dtype = DTYPES[entry["dtype"]]
        if "data" in entry:
            flat = np.frombuffer(bytes.fromhex(entry["data"]), dtype=dtype)
        else:
            flat = np.array(entry["values"], dtype=dtype)
        arrays[entry["name"]] = flat.reshape(entry["shape"])
    return arrays


def test_the_vector_file_is_what_its_generator_builds():
    assert model_encoding_vectors.build() == VECTORS


def test_the_original_vectors_never_change():
    assert [vector["hash"] for vector in VALID_VECTORS[: len(ORIGINAL_HASHES)]] == ORIGINAL_HASHES


def test_every_rule_has_invalid_vectors_and_every_message_a_rule():
    assert {vector["rule"] for vector in INVALID_VECTORS} == set(MESSAGES)


@pytest.mark.parametrize("vector", VALID_VECTORS, ids=[vector["description"] for vector in VALID_VECTORS])
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
        assert decoded[name].tobytes() == array.tobytes()


@pytest.mark.parametrize("vector", INVALID_VECTORS, ids=[vector["description"] for vector in INVALID_VECTORS])
def test_invalid_vectors_are_refused_for_their_rule(vector):
    with pytest.raises(EncodingError, match=MESSAGES[vector["rule"]]):
        decode_model(bytes.fromhex(vector["encoding"]))


def test_distinct_bit_patterns_have_distinct_hashes():
    hashes = {vector["description"]: vector["hash"] for vector in VALID_VECTORS}
    assert hashes["float32 scalar 0.0"] != hashes["float32 scalar -0.0: hashes differently from 0.0"]
    assert (
        hashes["float32 scalar NaN 0x7fc00000"]
        != hashes["float32 scalar NaN 0x7fc00001: another payload, another hash"]
    )


def test_a_true_bool_is_encoded_0x01_whatever_byte_numpy_holds():
    """A bool array viewed from other bytes holds 0x02..0xff for true; the encoding holds 0x01."""
    odd = np.frombuffer(b"\x02\xff\x00\x01", dtype=np.bool_)
    plain = np.array([True, True, False, True])
    assert encode_model({"mask": odd}) == encode_model({"mask": plain})
    assert model_hash({"mask": odd}) == model_hash({"mask": plain})
    assert encode_model({"mask": odd}).endswith(b"\x01\x01\x00\x01")


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("cafe\u0301", r"its code points are 'cafe\\u0301', its NFC form is 'caf\\xe9'; names must be NFC-normalised"),
        ("\u212b", r"array name '\u212b' is not in Unicode NFC: .* its NFC form is '\\xc5'"),
        ("a\u0378", r"array name 'a\\u0378' holds U\+0378, a code point unassigned in Unicode 14\.0\.0"),
        ("x\ud800", r"holds the lone surrogate U\+D800, which UTF-8 cannot encode"),
    ],
)
def test_names_are_refused_not_normalised(name, message):
    """Two mappings whose names differ only in Unicode form are two inputs; one hash each would
    need a silent normalisation that makes them collide, so the one not in NFC is refused."""
    with pytest.raises(EncodingError, match=message):
        encode_model({name: np.zeros(1, np.float32)})
    with pytest.raises(EncodingError, match=message):
        model_hash({name: np.zeros(1, np.float32)})


def test_canonically_equivalent_names_are_one_name_once_normalised_by_the_caller():
    nfd = "cafe\u0301"
    nfc = unicodedata.normalize("NFC", nfd)
    assert name_problem(nfc) is None
    assert model_hash({nfc: np.zeros(1)}) == model_hash({"caf\u00e9": np.zeros(1)})


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
        ({"": np.zeros(1)}, "array name '' is empty"),
        ({1: np.zeros(1)}, "array names must be strings, got 1"),
        ({"z": np.zeros(1, np.complex64)}, "array 'z': dtype complex64 is not supported"),
        ({"s": np.array(["text"])}, "array 's'"),
        ({"o": np.array([object()])}, "array 'o'"),
    ],
)
def test_unencodable_models_are_refused_by_name(arrays, message):
    with pytest.raises(EncodingError, match=message):
        encode_model(arrays)


def test_a_bool_byte_is_reported_with_its_array_element_and_offset():
    valid = bytes.fromhex(VALID_VECTORS[5]["encoding"])  # half, mask (bool, 3 elements), pixels
    offset = valid.index(b"\x04bool") + 5 + 1 + 8 + 1  # dtype, ndim, one dim, then element 1
    assert valid[offset] == 0x00
    tampered = valid[:offset] + b"\x07" + valid[offset + 1 :]
    with pytest.raises(EncodingError) as raised:
        decode_model(tampered)
    assert str(raised.value) == (
        f"array 1 'mask': bool element 1 is byte 0x07 at offset {offset}; a bool is 0x00 (false) or 0x01 (true)"
    )


names = st.text(min_size=1, max_size=12).filter(lambda name: name_problem(name) is None)
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
