"""The ledger's client side as a Flower mod: sign training replies, tag evaluation replies, answer
valuation requests (``fedledger.client.valuation``).

Add it to any ClientApp: ``ClientApp(mods=[ledger_mod])``. The app keeps its own model, data and
handlers; the mod sees only Flower records and arrays, so it works for any model (it imports
NumPy, never torch).
"""

from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, MessageType
from flwr.app.user_config import UserConfig
from flwr.clientapp.typing import ClientAppCallable

from fedledger import messages
from fedledger.client.identity import participant_address, participant_signer
from fedledger.client.protocol import (
    LedgerRequest,
    UnsignableReply,
    arrays_hash,
    error_reply,
    metric_key,
    only_metrics,
)
from fedledger.client.valuation import valuation_reply
from fedledger.errors import FedLedgerError
from fedledger.privacy import privatise
from fedledger.signer import Signer
from fedledger.signing import PRIVACY_PARAMETER_SCALE, SigningDomain, UpdateMessage

#: The largest example count an update message can sign (EIP-712 ``uint64``).
MAX_EXAMPLES = 2**64 - 1
#: Node-config keys that pin the registry and the chain a site signs for (both optional).
NODE_REGISTRY = "fedledger.registry"
NODE_CHAIN_ID = "fedledger.chain-id"
#: Node-config key of a site that applies local differential privacy whatever the run asks: the
#: smallest noise multiplier it accepts (optional).
NODE_MIN_NOISE_MULTIPLIER = "fedledger.dp-min-noise-multiplier"


def ledger_mod(message: Message, context: Context, call_next: ClientAppCallable) -> Message:
    """Sign every training reply, tag every evaluation reply and answer every valuation request for
    the FedLedger coordinator.

    The ledger strategy on the server asks each site to vouch for its update: which run, round and
    global model it trained from, which arrays it sends and how many examples they come from. This
    mod does that for any ClientApp, without knowing its model:

    - on a ``train`` message it hashes the received arrays with the canonical encoding
      (``fedledger.encoding``) *before* the app runs (the app may change them in place), lets the
      app train, hashes the reply's arrays, reads the example count from the reply's MetricRecord
      under the request's ``fedledger.weight-key`` (``num-examples`` by default), signs the EIP-712
      update message (``fedledger.signing``) and adds the ConfigRecord ``fedledger`` with the
      participant, the signature and the signed fields; in a run with local differential privacy
      (the request names a clip norm and a noise multiplier) it first clips the reply's change from
      the received model to the clip norm and adds Gaussian noise (``fedledger.privacy.privatise``),
      and signs the parameters it applied with the update (a ``PrivateUpdate``);
    - on an ``evaluate`` message it adds the ConfigRecord ``fedledger`` with the participant's
      address;
    - on an ``evaluate`` message whose config names a metric under ``fedledger.valuation`` (a
      valuation request) it runs the app's evaluate handler on the request's model, if it carries
      one, and once for each candidate model, and adds to the app's reply (or answers, in the app's
      place) the metric for each candidate and its signature over them
      (``fedledger.client.valuation.valuation_reply``);
    - every other message, and every request without ``fedledger.run-id`` in its ConfigRecord
      ``config`` (a plain Flower run), passes through untouched.

    A reply the app answered with an error passes through as it is. A training reply the mod
    cannot sign (not exactly one ArrayRecord or MetricRecord, no positive integer example count,
    arrays the canonical encoding does not support) and a missing or unusable key (no keystore,
    wrong password) become an error reply naming what was wrong, which the coordinator records
    as ``client-error``.

    The key comes from the node config: ``keystore``, the path of an encrypted keystore whose
    password is in ``$FEDLEDGER_KEYSTORE_PASSWORD``; in a simulation without one, a key derived
    from the request's ``fedledger.key-seed`` and the node's ``partition-id``
    (``fedledger.client.identity``).

    A site can pin what it signs for: with ``fedledger.registry`` and/or ``fedledger.chain-id`` in
    its node config, the mod answers a training, evaluation or valuation request for any other
    registry or chain with an error reply naming both values, before the app runs. A site then
    signs only for the registry it approved. With ``fedledger.dp-min-noise-multiplier`` in its
    node config, it refuses every training request that does not ask for local DP with at least
    that noise multiplier: its updates never leave it without that much noise.

    Notes
    -----
    Put it before (outside) every mod that changes the reply's arrays or metrics (Flower's
    clipping and local DP mods): Flower's first mod in ``mods`` is the outermost, so ledger_mod
    then sees the reply last and signs what is sent::

        app = ClientApp(mods=[ledger_mod, fixedclipping_mod])

    A mod placed before it in ``mods`` sees the signed reply; one that changes it there breaks
    the signature.

    Parameters
    ----------
    message : Message
        The request from the server.
    context : Context
        The node's context; its ``node_config`` names the key.
    call_next : ClientAppCallable
        The next mod, or the app's handler.

    Returns
    -------
    Message
        The app's reply with the ledger's ConfigRecord ``fedledger`` added, or an error reply.
    """
    config = message.content.config_records.get(messages.CONFIG_RECORD)
    if config is None or messages.CONFIG_RUN_ID not in config:
        return call_next(message, context)
    category = message.metadata.message_type.split(".", 1)[0]
    if category in (MessageType.TRAIN, MessageType.EVALUATE):
        refusal = _outside_pins(context.node_config, config)
        if refusal is not None:
            return error_reply(message, refusal)
    if category == MessageType.TRAIN:
        return _signed_training_reply(message, context, call_next, config)
    if category == MessageType.EVALUATE and messages.CONFIG_VALUATION in config:
        return valuation_reply(message, context, call_next, config)
    if category == MessageType.EVALUATE:
        return _tagged_evaluation_reply(message, context, call_next, config)
    return call_next(message, context)


