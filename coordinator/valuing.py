"""The coordinator's side of a round's valuation: ask the validators, read their signed values.

After a round is aggregated, the updates the strategy built it from are valued
(``fedledger.valuation``): the ledger builds the round's candidate models — the FedAvg model of
each coalition of players the plan names — and sends all of them, in one ``evaluate`` message, to
every validator, the nodes whose update was accepted this round. Each validator's client mod
evaluates every candidate with the app's own evaluate handler on the site's test rows and signs
the losses it reports. A reply that is missing, malformed, for other candidates or signed by
anyone but the node's own participant is recorded with the reason and left out; the values of the
others decide the scores.

A reply is data from a site that may be hostile: nothing in reading it may raise.
"""

from collections.abc import Sequence
from logging import INFO

from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MessageType, RecordDict
from flwr.serverapp import Grid
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


class RoundValuer:
    """Values the selected updates of each round of one run with the validators' signed losses."""

    def __init__(self, settings: ValuationSettings, domain: SigningDomain, run_id: int) -> None:
        self.settings = settings
        self.domain = domain
        self.run_id = run_id

    def value(
        self,
        grid: Grid,
        round_number: int,
        base: dict,
        base_hash: bytes,
        valued: Sequence[CheckedReply],
        validators: Sequence[CheckedReply],
        config: ConfigRecord,
        timeout: float,
    ) -> tuple[RoundValuation, list[float]]:
        """The round's valuation record and one score per ``valued`` update, in order.

        ``config`` is the ConfigRecord the request carries (the app's evaluate config with the
        ledger's entries bound); ``validators`` are the round's accepted replies.
        """
        prepared = prepare_valuation(
            self.settings, self.run_id, round_number, base, base_hash, [reply.as_update() for reply in valued]
        )
        participants = [reply.participant or "" for reply in valued]
        if prepared.failure is not None:
            log(INFO, "round %d: %s", round_number, prepared.failure)
            return conclude_valuation(prepared, participants, [])
        requests = self._requests(prepared, validators, config)
        replies = {reply.metadata.src_node_id: reply for reply in grid.send_and_receive(requests, timeout=timeout)}
        reports = [
            self._report(round_number, prepared, validator, replies.get(validator.node_id)) for validator in validators
        ]
        valuation, scores = conclude_valuation(prepared, participants, reports)
        rejected = [report for report in reports if not report.accepted]
        log(
            INFO,
            "round %d: valued %d updates as %d players with %d candidate models; %d of %d validators answered%s",
            round_number,
            len(valued),
            len(valuation.players),
            len(valuation.candidates),
            len(reports) - len(rejected),
            len(reports),
            "".join(f"; node {report.node_id}: {report.reason}" for report in rejected),
        )
        return valuation, scores

    def _requests(
        self, prepared: PreparedValuation, validators: Sequence[CheckedReply], config: ConfigRecord
    ) -> list[Message]:
        """One request per validator, all carrying the same candidate records."""
        candidates = {
            messages.candidate_record(index): ArrayRecord({name: Array(arrays[name]) for name in sorted(arrays)})
            for index, arrays in enumerate(prepared.candidates())
        }
        request_config = ConfigRecord(dict(config))
        request_config[messages.CONFIG_VALUATION] = self.settings.metric
        return [
            Message(
                RecordDict({messages.CONFIG_RECORD: request_config, **candidates}),
                dst_node_id=validator.node_id,
                message_type=MessageType.EVALUATE,
            )
            for validator in validators
        ]

    def _report(
        self, round_number: int, prepared: PreparedValuation, validator: CheckedReply, reply: Message | None
    ) -> ValidatorReport:
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
            round_number,
            self.settings.metric,
            prepared.candidate_hashes,
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
