"""The one-machine runner: a whole federation on Flower's Simulation Engine, recorded on a chain.

By default the chain is an in-process EVM shared with the coordinator; with ``rpc_url`` it is
any node (``fedledger chain node`` starts a local one).
"""

import json
import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

import numpy as np
from flwr.app import Context, Message
from flwr.clientapp import ClientApp
from flwr.simulation import run_simulation

from fedledger.audit import Auditor, AuditReport
from fedledger.chain import DEFAULT_RETRY_SECONDS, Chain, Registry
from fedledger.cli.common import fedledger_command
from fedledger.client.identity import PARTITION_ID
from fedledger.coordinator.config import PREFIX, LedgerSettings
from fedledger.coordinator.host import Host, hosting, log_start, with_run_config
from fedledger.coordinator.recorder import RoundReport
from fedledger.coordinator.session import CHAIN_FILE
from fedledger.coordinator.summary import FederationSummary
from fedledger.deployment import LedgerLocation
from fedledger.encoding import decode_model
from fedledger.errors import FedLedgerError
from fedledger.hashing import from_hex
from fedledger.keys import simulated_participant
from fedledger.sealing import SIMULATION_AUDITOR_KEY, load_key_file, simulation_auditor
from fedledger.simulations.adversaries import ATTACKS, FAULTS, adversarial_client_app, choose_attackers
from fedledger.simulations.scenarios import SCENARIOS, PreparedData, Scenario
from fedledger.store import ArtifactStore
from tabular_app.client_app import app as honest_client_app
from tabular_app.metrics import accuracy, roc_auc
from tabular_app.models import TabularClassifier
from tabular_app.server_app import app as tabular_server_app
from tabular_app.settings import FederationSettings
from tabular_app.site import load_site
from tabular_app.training import evaluate

REQUEST_FILE = "simulation.json"


class RequestError(FedLedgerError, ValueError):
    """A simulation that cannot run as asked; the message names the setting and what is allowed."""


