"""``python -m fedledger.cli`` runs the command line."""

from fedledger.cli import main

main()
