"""What a finished run leaves beside its record: ``federation.json``, and the error of a run that stopped."""

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from fedledger.coordinator.recorder import RoundReport
from fedledger.deployment import LedgerLocation
from fedledger.errors import FedLedgerError

SUMMARY_FILE = "federation.json"


class FederationStopped(FedLedgerError):
    """The run stopped before its last round; the message says where it stands and how to resume it."""


@dataclass(frozen=True)
class FederationSummary:
    """What a finished federation did, round by round, and where its record is (``None``: plain
    Flower, nothing recorded)."""

    ledger: LedgerLocation | None
    initial_model_hash: str
    final_model_hash: str
    wall_time_seconds: float
    rounds: list[RoundReport]

    def save(self, directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / SUMMARY_FILE
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")
        return path
