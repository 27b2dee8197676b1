"""The audit of a round's valuation: a valuation the coordinator computed passes every check, and
each kind of tampering fails the check it concerns, with real signatures throughout."""

from dataclasses import dataclass, replace

import numpy as np
import pytest

from fedledger.aggregation import WeightedUpdate
from fedledger.audit.findings import CHECKS, FindingRecorder, RoundAudit
from fedledger.audit.valuation import ValuedRound, check_valuation
from fedledger.encoding import model_hash
from fedledger.hashing import to_hex
from fedledger.manifest import UpdateEntry
from fedledger.signing import SigningDomain, ValuationMessage, sign_valuation, valuation_results_hash
from fedledger.valuation import (
    PreparedValuation,
    RoundValuation,
    ValidatorReport,
    ValuationSettings,
    conclude_valuation,
    prepare_valuation,
)

from helpers import participant_key

DOMAIN = SigningDomain(chain_id=31337, registry="0x5FbDB2315678afecb367f032d93F642f64180aa3")
RUN, ROUND = 4, 3
SETTINGS = ValuationSettings(budget=16)
VALUATION_CHECKS = [check for check in CHECKS if check.startswith("valuation-")]
BASE = {"w": np.zeros((3, 2), np.float32), "b": np.zeros(2, np.float32)}


def flat(model: dict[str, np.ndarray]) -> np.ndarray:
    return np.concatenate([model["b"].astype(np.float64), model["w"].astype(np.float64).ravel()])


def arrays(delta: list[float]) -> dict[str, np.ndarray]:
    values = np.array(delta, np.float32)
    return {"b": values[:2], "w": values[2:].reshape(3, 2)}


@dataclass
class ValuedFixture:
    prepared: PreparedValuation
    valuation: RoundValuation
    round_: ValuedRound

    def audit(self, valuation: RoundValuation | None = None, **changes: object) -> dict[str, list]:
        """The findings of ``check_valuation``, by check."""
        audit = RoundAudit(RUN, ROUND)
        check_valuation(valuation or self.valuation, SETTINGS, replace(self.round_, **changes), FindingRecorder(audit))
        findings: dict[str, list] = {}
        for finding in audit.findings:
            findings.setdefault(finding.check, []).append(finding)
        return findings


def sign(index: int, node_id: int, hashes: tuple[bytes, ...], values: list[float]) -> ValidatorReport:
    account = participant_key(index)
    message = ValuationMessage(RUN, ROUND, SETTINGS.metric, valuation_results_hash(hashes, values))
    return ValidatorReport(
        node_id, account.address, tuple(values), to_hex(sign_valuation(DOMAIN, message, account.key))
    )


@pytest.fixture
def valued() -> ValuedFixture:
    """Five accepted updates: three sites, a Sybil copy of site 1, and one the strategy left out
    (node 14, which still validates, alone). Each validator reports the squared distance to its
    site's test optimum; site 3's update alone moves away from its own, so its own group gates it to 0."""
    rng = np.random.default_rng(8)
    targets = [rng.normal(size=8) for _ in range(4)]
    deltas = [0.5 * targets[0], 0.5 * targets[1], 0.5 * targets[1], 0.5 * targets[2]]
    weights = [40, 25, 25, 60]
    updates = [WeightedUpdate(arrays(list(delta)), weight) for delta, weight in zip(deltas, weights, strict=True)]
    prepared = prepare_valuation(SETTINGS, RUN, ROUND, BASE, model_hash(BASE), updates)
    assert prepared.players == ((0,), (1, 2), (3,))
    participants = [participant_key(index).address for index in range(5)]
    reports = []
    for index, target in enumerate([targets[0], targets[1], targets[1], -targets[2], targets[3]]):
        losses = [float(np.sum((flat(model) - target) ** 2)) for model in prepared.candidates()]
        reports.append(sign(index, 10 + index, prepared.candidate_hashes, losses))
    valuation, scores = conclude_valuation(prepared, participants[:4], reports)
    entries = [
        UpdateEntry(10 + index, "accepted", participants[index], num_examples=weight, score=score)
        for index, (weight, score) in enumerate(zip(weights, scores, strict=True))
    ]
    left_out = UpdateEntry(14, "accepted", participants[4], num_examples=30, score=0.0)
    round_ = ValuedRound(
        RUN,
        ROUND,
        model_hash(BASE),
        DOMAIN,
        accepted=[*entries, left_out],
        valued=entries,
        base=BASE,
        updates=[update.arrays for update in updates],
    )
    return ValuedFixture(prepared, valuation, round_)


def statuses(findings: dict[str, list], check: str) -> set[str]:
    return {finding.status for finding in findings[check]}


def test_a_valuation_as_computed_passes_every_check(valued: ValuedFixture):
    findings = valued.audit()
    assert sorted(findings) == sorted(VALUATION_CHECKS)
    assert all(statuses(findings, check) == {"pass"} for check in VALUATION_CHECKS), findings
    assert sum(contribution > 0 for contribution in valued.valuation.contributions) >= 2


