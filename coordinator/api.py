"""The ledger's public face on the server: ``Ledger.from_context(context).wrap(strategy)``."""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flwr.app import Context
from flwr.serverapp.strategy import Strategy

from fedledger.aggregation import BUILT_IN_RULES, AggregationError, registered_aggregation
from fedledger.coordinator.config import LedgerSettings, SettingsError, app_config
from fedledger.coordinator.host import Host, current_host
from fedledger.coordinator.ledger import LedgerStrategy, check_wrappable
from fedledger.coordinator.runs import AppRecord, unencodable


@dataclass(frozen=True)
class Ledger:
    """Records a Flower app's run on an EVM registry, round by round, so an auditor can re-check it.

    Build it in the app's ServerApp from its ``Context``, wrap the strategy, and start the strategy
    as Flower's own::

        strategy = Ledger.from_context(context).wrap(FedAvg(...))
        result = strategy.start(grid=grid, initial_arrays=arrays, num_rounds=3)

    Parameters
    ----------
    settings : LedgerSettings
        Where and how the run is recorded: the run config's ``fedledger.*`` keys.
    app : AppRecord
        What the run configuration records about the app: its other run-config keys and the
        model description.
    host : Host
        What a process hosting the app lends it (``fedledger.coordinator.host``); by default
        nothing: the ledger opens its own chain and logs its progress.
    """

    settings: LedgerSettings
    app: AppRecord
    host: Host

    @classmethod
    def from_context(cls, context: Context, model: Mapping[str, Any] | None = None) -> "Ledger":
        """The ledger the run config of ``context`` describes.

        Parameters
        ----------
        context : Context
            The ServerApp's context: its ``run_config`` holds the ``fedledger.*`` keys (all optional)
            and the app's own, which the run configuration records (with the hash of the app
            bundle that runs, read from the grid's run when the strategy starts).
        model : Mapping[str, Any] | None
            A description of the model (architecture, sizes, seed) to record in the run
            configuration: JSON values only (string keys; no NumPy scalars, NaN or infinity).

        Raises
        ------
        SettingsError
            An unknown ``fedledger.*`` key, or a value of the wrong type or out of range; or a
            ``model`` value that JSON cannot hold (the message names its key).
        """
        run_config = dict(context.run_config)
        settings = LedgerSettings.from_run_config(run_config)
        if model is not None:
            reason = unencodable(dict(model), "model")
            if reason is not None:
                raise SettingsError(f"the model description cannot be recorded: {reason}")
        return cls(settings, AppRecord(app_config(run_config), model), current_host())

    def wrap(self, strategy: Strategy, *, aggregation: str | None = None) -> Strategy:
        """``strategy``, wrapped so that every round it runs is checked, stored and committed.

        Parameters
        ----------
        strategy : Strategy
            Any Flower strategy instance, built-in or the app's own.
        aggregation : str | None
            For a strategy that is not one of Flower's own: the name its NumPy aggregation is
            registered under (``fedledger.aggregation.register_aggregation``), or the name of the
            built-in rule it keeps (a ``FedAvg`` subclass that aggregates as FedAvg does:
            ``aggregation="FedAvg"``), recorded in the run configuration so the coordinator
            verifies every aggregate and an auditor re-derives it. Without one, such a strategy
            runs and is audited, but its re-aggregation is reported as not checked.

        Returns
        -------
        Strategy
            A ``LedgerStrategy`` to ``start`` as Flower's own; ``strategy`` itself when
            ``fedledger.enabled`` is false.

        Raises
        ------
        StrategyError
            ``strategy`` overrides ``start`` (the ledger runs Flower's loop itself), or sends its
            config under another ConfigRecord than ``"config"``, the one the client mod reads.
        AggregationError
            ``aggregation`` names neither a built-in rule nor a registered aggregation, or its
            aggregator cannot be built from the strategy's parameters (the message says why).
        """
        if not self.settings.enabled:
            return strategy
        check_wrappable(strategy)
        if aggregation is not None and aggregation not in BUILT_IN_RULES:
            registered_aggregation(aggregation)
        wrapped = LedgerStrategy(
            strategy, settings=self.settings, app=self.app, host=self.host, aggregation=aggregation
        )
        if aggregation is not None and wrapped.reaggregation.aggregator is None:
            raise AggregationError(
                f"aggregation {aggregation!r} cannot re-derive {wrapped.description['name']}: "
                f"{wrapped.reaggregation.unsupported}"
            )
        return wrapped
