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


def from_hex(text: str, *, what: str = "hash") -> bytes:
    """Parse a 32-byte hash written as hex, with or without ``0x``.

    Raises:
        ValueError: naming ``what`` when the text is not 64 hex digits.
    """
    digits = text[2:] if text[:2].lower() == "0x" else text
    if len(digits) != 2 * HASH_SIZE:
        raise ValueError(f"{what} must be 32 bytes (64 hex digits), got {len(digits)} digits: {text!r}")
    try:
        return bytes.fromhex(digits)
    except ValueError:
        raise ValueError(f"{what} is not hexadecimal: {text!r}") from None
