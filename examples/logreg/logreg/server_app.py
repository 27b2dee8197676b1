"""logreg: the ServerApp, which runs the clipped federated average with every round on the ledger."""

from flwr.app import Array, ArrayRecord, ConfigRecord, Context
from flwr.serverapp import Grid, ServerApp

from fedledger.aggregation import register_aggregation
from fedledger.coordinator import Ledger
from logreg.aggregation import AGGREGATION_NAME, clipped_fedavg
from logreg.strategy import ClippedFedAvg
from logreg.task import initial_arrays

# The coordinator re-derives every round's aggregate with it before committing the round.
register_aggregation(AGGREGATION_NAME, clipped_fedavg)

app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    """Train for ``num-server-rounds`` rounds of the clipped average, recorded on the ledger."""
    arrays = ArrayRecord({name: Array(value) for name, value in initial_arrays().items()})

    strategy = ClippedFedAvg(
        clip_norm=context.run_config["clip-norm"],
        fraction_train=context.run_config["fraction-train"],
        fraction_evaluate=context.run_config["fraction-evaluate"],
    )
    ledger_strategy = Ledger.from_context(context).wrap(strategy, aggregation=AGGREGATION_NAME)
    ledger_strategy.start(
        grid=grid,
        initial_arrays=arrays,
        train_config=ConfigRecord({"lr": context.run_config["lr"]}),
        num_rounds=context.run_config["num-server-rounds"],
    )
