"""The compiled contract artifacts that ship in ``contracts/artifacts``."""

import json
from dataclasses import dataclass
from functools import cache
from typing import Any

from fedledger.contracts import ARTIFACTS_DIR


@dataclass(frozen=True)
class ContractArtifact:
    """What deploying and calling one contract needs: its ABI and bytecode."""

    name: str
    abi: list[dict[str, Any]]
    bytecode: str
    deployed_bytecode: str
    compiler_version: str


@cache
def load_artifact(name: str) -> ContractArtifact:
    """Load ``contracts/artifacts/<name>.json``.

    Raises:
        FileNotFoundError: saying how to build the artifacts when the file is missing.
    """
    path = ARTIFACTS_DIR / f"{name}.json"
    if not path.is_file():
        raise FileNotFoundError(f"no compiled artifact for {name} at {path}: run `fedledger contracts build`")
    data = json.loads(path.read_text())
    return ContractArtifact(
        name=name,
        abi=data["abi"],
        bytecode=data["bytecode"],
        deployed_bytecode=data["deployedBytecode"],
        compiler_version=data["compiler"]["version"],
    )
