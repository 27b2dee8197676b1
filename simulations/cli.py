"""``fedledger simulate``: a whole federation on one machine, recorded on-chain.

This module is loaded by the ``fedledger`` command through the ``fedledger.commands`` entry point,
so it imports only click, typer and the strategies' names at the top: torch and Flower load when a
simulation actually runs.
"""

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import click
import typer

from coordinator.settings import STRATEGY_NAMES
from fedledger.cli.common import check_rpc_url, console
from fedledger.errors import FedLedgerError


def simulate(
    scenario: Annotated[
        str,
        typer.Option(
            help="hospitals (UCI heart disease, exactly 4 hospitals), banks (HMDA mortgages, 2 to 33 banks), "
            "synthetic or synthetic-iid (at least 2 clients)"
        ),
    ] = "hospitals",
    rounds: Annotated[int | None, typer.Option(min=1, help="Federated rounds. Default: the scenario's.")] = None,
    strategy: Annotated[str, typer.Option(help=f"Flower strategy: {', '.join(STRATEGY_NAMES)}.")] = "FedAvg",
    clients: Annotated[
        int | None,
        typer.Option(help="Number of sites, within what the scenario supports. Default: the scenario's."),
    ] = None,
    seed: Annotated[
        int, typer.Option(min=0, help="Seed for data splits, model initialisation and simulated keys.")
    ] = 0,
    rpc_url: Annotated[
        str | None,
        typer.Option(
            "--rpc-url",
            callback=check_rpc_url,
            help="Record on this node (e.g. `fedledger chain node`) instead of the in-process chain; "
            "the coordinator key comes from $FEDLEDGER_PRIVATE_KEY.",
        ),
    ] = None,
    fraction_train: Annotated[
        float,
        typer.Option(
            click_type=click.FloatRange(0.0, 1.0, min_open=True), help="Share of sites sampled to train each round."
        ),
    ] = 1.0,
    attack: Annotated[
        str | None,
        typer.Option(help="Make some sites attackers: sign-flip, scaling, label-flip, gaussian-noise, free-rider."),
    ] = None,
    malicious: Annotated[
        float,
        typer.Option(
            click_type=click.FloatRange(0.0, 1.0, max_open=True), help="Share of sites that attack (with --attack)."
        ),
    ] = 0.1,
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
        typer.Option(
            file_okay=False,
            help="Directory for the store and summary. Default: .fedledger/simulations/<scenario>-<time>.",
        ),
    ] = None,
    verbose: Annotated[bool, typer.Option(help="Show Flower's and Ray's own logs.")] = False,
) -> None:
    """Run a federation on Flower's Simulation Engine; every round is checked, stored and committed on-chain.

    Settings are checked before anything starts: a scenario, strategy, attack or score that does not
    exist, or a site count the scenario cannot be split over, is refused in one line.
    """
    try:
        from simulations.report import RoundPrinter, print_summary
        from simulations.runner import (
            SimulationRequest,
            audit_result,
            check_node_access,
            prepare_data,
            settings_for,
            simulate_federation,
        )
    except ImportError as error:
        raise FedLedgerError(
            f'simulations need the training dependencies ({error.name} is missing): pip install "fedledger[federation]"'
        ) from None

    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    output_dir = out or Path(".fedledger") / "simulations" / f"{scenario}-{stamp}"
    request = SimulationRequest(
        scenario=scenario,
        output_dir=output_dir,
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
    if rpc_url is not None:
        check_node_access(rpc_url)
    scenario_spec, data = prepare_data(request)
    settings = settings_for(request, scenario_spec, data)
    chain = rpc_url or "an in-process chain"
    console.print(
        f"[bold]{scenario_spec.name}[/bold]: {scenario_spec.description}\n"
        f"{len(data.sites)} sites, {settings.num_server_rounds} rounds, {settings.strategy}, recorded on {chain}",
        highlight=False,
    )
    printer = RoundPrinter(console, data, seed)
    printer.header()
    result = simulate_federation(request, printer, quiet=not verbose)
    print_summary(console, result)
    audit = audit_result(result)
    checked = len(audit.findings)
    verdict = "[green]PASS[/green]" if audit.passed else "[red]FAIL[/red]"
    console.print(f"audit           {verdict}: {checked - len(audit.problems())} of {checked} checks passed")
    for finding in audit.problems():
        console.print(str(finding), style="red", markup=False, highlight=False)
    console.print(f"audit it again  fedledger audit --simulation {output_dir}", highlight=False)
    if not audit.passed:
        raise typer.Exit(1)
