"""The test vectors of ``docs/model-encoding-vectors.json``: models with their canonical encoding
and hash, and byte strings every decoder must refuse, each with the rule it breaks.

Valid vectors are encoded by the reference encoder; invalid ones are assembled byte by byte here,
each breaking exactly one rule of ``docs/model-encoding.md``. ``test_encoding.py`` checks that the
stored file is what this module builds. The first seven valid vectors are the original ones and
never change (their hashes are on chains). After adding a vector, rewrite the file with
``.venv/bin/python tests/protocol/model_encoding_vectors.py``.
"""

import json
import struct
from pathlib import Path
from typing import Any

import numpy as np

from fedledger.encoding import DTYPES, MAGIC, encode_model, model_hash
from fedledger.hashing import to_hex

PATH = Path(__file__).parents[2] / "docs" / "model-encoding-vectors.json"


def raw(dtype: str, shape: tuple[int, ...], data: str) -> np.ndarray:
    """An array given by its element bytes (hex, little-endian, C order): bit patterns JSON numbers cannot carry."""
    return np.frombuffer(bytes.fromhex(data), dtype=DTYPES[dtype]).reshape(shape)


def values(dtype: str, shape: tuple[int, ...], flat: list[Any]) -> np.ndarray:
    return np.array(flat, dtype=DTYPES[dtype]).reshape(shape)


#: Arrays given by ``raw`` are written to the file as ``data`` (hex), all others as ``values``.
VALID: list[tuple[str, dict[str, np.ndarray], set[str]]] = [
    ("empty model", {}, set()),
    ("one float32 scalar", {"w": values("float32", (), [1.5])}, set()),
    (
        "two float32 arrays given out of name order",
        {"weight": values("float32", (2, 2), [1.0, 2.0, 3.0, 4.0]), "bias": values("float32", (2,), [0.5, -1.0])},
        set(),
    ),
    (
        "float64 and int64",
        {
            "mean": values("float64", (3,), [0.1, -2.5, 3.0]),
            "num_batches_tracked": values("int64", (), [7]),
            "offsets": values("int64", (3,), [-1, 0, 1 << 40]),
        },
        set(),
    ),
    (
        "empty arrays",
        {"a.empty": values("float32", (0,), []), "b.empty2d": values("int64", (2, 0), [])},
        set(),
    ),
    (
        "bool, uint8 and float16",
        {
            "mask": values("bool", (3,), [True, False, True]),
            "pixels": values("uint8", (2, 2), [0, 255, 16, 1]),
            "half": values("float16", (2,), [1.0, -0.5]),
        },
        set(),
    ),
    (
        "non-ASCII names sort by UTF-8 bytes",
        {"z": values("int32", (1,), [1]), "é": values("int32", (1,), [2]), "Z": values("int32", (1,), [3])},
        set(),
    ),
    (
        "bool scalar and 2-D bool: true is 0x01, false is 0x00",
        {"flag": values("bool", (), [True]), "mask": values("bool", (2, 3), [True, False, False, True, True, False])},
        set(),
    ),
    (
        "integer scalars at the ends of their ranges",
        {
            "i8": values("int8", (), [-128]),
            "i16": values("int16", (), [-32768]),
            "i32": values("int32", (), [2147483647]),
            "i64": values("int64", (), [-(1 << 63)]),
            "u16": values("uint16", (), [65535]),
            "u32": values("uint32", (), [(1 << 32) - 1]),
            "u64": values("uint64", (), [(1 << 64) - 1]),
        },
        set(),
    ),
    ("float32 scalar 0.0", {"x": raw("float32", (), "00000000")}, {"x"}),
    ("float32 scalar -0.0: hashes differently from 0.0", {"x": raw("float32", (), "00000080")}, {"x"}),
    ("float32 scalar NaN 0x7fc00000", {"x": raw("float32", (), "0000c07f")}, {"x"}),
    ("float32 scalar NaN 0x7fc00001: another payload, another hash", {"x": raw("float32", (), "0100c07f")}, {"x"}),
    (
        "float bit patterns kept as they are: infinities, signalling and negative NaNs, subnormals",
        {
            "f16": raw("float16", (4,), "0080007e017e0100"),
            "f32": raw("float32", (6,), "0000807f000080ff0100807f0000c0ff01000000ffff7f7f"),
            "f64": raw("float64", (2,), "0000000000000080010000000000f87f"),
        },
        {"f16", "f32", "f64"},
    ),
    (
        "zero-size arrays of several shapes contribute no data bytes",
        {
            "flags": values("bool", (0,), []),
            "grid": values("float64", (3, 0, 2), []),
            "none": values("uint8", (0, 0), []),
        },
        set(),
    ),
    (
        "a zero-size array whose other dimension is 2**63 - 1",
        {"wide": values("int8", (0, (1 << 63) - 1), [])},
        set(),
    ),
    ("64 dimensions, each of size 1", {"deep": values("float32", (1,) * 64, [2.0])}, set()),
    (
        "NFC names outside ASCII: precomposed letters, a mark with no precomposed form, Hangul, CJK",
        {
            "café": values("uint8", (1,), [1]),
            "q\u0307": values("uint8", (1,), [2]),
            "가": values("uint8", (1,), [3]),
            "Å": values("uint8", (1,), [4]),
            "名前": values("uint8", (1,), [5]),
        },
        set(),
    ),
    (
        "names sort by code point (UTF-8 bytes), not by UTF-16 code units",
        {"\U0001f600": values("uint8", (1,), [1]), "\uff61": values("uint8", (1,), [2])},
        set(),
    ),
    (
        "names sort case-sensitively, a prefix first",
        {
            "layer0": values("uint8", (1,), [1]),
            "layer.bias": values("uint8", (1,), [2]),
            "layer": values("uint8", (1,), [3]),
            "a": values("uint8", (1,), [4]),
            "B": values("uint8", (1,), [5]),
        },
        set(),
    ),
    (
        "names may hold spaces, tabs and U+0000",
        {"a b": values("uint8", (1,), [1]), "a\tb": values("uint8", (1,), [2]), "a\x00b": values("uint8", (1,), [3])},
        set(),
    ),
]


