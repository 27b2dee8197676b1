"""FedLedger's protocol library: what a federation commits on-chain and how anyone re-checks it.

Canonical model encoding and hashing, Merkle trees, EIP-712 update signatures, the
content-addressed artifact store, chain access and the command line. Nothing here imports
torch or Flower, so an auditor can install it alone.
"""

__version__ = "0.1.0"
