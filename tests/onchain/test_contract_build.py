"""The shipped artifacts are what the pinned compiler makes of the sources, byte for byte."""

import json

import pytest

from fedledger.chain.artifacts import load_artifact
from fedledger.compiler import (
    ARTIFACT_CONTRACTS,
    COMPILER_SETTINGS,
    collect_sources,
    compile_contracts,
    find_compiler,
    pinned_solc_version,
)
from fedledger.contracts import ARTIFACTS_DIR
from fedledger.hashing import keccak256, to_hex


def test_artifacts_record_the_sources_they_were_built_from():
    """Fails when a source changed after the last build (no compiler needed to tell)."""
    current = {unit: to_hex(keccak256(text.encode())) for unit, text in collect_sources().items()}
    for name in ARTIFACT_CONTRACTS:
        recorded = json.loads((ARTIFACTS_DIR / f"{name}.json").read_text())
        assert recorded["sources"] == current, (
            f"{name}: sources changed since the build; run `fedledger contracts build`"
        )
        assert recorded["compiler"]["settings"] == COMPILER_SETTINGS
        assert recorded["compiler"]["version"].startswith(pinned_solc_version() + "+commit.")


@pytest.mark.solc
def test_a_rebuild_reproduces_the_shipped_bytecode_byte_for_byte():
    rebuilt = compile_contracts(find_compiler())
    for name in ARTIFACT_CONTRACTS:
        shipped = load_artifact(name)
        assert rebuilt[name]["bytecode"] == shipped.bytecode
        assert rebuilt[name]["deployedBytecode"] == shipped.deployed_bytecode
        assert rebuilt[name]["abi"] == shipped.abi


def test_the_openzeppelin_building_blocks_are_used():
    units = collect_sources()
    for library in (
        "access/AccessControl.sol",
        "access/extensions/AccessControlDefaultAdminRules.sol",
        "token/ERC20/ERC20.sol",
        "utils/cryptography/MerkleProof.sol",
        "utils/cryptography/EIP712.sol",
        "utils/cryptography/ECDSA.sol",
    ):
        assert f"@openzeppelin/contracts/{library}" in units
