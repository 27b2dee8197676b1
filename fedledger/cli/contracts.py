"""``fedledger contracts``: build the Solidity contracts into the artifacts that ship."""

from typing import Annotated

import typer

from fedledger.chain.artifacts import load_artifact
from fedledger.cli.common import console
from fedledger.compiler import ARTIFACTS_DIR, compile_contracts, find_compiler, write_artifacts
from fedledger.errors import FedLedgerError

app = typer.Typer(help="Build the registry and token contracts.", no_args_is_help=True)


@app.command()
def build(
    check: Annotated[
        bool,
        typer.Option(
            "--check",
            help="Compile and compare with the shipped artifacts instead of writing them; "
            "fails if any bytecode differs.",
        ),
    ] = False,
) -> None:
    """Compile contracts/src with solc (native if the pinned version is installed, else solc-js from npm)
    and write ABI, bytecode, compiler version, settings and source hashes to contracts/artifacts."""
    compiler = find_compiler()
    console.print(f"compiling with {compiler.description}")
    artifacts = compile_contracts(compiler)
    if not check:
        for path in write_artifacts(artifacts):
            console.print(f"wrote {path}")
        return
    stale = [
        name
        for name, artifact in artifacts.items()
        if artifact["bytecode"] != load_artifact(name).bytecode
        or artifact["deployedBytecode"] != load_artifact(name).deployed_bytecode
    ]
    if stale:
        raise FedLedgerError(
            f"shipped artifacts in {ARTIFACTS_DIR} differ from a fresh build for {', '.join(stale)}: "
            "run `fedledger contracts build`"
        )
    console.print(f"shipped artifacts match a fresh build byte for byte ({', '.join(sorted(artifacts))})")
