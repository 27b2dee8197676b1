"""FedLedger's Solidity contracts: sources in ``src/``, compiled artifacts in ``artifacts/``.

The artifacts ship with the package, so running FedLedger needs no compiler;
``fedledger contracts build`` regenerates them from the sources.
"""

from pathlib import Path

CONTRACTS_DIR = Path(__file__).resolve().parent
SOURCES_DIR = CONTRACTS_DIR / "src"
ARTIFACTS_DIR = CONTRACTS_DIR / "artifacts"
SOLCJS_WRAPPER = CONTRACTS_DIR / "solc-standard-json.js"
