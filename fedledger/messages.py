"""The names client and coordinator use in Flower messages, defined once for both sides.

The coordinator adds the ``CONFIG_*`` entries to the ConfigRecord it sends with every training
and evaluation request. A client answers a training request with one ArrayRecord (its updated
arrays), one MetricRecord (``num-examples`` and ``train-loss``) and the ConfigRecord
``LEDGER_RECORD``, which carries what it signed and the signature.
"""

# ConfigRecord entries sent by the coordinator.
CONFIG_CHAIN_ID = "fedledger.chain-id"
CONFIG_REGISTRY = "fedledger.registry"
CONFIG_RUN_ID = "fedledger.run-id"
CONFIG_WEIGHT_KEY = "fedledger.weight-key"  # the MetricRecord key holding the example count
CONFIG_KEY_SEED = "fedledger.key-seed"  # simulated sites derive their keys from it
CONFIG_ROUND = "server-round"  # Flower's own key, set by every strategy
CONFIG_LOCAL_EPOCHS = "local-epochs"
CONFIG_BATCH_SIZE = "batch-size"
CONFIG_LEARNING_RATE = "learning-rate"
CONFIG_MOMENTUM = "momentum"
CONFIG_PROXIMAL_MU = "proximal-mu"  # set by Flower's FedProx
CONFIG_HIDDEN_UNITS = "hidden-units"
CONFIG_MODEL_SEED = "model-seed"
CONFIG_TEST_FRACTION = "test-fraction"
CONFIG_SPLIT_SEED = "split-seed"
CONFIG_SIMULATION_DATA_DIR = "simulation.data-dir"
CONFIG_SIMULATION_KEY_SEED = "simulation.key-seed"

# Records of a client's reply.
ARRAYS_RECORD = "arrays"
METRICS_RECORD = "metrics"
CONFIG_RECORD = "config"
LEDGER_RECORD = "fedledger"

# MetricRecord entries.
NUM_EXAMPLES = "num-examples"
TRAIN_LOSS = "train-loss"
EVAL_LOSS = "eval-loss"
EVAL_ACCURACY = "eval-accuracy"

# LEDGER_RECORD entries.
PARTICIPANT = "participant"
SIGNATURE = "signature"
SIGNED_RUN_ID = "run-id"
SIGNED_ROUND = "round"
SIGNED_BASE_MODEL_HASH = "base-model-hash"
SIGNED_UPDATE_HASH = "update-hash"
