"""``fedledger simulate``: a whole federation on one machine, recorded on-chain.

This module is loaded by the ``fedledger`` command through the ``fedledger.commands`` entry point,
so it imports only click, typer and the tabular app's strategy names at the top: torch and Flower load when a
simulation actually runs.
"""

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import click
import typer

from fedledger.chain.transport import DEFAULT_RETRY_SECONDS
from fedledger.cli.audit import EXIT_CODES, print_verdict
from fedledger.cli.common import check_node_access, check_rpc_url, console, fedledger_command
from fedledger.deployment import LedgerLocation
from fedledger.errors import FedLedgerError
from fedledger.simulations.tabular import TabularAppMissing, strategy_names


def simulate(
    scenario: Annotated[
        str,
        typer.Option(
            help="hospitals (UCI heart disease, exactly 4 hospitals), banks (HMDA mortgages, 2 to 33 banks), "
            "synthetic or synthetic-iid (at least 2 clients)"
        ),
    ] = "hospitals",
    rounds: Annotated[int | None, typer.Option(min=1, help="Federated rounds. Default: the scenario's.")] = None,
    strategy: Annotated[str, typer.Option(help=f"Flower strategy: {', '.join(strategy_names())}.")] = "FedAvg",
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
    rpc_retry_seconds: Annotated[
        float,
        typer.Option(
            min=0,
            help="How long every call to the node (--rpc-url) rides out an outage before the run stops, "
            "naming the command that resumes it.",
        ),
    ] = DEFAULT_RETRY_SECONDS,
    fraction_train: Annotated[
        float,
        typer.Option(
            click_type=click.FloatRange(0.0, 1.0, min_open=True), help="Share of sites sampled to train each round."
        ),
    ] = 1.0,
    attack: Annotated[
        str | None,
        typer.Option(
            help="Make some sites attackers: sign-flip, scaling, label-flip, gaussian-noise, free-rider, alie, "
            "min-max, min-sum, sybil."
        ),
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
    dp: Annotated[
        str | None,
        typer.Option(
            click_type=click.Choice(["central", "local"]),
            help="Differential privacy: central (the coordinator clips every update and noises the aggregate) "
            "or local (each site clips and noises its own update); needs --epsilon.",
        ),
    ] = None,
    epsilon: Annotated[
        float | None,
        typer.Option(
            click_type=click.FloatRange(0.0, min_open=True),
            help="With --dp: the run's privacy budget ε (at δ --dp-delta), recorded on-chain; the noise is "
            "calibrated so that the planned rounds stay within it.",
        ),
    ] = None,
    dp_delta: Annotated[
        float, typer.Option(click_type=click.FloatRange(0.0, 1.0, min_open=True, max_open=True), help="With --dp: δ.")
    ] = 1e-5,
    dp_clip: Annotated[
        float,
        typer.Option(
            click_type=click.FloatRange(0.0, min_open=True),
            help="With --dp: the L2 norm every update's change to the model is clipped to.",
        ),
    ] = 1.0,
    out: Annotated[
        Path | None,
        typer.Option(
            file_okay=False,
            help="Directory for the store and summary. Default: .fedledger/simulations/<scenario>-<time>.",
        ),
    ] = None,
    misbehave: Annotated[
        list[str] | None,
        typer.Option(
            metavar="SITE=BEHAVIOUR",
            help="Make site SITE (counted from 0) send a fault (nan, wrong-shape, bad-signature, unregistered-key, "
            "stale-base, replay, duplicate, garbage) or an attack every round (repeatable).",
        ),
    ] = None,
    verbose: Annotated[bool, typer.Option(help="Show Flower's and Ray's own logs.")] = False,
    resume: Annotated[
        Path | None,
        typer.Option(
            metavar="DIR",
            help="Run an interrupted simulation on from its last committed round, under the same run id: DIR is "
            "its output directory, and its settings are the ones it was started with.",
        ),
    ] = None,
    app: Annotated[
        Path | None,
        typer.Option(
            metavar="PATH",
            file_okay=False,
            exists=True,
            help="Run this Flower app (a directory with its pyproject.toml) instead of a scenario, with its own "
            "strategy and settings; takes --clients (default 2), --rounds, --seed, --rpc-url, --out, --run-config.",
        ),
    ] = None,
    run_config: Annotated[
        str | None,
        typer.Option(
            metavar="'KEY=VALUE ...'",
            help="With --app: override the app's own run-config keys, and set ledger settings "
            "(fedledger.*), as `flwr run --run-config` takes them.",
        ),
    ] = None,
) -> None:
    """Run a federation on Flower's Simulation Engine; every round is checked, stored and committed on-chain.

    Settings are checked before anything starts: a scenario, strategy or attack that does not
    exist, or a site count the scenario cannot be split over, is refused in one line.
    """
    if app is not None:
        _simulate_app(app, clients, rounds, seed, rpc_url, out, run_config or "", verbose)
        return
    if run_config is not None:
        raise FedLedgerError("--run-config sets a Flower app's config: it needs --app PATH")
    try:
        from fedledger.simulations.report import RoundPrinter, print_summary
        from fedledger.simulations.runner import (
            SimulationRequest,
            audit_result,
            prepare_data,
            settings_for,
            simulate_federation,
        )
    except ImportError as error:
        if (error.name or "").split(".")[0] == "tabular_app":
            raise TabularAppMissing from None
        raise FedLedgerError(
            f'simulations need the training dependencies ({error.name} is missing): pip install "fedledger[federation]"'
        ) from None

    if (dp is None) != (epsilon is None):
        raise FedLedgerError("--dp and --epsilon go together: --dp central|local --epsilon E")
    if resume is not None:
        _refuse_options_but(_RUN_OPTIONS, "--resume runs a simulation with the settings it was started with")
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
            rpc_retry_seconds=rpc_retry_seconds,
            fraction_train=fraction_train,
            misbehaving=_misbehaving(misbehave or []),
            attack=attack,
            malicious=malicious if attack else 0.0,
            detector=detector,
            overrides=_privacy_overrides(dp, epsilon, dp_delta, dp_clip),
        )
    if request.rpc_url is not None:
        check_node_access(request.rpc_url)
    scenario_spec, data = prepare_data(request)
    settings, _ = settings_for(request, scenario_spec, data)
    console.print(
        f"[bold]{scenario_spec.name}[/bold]: {scenario_spec.description}\n"
        f"{len(data.sites)} sites, {settings.num_server_rounds} rounds, {settings.strategy}, "
        f"recorded on {request.rpc_url or 'an in-process chain'}",
        highlight=False,
    )
    printer = RoundPrinter(console, data, request.seed)

    def started(location: LedgerLocation) -> None:
        console.print(
            f"run {location.run_id} on registry {location.registry} (chain id {location.chain_id}), "
            f"store {location.store}; resume with: {fedledger_command()} simulate --resume {request.output_dir}",
            highlight=False,
        )
        printer.header()

    result = simulate_federation(request, printer, quiet=not verbose, on_start=started, resume=resume is not None)
    print_summary(console, result)
    audit = audit_result(result)
    print_verdict(audit)
    print_audit_hint(request.output_dir)
    raise typer.Exit(EXIT_CODES[audit.verdict])