def _outside_pins(node_config: UserConfig, config: ConfigRecord) -> str | None:
    """Why the request is for a registry or chain other than the node config pins, or ``None``."""
    pinned_registry = node_config.get(NODE_REGISTRY)
    if pinned_registry is not None:
        requested = config.get(messages.CONFIG_REGISTRY)
        if not isinstance(requested, str) or str(pinned_registry).lower() != requested.lower():
            return (
                f"this node signs only for registry {pinned_registry} (node config {NODE_REGISTRY!r}); "
                f"the request is for registry {requested}"
            )
    pinned_chain = node_config.get(NODE_CHAIN_ID)
    if pinned_chain is not None:
        requested = config.get(messages.CONFIG_CHAIN_ID)
        if str(pinned_chain) != str(requested):
            return (
                f"this node signs only for chain {pinned_chain} (node config {NODE_CHAIN_ID!r}); "
                f"the request is for chain {requested}"
            )
    return None


def _signed_training_reply(
    message: Message, context: Context, call_next: ClientAppCallable, config: ConfigRecord
) -> Message:
    try:
        request = LedgerRequest.of(config)
        weight_key = metric_key(config, messages.CONFIG_WEIGHT_KEY, messages.NUM_EXAMPLES)
        signer = participant_signer(context.node_config, config)
        clip_norm, noise_multiplier = _local_privacy(context.node_config, config)
        received = _only_arrays(message, "request")
        base_model_hash = arrays_hash(received, "the request's")
        base = {name: received[name].numpy().copy() for name in received} if noise_multiplier else {}
    except FedLedgerError as error:
        return error_reply(message, str(error))
    reply = call_next(message, context)
    if reply.has_error():
        return reply
    try:
        if noise_multiplier:
            _privatise_reply(reply, base, clip_norm, noise_multiplier)
        update = UpdateMessage(
            run_id=request.run_id,
            round=request.round,
            base_model_hash=base_model_hash,
            update_hash=arrays_hash(_only_arrays(reply, "reply"), "the reply's"),
            num_examples=_example_count(reply, weight_key),
            clip_norm=clip_norm,
            noise_multiplier=noise_multiplier,
        )
        ledger = ledger_record(signer, request.domain, update)
    except (FedLedgerError, ValueError) as error:
        return error_reply(message, str(error))
    reply.content[messages.LEDGER_RECORD] = ledger
    return reply


def _tagged_evaluation_reply(
    message: Message, context: Context, call_next: ClientAppCallable, config: ConfigRecord
) -> Message:
    try:
        address = participant_address(context.node_config, config)
    except FedLedgerError as error:
        return error_reply(message, str(error))
    reply = call_next(message, context)
    if not reply.has_error():
        reply.content[messages.LEDGER_RECORD] = ConfigRecord({messages.PARTICIPANT: address})
    return reply