@dataclass(frozen=True)
class SimulationRequest:
    """What to simulate. ``None`` means the scenario's default.

    ``misbehaving`` names partitions that send a fault or an attack (``fedledger.simulations.adversaries``);
    ``attack`` with ``malicious`` makes that share of partitions, chosen with the seed, attack.
    ``left_out`` names sites that take no part (their test rows still count in the final figures).
    """

    scenario: str
    output_dir: Path
    clients: int | None = None
    rounds: int | None = None
    strategy: str = "FedAvg"
    seed: int = 0
    rpc_url: str | None = None
    ledger: bool = True
    fraction_train: float = 1.0
    misbehaving: Mapping[int, str] = field(default_factory=dict)
    attack: str | None = None
    malicious: float = 0.0
    detector: bool = True
    rpc_retry_seconds: float = DEFAULT_RETRY_SECONDS
    overrides: Mapping[str, object] = field(default_factory=dict)
    left_out: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        """Refuse what cannot run before anything starts (the federation settings check the rest).

        Raises:
            RequestError: an unknown scenario or attack, so many attacking or misbehaving sites
                that no honest one is left, or a left-out site that does not exist.
            ScenarioError: the scenario cannot be split over ``clients`` sites.
        """
        if self.scenario not in SCENARIOS:
            raise RequestError(f"unknown scenario {self.scenario!r}: choose one of {', '.join(SCENARIOS)}")
        if self.attack is not None and self.attack not in ATTACKS:
            raise RequestError(f"unknown attack {self.attack!r}: choose one of {', '.join(ATTACKS)}")
        SCENARIOS[self.scenario].check_clients(self.sites)
        for site in self.left_out:
            if not 0 <= site < self.sites:
                raise RequestError(f"site {site} cannot be left out: the sites are numbered 0 to {self.sites - 1}")
        if len(set(self.left_out)) >= self.sites:
            raise RequestError(f"leaving out sites {list(self.left_out)} leaves none of the {self.sites} to train")
        for site, behaviour in self.misbehaving.items():
            if not 0 <= site < self.sites:
                raise RequestError(f"site {site} cannot misbehave: the sites are numbered 0 to {self.sites - 1}")
            if behaviour not in FAULTS + ATTACKS:
                raise RequestError(f"unknown behaviour {behaviour!r}: choose one of {', '.join(FAULTS + ATTACKS)}")
        misbehaving = len(self.behaviours(self.sites))
        if misbehaving >= self.sites:
            raise RequestError(
                f"{misbehaving} of the {self.sites} sites would attack or misbehave, leaving no honest site: "
                "lower the malicious share"
            )

    @property
    def sites(self) -> int:
        """The number of sites: as asked, else the scenario's default."""
        return SCENARIOS[self.scenario].default_clients if self.clients is None else self.clients

    def save(self, path: Path) -> None:
        """Write the request as JSON, so that ``fedledger simulate --resume`` can repeat it exactly."""
        document = {
            **{name: getattr(self, name) for name in _SCALAR_FIELDS},
            "output_dir": str(self.output_dir),
            "misbehaving": {str(index): behaviour for index, behaviour in self.misbehaving.items()},
            "overrides": dict(self.overrides),
            "left_out": list(self.left_out),
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(document, indent=2) + "\n")

    @classmethod
    def load(cls, directory: Path) -> "SimulationRequest":
        """The request a simulation in ``directory`` was started with; its output stays in ``directory``.

        Raises:
            FedLedgerError: ``directory`` holds no request, or not a readable one.
        """
        path = directory / REQUEST_FILE
        try:
            document = json.loads(path.read_text())
            return cls(
                **{name: document[name] for name in _SCALAR_FIELDS},
                output_dir=directory,
                misbehaving={int(index): behaviour for index, behaviour in document["misbehaving"].items()},
                overrides=document["overrides"],
                left_out=tuple(int(site) for site in document.get("left_out", ())),
            )
        except FileNotFoundError:
            raise FedLedgerError(f"{directory} holds no simulation to resume ({REQUEST_FILE} is missing)") from None
        except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as error:
            raise FedLedgerError(f"{path} is not a simulation request: {error}") from None

    def behaviours(self, clients: int) -> dict[int, str]:
        """Partition id -> misbehaviour: the chosen attackers' attack, and the partitions named."""
        attackers = choose_attackers(clients, self.malicious, self.seed) if self.attack else []
        return {**{index: str(self.attack) for index in attackers}, **self.misbehaving}


_SCALAR_FIELDS = tuple(
    item.name
    for item in fields(SimulationRequest)
    if item.name not in {"output_dir", "misbehaving", "overrides", "left_out"}
)


@dataclass(frozen=True)
class SiteResult:
    """How the final global model does on one site's test rows; ``behaviour`` names a misbehaving site's
    fault or attack."""

    name: str
    address: str
    examples: int
    accuracy: float
    auc: float
    behaviour: str | None = None


@dataclass(frozen=True)
class SimulationResult:
    """A finished simulation: its settings (the app's and the ledger's), data, record and the
    final model's figures.

    ``chain`` is the in-process chain the run was recorded on (``None`` on a node).
    """

    scenario: Scenario
    settings: FederationSettings
    ledger: LedgerSettings
    data: PreparedData
    summary: FederationSummary
    sites: list[SiteResult]
    pooled_accuracy: float  # over every honest site's test rows
    pooled_auc: float
    pooled_loss: float
    wall_time_seconds: float
    chain: Chain | None


