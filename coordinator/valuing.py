"""The coordinator's side of a round's valuation: ask the validators, read their signed values.

After a round is aggregated, the updates the strategy built it from are valued
(``fedledger.valuation``): the ledger builds the round's candidate models — the FedAvg model of
each coalition of players the plan names — and asks every validator, the nodes whose update was
accepted this round, to evaluate all of them on the site's test rows and sign the losses it finds.

The candidates ride with the round's evaluation: a validator the wrapped strategy asks to evaluate
gets one ``evaluate`` message holding the new global model and the candidates, so that its
ClientApp starts once and its client mod answers both; a validator it does not ask gets a message
with the candidates alone, sent with the others. A reply that is missing, malformed, for other
candidates or signed by anyone but the node's own participant is recorded with the reason and
left out; the values of the others decide the scores.

A reply is data from a site that may be hostile: nothing in reading it may raise.
"""

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from logging import INFO

from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MessageType, RecordDict
from flwr.supercore import log

from fedledger import messages
from fedledger.coordinator.validation import CheckedReply
from fedledger.hashing import to_hex
from fedledger.signing import SigningDomain
from fedledger.valuation import (
    PreparedValuation,
    RoundValuation,
    ValidatorReport,
    ValuationSettings,
    conclude_valuation,
    prepare_valuation,
    verify_report,
)


@dataclass(frozen=True)
class PendingValuation:
    """A round's valuation between aggregation and the validators' answers.

    ``valued`` are the updates the strategy built the round's model from, in manifest order;
    ``validators`` the round's accepted replies, whose nodes are asked for their values.
    """

    round: int
    prepared: PreparedValuation
    valued: tuple[CheckedReply, ...]
    validators: tuple[CheckedReply, ...]

    @property
    def asks(self) -> bool:
        """Whether validators are asked: the round is within the budget and has any."""
        return self.prepared.failure is None and bool(self.validators)