#: The options that say how to run, not what: the only ones a resumed simulation takes.
_RUN_OPTIONS = {"resume", "verbose"}
#: The options a Flower app takes; its strategy and training settings are its own.
_APP_OPTIONS = {"app", "clients", "rounds", "seed", "rpc_url", "out", "run_config", "verbose"}


def _simulate_app(
    path: Path,
    clients: int | None,
    rounds: int | None,
    seed: int,
    rpc_url: str | None,
    out: Path | None,
    run_config: str,
    verbose: bool,
) -> None:
    """``fedledger simulate --app PATH``: run a Flower app on the Simulation Engine, then audit its record."""
    _refuse_options_but(
        _APP_OPTIONS,
        "--app runs the app's own strategy and settings",
        "the app's keys and fedledger.* settings go in --run-config",
    )
    try:
        from fedledger.simulations.apps import DEFAULT_SUPERNODES, AppSimulation, FlowerApp, audit_recorded_run
    except ImportError as error:
        raise FedLedgerError(
            f'--app needs Flower ({error.name} is missing): pip install "fedledger[flower]" and the app\'s dependencies'
        ) from None

    flower_app = FlowerApp.load(path)
    overrides, ledger = AppSimulation.parse_run_config(run_config)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    simulation = AppSimulation(
        app=flower_app,
        output_dir=out or Path(".fedledger") / "simulations" / f"{flower_app.name}-{stamp}",
        clients=DEFAULT_SUPERNODES if clients is None else clients,
        rounds=rounds,
        seed=seed,
        rpc_url=rpc_url,
        overrides=overrides,
        ledger=ledger,
    )
    if rpc_url is not None:
        check_node_access(rpc_url)
    sites = f"{simulation.clients} site{'' if simulation.clients == 1 else 's'}"
    console.print(
        f"[bold]{flower_app.fab_id}[/bold] {flower_app.fab_version} (FAB {flower_app.fab_hash[:12]}): "
        f"{sites}, recorded on {rpc_url or 'an in-process chain'}, in {simulation.output_dir}",
        highlight=False,
    )
    simulation.run(verbose=verbose)
    audit = audit_recorded_run(simulation.output_dir)
    print_verdict(audit)
    print_audit_hint(simulation.output_dir)
    raise typer.Exit(EXIT_CODES[audit.verdict])