def settings_for(
    request: SimulationRequest, scenario: Scenario, data: PreparedData
) -> tuple[FederationSettings, LedgerSettings]:
    """The app's and the ledger's settings for ``request``: the scenario's defaults, then the
    request's choices; each override goes to the settings that have a field of its name."""
    clients = len(data.sites)
    settings = FederationSettings(
        num_server_rounds=scenario.default_rounds if request.rounds is None else request.rounds,
        strategy=request.strategy,
        fraction_train=request.fraction_train,
        fraction_evaluate=request.fraction_train,
        min_nodes=min(2, clients),
        local_epochs=scenario.training.local_epochs,
        batch_size=scenario.training.batch_size,
        learning_rate=scenario.training.learning_rate,
        momentum=scenario.training.momentum,
        hidden_units=scenario.hidden_units,
        model_seed=request.seed,
        split_seed=request.seed,
        data_dir=str(data.directory.resolve()),
    )
    ledger = LedgerSettings(
        enabled=request.ledger,
        min_accepted=min(2, clients),
        simulated_participants=clients,
        key_seed=request.seed,
        detector=request.detector,
        rpc_url=request.rpc_url or "",
        rpc_retry_seconds=request.rpc_retry_seconds,
        store=str((request.output_dir / "store").resolve()),
        output_dir=str(request.output_dir.resolve()),
        auditor_keys=simulation_auditor(request.output_dir) if request.ledger else "",
    )
    ledger_fields = {item.name for item in fields(LedgerSettings)}
    ledger_changes = {name: value for name, value in request.overrides.items() if name in ledger_fields}
    app_changes = {name: value for name, value in request.overrides.items() if name not in ledger_fields}
    return settings.with_changes(**app_changes), replace(ledger, **ledger_changes)


def run_config_of(settings: FederationSettings, ledger: LedgerSettings) -> dict[str, bool | int | float | str]:
    """The run config that gives the tabular app ``settings`` and its ledger ``ledger``, as
    ``flwr run -c`` would."""
    return {
        **{item.name.replace("_", "-"): getattr(settings, item.name) for item in fields(FederationSettings)},
        **{PREFIX + item.name.replace("_", "-"): getattr(ledger, item.name) for item in fields(LedgerSettings)},
    }


def prepare_data(request: SimulationRequest) -> tuple[Scenario, PreparedData]:
    """The scenario's per-site files (reused if already written)."""
    scenario, clients = SCENARIOS[request.scenario], request.sites
    name = f"{scenario.name}-{clients}-seed{request.seed}"
    return scenario, scenario.prepare(request.output_dir.parent / "data" / name, clients, request.seed)


def simulate_federation(
    request: SimulationRequest,
    on_round: Callable[[RoundReport], None],
    quiet: bool = True,
    on_start: Callable[[LedgerLocation], None] = log_start,
    resume: bool = False,
    evaluate_final: bool = True,
) -> SimulationResult:
    """Run the federation of ``request`` on the Simulation Engine and evaluate its final model.

    The final model is the one the ledger recorded; with ``evaluate_final=False`` it is not
    evaluated on every site's test rows, and the result has no per-site figures (as without the
    ledger, which records no final model).

    The request is saved in its output directory and the run's record (``ledger.json``, the
    in-process chain's journal) is written there as it goes, so that ``resume=True`` can run an
    interrupted simulation on from its last committed round under the same run id.

    Raises:
        FedLedgerError: the run stopped (e.g. the chain stayed unreachable); the message says how to resume.
    """
    scenario, data = prepare_data(request)
    settings, ledger = settings_for(request, scenario, data)
    chain = None
    if resume:
        location = LedgerLocation.load(request.output_dir)
        ledger = replace(ledger, resume_run=location.run_id, registry=location.registry)
        if ledger.in_process_chain:
            chain = Chain.restore(Path(location.saved_chain or request.output_dir / CHAIN_FILE))
    else:
        request.save(request.output_dir / REQUEST_FILE)
        if ledger.in_process_chain and ledger.enabled:
            chain = Chain.in_process()
    finished: list[FederationSummary] = []
    stopped: list[FedLedgerError] = []
    host = Host(
        chain=chain,
        on_start=on_start,
        on_round=on_round,
        on_finish=finished.append,
        on_error=stopped.append,
        resume_hint=lambda _: f"{fedledger_command()} simulate --resume {request.output_dir}",
    )
    server_app = with_run_config(tabular_server_app, run_config_of(settings, ledger))
    behaviours = request.behaviours(len(data.sites))
    client_app: ClientApp = adversarial_client_app(behaviours) if behaviours else honest_client_app
    if request.left_out:
        client_app = WithoutSites(client_app, request.left_out, len(data.sites))
    os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")  # silences a Ray notice about GPUs
    if quiet:
        logging.getLogger("flwr").setLevel(logging.ERROR)
    started = time.perf_counter()
    try:
        with hosting(host):
            run_simulation(
                server_app=server_app,
                client_app=client_app,
                num_supernodes=len(data.sites) - len(set(request.left_out)),
                backend_config={
                    "client_resources": {"num_cpus": 1, "num_gpus": 0.0},
                    "init_args": {"logging_level": "ERROR", "log_to_driver": not quiet},
                },
            )
    except FedLedgerError as error:
        raise (stopped[0] if stopped else error) from None
    wall_time = time.perf_counter() - started
    if stopped:
        raise stopped[0]
    if not ledger.enabled:
        summary = FederationSummary(None, "", "", wall_time, [])  # plain Flower: nothing recorded
        return SimulationResult(scenario, settings, ledger, data, summary, [], np.nan, np.nan, np.nan, wall_time, chain)
    if not finished:
        raise FedLedgerError("the federation did not finish; run with --verbose to see Flower's log")
    summary = finished[0]
    if not evaluate_final:
        return SimulationResult(scenario, settings, ledger, data, summary, [], np.nan, np.nan, np.nan, wall_time, chain)
    sites, pooled_accuracy, pooled_auc, pooled_loss = evaluate_sites(
        settings, ledger, data, _final_model(ledger, summary), behaviours
    )
    return SimulationResult(
        scenario, settings, ledger, data, summary, sites, pooled_accuracy, pooled_auc, pooled_loss, wall_time, chain
    )


