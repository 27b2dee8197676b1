"""logreg: the ClientApp, which trains and tests the model on a site's own records."""

from flwr.app import Array, ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from fedledger.client import ledger_mod
from logreg.task import load_data
from logreg.task import test as test_fn
from logreg.task import train as train_fn

app = ClientApp(mods=[ledger_mod])


@app.train()
def train(msg: Message, context: Context) -> Message:
    """Train the received model on this site's training records."""
    arrays = {name: array.numpy() for name, array in msg.content["arrays"].items()}
    data = load_data(context.node_config["partition-id"], context.node_config["num-partitions"])

    trained, train_loss = train_fn(arrays, data, context.run_config["local-epochs"], msg.content["config"]["lr"])

    metrics = MetricRecord({"train-loss": train_loss, "num-examples": len(data.train_labels)})
    content = RecordDict(
        {"arrays": ArrayRecord({name: Array(value) for name, value in trained.items()}), "metrics": metrics}
    )
    return Message(content=content, reply_to=msg)


@app.evaluate()
def evaluate(msg: Message, context: Context) -> Message:
    """Test the received model on this site's held-out records."""
    arrays = {name: array.numpy() for name, array in msg.content["arrays"].items()}
    data = load_data(context.node_config["partition-id"], context.node_config["num-partitions"])

    eval_loss, eval_acc = test_fn(arrays, data)

    metrics = MetricRecord({"eval-loss": eval_loss, "eval-acc": eval_acc, "num-examples": len(data.test_labels)})
    return Message(content=RecordDict({"metrics": metrics}), reply_to=msg)