def header(count: int) -> bytes:
    return MAGIC + struct.pack("<I", count)


def entry(name: bytes, dtype: bytes, shape: tuple[int, ...], data: bytes) -> bytes:
    """One entry assembled field by field, whatever it holds."""
    return (
        struct.pack("<I", len(name))
        + name
        + struct.pack("<B", len(dtype))
        + dtype
        + struct.pack(f"<B{len(shape)}Q", len(shape), *shape)
        + data
    )


def byte(name: bytes, value: int = 7) -> bytes:
    """An entry holding one uint8."""
    return entry(name, b"uint8", (1,), bytes([value]))


ONE_FLOAT = entry(b"w", b"float32", (), struct.pack("<f", 1.5))
EMPTY_MODEL = header(0)

#: (rule, description, encoding): each encoding breaks exactly the one rule it is listed under.
INVALID: list[tuple[str, str, bytes]] = [
    ("magic", "version 2 magic FLMODEL2 before a valid version 1 body", b"FLMODEL2" + EMPTY_MODEL[8:]),
    ("magic", "lower-case magic", b"flmodel1" + EMPTY_MODEL[8:]),
    ("magic", "magic FLMODEL0", b"FLMODEL0" + struct.pack("<I", 1) + ONE_FLOAT),
    ("truncated", "no bytes at all", b""),
    ("truncated", "the magic and no count", MAGIC),
    ("truncated", "a count of one and no entry", header(1)),
    ("truncated", "a name length past the end", header(1) + struct.pack("<I", 5) + b"abc"),
    ("truncated", "the data one byte short", header(1) + ONE_FLOAT[:-1]),
    ("truncated", "a count of two and one entry", header(2) + ONE_FLOAT),
    ("trailing-bytes", "one zero byte after the empty model", EMPTY_MODEL + b"\x00"),
    ("trailing-bytes", "a count of one and two entries", header(1) + byte(b"a") + byte(b"b")),
    ("name-empty", "a name of length zero", header(1) + byte(b"")),
    ("name-utf8", "the byte 0xff in a name", header(1) + byte(b"a\xff")),
    ("name-utf8", "an overlong encoding of '/' (0xc0 0xaf)", header(1) + byte(b"\xc0\xaf")),
    ("name-utf8", "an encoded surrogate U+D800 (0xed 0xa0 0x80)", header(1) + byte(b"\xed\xa0\x80")),
    ("name-utf8", "a code point above U+10FFFF (0xf4 0x90 0x80 0x80)", header(1) + byte(b"\xf4\x90\x80\x80")),
    ("name-utf8", "a name cut inside a two-byte sequence", header(1) + byte(b"caf\xc3")),
    ("name-unassigned", "U+0378, unassigned", header(1) + byte("a\u0378".encode())),
    ("name-unassigned", "the noncharacter U+FFFF", header(1) + byte("\uffff".encode())),
    ("name-nfc", "'café' in NFD: e followed by U+0301", header(1) + byte("cafe\u0301".encode())),
    ("name-nfc", "ANGSTROM SIGN U+212B, whose NFC is U+00C5", header(1) + byte("\u212b".encode())),
    (
        "name-nfc",
        "Hangul as conjoining jamo U+1100 U+1161, whose NFC is U+AC00",
        header(1) + byte("\u1100\u1161".encode()),
    ),
    (
        "name-nfc",
        "combining marks out of canonical order (U+0301 before U+0316)",
        header(1) + byte("x\u0301\u0316".encode()),
    ),
    ("name-order", "the name 'a' twice", header(2) + byte(b"a") + byte(b"a")),
    ("name-order", "'b' before 'a'", header(2) + byte(b"b") + byte(b"a")),
    ("name-order", "'a' before 'B' (case-insensitive order)", header(2) + byte(b"a") + byte(b"B")),
    (
        "name-order",
        "U+1F600 before U+FF61 (UTF-16 code unit order)",
        header(2) + byte("\U0001f600".encode()) + byte("\uff61".encode()),
    ),
    ("dtype", "the unknown dtype 'bfloat16'", header(1) + entry(b"a", b"bfloat16", (1,), b"\x00\x00")),
    ("dtype", "the dtype 'Float32' (names are case-sensitive)", header(1) + entry(b"a", b"Float32", (), b"\x00" * 4)),
    ("dtype", "an empty dtype", header(1) + entry(b"a", b"", (), b"")),
    ("dtype", "the numpy spelling '<f4'", header(1) + entry(b"a", b"<f4", (), b"\x00" * 4)),
    ("ndim", "65 dimensions of size 1", header(1) + entry(b"a", b"uint8", (1,) * 65, b"\x00")),
    ("shape", "a zero-size int8 array with a dimension of 2**63", header(1) + entry(b"a", b"int8", (0, 1 << 63), b"")),
    (
        "shape",
        "a zero-size float64 array with a dimension of 2**61: 2**64 bytes without the zero",
        header(1) + entry(b"a", b"float64", (1 << 61, 0), b""),
    ),
    ("bool-byte", "a bool byte 0x02", header(1) + entry(b"mask", b"bool", (1,), b"\x02")),
    (
        "bool-byte",
        "a bool byte 0xff in the third element",
        header(1) + entry(b"mask", b"bool", (2, 2), b"\x01\x00\xff\x01"),
    ),
    ("bool-byte", "a bool scalar 0x80", header(1) + entry(b"flag", b"bool", (), b"\x80")),
]

