"""Any Flower app directory run on the Simulation Engine in this process, as ``flwr run`` runs it.

``flwr run`` builds the app into a Flower App Bundle (FAB), installs it and has Flower's simulation
runtime start its ServerApp and ClientApp from the app's ``pyproject.toml``. This module does the
same without a SuperLink: the ServerApp sees the same run (FAB id, version and hash) and the same
run config, so a ledger inside the app records what ``flwr run`` would. The ``fedledger.*``
settings of the simulation (where its record goes, the simulated sites' keys) reach only the
ServerApp's context: Flower refuses override keys the app does not declare, and the ClientApps
learn what they need of the ledger from the requests.

It starts the engine through ``flwr.simulation.run_simulation._run_simulation``, a private function
of Flower 1.41 (FedLedger pins ``flwr==1.41.0``): the public ``run_simulation`` takes ServerApp and
ClientApp objects but neither the app directory nor the ``Run`` (FAB id, version, hash, override
config) nor the ServerApp's ``Context``, so through it the ServerApp would see an empty run and
record no FAB hash. A new Flower release must be checked against it before the pin moves.
"""

import hashlib
import logging
import os
import tomllib
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import click
from flwr.app import Context, RecordDict
from flwr.app.user_config import UserConfig, UserConfigValue
from flwr.cli.build import build_fab_from_disk
from flwr.common.config import flatten_dict, fuse_dicts, parse_config_args, validate_fields_in_config
from flwr.common.constant import RUN_ID_NUM_BYTES, SUPERLINK_NODE_ID, TASK_ID_NUM_BYTES
from flwr.server.superlink.linkstate.utils import generate_rand_int_from_bytes
from flwr.simulation.run_simulation import _run_simulation
from flwr.supercore.constant import NOOP_FEDERATION_ID
from flwr.supercore.run import Run
from flwr.supercore.task_identity import TaskIdentity
from flwr.supercore.telemetry import EventType

from fedledger.audit import Auditor, AuditReport
from fedledger.cli.common import open_history
from fedledger.coordinator.config import PREFIX, LedgerSettings, app_config
from fedledger.deployment import DEFAULT_DEPLOYMENT_FILE, LEDGER_FILE
from fedledger.errors import FedLedgerError
from fedledger.sealing import SIMULATION_AUDITOR_KEY, load_key_file, simulation_auditor

#: The app's key for the number of rounds, as Flower's templates name it.
ROUNDS_KEY = "num-server-rounds"
#: Simulated SuperNodes when neither the caller nor the app says: Flower's own default.
DEFAULT_SUPERNODES = 2


class AppError(FedLedgerError, ValueError):
    """A directory that is not a Flower app, or a setting the app cannot take; the message says which."""


@dataclass(frozen=True)
class FlowerApp:
    """A Flower app on disk: what its ``pyproject.toml`` declares, and the hash of the FAB it builds to.

    ``config`` is ``[tool.flwr.app.config]`` flattened as Flower flattens it (nested tables become
    dotted keys).
    """

    directory: Path
    name: str
    fab_id: str
    fab_version: str
    fab_hash: str
    server_app: str
    client_app: str
    config: UserConfig

    @classmethod
    def load(cls, directory: Path) -> "FlowerApp":
        """Read the app in ``directory`` and build its FAB as ``flwr build`` would, to hash it.

        Raises:
            AppError: ``directory`` holds no ``pyproject.toml``, or one Flower refuses.
        """
        directory = directory.expanduser().resolve()
        path = directory / "pyproject.toml"
        try:
            project = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise AppError(f"{directory} is not a Flower app: it holds no pyproject.toml") from None
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
            raise AppError(f"{path} cannot be read as TOML: {error}") from None
        valid, errors, _ = validate_fields_in_config(project)
        if not valid:
            raise AppError(f"{path} is not a Flower app's project file: {'; '.join(errors)}")
        try:
            with warnings.catch_warnings():
                # Flower's FAB builder still uses pathspec's old pattern name, deprecated since.
                warnings.filterwarnings("ignore", "GitWildMatchPattern", DeprecationWarning)
                fab = build_fab_from_disk(directory)
        except ValueError as error:
            raise AppError(f"{directory} cannot be built into a Flower App Bundle: {error}") from None
        flower = project["tool"]["flwr"]["app"]
        name, version = project["project"]["name"], project["project"]["version"]
        return cls(
            directory=directory,
            name=name,
            fab_id=f"{flower['publisher']}/{name}",
            fab_version=version,
            fab_hash=hashlib.sha256(fab).hexdigest(),
            server_app=flower["components"]["serverapp"],
            client_app=flower["components"]["clientapp"],
            config=flatten_dict(flower.get("config", {})),
        )