class RoundValuer:
    """Values the selected updates of each round of one run with the validators' signed losses."""

    def __init__(self, settings: ValuationSettings, domain: SigningDomain, run_id: int) -> None:
        self.settings = settings
        self.domain = domain
        self.run_id = run_id

    def prepare(
        self,
        round_number: int,
        base: dict,
        base_hash: bytes,
        valued: Sequence[CheckedReply],
        validators: Sequence[CheckedReply],
    ) -> PendingValuation:
        """The round's players and candidate models, waiting for the validators' values."""
        prepared = prepare_valuation(
            self.settings, self.run_id, round_number, base, base_hash, [reply.as_update() for reply in valued]
        )
        if prepared.failure is not None:
            log(INFO, "round %d: %s", round_number, prepared.failure)
        return PendingValuation(round_number, prepared, tuple(valued), tuple(validators))

    def requests(self, pending: PendingValuation, evaluation: Iterable[Message], config: ConfigRecord) -> list[Message]:
        """The round's evaluation requests with the candidates added to those for validators,
        followed by a request with the candidates alone (and ``config``) for every validator the
        evaluation does not ask. Every request that carries candidates gets its own ConfigRecord
        naming the metric (``fedledger.valuation``); the others are returned as they are."""
        evaluation = list(evaluation)
        if not pending.asks:
            return evaluation
        candidates = {
            messages.candidate_record(index): ArrayRecord({name: Array(arrays[name]) for name in sorted(arrays)})
            for index, arrays in enumerate(pending.prepared.candidates())
        }
        validators = {validator.node_id for validator in pending.validators}
        evaluated = {message.metadata.dst_node_id for message in evaluation}
        sent = [
            self._with_candidates(message, candidates) if message.metadata.dst_node_id in validators else message
            for message in evaluation
        ]
        alone = RecordDict({messages.CONFIG_RECORD: config})
        for validator in pending.validators:
            if validator.node_id not in evaluated:
                request = Message(alone, dst_node_id=validator.node_id, message_type=MessageType.EVALUATE)
                sent.append(self._with_candidates(request, candidates))
        return sent

    def _with_candidates(self, message: Message, candidates: Mapping[str, ArrayRecord]) -> Message:
        """``message`` with the candidates and a copy of its config that names the metric; the
        content it shares with other requests is left untouched."""
        content = RecordDict(dict(message.content.items()))
        config = ConfigRecord(dict(message.content.config_records.get(messages.CONFIG_RECORD, ConfigRecord())))
        config[messages.CONFIG_VALUATION] = self.settings.metric
        content[messages.CONFIG_RECORD] = config
        for name, record in candidates.items():
            content[name] = record
        metadata = message.metadata
        return Message(
            content,
            dst_node_id=metadata.dst_node_id,
            message_type=metadata.message_type,
            group_id=metadata.group_id,
            ttl=metadata.ttl,
        )

    def conclude(self, pending: PendingValuation, replies: Mapping[int, Message]) -> tuple[RoundValuation, list[float]]:
        """The round's valuation record and one score per valued update, in order, from the
        validators' ``replies`` by node id (a validator without one was silent).

        Read the replies before the wrapped strategy sees them: ``for_strategy`` replaces their content.
        """
        participants = [reply.participant or "" for reply in pending.valued]
        if not pending.asks:
            return conclude_valuation(pending.prepared, participants, [])
        reports = [self._report(pending, validator, replies.get(validator.node_id)) for validator in pending.validators]
        valuation, scores = conclude_valuation(pending.prepared, participants, reports)
        rejected = [report for report in reports if not report.accepted]
        log(
            INFO,
            "round %d: valued %d updates as %d players with %d candidate models; %d of %d validators answered%s",
            pending.round,
            len(pending.valued),
            len(valuation.players),
            len(valuation.candidates),
            len(reports) - len(rejected),
            len(reports),
            "".join(f"; node {report.node_id}: {report.reason}" for report in rejected),
        )
        return valuation, scores

    def _report(self, pending: PendingValuation, validator: CheckedReply, reply: Message | None) -> ValidatorReport:
        participant = validator.participant
        report = ValidatorReport(node_id=validator.node_id, participant=participant, values=None, signature=None)
        if reply is None:
            return _rejected(report, "silent", "no reply within the round timeout")
        try:
            if reply.has_error():
                return _rejected(report, "client-error", f"the node replied with an error: {reply.error.reason}")
            ledger = reply.content.config_records.get(messages.LEDGER_RECORD)
            if not isinstance(ledger, ConfigRecord):
                return _rejected(report, "malformed", f"the reply has no {messages.LEDGER_RECORD!r} ConfigRecord")
            values = ledger.get(messages.VALUATION_VALUES)
            signature = ledger.get(messages.SIGNATURE)
            if not isinstance(values, list) or not all(
                isinstance(value, int | float) and not isinstance(value, bool) for value in values
            ):
                return _rejected(report, "malformed", f"{messages.VALUATION_VALUES!r} must be a list of numbers")
            if not isinstance(signature, bytes):
                return _rejected(report, "malformed", f"{messages.SIGNATURE!r} must be bytes")
            report = ValidatorReport(
                node_id=validator.node_id,
                participant=participant,
                values=tuple(float(value) for value in values),
                signature=to_hex(signature),
            )
        except Exception as error:  # whatever a site sends must not end the run
            return _rejected(report, "malformed", f"the reply cannot be read: {type(error).__name__}: {error}")
        problem = verify_report(
            self.domain,
            self.run_id,
            pending.round,
            self.settings.metric,
            pending.prepared.candidate_hashes,
            report,
            participant or "",
        )
        return report if problem is None else _rejected(report, "bad-valuation", problem)


def _rejected(report: ValidatorReport, reason: str, detail: str) -> ValidatorReport:
    return ValidatorReport(
        node_id=report.node_id,
        participant=report.participant,
        values=report.values,
        signature=report.signature,
        reason=reason,
        detail=detail,
    )
