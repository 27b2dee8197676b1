"""Where things are: a registry deployment, and a finished run's record, so later commands need not be told again."""

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from fedledger.errors import FedLedgerError

DEFAULT_DEPLOYMENT_FILE = Path(".fedledger") / "deployment.json"


@dataclass(frozen=True)
class Deployment:
    """A registry deployment: the node it is on, its address, and who runs it."""

    rpc_url: str
    chain_id: int
    registry: str
    token: str
    admin: str
    coordinator: str
    block: int

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> "Deployment":
        """Read a deployment file.

        Raises:
            FedLedgerError: the file is missing or is not a deployment record.
        """
        try:
            return cls(**json.loads(path.read_text()))
        except FileNotFoundError:
            raise FedLedgerError(f"no deployment file at {path}: deploy with `fedledger chain deploy`") from None
        except (json.JSONDecodeError, TypeError) as error:
            raise FedLedgerError(f"{path} is not a FedLedger deployment file: {error}") from None


LEDGER_FILE = "ledger.json"


@dataclass(frozen=True)
class LedgerLocation:
    """Where a finished run's record is: its chain (a node, or a saved in-process chain), its
    registry and run, and its artifact store. A run's output directory holds it as ``ledger.json``."""

    chain_id: int
    registry: str
    run_id: int
    store: str
    rpc_url: str | None = None
    saved_chain: str | None = None

    def save(self, directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / LEDGER_FILE
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")
        return path

    @classmethod
    def load(cls, directory: Path) -> "LedgerLocation":
        """Read ``directory/ledger.json``.

        Raises:
            FedLedgerError: the file is missing or malformed.
        """
        path = directory / LEDGER_FILE
        try:
            return cls(**json.loads(path.read_text()))
        except FileNotFoundError:
            raise FedLedgerError(f"{directory} holds no finished run ({LEDGER_FILE} is missing)") from None
        except (json.JSONDecodeError, TypeError) as error:
            raise FedLedgerError(f"{path} is not a ledger location: {error}") from None