@dataclass(frozen=True)
class AppSimulation:
    """How to simulate an app: its sites, its run-config overrides and where its record goes.

    ``overrides`` are the app's own keys (Flower refuses keys the app does not declare);
    ``ledger`` are ``fedledger.*`` settings, given to the ServerApp only. ``rounds`` overrides
    the app's ``num-server-rounds``. The record, the store and the in-process chain's journal go
    to ``output_dir``.
    """

    app: FlowerApp
    output_dir: Path
    clients: int = DEFAULT_SUPERNODES
    rounds: int | None = None
    seed: int = 0
    rpc_url: str | None = None
    overrides: Mapping[str, UserConfigValue] = field(default_factory=dict)
    ledger: Mapping[str, UserConfigValue] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Refuse what Flower would refuse, before anything starts.

        Raises:
            AppError: fewer than one site, fewer sites than the ledger needs to commit a round, an output
                directory inside the app's, ``rounds`` for an app without ``num-server-rounds``, or an
                override key the app does not declare.
            SettingsError: a ``fedledger.*`` setting no run can use.
        """
        if self.clients < 1:
            raise AppError(f"a simulation needs at least one site, not {self.clients}")
        if self.output_dir.resolve().is_relative_to(self.app.directory):
            raise AppError(
                f"the output directory {self.output_dir} is inside the app's directory {self.app.directory}: "
                "Flower would bundle the record's files into the app and change its FAB hash; "
                "give --out a directory outside it"
            )
        if self.rounds is not None and ROUNDS_KEY not in self.app.config:
            raise AppError(f"--rounds: {self.app.name} declares no {ROUNDS_KEY!r} in [tool.flwr.app.config]")
        undeclared = sorted(set(self.overrides) - set(self.app.config))
        if undeclared:
            raise AppError(
                f"{self.app.name} declares no {', '.join(map(repr, undeclared))} in [tool.flwr.app.config]; "
                f"it declares {', '.join(sorted(self.app.config)) or 'nothing'}"
            )
        ledger = LedgerSettings.from_run_config(self.server_run_config())
        if ledger.enabled and self.clients < ledger.min_accepted:
            raise AppError(
                f"{self.clients} site{'' if self.clients == 1 else 's'} cannot commit a round: the ledger needs "
                f"{PREFIX}min-accepted = {ledger.min_accepted} accepted updates; "
                f"use --clients {ledger.min_accepted} or more, or lower {PREFIX}min-accepted in --run-config"
            )

    @classmethod
    def parse_run_config(cls, text: str) -> tuple[dict[str, UserConfigValue], dict[str, UserConfigValue]]:
        """``"key=value key=value"`` (TOML values, as ``flwr run --run-config`` takes them) split into the
        app's keys and the ``fedledger.*`` keys.

        Raises:
            AppError: the text is not ``key=value`` pairs with TOML values.
        """
        try:
            parsed = parse_config_args([text]) if text.strip() else {}
        except click.ClickException as error:
            raise AppError(f"--run-config {text!r}: {error.message}") from None
        except (ValueError, OSError) as error:
            raise AppError(f"--run-config {text!r}: {error}") from None
        app = app_config(parsed)
        return app, {key: value for key, value in parsed.items() if key not in app}

    def override_config(self) -> UserConfig:
        """The overrides of the app's config that the run carries, as ``flwr run`` would send them."""
        rounds = {} if self.rounds is None else {ROUNDS_KEY: self.rounds}
        return {**self.overrides, **rounds}

    def server_run_config(self) -> UserConfig:
        """The ServerApp's run config: the app's config with the overrides, and the ledger's settings."""
        settings: UserConfig = {
            f"{PREFIX}output-dir": str(self.output_dir.resolve()),
            f"{PREFIX}store": str((self.output_dir / "store").resolve()),
            f"{PREFIX}key-seed": self.seed,
            f"{PREFIX}simulated-participants": self.clients,
        }
        if self.rpc_url is not None:
            settings[f"{PREFIX}rpc-url"] = self.rpc_url
        return {**fuse_dicts(self.app.config, self.override_config()), **settings, **self.ledger}

    def run(self, verbose: bool = False) -> None:
        """Run the app's ServerApp and ``clients`` ClientApps on the Simulation Engine, in this process.

        Raises:
            Exception: whatever the ServerApp raised (a ``FedLedgerError`` of the ledger among them).
        """
        run_id = generate_rand_int_from_bytes(RUN_ID_NUM_BYTES)
        run = replace(
            Run.create_empty(run_id),
            fab_id=self.app.fab_id,
            fab_version=self.app.fab_version,
            fab_hash=self.app.fab_hash,
            override_config=self.override_config(),
            federation_id=NOOP_FEDERATION_ID,
            primary_task_id=generate_rand_int_from_bytes(TASK_ID_NUM_BYTES),
        )
        TaskIdentity.task_id = run.primary_task_id
        TaskIdentity.run_id = run_id
        TaskIdentity.node_id = SUPERLINK_NODE_ID
        run_config = self.server_run_config()
        if not run_config.get(f"{PREFIX}auditor-keys"):
            run_config[f"{PREFIX}auditor-keys"] = simulation_auditor(self.output_dir)
        context = Context(
            run_id=run_id, node_id=SUPERLINK_NODE_ID, node_config={}, state=RecordDict(), run_config=run_config
        )
        self.output_dir.mkdir(parents=True, exist_ok=True)
        os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")  # silences a Ray notice about GPUs
        if not verbose:
            logging.getLogger("ray").setLevel(logging.ERROR)
        _run_simulation(
            num_supernodes=self.clients,
            exit_event=EventType.PYTHON_API_RUN_SIMULATION_LEAVE,
            backend_config={
                "client_resources": {"num_cpus": 1, "num_gpus": 0.0},
                "init_args": {"logging_level": "ERROR", "log_to_driver": verbose},
            },
            server_app_attr=self.app.server_app,
            client_app_attr=self.app.client_app,
            server_app_context=context,
            app_dir=str(self.app.directory),
            run=run,
            is_app=True,
        )


def audit_recorded_run(output_dir: Path) -> AuditReport:
    """Audit the run an app recorded in ``output_dir``, from its saved chain or its node, and its store.

    Raises:
        AppError: the app recorded no run there (its ServerApp does not wrap its strategy with the ledger,
            or ``fedledger.enabled`` is false).
    """
    if not (output_dir / LEDGER_FILE).is_file():
        raise AppError(
            f"the app recorded no run in {output_dir} ({LEDGER_FILE} is missing): its ServerApp must wrap its "
            "strategy with Ledger.from_context(context).wrap(...), and fedledger.enabled must not be false"
        )
    history = open_history(output_dir, None, None, None, DEFAULT_DEPLOYMENT_FILE, None)
    key = load_key_file(output_dir / SIMULATION_AUDITOR_KEY)
    return Auditor(history.registry, history.store, key=key).audit(history.run_ids)
