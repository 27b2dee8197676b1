"""Where things are: a registry deployment, and a run's record, so later commands need not be told again."""

import json
import os
from dataclasses import MISSING, asdict, dataclass, fields, replace
from pathlib import Path

import fsspec

from fedledger.errors import FedLedgerError
from fedledger.files import write_atomically

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
        write_atomically(path, (json.dumps(asdict(self), indent=2) + "\n").encode())

    @classmethod
    def load(cls, path: Path) -> "Deployment":
        """Read a deployment file.

        Raises:
            FedLedgerError: the file is missing or is not a deployment record.
        """
        try:
            return cls(**json.loads(path.read_bytes()))
        except FileNotFoundError:
            raise FedLedgerError(f"no deployment file at {path}: deploy with `fedledger chain deploy`") from None
        except IsADirectoryError:
            raise FedLedgerError(f"{path} is a directory, not a FedLedger deployment file") from None
        except (json.JSONDecodeError, UnicodeDecodeError, TypeError) as error:
            raise FedLedgerError(f"{path} is not a FedLedger deployment file: {error}") from None


LEDGER_FILE = "ledger.json"

_LOCATION_TYPES: dict[str, tuple[tuple[type, ...], str]] = {
    "chain_id": ((int,), "an integer"),
    "registry": ((str,), "a string"),
    "run_id": ((int,), "an integer"),
    "store": ((str,), "a string"),
    "rpc_url": ((str, type(None)), "a string or null"),
    "saved_chain": ((str, type(None)), "a string or null"),
}


@dataclass(frozen=True)
class LedgerLocation:
    """Where a run's record is: its chain (a node, or a saved in-process chain), its
    registry and run, and its artifact store. A run's output directory holds it as ``ledger.json``.

    In the file, a store or saved chain inside the run's directory is written relative to it, so
    the directory can be copied or moved and still names its own record; :meth:`load` resolves
    them against the directory. Paths outside it are written absolute, fsspec URLs as given.
    """

    chain_id: int
    registry: str
    run_id: int
    store: str
    rpc_url: str | None = None
    saved_chain: str | None = None

    def save(self, directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / LEDGER_FILE
        portable = replace(
            self,
            store=_relative_to(self.store, directory),
            saved_chain=None if self.saved_chain is None else _relative_to(self.saved_chain, directory),
        )
        write_atomically(path, (json.dumps(asdict(portable), indent=2) + "\n").encode())
        return path

    @classmethod
    def load(cls, directory: Path) -> "LedgerLocation":
        """Read ``directory/ledger.json``, with its paths resolved against ``directory``.

        Raises:
            FedLedgerError: the directory or the file is missing, or the file is not a ledger location.
        """
        path = directory / LEDGER_FILE
        if not directory.is_dir():
            raise FedLedgerError(f"{directory} is not a run's directory: no such directory")
        try:
            document = json.loads(path.read_bytes())
        except FileNotFoundError:
            raise FedLedgerError(
                f"{directory} holds no run's record ({LEDGER_FILE} is missing: the run never started)"
            ) from None
        except OSError as error:
            raise FedLedgerError(f"{path} cannot be read: {error.strerror}") from None
        except ValueError as error:
            raise FedLedgerError(f"{path} is not a ledger location: {error}") from None
        problem = _location_problem(document)
        if problem is not None:
            raise FedLedgerError(f"{path} is not a ledger location: {problem}")
        location = cls(**document)
        return replace(
            location,
            store=_resolved_against(location.store, directory),
            saved_chain=None if location.saved_chain is None else _resolved_against(location.saved_chain, directory),
        )


def _location_problem(document: object) -> str | None:
    """What keeps ``document`` from being a ledger location, or ``None``."""
    if not isinstance(document, dict):
        return "it holds no JSON object"
    missing = [item.name for item in fields(LedgerLocation) if item.default is MISSING and item.name not in document]
    if missing:
        return f"it misses {', '.join(missing)}"
    unknown = sorted(set(document) - {item.name for item in fields(LedgerLocation)})
    if unknown:
        return f"it holds unknown fields {', '.join(unknown)}"
    for name, (kinds, description) in _LOCATION_TYPES.items():
        value = document.get(name)
        if name in document and (not isinstance(value, kinds) or isinstance(value, bool)):
            return f"{name} should be {description}, not {value!r}"
    return None


def _is_url(location: str) -> bool:
    return fsspec.core.split_protocol(location)[0] is not None


def _relative_to(location: str, directory: Path) -> str:
    """``location`` relative to ``directory`` if it is a path inside it; else an absolute path, or the URL."""
    if _is_url(location):
        return location
    target, root = Path(os.path.realpath(location)), Path(os.path.realpath(directory))
    if target.is_relative_to(root):
        return target.relative_to(root).as_posix()
    return os.path.abspath(location)


def _resolved_against(location: str, directory: Path) -> str:
    """A location read from ``directory``'s ledger file: a relative path is relative to the directory."""
    if _is_url(location) or os.path.isabs(location):
        return location
    return str(directory / location)
