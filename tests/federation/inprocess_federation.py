"""A federation in one process, fast enough to run hundreds of rounds in a test.

The coordinator's ledger strategy and the wrapped Flower strategy run as they do under Flower:
every message goes through Flower's own ``InMemoryGrid`` and the ``LinkState`` a SuperLink keeps.
Each node's answer is computed by a Python function on a serving thread instead of a ClientApp;
a function that returns ``None`` never answers. Honest sites sign real updates with keys that are
registered on the in-process chain; their arrays are the global model plus a small change of
their own, so no training (and no torch) is needed.
"""

import contextlib
import secrets
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
from eth_account.signers.local import LocalAccount
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, MessageType, MetricRecord, RecordDict
from flwr.common.constant import HEARTBEAT_INTERVAL_INF, NOOP_ACCOUNT_NAME, NOOP_FLWR_AID, SUPERLINK_NODE_ID
from flwr.server.superlink.linkstate import LinkStateFactory
from flwr.serverapp.strategy import Strategy
from flwr.supercore.constant import FLWR_IN_MEMORY_DB_NAME, NOOP_FEDERATION_ID, TaskType
from flwr.supercore.object_store import ObjectStoreFactory
from flwr.supercore.task_identity import TaskIdentity
from flwr.superlink.federation import NoOpFederationManager
from flwr.superlink.grid import InMemoryGrid

from fedledger import messages
from fedledger.chain import Chain, Registry
from fedledger.client.mod import ledger_record
from fedledger.coordinator import Ledger as PublicLedger
from fedledger.coordinator.config import PREFIX
from fedledger.coordinator.host import Host, hosting
from fedledger.coordinator.ledger import LedgerStrategy
from fedledger.coordinator.recorder import RoundReport
from fedledger.coordinator.session import LedgerSession
from fedledger.coordinator.vault import Vault
from fedledger.encoding import model_hash
from fedledger.hashing import ZERO_HASH
from fedledger.rewards import TOKEN_DECIMALS
from fedledger.sealing import COORDINATOR_KEY_FILE, ensure_key_file
from fedledger.signer import AccountSigner
from fedledger.signing import SigningDomain, UpdateMessage, ValuationMessage, sign_valuation, valuation_results_hash
from fedledger.store import ArtifactStore
from tabular_app import task_keys
from tabular_app.settings import FederationSettings
from tabular_app.strategies import build_strategy

#: The global model every test run starts from.
INITIAL_MODEL = {
    "hidden.bias": np.zeros(4, np.float32),
    "hidden.weight": np.linspace(-1, 1, 12, dtype=np.float32).reshape(4, 3),
    "output.bias": np.zeros(1, np.float32),
}

Responder = Callable[[Message], Message | None]


class InProcessFederation:
    """``nodes`` Flower nodes on an in-memory LinkState, and the ``InMemoryGrid`` a ServerApp uses.

    ``responders[node_id]`` computes that node's reply to each message (``None``: no reply ever).
    Inside the ``with`` block, messages the strategies build carry this run's identity; leaving
    it re-raises the first error a responder raised (that node sent nothing for that message).
    """

    def __init__(self, nodes: int) -> None:
        factory = LinkStateFactory(FLWR_IN_MEMORY_DB_NAME, NoOpFederationManager(), ObjectStoreFactory())
        self.state = factory.state()
        run_id = self.state.create_run(
            None, None, None, {}, NOOP_FEDERATION_ID, None, NOOP_FLWR_AID, TaskType.SERVER_APP
        )
        self.run = self.state.get_run_info(run_ids=[run_id])[0]
        self.node_ids: list[int] = []
        for _ in range(nodes):
            self.connect(self._register())
        self.responders: dict[int, Responder] = {}
        self.grid = InMemoryGrid(factory, pull_interval=0.001)
        self.grid.set_run(self.run)
        self._stop = threading.Event()
        self._server = threading.Thread(target=self._serve, name="in-process nodes", daemon=True)
        self._identity: tuple[int | None, int | None, int | None] = (None, None, None)
        self._errors: list[Exception] = []

    def _register(self) -> int:
        return self.state.create_node(
            NOOP_FLWR_AID, NOOP_ACCOUNT_NAME, secrets.token_bytes(32), heartbeat_interval=HEARTBEAT_INTERVAL_INF
        )

    def connect_later(self) -> int:
        """A node that is registered, but not connected until ``connect`` is called."""
        return self._register()

    def connect(self, node_id: int) -> int:
        """Bring ``node_id`` online (its first heartbeat); it is then served like the others."""
        self.state.acknowledge_node_heartbeat(node_id=node_id, heartbeat_interval=HEARTBEAT_INTERVAL_INF)
        if node_id not in self.node_ids:
            self.node_ids.append(node_id)
        return node_id

    def disconnect(self, node_id: int) -> None:
        """Take ``node_id`` offline, as a SuperNode that went away: it is no longer among the
        connected nodes, and it answers nothing more."""
        self.state.deactivate_node(node_id)
        self.node_ids = [node for node in self.node_ids if node != node_id]

    def _serve(self) -> None:
        while not self._stop.is_set():
            for node_id in self.node_ids:
                for message in self.state.get_message_ins(node_id=node_id, limit=None):
                    try:
                        reply = self.responders[node_id](message)
                    except Exception as error:  # a broken test responder: reported when the block ends
                        self._errors.append(error)
                        continue
                    if reply is not None:
                        reply.metadata.__dict__["_message_id"] = str(uuid.uuid4())
                        self.state.store_message_res(reply)
            self._stop.wait(0.001)

    def __enter__(self) -> "InProcessFederation":
        self._identity = (TaskIdentity._run_id, TaskIdentity._task_id, TaskIdentity._node_id)
        TaskIdentity.run_id, TaskIdentity.task_id = self.run.run_id, self.run.primary_task_id
        TaskIdentity.node_id = SUPERLINK_NODE_ID
        self._server.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self._stop.set()
        self._server.join()
        TaskIdentity._run_id, TaskIdentity._task_id, TaskIdentity._node_id = self._identity
        if self._errors and error is None:
            raise RuntimeError(f"a node's responder failed: {self._errors[0]!r}") from self._errors[0]