#: Why each rule exists, as the file says it.
REASONS = {
    "magic": "the magic is not FLMODEL1: a version 1 decoder refuses every other version",
    "truncated": "the bytes end before the structure they announce",
    "trailing-bytes": "bytes follow the last array the count announces",
    "name-empty": "a name is empty",
    "name-utf8": "a name is not valid UTF-8",
    "name-unassigned": "a name holds a code point unassigned in Unicode 14.0.0",
    "name-nfc": "a name is not in Unicode Normalization Form C",
    "name-order": "names are not unique and strictly increasing in UTF-8 byte order",
    "dtype": "the dtype is not one of the twelve names of the table",
    "ndim": "more than 64 dimensions",
    "shape": "the itemsize times the product of the non-zero dimensions exceeds 2**63 - 1",
    "bool-byte": "a bool element is a byte other than 0x00 and 0x01",
}


def described(name: str, array: np.ndarray, as_data: bool) -> dict[str, Any]:
    record: dict[str, Any] = {"name": name, "dtype": str(array.dtype), "shape": list(array.shape)}
    if as_data:
        record["data"] = array.tobytes().hex()
    else:
        record["values"] = array.ravel().tolist()
    return record


def build() -> dict[str, Any]:
    """The vector file's content."""
    return {
        "magic": MAGIC.decode(),
        "valid": [
            {
                "description": description,
                "arrays": [described(name, array, name in as_data) for name, array in arrays.items()],
                "encoding": encode_model(arrays).hex(),
                "hash": to_hex(model_hash(arrays)),
            }
            for description, arrays, as_data in VALID
        ],
        "invalid": [
            {"description": description, "rule": rule, "reason": REASONS[rule], "encoding": encoding.hex()}
            for rule, description, encoding in INVALID
        ],
    }


def write() -> None:
    PATH.write_text(json.dumps(build(), indent=2) + "\n")


if __name__ == "__main__":
    write()