def test_a_changed_clip_fails_the_clip(valued: ValuedFixture):
    findings = valued.audit(replace(valued.valuation, clip=(valued.valuation.clip or 0) * 2))
    assert statuses(findings, "valuation-clip") == {"fail"}
    assert statuses(findings, "valuation-signatures") == {"pass"}


def test_a_report_changed_after_signing_fails_its_signature(valued: ValuedFixture):
    reports = list(valued.valuation.validators)
    changed = list(reports[1].values or ())
    changed[2] -= 0.5
    reports[1] = replace(reports[1], values=tuple(changed))
    findings = valued.audit(replace(valued.valuation, validators=tuple(reports)))
    [failure] = findings["valuation-signatures"]
    assert failure.status == "fail" and "node 11" in failure.message and failure.participant == reports[1].participant


def test_a_report_signed_by_another_key_than_the_nodes_participant_fails(valued: ValuedFixture):
    reports = list(valued.valuation.validators)
    reports[0] = sign(7, 10, valued.prepared.candidate_hashes, list(reports[0].values or ()))
    findings = valued.audit(replace(valued.valuation, validators=tuple(reports)))
    [failure] = findings["valuation-signatures"]
    assert failure.status == "fail" and "not the node's" in failure.message


def test_a_valid_report_left_out_fails(valued: ValuedFixture):
    reports = list(valued.valuation.validators)
    reports[2] = replace(reports[2], reason="bad-signature", detail="claimed")
    findings = valued.audit(replace(valued.valuation, validators=tuple(reports)))
    assert statuses(findings, "valuation-signatures") == {"fail"}
    assert "valid report was left out" in findings["valuation-signatures"][0].message


def test_a_validator_missing_from_the_record_fails(valued: ValuedFixture):
    findings = valued.audit(replace(valued.valuation, validators=valued.valuation.validators[:-1]))
    assert "each once" in findings["valuation-signatures"][0].message


def test_a_changed_contribution_fails_the_contributions(valued: ValuedFixture):
    contributions = list(valued.valuation.contributions)
    paid = next(index for index, contribution in enumerate(contributions) if contribution > 0)
    contributions[paid] *= 1.5
    findings = valued.audit(replace(valued.valuation, contributions=tuple(contributions)))
    assert statuses(findings, "valuation-contributions") == {"fail"}
    assert statuses(findings, "valuation-clip") == {"pass"}


def test_a_contribution_paid_past_the_gate_fails(valued: ValuedFixture):
    """A player whose own group sees its update alone not improve is recorded as paid: its
    contribution does not recompute."""
    contributions = list(valued.valuation.contributions)
    assert contributions[2] == 0.0
    contributions[2] = valued.valuation.clip or 0
    findings = valued.audit(replace(valued.valuation, contributions=tuple(contributions)))
    assert statuses(findings, "valuation-contributions") == {"fail"}


def test_a_changed_score_fails_for_its_participant(valued: ValuedFixture):
    entries = list(valued.round_.valued)
    entries[3] = replace(entries[3], score=(entries[3].score or 0) + 0.01)
    left_out = replace(valued.round_.accepted[4], score=0.2)
    findings = valued.audit(valued=entries, accepted=[*entries, left_out])
    failed = {finding.participant for finding in findings["valuation-scores"] if finding.status == "fail"}
    assert failed == {entries[3].participant, left_out.participant}


def test_a_changed_candidate_hash_fails_the_candidates(valued: ValuedFixture):
    candidates = list(valued.valuation.candidates)
    candidates[3] = to_hex(bytes(32))
    findings = valued.audit(replace(valued.valuation, candidates=tuple(candidates)))
    assert [finding.message for finding in findings["valuation-candidates"]] == [
        "candidate 3 is not its coalition's model"
    ]


def test_a_changed_plan_fails(valued: ValuedFixture):
    findings = valued.audit(replace(valued.valuation, coalitions=valued.valuation.coalitions[::-1]))
    assert statuses(findings, "valuation-plan") == {"fail"}


def test_a_plan_without_the_singletons_fails(valued: ValuedFixture):
    kept = [index for index, coalition in enumerate(valued.valuation.coalitions) if len(coalition) != 1]
    leave_one_out_only = replace(
        valued.valuation,
        coalitions=tuple(valued.valuation.coalitions[index] for index in kept),
        candidates=tuple(valued.valuation.candidates[index] for index in kept),
    )
    findings = valued.audit(leave_one_out_only)
    assert statuses(findings, "valuation-plan") == {"fail"}
    assert statuses(findings, "valuation-candidates") == {"pass"}, "each kept candidate is still its coalition's model"


def test_sybils_recorded_as_separate_players_fail(valued: ValuedFixture):
    players = valued.valuation.players
    split = (players[0], players[1][:1], players[1][1:], players[2])
    findings = valued.audit(replace(valued.valuation, players=split))
    assert statuses(findings, "valuation-players") == {"fail"}
    assert "1 and 2" in findings["valuation-players"][0].message


