"""Searching what a run made public (transaction calldata, event logs, manifests, the run
configuration) for the values of the records its sites trained on.

What counts as "a value of a record":

- every **text value** of a record of at least ``MIN_TEXT_LENGTH`` characters (a category such as
  ``asymptomatic``, a hospital's name): searched as a substring of every string in the JSON
  documents, and as UTF-8 bytes in calldata and logs;
- every **distinctive number**: a non-integer whose shortest decimal form has at least
  ``MIN_SIGNIFICANT_DIGITS`` significant digits and that is no fraction p/q with q at most
  ``MAX_DENOMINATOR`` other than a terminating decimal (a ratio of ``17.63``, a share of
  ``0.754237``), or an integer of at least
  ``MIN_INTEGER_DIGITS`` digits (an amount of ``58490``). Shorter numbers (an age of 63, a flag, a
  count of 3), simple fractions (an accuracy of 33/35 is a fraction of the test rows) and integers
  of four digits or fewer (a valuation budget of 1024) are what the protocol's own counts, shares
  and settings are made of, and equal record values by chance; beyond them a chance match is rare,
  and the identifying values (amounts, incomes, ratios, measurements) are there. It is searched as
  a number in the JSON documents (equal as written, or after rounding to float32, as a model would
  hold it) and in calldata and logs as float32 and float64 in both byte orders, and, if it is an
  integer, as an ABI-encoded 32-byte word. (The heart-disease records have none: every number in
  them has three significant digits or fewer, so there the records and their text values carry the
  search.)
- every **record** as a whole: its numeric fields in column order, as consecutive float32 and
  float64 little-endian values (a raw row of a training batch), in calldata and logs.
"""

import csv
import json
import math
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

#: Text values shorter than this are not searched ("no", "yes", "Male" appear in any prose).
MIN_TEXT_LENGTH = 5
#: Non-integers with fewer significant digits are not searched (see the module docstring).
MIN_SIGNIFICANT_DIGITS = 4
#: Nor fractions p/q with q up to this: the protocol's shares of counts are such fractions.
MAX_DENOMINATOR = 1_000
#: Integers with fewer digits are not searched.
MIN_INTEGER_DIGITS = 5


def significant_digits(value: float) -> int:
    """The significant digits of ``value``'s shortest decimal form (``5849`` → 4, ``360`` → 2, ``0.75`` → 2)."""
    mantissa = repr(abs(float(value))).split("e")[0].removesuffix(".0")
    digits = mantissa.replace(".", "").lstrip("0")
    return len(digits if "." in mantissa else digits.rstrip("0"))


@dataclass
class RecordValues:
    """The searchable values of a set of records."""

    texts: set[str] = field(default_factory=set)
    numbers: set[float] = field(default_factory=set)
    rows: list[tuple[float, ...]] = field(default_factory=list)

    @classmethod
    def of_csv(cls, paths: Iterable[Path]) -> "RecordValues":
        values = cls()
        for path in paths:
            with path.open(newline="") as file:
                for record in csv.DictReader(file):
                    row = []
                    for text in record.values():
                        number = _number(text)
                        if number is None:
                            if len(text) >= MIN_TEXT_LENGTH:
                                values.texts.add(text)
                            continue
                        row.append(number)
                        if distinctive(number):
                            values.numbers.add(number)
                    if len(row) >= 2:
                        values.rows.append(tuple(row))
        return values

    def binary_patterns(self) -> Iterator[tuple[bytes, str]]:
        """Each byte pattern to look for in calldata and logs, with what it stands for."""
        for text in self.texts:
            yield text.encode(), f"text {text!r}"
        for number in self.numbers:
            for name, form in (("<f", "float32 LE"), (">f", "float32 BE"), ("<d", "float64 LE"), (">d", "float64 BE")):
                yield struct.pack(name, number), f"{number!r} as {form}"
            if number.is_integer() and number >= 0:
                yield int(number).to_bytes(32, "big"), f"{number!r} as an ABI word"
        for row in self.rows:
            yield struct.pack(f"<{len(row)}f", *row), f"record {row} as float32"
            yield struct.pack(f"<{len(row)}d", *row), f"record {row} as float64"


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


@dataclass
class Finding:
    where: str
    what: str


def scan_bytes(blobs: Iterable[tuple[str, bytes]], values: RecordValues) -> tuple[list[Finding], int]:
    """Every record value found in ``blobs`` (named byte strings), and the bytes scanned."""
    blobs = list(blobs)
    patterns = list(values.binary_patterns())
    found, scanned = [], 0
    for where, blob in blobs:
        scanned += len(blob)
        found.extend(Finding(where, what) for pattern, what in patterns if pattern in blob)
    return found, scanned


def scan_json(documents: Iterable[tuple[str, bytes]], values: RecordValues) -> tuple[list[Finding], int]:
    """Every record value found among the leaves of JSON ``documents``, and the leaves scanned."""
    float32 = {float(np.float32(number)) for number in values.numbers}
    found, leaves = [], 0
    for where, data in documents:
        for leaf in _leaves(json.loads(data)):
            leaves += 1
            if isinstance(leaf, str):
                found.extend(Finding(where, f"text {text!r} in {leaf!r}") for text in values.texts if text in leaf)
            elif isinstance(leaf, int | float) and not isinstance(leaf, bool) and _matches(leaf, values, float32):
                found.append(Finding(where, f"number {leaf!r}"))
    return found, leaves


def distinctive(number: float) -> bool:
    """Whether ``number`` is searched for (see the module docstring)."""
    if not math.isfinite(number):
        return False
    if number.is_integer():
        return len(str(abs(int(number)))) >= MIN_INTEGER_DIGITS
    simple = Fraction(number).limit_denominator(MAX_DENOMINATOR)
    share = float(simple) == number and _beyond_decimal(simple.denominator)
    return significant_digits(number) >= MIN_SIGNIFICANT_DIGITS and not share


def _beyond_decimal(denominator: int) -> bool:
    """Whether a fraction of this denominator is no terminating decimal (it has a prime factor but 2 and 5)."""
    for factor in (2, 5):
        while denominator % factor == 0:
            denominator //= factor
    return denominator > 1


def _matches(number: float, values: RecordValues, float32: set[float]) -> bool:
    """Whether ``number`` is a distinctive record value, as written or rounded to float32."""
    return distinctive(float(number)) and (float(number) in values.numbers or float(np.float32(number)) in float32)


def _leaves(document: object) -> Iterator[object]:
    if isinstance(document, dict):
        for value in document.values():
            yield from _leaves(value)
    elif isinstance(document, list):
        for value in document:
            yield from _leaves(value)
    else:
        yield document