def audit_result(result: SimulationResult) -> AuditReport:
    """Audit the run the simulation just recorded, from its chain and store."""
    ledger = result.summary.ledger
    if ledger is None:
        raise ValueError("a simulation without the ledger has nothing to audit")
    chain = result.chain or Chain.connect(ledger.rpc_url or "")
    key = load_key_file(Path(result.ledger.output_dir) / SIMULATION_AUDITOR_KEY)
    return Auditor(Registry(chain, ledger.registry), ArtifactStore(ledger.store), key=key).audit([ledger.run_id])


def _final_model(ledger: LedgerSettings, summary: FederationSummary) -> TabularClassifier:
    arrays = decode_model(ArtifactStore(ledger.store).get(from_hex(summary.final_model_hash)))
    return TabularClassifier.from_arrays(dict(arrays))


def evaluate_sites(
    settings: FederationSettings,
    ledger: LedgerSettings,
    data: PreparedData,
    model: TabularClassifier,
    behaviours: Mapping[int, str],
) -> tuple[list[SiteResult], float, float, float]:
    """The model on every site's test rows (each preprocessed by its own site), and on all honest
    sites' rows together: accuracy, ROC-AUC and log-loss."""
    results, labels, probabilities, losses = [], [], [], []
    for partition_id, site in enumerate(data.sites):
        local = load_site(data.site_path(partition_id), data.schema_path, settings.test_fraction, settings.split_seed)
        outcome = evaluate(model, local.test_inputs, local.test_labels)
        address = simulated_participant(ledger.key_seed, partition_id).address
        behaviour = behaviours.get(partition_id)
        results.append(SiteResult(site.name, address, outcome.examples, outcome.accuracy, outcome.auc, behaviour))
        if behaviour is None:
            labels.append(local.test_labels)
            probabilities.append(outcome.probabilities)
            losses.append(outcome.loss * outcome.examples)
    pooled_labels, pooled_probabilities = np.concatenate(labels), np.concatenate(probabilities)
    return (
        results,
        accuracy(pooled_labels, pooled_probabilities),
        roc_auc(pooled_labels, pooled_probabilities),
        sum(losses) / len(pooled_labels),
    )


class WithoutSites(ClientApp):
    """``app`` on fewer nodes than there are sites: node N serves the N-th site that is not left
    out, with that site's data and key."""

    def __init__(self, app: ClientApp, left_out: tuple[int, ...], sites: int) -> None:
        super().__init__()
        self.app = app
        self.kept = [site for site in range(sites) if site not in left_out]

    def __call__(self, message: Message, context: Context) -> Message:
        node_config = {**context.node_config, PARTITION_ID: self.kept[int(context.node_config[PARTITION_ID])]}
        context = Context(context.run_id, context.node_id, node_config, context.state, context.run_config)
        return self.app(message, context)
