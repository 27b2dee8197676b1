"""``fedledger certs``: the certificates that put TLS between SuperNodes and the SuperLink."""

from pathlib import Path
from typing import Annotated

import typer

from fedledger.certificates import create_certificates
from fedledger.cli.common import console


def certs(
    out: Annotated[Path, typer.Option("--out", file_okay=False, help="Directory for the certificates and keys.")],
    host: Annotated[
        list[str],
        typer.Option(help="A DNS name or IP address the SuperLink is reached at (repeatable; the first names it)."),
    ],
    days: Annotated[int, typer.Option(min=1, help="Validity of both certificates, in days.")] = 365,
) -> None:
    """Create a CA and a SuperLink certificate it signs, with each --host as a subject alternative name.

    Start the SuperLink with --ssl-certfile superlink.pem --ssl-keyfile superlink.key --ssl-ca-certfile
    ca.pem; give every site ca.pem (flower-supernode --root-certificates ca.pem). Keep ca.key offline.
    """
    files = create_certificates(out, host, days)
    for path in (files.ca_certificate, files.ca_key, files.superlink_certificate, files.superlink_key):
        console.print(f"wrote {path}")
