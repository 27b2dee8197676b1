"""The names the ledger adds to Flower messages, defined once for the client mod and the coordinator.

Requests. Every training and evaluation request carries Flower's ConfigRecord ``CONFIG_RECORD``
(with Flower's ``CONFIG_ROUND``). The ledger strategy adds the ``fedledger.*`` entries below: the
chain, registry and run a training reply is signed for, the MetricRecord key that holds a reply's
example count (``CONFIG_WEIGHT_KEY``: the wrapped strategy's ``weighted_by_key``,
``NUM_EXAMPLES`` when absent), when sites use keys derived for a simulation,
``CONFIG_KEY_SEED``, and in a run with local differential privacy the clip norm and noise
multiplier each site applies (``CONFIG_DP_CLIP_NORM``, ``CONFIG_DP_NOISE_MULTIPLIER``, integers in
millionths). Every other entry belongs to the app.

Training reply. Exactly one ArrayRecord (any name; Flower's convention is ``ARRAYS_RECORD``), one
MetricRecord (any name; convention ``METRICS_RECORD``) holding the weight key as a positive
integer, and the ConfigRecord ``LEDGER_RECORD`` that the client mod
(``fedledger.client.ledger_mod``) adds: ``PARTICIPANT``, ``SIGNATURE`` and the ``SIGNED_*`` fields
of the EIP-712 update message (``fedledger.signing``), the local-DP ones included when the site
clipped and noised its update.

Evaluation reply. One MetricRecord holding the weight key, and ``LEDGER_RECORD`` with
``PARTICIPANT``.

Valuation request. An ``evaluate`` message whose config also holds ``CONFIG_VALUATION`` (the
metric to report) and whose ArrayRecords are the candidate models, named ``CANDIDATE_PREFIX``
followed by their index (four digits), and, when it is also the site's evaluation request of the
round, the model to evaluate. Its reply carries ``LEDGER_RECORD`` with ``PARTICIPANT``,
``SIGNATURE`` (over the EIP-712 valuation message) and ``VALUATION_VALUES``, the metric for each
candidate in order; with a model to evaluate, it is also that evaluation's reply.

Every other metric is the app's own: any finite number, or list of numbers, is accepted.
"""

# Flower's records and keys.
CONFIG_RECORD = "config"
CONFIG_ROUND = "server-round"  # set by every Flower strategy
ARRAYS_RECORD = "arrays"
METRICS_RECORD = "metrics"
NUM_EXAMPLES = "num-examples"  # Flower's default weighted_by_key: the weight key when none is sent

# ConfigRecord entries the ledger strategy adds to every request.
CONFIG_CHAIN_ID = "fedledger.chain-id"
CONFIG_REGISTRY = "fedledger.registry"
CONFIG_RUN_ID = "fedledger.run-id"
CONFIG_WEIGHT_KEY = "fedledger.weight-key"
CONFIG_KEY_SEED = "fedledger.key-seed"  # only in simulations whose sites derive their keys
CONFIG_VALUATION = "fedledger.valuation"  # only in valuation requests: the metric to report
CONFIG_DP_CLIP_NORM = "fedledger.dp-clip-norm"  # only under local DP, in millionths
CONFIG_DP_NOISE_MULTIPLIER = "fedledger.dp-noise-multiplier"  # only under local DP, in millionths

# The candidate models of a valuation request: CANDIDATE_PREFIX + index, zero-padded to four digits.
CANDIDATE_PREFIX = "fedledger.candidate."

# The ConfigRecord the client mod adds to a reply, and its entries.
LEDGER_RECORD = "fedledger"
PARTICIPANT = "participant"
SIGNATURE = "signature"
SIGNED_RUN_ID = "run-id"
SIGNED_ROUND = "round"
SIGNED_BASE_MODEL_HASH = "base-model-hash"
SIGNED_UPDATE_HASH = "update-hash"
SIGNED_CLIP_NORM = "clip-norm"  # only from a site that applied local DP
SIGNED_NOISE_MULTIPLIER = "noise-multiplier"
VALUATION_VALUES = "valuation-values"


def candidate_record(index: int) -> str:
    """The ArrayRecord name of a valuation request's candidate model number ``index`` (from 0)."""
    return f"{CANDIDATE_PREFIX}{index:04d}"