@pytest.mark.parametrize("missing", ["base", "updates"])
def test_models_missing_from_the_store_do_not_run_and_the_rest_is_checked(valued: ValuedFixture, missing: str):
    findings = valued.audit(**{missing: None})
    for check in ("valuation-players", "valuation-candidates"):
        [finding] = findings[check]
        assert finding.status == "not-run" and finding.message.startswith("input missing: ")
        assert "not usable from the store" in finding.message
    for check in (
        "valuation-plan",
        "valuation-signatures",
        "valuation-clip",
        "valuation-contributions",
        "valuation-scores",
    ):
        assert statuses(findings, check) == {"pass"}


def test_a_failed_valuation_passes_only_if_no_report_counted_and_nothing_is_paid(valued: ValuedFixture):
    reports = tuple(
        ValidatorReport(report.node_id, None, None, None, "silent") for report in valued.valuation.validators
    )
    failed = replace(
        valued.valuation, validators=reports, contributions=(), clip=None, failure="no validator report counted"
    )
    unpaid = [replace(entry, score=0.0) for entry in valued.round_.valued]
    findings = valued.audit(failed, valued=unpaid, accepted=[*unpaid, valued.round_.accepted[4]])
    assert all(statuses(findings, check) == {"pass"} for check in VALUATION_CHECKS), findings
    paid = valued.audit(failed)
    assert statuses(paid, "valuation-scores") == {"fail"}
    hidden = valued.audit(replace(valued.valuation, contributions=(), clip=None, failure="claimed"), valued=unpaid)
    assert statuses(hidden, "valuation-clip") == {"fail"}


def test_a_round_over_the_budget_passes_only_unvalued_and_unasked(valued: ValuedFixture):
    tight = ValuationSettings(budget=7)  # three players need eight candidates
    prepared = prepare_valuation(tight, RUN, ROUND, BASE, model_hash(BASE), valued.prepared.updates)
    participants = [entry.participant or "" for entry in valued.round_.valued]
    over, scores = conclude_valuation(prepared, participants, [])
    unpaid = [replace(entry, score=score) for entry, score in zip(valued.round_.valued, scores, strict=True)]
    accepted = [*unpaid, valued.round_.accepted[4]]

    def audit(valuation: RoundValuation, settings: ValuationSettings = tight, **changes: object) -> dict[str, list]:
        audit = RoundAudit(RUN, ROUND)
        round_ = replace(valued.round_, valued=unpaid, accepted=accepted, **changes)
        check_valuation(valuation, settings, round_, FindingRecorder(audit))
        findings: dict[str, list] = {}
        for finding in audit.findings:
            findings.setdefault(finding.check, []).append(finding)
        return findings

    findings = audit(over)
    assert all(statuses(findings, check) == {"pass"} for check in VALUATION_CHECKS), findings
    assert (
        findings["valuation-plan"][0].message
        == "not valued: 3 players need 8 candidate models, more than the budget of 7"
    )
    asked = audit(replace(over, validators=valued.valuation.validators))
    assert statuses(asked, "valuation-signatures") == {"fail"}
    assert statuses(audit(replace(over, failure="not valued")), "valuation-plan") == {"fail"}
    refused = audit(over, SETTINGS)  # within the budget of 16, the round had to be valued
    assert statuses(refused, "valuation-plan") == {"fail"} and statuses(refused, "valuation-signatures") == {"fail"}


@pytest.mark.parametrize("linked", [True, False])
def test_a_pair_at_the_sybil_threshold_may_be_linked_or_not(linked: bool):
    # Deltas 0 and 1 are 1.0 apart; the median norm is 10, so the threshold 0.1 * 10 is 1.0 too.
    deltas = [[10, 0, 0, 0, 0, 0, 0, 0], [10, 1, 0, 0, 0, 0, 0, 0], [0, 10, 0, 0, 0, 0, 0, 0]]
    updates = [WeightedUpdate(arrays(delta), 1) for delta in deltas]
    settings = ValuationSettings(budget=16)
    prepared = prepare_valuation(settings, RUN, ROUND, BASE, model_hash(BASE), updates)
    assert prepared.players == ((0, 1), (2,))
    participants = [participant_key(index).address for index in range(3)]
    players = ((participants[0], participants[1]), (participants[2],))
    if not linked:
        players = ((participants[0],), (participants[1],), (participants[2],))
    entries = [UpdateEntry(index, "accepted", participants[index], num_examples=1) for index in range(3)]
    valuation = RoundValuation(players, (), (), (), ())
    round_ = ValuedRound(RUN, ROUND, model_hash(BASE), DOMAIN, entries, entries, BASE, [u.arrays for u in updates])
    audit = RoundAudit(RUN, ROUND)
    check_valuation(valuation, settings, round_, FindingRecorder(audit))
    [players_finding] = [finding for finding in audit.findings if finding.check == "valuation-players"]
    assert players_finding.status == "pass", players_finding
    tighter = ValuationSettings(budget=16, sybil_distance=0.2)  # threshold 2.0: the pair is surely linked
    audit = RoundAudit(RUN, ROUND)
    check_valuation(valuation, tighter, round_, FindingRecorder(audit))
    [players_finding] = [finding for finding in audit.findings if finding.check == "valuation-players"]
    assert players_finding.status == ("pass" if linked else "fail")