def print_audit_hint(run_dir: Path) -> None:
    """The command that audits the run again and writes its report into the run's own directory."""
    console.print(
        f"audit it again  {fedledger_command()} audit --simulation {run_dir} --report {run_dir / 'audit.html'}",
        highlight=False,
    )


def _refuse_options_but(allowed: set[str], why: str, hint: str = "") -> None:
    """Refuse every option of the current command given on the command line but those ``allowed``.

    Raises:
        FedLedgerError: ``why``, then the options to drop (and ``hint``, in brackets).
    """
    context = click.get_current_context()
    given = [
        "--" + (parameter.name or "").replace("_", "-")
        for parameter in context.command.params
        if parameter.name not in allowed
        and context.get_parameter_source(parameter.name or "") is not click.core.ParameterSource.DEFAULT
    ]
    if given:
        raise FedLedgerError(f"{why}: drop {', '.join(given)}" + (f" ({hint})" if hint else ""))


def _privacy_overrides(dp: str | None, epsilon: float | None, delta: float, clip: float) -> dict[str, object]:
    """The ledger settings of ``--dp``. Rewards follow example counts: under central DP, valuing updates
    would send the validators un-noised candidate models; under local DP, each update's value is
    mostly its noise's."""
    if dp is None or epsilon is None:
        return {}
    privacy: dict[str, object] = {"dp": dp, "dp_epsilon": epsilon, "dp_delta": delta, "dp_clip": clip}
    return privacy | {"reward_rule": "examples"}


def _misbehaving(pairs: list[str]) -> dict[int, str]:
    """``SITE=BEHAVIOUR`` pairs as a site -> behaviour mapping (the request checks the behaviours)."""
    misbehaving = {}
    for pair in pairs:
        site, separator, behaviour = pair.partition("=")
        if not separator or not site.isdigit() or not behaviour:
            raise FedLedgerError(f"--misbehave {pair!r} must be SITE=BEHAVIOUR, e.g. 1=garbage")
        misbehaving[int(site)] = behaviour
    return misbehaving