def ledger_record(signer: Signer, domain: SigningDomain, update: UpdateMessage) -> ConfigRecord:
    """The ConfigRecord a signed training reply carries: the participant, its EIP-712 signature of
    ``update`` for ``domain``, and the signed fields the coordinator checks the reply against."""
    record = ConfigRecord(
        {
            messages.PARTICIPANT: signer.address,
            messages.SIGNATURE: signer.sign_update(domain, update),
            messages.SIGNED_RUN_ID: update.run_id,
            messages.SIGNED_ROUND: update.round,
            messages.SIGNED_BASE_MODEL_HASH: update.base_model_hash,
            messages.SIGNED_UPDATE_HASH: update.update_hash,
        }
    )
    if update.private:
        record[messages.SIGNED_CLIP_NORM] = update.clip_norm
        record[messages.SIGNED_NOISE_MULTIPLIER] = update.noise_multiplier
    return record


def _local_privacy(node_config: UserConfig, config: ConfigRecord) -> tuple[int, int]:
    """The (clip norm, noise multiplier), in millionths, the request asks the site to apply; (0, 0)
    for none.

    Raises:
        UnsignableReply: the two are not both positive integers or both absent, or the site's own
            ``fedledger.dp-min-noise-multiplier`` asks for more noise than the request.
    """
    clip_norm = config.get(messages.CONFIG_DP_CLIP_NORM, 0)
    noise_multiplier = config.get(messages.CONFIG_DP_NOISE_MULTIPLIER, 0)
    for key, value in (
        (messages.CONFIG_DP_CLIP_NORM, clip_norm),
        (messages.CONFIG_DP_NOISE_MULTIPLIER, noise_multiplier),
    ):
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**64:
            raise UnsignableReply(f"the request's {key!r} must be a non-negative integer (millionths), got {value!r}")
    if (clip_norm == 0) != (noise_multiplier == 0):
        raise UnsignableReply("the request names only one of the local-DP clip norm and noise multiplier")
    floor = node_config.get(NODE_MIN_NOISE_MULTIPLIER)
    if floor is not None and noise_multiplier < float(floor) * PRIVACY_PARAMETER_SCALE:
        asked = (
            "no local DP" if not noise_multiplier else f"noise multiplier {noise_multiplier / PRIVACY_PARAMETER_SCALE}"
        )
        raise UnsignableReply(
            f"this node sends updates only under local DP with a noise multiplier of at least {floor} "
            f"(node config {NODE_MIN_NOISE_MULTIPLIER!r}); the request asks for {asked}"
        )
    return clip_norm, noise_multiplier


def _privatise_reply(reply: Message, base: dict, clip_norm: int, noise_multiplier: int) -> None:
    """Replace the reply's arrays by their clipped and noised version (``fedledger.privacy.privatise``).

    Raises:
        UnsignableReply: the reply's arrays are not those of the received model (names, shapes, dtypes).
    """
    record = _only_arrays(reply, "reply")
    name = next(iter(reply.content.array_records))
    arrays = {key: record[key].numpy() for key in record}
    if sorted(arrays) != sorted(base) or any(
        arrays[key].shape != base[key].shape or arrays[key].dtype != base[key].dtype for key in base
    ):
        raise UnsignableReply("the reply's arrays are not those of the received model: they cannot be clipped")
    noised = privatise(base, arrays, clip_norm, noise_multiplier)
    reply.content[name] = ArrayRecord({key: Array(noised[key]) for key in record})


def _only_arrays(message: Message, what: str) -> ArrayRecord:
    records = message.content.array_records
    if len(records) != 1:
        raise UnsignableReply(f"the {what} carries {len(records)} ArrayRecords; the ledger signs exactly one")
    return next(iter(records.values()))


def _example_count(reply: Message, weight_key: str) -> int:
    value = only_metrics(reply, "reply", weight_key).get(weight_key)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value <= MAX_EXAMPLES:
        raise UnsignableReply(
            f"the reply's MetricRecord must hold the example count {weight_key!r} as a positive integer, got {value!r}"
        )
    return value