def received_arrays(message: Message) -> dict[str, np.ndarray]:
    return {name: array.numpy() for name, array in message.content[messages.ARRAYS_RECORD].items()}


def signing_domain(message: Message) -> SigningDomain:
    config = message.content[messages.CONFIG_RECORD]
    return SigningDomain(int(config[messages.CONFIG_CHAIN_ID]), str(config[messages.CONFIG_REGISTRY]))


def update_message(message: Message, arrays: dict[str, np.ndarray], examples: int) -> UpdateMessage:
    """What an honest site signs for ``arrays`` in reply to ``message``."""
    config = message.content[messages.CONFIG_RECORD]
    return UpdateMessage(
        run_id=int(config[messages.CONFIG_RUN_ID]),
        round=int(config[messages.CONFIG_ROUND]),
        base_model_hash=model_hash(received_arrays(message)),
        update_hash=model_hash(arrays),
        num_examples=examples,
    )


def arrays_record(arrays: dict[str, np.ndarray]) -> ArrayRecord:
    return ArrayRecord({name: Array(arrays[name]) for name in sorted(arrays)})


@dataclass(frozen=True)
class HonestSite:
    """A registered site that answers every request correctly: its update is the global model
    plus ``step`` times the round number, signed with its key; it reports its example count under
    ``weight_key``. Its task wants the model moved by ``TARGET_STEP`` times the round number: the
    loss it signs for a candidate model of a valuation request is the mean squared distance to
    that (candidate 0 is the round's model)."""

    TARGET_STEP = 0.01

    account: LocalAccount
    step: float
    examples: int = 20
    weight_key: str = messages.NUM_EXAMPLES

    def arrays(self, message: Message) -> dict[str, np.ndarray]:
        round_number = int(message.content[messages.CONFIG_RECORD][messages.CONFIG_ROUND])
        return {
            name: (value + self.step * round_number).astype(value.dtype)
            for name, value in received_arrays(message).items()
        }

    def __call__(self, message: Message) -> Message:
        if message.metadata.message_type == MessageType.TRAIN:
            return self.training_reply(message)
        if messages.CONFIG_VALUATION in message.content[messages.CONFIG_RECORD]:
            return self.valuation_reply(message)
        return self.evaluation_reply(message)

    def valuation_reply(self, message: Message) -> Message:
        """The signed values of the request's candidates, added to the evaluation reply when the
        request also carries the round's model (as ``ledger_mod`` answers)."""
        config = message.content[messages.CONFIG_RECORD]
        round_number = int(config[messages.CONFIG_ROUND])
        count = sum(name.startswith(messages.CANDIDATE_PREFIX) for name in message.content.array_records)
        candidates = [
            {name: array.numpy() for name, array in message.content[messages.candidate_record(index)].items()}
            for index in range(count)
        ]
        target = {name: value + self.TARGET_STEP * round_number for name, value in candidates[0].items()}
        values = [
            float(np.mean([np.mean((candidate[name] - target[name]) ** 2) for name in sorted(candidate)]))
            for candidate in candidates
        ]
        hashes = [model_hash({name: candidate[name] for name in sorted(candidate)}) for candidate in candidates]
        valuation = ValuationMessage(
            int(config[messages.CONFIG_RUN_ID]),
            round_number,
            str(config[messages.CONFIG_VALUATION]),
            valuation_results_hash(hashes, values),
        )
        ledger = ConfigRecord(
            {
                messages.PARTICIPANT: self.account.address,
                messages.SIGNATURE: sign_valuation(signing_domain(message), valuation, self.account.key),
                messages.VALUATION_VALUES: values,
            }
        )
        if count == len(message.content.array_records):
            return Message(RecordDict({messages.LEDGER_RECORD: ledger}), reply_to=message)
        reply = self.evaluation_reply(message)
        reply.content[messages.LEDGER_RECORD] = ledger
        return reply

    def training_reply(self, message: Message) -> Message:
        arrays = self.arrays(message)
        update = update_message(message, arrays, self.examples)
        content = RecordDict(
            {
                messages.ARRAYS_RECORD: arrays_record(arrays),
                messages.METRICS_RECORD: MetricRecord(
                    {self.weight_key: self.examples, task_keys.TRAIN_LOSS: 0.25 + self.step}
                ),
                messages.LEDGER_RECORD: ledger_record(AccountSigner(self.account), signing_domain(message), update),
            }
        )
        return Message(content, reply_to=message)

    def evaluation_reply(self, message: Message) -> Message:
        content = RecordDict(
            {
                messages.METRICS_RECORD: MetricRecord(
                    {self.weight_key: 10, task_keys.EVAL_LOSS: 0.5, task_keys.EVAL_ACCURACY: 0.75}
                ),
                messages.LEDGER_RECORD: ConfigRecord({messages.PARTICIPANT: self.account.address}),
            }
        )
        return Message(content, reply_to=message)


