"""Keccak-256, the one hash function of the protocol, and the hex form hashes travel in."""

from collections.abc import Iterable

from Crypto.Hash import keccak

HASH_SIZE = 32
ZERO_HASH = bytes(HASH_SIZE)


def keccak256(data: bytes | memoryview) -> bytes:
    """Return the Keccak-256 digest of ``data`` (Ethereum's hash, not SHA3-256)."""
    return keccak.new(data=data, digest_bits=256).digest()


def keccak256_chunks(chunks: Iterable[bytes | memoryview]) -> bytes:
    """Return the Keccak-256 digest of the concatenation of ``chunks`` without joining them."""
    hasher = keccak.new(digest_bits=256)
    for chunk in chunks:
        hasher.update(chunk)
    return hasher.digest()


def to_hex(digest: bytes) -> str:
    """Format a digest as ``0x`` followed by lower-case hex."""
    return "0x" + digest.hex()


def from_hex(text: str, *, what: str = "hash", size: int | None = HASH_SIZE) -> bytes:
    """Parse hex, with or without ``0x``: a 32-byte hash by default, ``size`` bytes, or any length if ``None``.

    Raises:
        ValueError: naming ``what`` when the text is not hex of the expected length.
    """
    digits = text[2:] if text[:2].lower() == "0x" else text
    if size is not None and len(digits) != 2 * size:
        raise ValueError(f"{what} must be {size} bytes ({2 * size} hex digits), got {len(digits)} digits: {text!r}")
    try:
        return bytes.fromhex(digits)
    except ValueError:
        raise ValueError(f"{what} is not hexadecimal: {text!r}") from None
