"""``ledger_mod``'s answer to a valuation request: the site's own evaluation of each candidate
model, signed.

After a round's aggregation the coordinator asks each validator how well candidate models do on
its own test rows. The request is an ``evaluate`` message whose config names the metric under
``fedledger.valuation`` and whose ArrayRecords are the candidates ``fedledger.candidate.0000``,
``fedledger.candidate.0001``, ..., and, when the site is also asked for the round's ordinary
evaluation, the model to evaluate. The mod answers it in the app's place: it runs the app's own
evaluate handler on the model, if any, and once per candidate, as for an ordinary evaluation of
that model, and replies with the app's evaluation, the values and the site's EIP-712 signature
over them (``fedledger.signing.ValuationMessage``). One request, so one ClientApp process per round
in a deployment, answers both.
"""

import math
import re
from copy import copy

from flwr.app import ArrayRecord, ConfigRecord, Context, Message, RecordDict
from flwr.clientapp.typing import ClientAppCallable

from fedledger import messages
from fedledger.client.identity import participant_signer
from fedledger.client.protocol import (
    LedgerRequest,
    UnsignableReply,
    arrays_hash,
    error_reply,
    metric_key,
    only_metrics,
)
from fedledger.errors import FedLedgerError
from fedledger.signing import ValuationMessage, valuation_results_hash

_CANDIDATE_NAME = re.compile(re.escape(messages.CANDIDATE_PREFIX) + r"\d{4}")


def valuation_reply(message: Message, context: Context, call_next: ClientAppCallable, config: ConfigRecord) -> Message:
    """Evaluate each candidate model of the valuation request ``message`` with the app's own
    evaluate handler (``call_next``), and reply with the values and their signature.

    Before the app runs, the mod reads the request's fields and the node's key, checks that the
    ArrayRecords are the candidates ``fedledger.candidate.0000``, ``.0001``, ... with no gap (at
    least one) and at most one other, the model of an ordinary evaluation, and hashes every
    candidate with the canonical encoding, so that an app that changes the arrays it is given
    changes nothing that is signed. A request with a model is first an ordinary evaluation: the
    app evaluates the model from the request without the candidates, and its reply is the one
    returned. Then, candidate by candidate in order, the mod calls the app with a message holding
    the candidate as ``arrays`` and the request's ``config``, under the request's metadata, and
    reads the metric named by ``fedledger.valuation`` from the reply's one MetricRecord (a finite
    int or float).

    The reply carries the ConfigRecord ``fedledger``: the participant, the signature of the
    EIP-712 valuation message (run, round, metric and ``valuation_results_hash`` of the candidates'
    hashes and the values) and ``valuation-values``, the values as floats in candidate order; with
    no model, it carries nothing else. An error reply from the app's ordinary evaluation is
    returned as it is. Anything else that goes wrong (a malformed request, no key, the app raising
    or answering a candidate with an error, no usable metric) makes the reply an error reply naming
    the candidate and what was wrong.
    """
    try:
        request = LedgerRequest.of(config)
        metric = metric_key(config, messages.CONFIG_VALUATION)
        signer = participant_signer(context.node_config, config)
        candidates, evaluation = _split(message)
        hashes = [arrays_hash(candidate, f"candidate {index}'s") for index, candidate in enumerate(candidates)]
    except (FedLedgerError, ValueError) as error:
        return error_reply(message, str(error))
    if evaluation is None:
        reply = Message(RecordDict(), reply_to=message)
    else:
        reply = call_next(Message(content=evaluation, metadata=copy(message.metadata)), context)
        if reply.has_error():
            return reply
    try:
        values = _values(message, context, call_next, candidates, metric)
        valuation = ValuationMessage(request.run_id, request.round, metric, valuation_results_hash(hashes, values))
        signature = signer.sign_valuation(request.domain, valuation)
    except (FedLedgerError, ValueError) as error:
        return error_reply(message, str(error))
    reply.content[messages.LEDGER_RECORD] = ConfigRecord(
        {messages.PARTICIPANT: signer.address, messages.SIGNATURE: signature, messages.VALUATION_VALUES: values}
    )
    return reply


def _split(message: Message) -> tuple[list[ArrayRecord], RecordDict | None]:
    """The request's candidate models in index order, and the request without them if it also
    carries a model to evaluate (one other ArrayRecord); ``None`` if it carries only candidates.

    Raises:
        UnsignableReply: no candidate, a gap in the indices, a misnamed candidate, or more than
            one other ArrayRecord.
    """
    records = message.content.array_records
    candidates = {name: record for name, record in records.items() if _CANDIDATE_NAME.fullmatch(name)}
    others = sorted(name for name in records if name not in candidates)
    misnamed = [name for name in others if name.startswith(messages.CANDIDATE_PREFIX)]
    if misnamed or len(others) > 1:
        raise UnsignableReply(
            f"the valuation request carries ArrayRecords other than candidate models: {misnamed or others}; "
            f"candidates are named {messages.candidate_record(0)!r}, {messages.candidate_record(1)!r}, ..., "
            "and one other ArrayRecord at most, the model to evaluate"
        )
    if not candidates:
        raise UnsignableReply(
            f"the valuation request carries no candidate model (an ArrayRecord {messages.candidate_record(0)!r})"
        )
    names = [messages.candidate_record(index) for index in range(len(candidates))]
    missing = [name for name in names if name not in candidates]
    if missing:
        raise UnsignableReply(
            f"the valuation request's {len(candidates)} candidates must be {names[0]!r} to {names[-1]!r}, "
            f"with no gap; missing: {missing}"
        )
    evaluation = None
    if others:
        evaluation = RecordDict({name: record for name, record in message.content.items() if name not in candidates})
    return [candidates[name] for name in names], evaluation


def _values(
    message: Message, context: Context, call_next: ClientAppCallable, candidates: list[ArrayRecord], metric: str
) -> list[float]:
    """The metric the app reports for each candidate, evaluated one after another.

    Raises:
        UnsignableReply: the app raised, answered with an error, or reported no finite number.
    """
    config = message.content[messages.CONFIG_RECORD]
    # Flower resets ``delivered_at`` of the metadata a message is built from: the candidates'
    # messages share one copy, and the request keeps its own.
    metadata = copy(message.metadata)
    values = []
    for index, candidate in enumerate(candidates):
        content = RecordDict({messages.ARRAYS_RECORD: candidate, messages.CONFIG_RECORD: config})
        try:
            reply = call_next(Message(content=content, metadata=metadata), context)
        except Exception as error:  # the app's handler may fail in any way; the reply names how
            raise UnsignableReply(f"the app raised on candidate {index}: {type(error).__name__}: {error}") from None
        values.append(_reported_value(reply, index, metric))
    return values


def _reported_value(reply: Message, index: int, metric: str) -> float:
    if reply.has_error():
        raise UnsignableReply(f"the app answered candidate {index} with an error: {reply.error.reason}")
    value = only_metrics(reply, f"reply to candidate {index}", metric).get(metric)
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        raise UnsignableReply(
            f"the MetricRecord of the reply to candidate {index} must hold {metric!r} as a finite number, got {value!r}"
        )
    return float(value)
