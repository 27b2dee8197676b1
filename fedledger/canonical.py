"""Canonical JSON: one byte string per document, so that its hash is well defined.

Keys sorted, no insignificant whitespace, UTF-8, floats in Python's shortest round-trip form,
and no NaN or infinity (JSON has none; such values must be written as null by the caller).
"""

import json
from typing import Any


def canonical_json(document: Any) -> bytes:
    """The canonical encoding of ``document`` (built from dicts, lists, str, int, float, bool, None).

    Raises:
        ValueError: ``document`` holds NaN or infinity, or something JSON cannot represent.
    """
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def parse_json(data: bytes, what: str) -> Any:
    """Parse JSON bytes, naming ``what`` in the error."""
    try:
        return json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{what} is not valid JSON: {error}") from None