class Interrupted(Exception):
    """Stops a run after a given round, as a coordinator that crashed there would."""


@dataclass
class Ledger:
    """A chain with a deployed registry, its participants registered, an artifact store, and the
    coordinator's sealing key (in the runs' output directory, where the ledger finds it)."""

    session: LedgerSession
    reports: list[RoundReport] = field(default_factory=list)

    @classmethod
    def create(cls, store: str, participants: list[LocalAccount]) -> "Ledger":
        chain = Chain.in_process()
        registry, _ = Registry.deploy(chain, chain.signers[0])
        registry.set_run_allowance(chain.signers[0], 10**9 * 10**TOKEN_DECIMALS)
        key = ensure_key_file(Path(store).parent / "run" / COORDINATOR_KEY_FILE)
        session = LedgerSession(chain, registry, ArtifactStore(store), Vault(key, ()), deployed=True)
        for account in participants:
            registry.add_participant(account.address, ZERO_HASH)
        return cls(session)

    def context(self, run_config: Mapping[str, Any] | None = None, **ledger: Any) -> Context:
        """A ServerApp context whose run config records on this registry and store, with the
        app's ``run_config`` and the ledger settings ``ledger`` (field names, e.g. ``connect_timeout``)."""
        settings = {
            "registry": self.session.registry.address,
            "store": self.session.store.location,
            "output_dir": str(Path(self.session.store.location).parent / "run"),
            **ledger,
        }
        config = {**(run_config or {}), **{PREFIX + key.replace("_", "-"): value for key, value in settings.items()}}
        return Context(run_id=1, node_id=0, node_config={}, state=RecordDict(), run_config=config)

    def run(
        self,
        federation: InProcessFederation,
        settings: FederationSettings,
        planned_rounds: int | None = None,
        rounds: int | None = None,
        *,
        strategy: Strategy | None = None,
        aggregation: str | None = None,
        model: Mapping[str, Any] | None = None,
        run_config: Mapping[str, Any] | None = None,
        evaluate_fn: Callable[[int, ArrayRecord], MetricRecord | None] | None = None,
        **ledger: Any,
    ) -> tuple[int, LedgerStrategy]:
        """Run ``strategy`` (default: the one ``settings`` names) wrapped by the public API, as an
        app's ServerApp does, on ``federation``; returns the run id and the ledger strategy.

        The run plans ``planned_rounds`` (default: ``num-server-rounds``); the coordinator runs
        ``rounds`` of them (default: all) and stops, as one that was interrupted would.
        """
        planned_rounds = planned_rounds or settings.num_server_rounds

        def committed(report: RoundReport) -> None:
            self.reports.append(report)
            if rounds is not None and report.round >= rounds:
                raise Interrupted(f"stopped after round {report.round}")

        host = Host(chain=self.session.chain, on_start=lambda _: None, on_round=committed)
        with hosting(host):
            api = PublicLedger.from_context(self.context(run_config, **ledger), model=model)
        wrapped = api.wrap(strategy or build_strategy(settings), aggregation=aggregation)
        if not isinstance(wrapped, LedgerStrategy):
            raise TypeError("the ledger is disabled: nothing is recorded")
        with contextlib.suppress(Interrupted):
            wrapped.start(
                grid=federation.grid,
                initial_arrays=arrays_record(INITIAL_MODEL),
                num_rounds=planned_rounds,
                timeout=settings.round_timeout,
                evaluate_fn=evaluate_fn,
            )
        if wrapped.location is None:
            raise RuntimeError("the run did not start")
        return wrapped.location.run_id, wrapped
