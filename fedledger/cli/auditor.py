"""``fedledger auditor``: an auditor's own key, which opens the updates runs store sealed for it."""

from pathlib import Path
from typing import Annotated

import typer

from fedledger.cli.common import console
from fedledger.sealing import generate_key_file, public_key_hex

app = typer.Typer(help="An auditor's key pair, for runs that seal their updates for it.", no_args_is_help=True)


@app.command()
def keygen(
    out: Annotated[
        Path, typer.Option("--out", dir_okay=False, help="Where to write the private key (never overwritten).")
    ],
) -> None:
    """Create an auditor's X25519 key pair: the private key goes to OUT (PEM, readable by its owner
    only), and the public key is printed. Give the public key to the coordinator, who lists it in
    `fedledger.auditor-keys`; then `fedledger audit --key OUT` opens every update the run stores."""
    public_key = generate_key_file(out)
    console.print(f"private key  {out} (mode 600: keep it, and back it up)", highlight=False)
    console.print(f"public key   {public_key_hex(public_key)}", highlight=False)
