"""``fedledger simulate``: a whole federation on one machine, recorded on-chain.

This module is loaded by the ``fedledger`` command through the ``fedledger.commands`` entry point,
so it imports only typer at the top: torch and Flower load when a simulation actually runs.
"""

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import click
import typer

from fedledger.cli.common import console
from fedledger.deployment import LedgerLocation
from fedledger.errors import FedLedgerError

STRATEGIES = "FedAvg, FedProx, FedAdam, FedYogi, FedAdagrad, FedAvgM, FedMedian, FedTrimmedAvg, Krum, MultiKrum, Bulyan"


def simulate(
    scenario: Annotated[
        str,
        typer.Option(help="hospitals (UCI heart disease, 4 hospitals), banks (HMDA mortgages), synthetic"),
    ] = "hospitals",
    rounds: Annotated[int | None, typer.Option(help="Federated rounds. Default: the scenario's.")] = None,
    strategy: Annotated[str, typer.Option(help=f"Flower strategy: {STRATEGIES}.")] = "FedAvg",
    clients: Annotated[
        int | None, typer.Option(help="Number of sites (banks and synthetic). Default: the scenario's.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed for data splits, model initialisation and simulated keys.")] = 0,
    rpc_url: Annotated[
        str | None,
        typer.Option(
            "--rpc-url",
            help="Record on this node (e.g. `fedledger chain node`) instead of the in-process chain; "
            "the coordinator key comes from $FEDLEDGER_PRIVATE_KEY.",
        ),
    ] = None,
    fraction_train: Annotated[float, typer.Option(help="Share of sites sampled to train each round.")] = 1.0,
    attack: Annotated[
        str | None,
        typer.Option(help="Make some sites attackers: sign-flip, scaling, label-flip, gaussian-noise, free-rider."),
    ] = None,
    malicious: Annotated[float, typer.Option(help="Share of sites that attack (with --attack).")] = 0.1,
    detector: Annotated[
        bool, typer.Option(help="Screen updates with the anomaly detector; flagged ones are rejected.")
    ] = True,
    score: Annotated[
        str,
        typer.Option(
            help="Contribution score: consensus (recomputable from the store) or leave-one-out "
            "(on a validation set held out for the coordinator)."
        ),
    ] = "consensus",
    out: Annotated[
        Path | None,
        typer.Option(help="Directory for the store and summary. Default: .fedledger/simulations/<scenario>-<time>."),
    ] = None,
    verbose: Annotated[bool, typer.Option(help="Show Flower's and Ray's own logs.")] = False,
    resume: Annotated[
        Path | None,
        typer.Option(
            help="Run an interrupted simulation on from its last committed round, under the same run id: "
            "DIR is its output directory; its settings are the ones it was started with.",
        ),
    ] = None,
) -> None:
    """Run a federation on Flower's Simulation Engine; every round is checked, stored and committed on-chain."""
    try:
        from simulations.report import RoundPrinter, print_summary
        from simulations.runner import SimulationRequest, audit_result, prepare_data, simulate_federation
    except ImportError as error:
        raise FedLedgerError(
            f'simulations need the training dependencies ({error.name} is missing): pip install "fedledger[federation]"'
        ) from None

    if resume is not None:
        given = [
            name
            for name in _SETTING_OPTIONS
            if click.get_current_context().get_parameter_source(name).name != "DEFAULT"
        ]
        if given:
            raise FedLedgerError(
                f"--resume runs the simulation with the settings it was started with; drop "
                f"{', '.join('--' + name.replace('_', '-') for name in given)}"
            )
        request = SimulationRequest.load(resume)
    else:
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        request = SimulationRequest(
            scenario=scenario,
            output_dir=out or Path(".fedledger") / "simulations" / f"{scenario}-{stamp}",
            clients=clients,
            rounds=rounds,
            strategy=strategy,
            seed=seed,
            rpc_url=rpc_url,
            fraction_train=fraction_train,
            attack=attack,
            malicious=malicious if attack else 0.0,
            detector=detector,
            score=score,
        )
    scenario_spec, data = prepare_data(request)
    chain = request.rpc_url or "an in-process chain"
    planned = request.rounds or scenario_spec.default_rounds
    console.print(
        f"[bold]{scenario_spec.name}[/bold]: {scenario_spec.description}\n"
        f"{len(data.sites)} sites, {planned} rounds, {request.strategy}, recorded on {chain}",
        highlight=False,
    )

    def started(location: LedgerLocation) -> None:
        console.print(
            f"run {location.run_id} on registry {location.registry} (chain id {location.chain_id}), "
            f"store {location.store}, record in {request.output_dir}",
            highlight=False,
        )
        printer.header()

    printer = RoundPrinter(console, data, request.seed)
    result = simulate_federation(request, printer, quiet=not verbose, on_start=started, resume=resume is not None)
    print_summary(console, result)
    audit = audit_result(result)
    checked = len(audit.findings)
    verdict = "[green]PASS[/green]" if audit.passed else "[red]FAIL[/red]"
    console.print(f"audit           {verdict}: {checked - len(audit.problems())} of {checked} checks passed")
    for finding in audit.problems():
        console.print(str(finding), style="red", markup=False, highlight=False)
    console.print(f"audit it again  fedledger audit --simulation {request.output_dir}", highlight=False)
    if not audit.passed:
        raise typer.Exit(1)


#: The options that choose what to simulate; a resumed simulation takes them from its request.
_SETTING_OPTIONS = (
    "scenario",
    "rounds",
    "strategy",
    "clients",
    "seed",
    "rpc_url",
    "fraction_train",
    "attack",
    "malicious",
    "detector",
    "score",
    "out",
)
