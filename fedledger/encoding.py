"""The canonical byte encoding of a model (a set of named arrays) and its hash.

``docs/model-encoding.md`` is the specification; this module implements it. The same encoding
hashes client updates and global models: ``model_hash(arrays) == keccak256(encode_model(arrays))``.
"""

import struct
import unicodedata
from collections.abc import Iterator, Mapping
from math import prod

import numpy as np

from fedledger.errors import FedLedgerError
from fedledger.hashing import keccak256_chunks

MAGIC = b"FLMODEL1"
MAX_NDIM = 64
#: The largest byte size an array's shape may describe, counting only its non-zero dimensions
#: (NumPy's limit, so a zero-size array with a huge dimension still decodes).
MAX_SHAPE_BYTES = 2**63 - 1
#: The Unicode version whose NFC and assigned code points array names are judged by.
UNICODE_VERSION = "14.0.0"

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


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot name an array, or ``None`` if it can.

    A name is non-empty, encodable as UTF-8 (no lone surrogates), made of code points assigned in
    Unicode ``UNICODE_VERSION``, and in Unicode Normalization Form C: canonically equivalent
    spellings would otherwise give one model several hashes.
    """
    if not name:
        return "is empty"
    if name.isascii():
        return None
    if unicodedata.unidata_version != UNICODE_VERSION:
        return (
            f"cannot be checked: names are judged by Unicode {UNICODE_VERSION}, "
            f"this Python has Unicode {unicodedata.unidata_version}"
        )
    for character in name:
        category = unicodedata.category(character)
        if category == "Cs":
            return f"holds the lone surrogate U+{ord(character):04X}, which UTF-8 cannot encode"
        if category == "Cn":
            return f"holds U+{ord(character):04X}, a code point unassigned in Unicode {UNICODE_VERSION}"
    if not unicodedata.is_normalized("NFC", name):
        normalised = unicodedata.normalize("NFC", name)
        return (
            f"is not in Unicode NFC: its code points are {name!a}, its NFC form is {normalised!a}; "
            "names must be NFC-normalised"
        )
    return None


def iter_encoding(arrays: Arrays) -> Iterator[bytes | memoryview]:
    """Yield the canonical encoding of ``arrays`` in pieces, without copying array data.

    Names are never normalised here: two mappings whose names differ only in Unicode form are
    different inputs, and the one whose names are not NFC is refused.

    Raises:
        EncodingError: a name is not a string or breaks a rule of :func:`name_problem`; a dtype is
            unsupported; an array has more than ``MAX_NDIM`` dimensions.
    """
    entries = []
    for name, array in arrays.items():
        if not isinstance(name, str):
            raise EncodingError(f"array names must be strings, got {name!r}")
        problem = name_problem(name)
        if problem is not None:
            raise EncodingError(f"array name {name!r} {problem}")
        entries.append((name.encode("utf-8"), name, np.asarray(array)))
    entries.sort(key=lambda entry: entry[0])

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
        yield _element_bytes(array, DTYPES[dtype])


def _element_bytes(array: np.ndarray, dtype: np.dtype) -> memoryview:
    """The elements of ``array`` as ``dtype``, in C order; a true bool is written 0x01 whatever
    byte NumPy holds for it (a view of other bytes as bool can hold 0x02..0xff)."""
    canonical = np.ascontiguousarray(array, dtype=dtype).reshape(-1).view(np.uint8)
    if dtype.kind == "b":
        canonical = (canonical != 0).view(np.uint8)
    return canonical.data


def encode_model(arrays: Arrays) -> bytes:
    """The canonical encoding of ``arrays``, as one byte string."""
    return b"".join(iter_encoding(arrays))


def model_hash(arrays: Arrays) -> bytes:
    """``keccak256(encode_model(arrays))``, computed without building the encoding in memory."""
    return keccak256_chunks(iter_encoding(arrays))


def decode_model(data: bytes | memoryview) -> dict[str, np.ndarray]:
    """Parse a canonical encoding back into named arrays, in encoding (name) order.

    Every byte string that is not the canonical encoding of some model is refused, so that
    decoding and re-encoding gives back the same bytes. The arrays are read-only views of ``data``.

    Raises:
        EncodingError: naming the array (by index, and by name once read) and what is wrong:
            an unknown magic, too few bytes, trailing bytes, a name that is empty, not UTF-8,
            holds an unassigned code point, is not NFC or is not after the previous name in
            byte order, an unknown dtype, more than ``MAX_NDIM`` dimensions, a shape larger
            than ``MAX_SHAPE_BYTES``, or a bool byte other than 0x00 and 0x01.
    """
    reader = _Reader(memoryview(data))
    magic = bytes(reader.take(len(MAGIC)))
    if magic != MAGIC:
        raise EncodingError(
            f"unknown magic {magic!r}: this decoder reads {MAGIC.decode()} (model encoding version 1) only"
        )
    (count,) = reader.unpack("<I")
    arrays: dict[str, np.ndarray] = {}
    previous: tuple[bytes, str] | None = None
    for index in range(count):
        (name_length,) = reader.unpack("<I")
        encoded_name = bytes(reader.take(name_length))
        name = _decoded_name(index, encoded_name)
        if previous is not None and encoded_name <= previous[0]:
            raise EncodingError(
                f"array {index} {name!r}: does not come after {previous[1]!r}; names must be unique and "
                "in increasing order of their UTF-8 bytes"
            )
        previous = (encoded_name, name)
        (dtype_length,) = reader.unpack("<B")
        dtype_text = bytes(reader.take(dtype_length)).decode("ascii", errors="replace")
        if dtype_text not in DTYPES:
            raise EncodingError(f"array {index} {name!r}: unknown dtype {dtype_text!r}; known: {', '.join(DTYPES)}")
        dtype = DTYPES[dtype_text]
        (ndim,) = reader.unpack("<B")
        if ndim > MAX_NDIM:
            raise EncodingError(f"array {index} {name!r}: {ndim} dimensions; at most {MAX_NDIM}")
        shape = reader.unpack(f"<{ndim}Q")
        if prod(dim for dim in shape if dim) * dtype.itemsize > MAX_SHAPE_BYTES:
            raise EncodingError(
                f"array {index} {name!r}: shape {shape} describes more than 2**63 - 1 bytes "
                "(counting its non-zero dimensions)"
            )
        offset = reader.offset
        payload = reader.take(prod(shape) * dtype.itemsize)
        if dtype.kind == "b":
            _check_bools(index, name, payload, offset)
        arrays[name] = np.frombuffer(payload, dtype=dtype).reshape(shape)
    if reader.remaining:
        raise EncodingError(f"trailing bytes after the last array: {reader.remaining} at offset {reader.offset}")
    return arrays


def _decoded_name(index: int, encoded_name: bytes) -> str:
    try:
        name = encoded_name.decode("utf-8")
    except UnicodeDecodeError:
        raise EncodingError(f"array {index}: name 0x{encoded_name.hex()} is not valid UTF-8") from None
    problem = name_problem(name)
    if problem is not None:
        raise EncodingError(f"array {index}: name {name!r} {problem}")
    return name


def _check_bools(index: int, name: str, payload: memoryview, offset: int) -> None:
    raw = np.frombuffer(payload, dtype=np.uint8)
    invalid = np.flatnonzero(raw > 1)
    if invalid.size:
        element = int(invalid[0])
        raise EncodingError(
            f"array {index} {name!r}: bool element {element} is byte 0x{raw[element]:02x} at offset "
            f"{offset + element}; a bool is 0x00 (false) or 0x01 (true)"
        )


class _Reader:
    """Sequential reads from a buffer that fail cleanly when it runs out."""

    def __init__(self, buffer: memoryview) -> None:
        self._buffer = buffer
        self._offset = 0

    @property
    def offset(self) -> int:
        return self._offset

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
