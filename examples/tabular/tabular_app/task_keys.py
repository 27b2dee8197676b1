"""The names the tabular task uses in Flower messages: its training settings, sent by the
coordinator in the request's ConfigRecord ``config``, and the metrics its replies report.

They are the app's, not the ledger's: the ledger checks only that metric values are finite
numbers (see ``fedledger.messages`` for the names the ledger itself uses).
"""

# Flower's conventional record and entry names, which Flower's strategies send and read.
CONFIG = "config"  # the request's ConfigRecord
SERVER_ROUND = "server-round"  # the round, in every request's ConfigRecord
ARRAYS = "arrays"  # the model's ArrayRecord, in requests and training replies
METRICS = "metrics"  # a reply's MetricRecord
NUM_EXAMPLES = "num-examples"  # the example count FedAvg and its kin weigh replies by

# ConfigRecord entries of a request.
LOCAL_EPOCHS = "local-epochs"
BATCH_SIZE = "batch-size"
LEARNING_RATE = "learning-rate"
MOMENTUM = "momentum"
PROXIMAL_MU = "proximal-mu"  # set by Flower's FedProx
HIDDEN_UNITS = "hidden-units"
MODEL_SEED = "model-seed"
TEST_FRACTION = "test-fraction"
SPLIT_SEED = "split-seed"
SIMULATION_DATA_DIR = "simulation.data-dir"  # only in simulations: the directory of the sites' files

# MetricRecord entries of a reply.
TRAIN_LOSS = "train-loss"
EVAL_LOSS = "eval-loss"
EVAL_ACCURACY = "eval-accuracy"
