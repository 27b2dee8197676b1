"""Compiles the Solidity sources in ``contracts/src`` into the artifacts that ship in ``contracts/artifacts``.

The compiler is driven through py-solc-x with a standard-JSON input that carries every source
(ours and the OpenZeppelin files they import, read from ``node_modules``), so native solc and
solc-js see the same input and produce the same bytecode. A native ``solc`` on the PATH is used
when its version is the pinned one; otherwise solc-js from npm, through a small wrapper script.
"""

import json
import posixpath
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import solcx
from solcx.exceptions import SolcError
from solcx.wrapper import get_version_str_from_solc_binary

from fedledger.contracts import ARTIFACTS_DIR, CONTRACTS_DIR, SOLCJS_WRAPPER, SOURCES_DIR
from fedledger.errors import FedLedgerError
from fedledger.hashing import keccak256, to_hex

PROJECT_DIR = CONTRACTS_DIR.parent
NODE_MODULES_DIR = PROJECT_DIR / "node_modules"

#: Contracts that get an artifact; the others are only compiled as dependencies.
ARTIFACT_CONTRACTS = ("FedLedgerRegistry", "IFedLedgerRegistry", "ContributionToken")

#: Compiler settings recorded in every artifact. Changing them changes the bytecode.
COMPILER_SETTINGS: dict = {
    "optimizer": {"enabled": True, "runs": 200},
    "evmVersion": "prague",
    "metadata": {"bytecodeHash": "ipfs"},
}

_OUTPUT_SELECTION = {"*": {"*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"]}}
_IMPORT = re.compile(r"""\bimport\s+(?:[^;]*?\bfrom\s+)?["']([^"']+)["']""")
_COMMENT = re.compile(r"//[^\n]*|/\*.*?\*/", re.DOTALL)
_VERSION = re.compile(r"(\d+\.\d+\.\d+\+commit\.[0-9a-f]+)")


class BuildError(FedLedgerError):
    """The contracts could not be built; the message says what is missing or wrong."""


@dataclass(frozen=True)
class Compiler:
    """A solc executable that py-solc-x can drive, and the exact version it reports."""

    executable: Path
    version: str  # e.g. "0.8.37+commit.f401782d", without the platform suffix

    @property
    def description(self) -> str:
        kind = "solc-js (npm)" if self.executable == SOLCJS_WRAPPER else "native solc"
        return f"{kind} {self.version} at {self.executable}"


def pinned_solc_version() -> str:
    """The solc version the project pins in ``package.json`` (e.g. ``0.8.37``)."""
    package = json.loads((PROJECT_DIR / "package.json").read_text())
    return package["dependencies"]["solc"]


def find_compiler() -> Compiler:
    """Pick a compiler of the pinned version: native solc if on the PATH, else solc-js.

    Raises:
        BuildError: when neither is available, saying how to install solc-js.
    """
    wanted = pinned_solc_version()
    native = shutil.which("solc")
    if native is not None:
        version = _reported_version(Path(native))
        if version.startswith(wanted + "+"):
            return Compiler(Path(native), version)
    if not (NODE_MODULES_DIR / "solc").is_dir():
        raise BuildError(
            f"no solc {wanted} found: install solc-js with `npm ci` in {PROJECT_DIR} "
            f"(or put a native solc {wanted} on the PATH)"
        )
    if shutil.which("node") is None:
        raise BuildError("solc-js needs Node.js, and `node` is not on the PATH")
    return Compiler(SOLCJS_WRAPPER, _reported_version(SOLCJS_WRAPPER))


def _reported_version(executable: Path) -> str:
    try:
        text = get_version_str_from_solc_binary(executable)
    except (OSError, SolcError) as error:
        raise BuildError(f"cannot run {executable} --version: {error}") from error
    match = _VERSION.search(text)
    if match is None:
        raise BuildError(f"{executable} reported an unrecognised version: {text!r}")
    return match.group(1)


def collect_sources() -> dict[str, str]:
    """Return every source the contracts need, keyed by source unit name.

    Our sources are named by their path from the project root (``contracts/src/...``);
    imports such as ``@openzeppelin/contracts/...`` are read from ``node_modules``.
    """
    pending = [f"contracts/src/{path.name}" for path in sorted(SOURCES_DIR.glob("*.sol"))]
    if not pending:
        raise BuildError(f"no Solidity sources in {SOURCES_DIR}")
    sources: dict[str, str] = {}
    while pending:
        unit = pending.pop()
        if unit in sources:
            continue
        sources[unit] = _read_unit(unit)
        for target in _IMPORT.findall(_COMMENT.sub("", sources[unit])):
            if target.startswith("."):
                target = posixpath.normpath(posixpath.join(posixpath.dirname(unit), target))
            pending.append(target)
    return dict(sorted(sources.items()))


def _read_unit(unit: str) -> str:
    path = NODE_MODULES_DIR / unit if unit.startswith("@") else PROJECT_DIR / unit
    if not path.is_file():
        hint = " (run `npm ci` to install it)" if unit.startswith("@") else ""
        raise BuildError(f"source {unit!r} not found at {path}{hint}")
    return path.read_text()


def compile_contracts(compiler: Compiler) -> dict[str, dict]:
    """Compile the sources and return the artifact of each contract in ``ARTIFACT_CONTRACTS``."""
    sources = collect_sources()
    standard_input = {
        "language": "Solidity",
        "sources": {unit: {"content": text} for unit, text in sources.items()},
        "settings": {**COMPILER_SETTINGS, "outputSelection": _OUTPUT_SELECTION},
    }
    try:
        output = solcx.compile_standard(standard_input, solc_binary=compiler.executable)
    except SolcError as error:
        raise BuildError(f"compilation failed:\n{error.message}") from error
    source_hashes = {unit: to_hex(keccak256(text.encode())) for unit, text in sources.items()}
    artifacts = {}
    for unit, contracts in output["contracts"].items():
        for name, compiled in contracts.items():
            if name in ARTIFACT_CONTRACTS:
                artifacts[name] = {
                    "contractName": name,
                    "sourceName": unit,
                    "compiler": {"version": compiler.version, "settings": COMPILER_SETTINGS},
                    "sources": source_hashes,
                    "abi": compiled["abi"],
                    "bytecode": "0x" + compiled["evm"]["bytecode"]["object"],
                    "deployedBytecode": "0x" + compiled["evm"]["deployedBytecode"]["object"],
                }
    missing = set(ARTIFACT_CONTRACTS) - artifacts.keys()
    if missing:
        raise BuildError(f"the sources define no contract named {', '.join(sorted(missing))}")
    return artifacts


def write_artifacts(artifacts: dict[str, dict], directory: Path = ARTIFACTS_DIR) -> list[Path]:
    """Write one ``<Contract>.json`` per artifact, in a stable format; return the paths."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, artifact in sorted(artifacts.items()):
        path = directory / f"{name}.json"
        path.write_text(json.dumps(artifact, indent=2, sort_keys=True) + "\n")
        paths.append(path)
    return paths
