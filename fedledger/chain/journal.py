"""The in-process chain's journal: every mined transaction, signed, appended to a file as it is mined.

The file is JSON lines: a header ``{"format": ..., "chain_id": ...}``, then one line per
transaction in the order it was mined, ``{"hash": ..., "status": ..., "raw": ...}``. Each line is
written and flushed before the sender is told the transaction was mined, so a process killed at
any point loses nothing it acknowledged; a final line without its newline was never acknowledged
and is ignored when the journal is read.
"""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_utils import keccak

from fedledger.chain.errors import ChainError
from fedledger.files import write_atomically

JOURNAL_FORMAT = "fedledger-in-process-chain/2"


@dataclass(frozen=True)
class JournalEntry:
    """One mined transaction: its signed bytes, its hash, and whether it succeeded (status 1) or failed (0)."""

    tx_hash: str
    status: int
    raw: bytes

    @classmethod
    def of(cls, raw: bytes, status: int) -> "JournalEntry":
        return cls("0x" + keccak(raw).hex(), status, raw)

    def to_line(self) -> str:
        return json.dumps({"hash": self.tx_hash, "status": self.status, "raw": "0x" + self.raw.hex()}) + "\n"


class Journal:
    """An append-only journal file of one in-process chain."""

    def __init__(self, path: Path, chain_id: int, entries: list[JournalEntry]) -> None:
        """Write a journal of ``entries`` to ``path`` (replacing any file there atomically) and keep appending to it."""
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        header = json.dumps({"format": JOURNAL_FORMAT, "chain_id": chain_id}) + "\n"
        write_atomically(path, "".join([header, *(entry.to_line() for entry in entries)]).encode())

    def append(self, entry: JournalEntry) -> None:
        """Append ``entry``; returns once the line is with the operating system."""
        with self.path.open("a") as file:
            file.write(entry.to_line())


def read_journal(path: Path) -> tuple[int, list[JournalEntry]]:
    """The chain id and the transactions of the journal at ``path``.

    Raises:
        ChainError: naming the file, and the line that is not a journal entry.
    """
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ChainError(f"no saved chain at {path}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ChainError(f"{path} is not a saved chain: {error}") from None
    lines = text.split("\n")[:-1]  # the part after the last newline was never acknowledged
    if not lines:
        raise ChainError(f"{path} is not a saved chain: it is empty")
    header = _json_line(path, lines[0], "line 1")
    if not isinstance(header, dict) or header.get("format") != JOURNAL_FORMAT:
        found = header.get("format") if isinstance(header, dict) else None
        raise ChainError(f"{path} is not a saved in-process chain of format {JOURNAL_FORMAT} (format: {found!r})")
    chain_id = header.get("chain_id")
    if not isinstance(chain_id, int):
        raise ChainError(f"{path}: its header names no chain id")
    return chain_id, [_entry(path, index, line) for index, line in enumerate(lines[1:])]


def _entry(path: Path, index: int, line: str) -> JournalEntry:
    where = f"transaction {index} (line {index + 2})"
    fields = _json_line(path, line, where)
    try:
        raw = bytes.fromhex(fields["raw"].removeprefix("0x"))
        entry = JournalEntry(str(fields["hash"]), int(fields["status"]), raw)
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise ChainError(f"{path}: {where} is not a journal entry ({type(error).__name__}: {error})") from None
    if JournalEntry.of(entry.raw, entry.status) != entry:
        raise ChainError(f"{path}: transaction {index} ({entry.tx_hash}) was altered: its signed bytes hash otherwise")
    return entry


def _json_line(path: Path, line: str, where: str) -> Any:
    try:
        return json.loads(line)
    except json.JSONDecodeError as error:
        raise ChainError(f"{path}: {where} is not JSON ({error})") from None
