"""The canonical byte encoding of a model (a set of named arrays) and its hash.

``docs/model-encoding.md`` is the specification; this module implements it. The same encoding
hashes client updates and global models: ``model_hash(arrays) == keccak256(encode_model(arrays))``.
"""

import struct
from collections.abc import Iterator, Mapping
from itertools import pairwise
from math import prod

import numpy as np

from fedledger.errors import FedLedgerError
from fedledger.hashing import keccak256_chunks

MAGIC = b"FLMODEL1"
MAX_NDIM = 64

#: Canonical dtype names and the little-endian numpy dtypes they stand for.
DTYPES: dict[str, np.dtype] = {
    "bool": np.dtype("?"),
    "int8": np.dtype("<i1"),
    "int16": np.dtype("<i2"),
    "int32": np.dtype("<i4"),
    "int64": np.dtype("<i8"),
    "uint8": np.dtype("<u1"),
    "uint16": np.dtype("<u2"),
    "uint32": np.dtype("<u4"),
    "uint64": np.dtype("<u8"),
    "float16": np.dtype("<f2"),
    "float32": np.dtype("<f4"),
    "float64": np.dtype("<f8"),
}
_NAME_OF = {(dtype.kind, dtype.itemsize): name for name, dtype in DTYPES.items()}

Arrays = Mapping[str, np.ndarray]


class EncodingError(FedLedgerError, ValueError):
    """Arrays that cannot be encoded, or bytes that are not a canonical encoding."""


def dtype_name(dtype: np.dtype) -> str:
    """The canonical name of ``dtype`` (byte order aside).

    Raises:
        EncodingError: the dtype is not one the encoding supports.
    """
    name = _NAME_OF.get((dtype.kind, dtype.itemsize))
    if name is None:
        raise EncodingError(f"dtype {dtype} is not supported; supported: {', '.join(DTYPES)}")
    return name


def iter_encoding(arrays: Arrays) -> Iterator[bytes | memoryview]:
    """Yield the canonical encoding of ``arrays`` in pieces, without copying array data.

    Raises:
        EncodingError: a name is empty, not a string, or repeated once encoded; a dtype is
            unsupported; an array has more than ``MAX_NDIM`` dimensions.
    """
    entries = []
    for name, array in arrays.items():
        if not isinstance(name, str) or not name:
            raise EncodingError(f"array names must be non-empty strings, got {name!r}")
        entries.append((name.encode("utf-8"), name, np.asarray(array)))
    entries.sort(key=lambda entry: entry[0])
    for (encoded, name, _), (next_encoded, _, _) in pairwise(entries):
        if encoded == next_encoded:
            raise EncodingError(f"array name {name!r} appears twice")

    yield MAGIC
    yield struct.pack("<I", len(entries))
    for encoded_name, name, array in entries:
        try:
            dtype = dtype_name(array.dtype)
        except EncodingError as error:
            raise EncodingError(f"array {name!r}: {error}") from None
        if array.ndim > MAX_NDIM:
            raise EncodingError(f"array {name!r} has {array.ndim} dimensions; at most {MAX_NDIM}")
        yield struct.pack("<I", len(encoded_name))
        yield encoded_name
        yield struct.pack("<B", len(dtype))
        yield dtype.encode("ascii")
        yield struct.pack(f"<B{array.ndim}Q", array.ndim, *array.shape)
        canonical = np.ascontiguousarray(array, dtype=DTYPES[dtype])
        yield canonical.reshape(-1).view(np.uint8).data


def encode_model(arrays: Arrays) -> bytes:
    """The canonical encoding of ``arrays``, as one byte string."""
    return b"".join(iter_encoding(arrays))


def model_hash(arrays: Arrays) -> bytes:
    """``keccak256(encode_model(arrays))``, computed without building the encoding in memory."""
    return keccak256_chunks(iter_encoding(arrays))


def decode_model(data: bytes | memoryview) -> dict[str, np.ndarray]:
    """Parse a canonical encoding back into named arrays, in encoding (name) order.

    The arrays are read-only views of ``data``.

    Raises:
        EncodingError: ``data`` is truncated, has trailing bytes, or is not canonical
            (wrong magic, unknown dtype, names not in strictly increasing order).
    """
    reader = _Reader(memoryview(data))
    if reader.take(len(MAGIC)) != MAGIC:
        raise EncodingError("not a FedLedger model encoding: bad magic")
    (count,) = reader.unpack("<I")
    arrays: dict[str, np.ndarray] = {}
    previous_name = b""
    for index in range(count):
        (name_length,) = reader.unpack("<I")
        encoded_name = bytes(reader.take(name_length))
        if index > 0 and encoded_name <= previous_name:
            raise EncodingError(f"array {index}: names must be unique and in increasing byte order")
        if not encoded_name:
            raise EncodingError(f"array {index}: empty name")
        previous_name = encoded_name
        try:
            name = encoded_name.decode("utf-8")
        except UnicodeDecodeError:
            raise EncodingError(f"array {index}: name is not valid UTF-8") from None
        (dtype_length,) = reader.unpack("<B")
        dtype_text = bytes(reader.take(dtype_length)).decode("ascii", errors="replace")
        if dtype_text not in DTYPES:
            raise EncodingError(f"array {name!r}: unknown dtype {dtype_text!r}")
        (ndim,) = reader.unpack("<B")
        if ndim > MAX_NDIM:
            raise EncodingError(f"array {name!r}: {ndim} dimensions; at most {MAX_NDIM}")
        shape = reader.unpack(f"<{ndim}Q")
        dtype = DTYPES[dtype_text]
        payload = reader.take(prod(shape) * dtype.itemsize)
        arrays[name] = np.frombuffer(payload, dtype=dtype).reshape(shape)
    if reader.remaining:
        raise EncodingError(f"{reader.remaining} trailing bytes after the last array")
    return arrays


class _Reader:
    """Sequential reads from a buffer that fail cleanly when it runs out."""

    def __init__(self, buffer: memoryview) -> None:
        self._buffer = buffer
        self._offset = 0

    @property
    def remaining(self) -> int:
        return len(self._buffer) - self._offset

    def take(self, size: int) -> memoryview:
        if size > self.remaining:
            raise EncodingError(f"truncated: needed {size} bytes at offset {self._offset}, {self.remaining} left")
        chunk = self._buffer[self._offset : self._offset + size]
        self._offset += size
        return chunk

    def unpack(self, layout: str) -> tuple[int, ...]:
        return struct.unpack(layout, self.take(struct.calcsize(layout)))
