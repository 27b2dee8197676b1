"""The canonical model encoding, version 1, written from ``docs/model-encoding.md`` alone.

It shares no code with ``fedledger``: the standard library, NumPy and pycryptodome's Keccak only.
Agreement with the reference on every vector is evidence that the page specifies the encoding.
"""

import struct
import unicodedata
from collections.abc import Mapping

import numpy as np
from Crypto.Hash import keccak

MAGIC = b"FLMODEL1"
UNICODE_VERSION = "14.0.0"
MAX_DIMENSIONS = 64
MAX_SHAPE_BYTES = 2**63 - 1

#: dtype name -> little-endian NumPy dtype, as in the page's table.
DATA_TYPES = {
    name: np.dtype(code)
    for name, code in [
        ("bool", "?"),
        ("int8", "<i1"),
        ("int16", "<i2"),
        ("int32", "<i4"),
        ("int64", "<i8"),
        ("uint8", "<u1"),
        ("uint16", "<u2"),
        ("uint32", "<u4"),
        ("uint64", "<u8"),
        ("float16", "<f2"),
        ("float32", "<f4"),
        ("float64", "<f8"),
    ]
}


class Refused(ValueError):
    """Input the page says must be refused; ``rule`` is the page's identifier for the broken rule."""

    def __init__(self, rule: str, detail: str) -> None:
        super().__init__(f"{rule}: {detail}")
        self.rule = rule


def check_name(name: str) -> None:
    """Rules 1 to 3 of the page's "Names" section, on a string.

    Raises:
        Refused: with the rule ``name-empty``, ``name-utf8``, ``name-unassigned`` or ``name-nfc``.
    """
    if unicodedata.unidata_version != UNICODE_VERSION:
        raise RuntimeError(f"names are judged by Unicode {UNICODE_VERSION}, not {unicodedata.unidata_version}")
    if name == "":
        raise Refused("name-empty", "empty name")
    for character in name:
        category = unicodedata.category(character)
        if category == "Cs":
            raise Refused("name-utf8", f"lone surrogate U+{ord(character):04X}")
        if category == "Cn":
            raise Refused("name-unassigned", f"U+{ord(character):04X} in {name!a}")
    if unicodedata.normalize("NFC", name) != name:
        raise Refused("name-nfc", f"{name!a} is not NFC")


def _type_name(array: np.ndarray) -> str:
    for name, dtype in DATA_TYPES.items():
        if array.dtype.kind == dtype.kind and array.dtype.itemsize == dtype.itemsize:
            return name
    raise Refused("dtype", f"no encoding for {array.dtype}")


def _element_bytes(array: np.ndarray, type_name: str) -> bytes:
    if type_name == "bool":
        truth = np.frombuffer(np.ascontiguousarray(array).tobytes(), dtype=np.uint8) != 0
        return truth.astype(np.uint8).tobytes()
    return np.ascontiguousarray(array, dtype=DATA_TYPES[type_name]).tobytes(order="C")


def encode(arrays: Mapping[str, np.ndarray]) -> bytes:
    """The canonical encoding of ``arrays``: entries sorted by the UTF-8 bytes of their names."""
    for name in arrays:
        check_name(name)
    ordered = sorted((name.encode("utf-8"), np.asarray(array)) for name, array in arrays.items())
    out = bytearray(MAGIC)
    out += struct.pack("<I", len(ordered))
    for encoded_name, array in ordered:
        type_name = _type_name(array)
        out += struct.pack("<I", len(encoded_name)) + encoded_name
        out += struct.pack("<B", len(type_name)) + type_name.encode("ascii")
        out += struct.pack("<B", array.ndim)
        for dim in array.shape:
            out += struct.pack("<Q", dim)
        out += _element_bytes(array, type_name)
    return bytes(out)


def model_hash(arrays: Mapping[str, np.ndarray]) -> str:
    """``keccak256(encode(arrays))`` as ``0x`` and 64 lower-case hex digits."""
    return "0x" + keccak.new(data=encode(arrays), digest_bits=256).hexdigest()


class _Cursor:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.position = 0

    def read(self, size: int) -> bytes:
        if self.position + size > len(self.data):
            raise Refused("truncated", f"{size} bytes wanted at {self.position}, {len(self.data) - self.position} left")
        chunk = self.data[self.position : self.position + size]
        self.position += size
        return chunk

    def integer(self, size: int) -> int:
        return int.from_bytes(self.read(size), "little")


def decode(data: bytes) -> dict[str, np.ndarray]:
    """The model ``data`` encodes, or :class:`Refused` naming the rule of the page it breaks."""
    cursor = _Cursor(bytes(data))
    if cursor.read(8) != MAGIC:
        raise Refused("magic", f"magic {data[:8]!r}")
    count = cursor.integer(4)
    model: dict[str, np.ndarray] = {}
    previous_name: bytes | None = None
    for _ in range(count):
        encoded_name = cursor.read(cursor.integer(4))
        if not encoded_name:
            raise Refused("name-empty", "name_len is 0")
        try:
            name = encoded_name.decode("utf-8", errors="strict")
        except UnicodeDecodeError as error:
            raise Refused("name-utf8", str(error)) from None
        check_name(name)
        if previous_name is not None and not encoded_name > previous_name:
            raise Refused("name-order", f"{name!a} after {previous_name!r}")
        previous_name = encoded_name
        type_name = cursor.read(cursor.integer(1)).decode("latin-1")
        if type_name not in DATA_TYPES:
            raise Refused("dtype", f"unknown dtype {type_name!r}")
        dtype = DATA_TYPES[type_name]
        ndim = cursor.integer(1)
        if ndim > MAX_DIMENSIONS:
            raise Refused("ndim", f"{ndim} dimensions")
        shape = tuple(cursor.integer(8) for _ in range(ndim))
        nonzero_bytes = dtype.itemsize
        for dim in shape:
            nonzero_bytes *= dim or 1
        if nonzero_bytes > MAX_SHAPE_BYTES:
            raise Refused("shape", f"shape {shape}")
        size = dtype.itemsize
        for dim in shape:
            size *= dim
        payload = cursor.read(size)
        if type_name == "bool" and any(byte > 1 for byte in payload):
            raise Refused("bool-byte", f"bool bytes of {name!a}: {payload.hex()}")
        model[name] = np.frombuffer(payload, dtype=dtype).reshape(shape)
    if cursor.position != len(cursor.data):
        raise Refused("trailing-bytes", f"{len(cursor.data) - cursor.position} bytes after the last entry")
    return model
