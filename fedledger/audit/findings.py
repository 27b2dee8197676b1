"""The outcome of an audit: one finding per check, grouped by round and run.

A finding's status is one of ``STATUSES``: ``pass``; ``fail`` (the check found a discrepancy);
``not-run`` (the check could not run because an input it needs is missing or unusable: a deleted
update, an unreadable manifest or run configuration; its message starts with ``input missing:``);
``needs-key`` (the check needs the plaintext of updates stored sealed, and the audit was given no
key that opens them; its message starts with ``needs a key:``); ``unsupported`` (the record asks
for something this auditor cannot do); ``not-checked`` (the check
has no rule to run: a strategy without a registered aggregation); ``incomplete`` (the run committed
fewer rounds than it planned); ``orphan`` (a store artifact of the run that no committed round
points to). Only ``pass`` counts as passed, and every finding but an orphan counts in the total.
The verdict of a run or a report is ``fail`` if any finding failed, did not run or was
unsupported, else ``incomplete`` if a run stopped short of its plan, a check had no rule to run or
needed a key, else ``pass``: orphans are listed, but do not change it."""

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Status = Literal["pass", "fail", "not-run", "needs-key", "unsupported", "not-checked", "incomplete", "orphan"]
#: What each status means, in the order a summary lists them.
STATUSES: dict[str, str] = {
    "pass": "the check held",
    "fail": "the check found a discrepancy",
    "not-run": "the check could not run: an input it needs is missing or unusable",
    "needs-key": "the check needs updates stored sealed, and no key given to the audit opens them",
    "unsupported": "the record asks for something this auditor cannot check",
    "not-checked": "no rule to check with (a strategy without a registered aggregation)",
    "incomplete": "planned rounds never committed",
    "orphan": "a store artifact no committed round points to (listed, not counted as a check)",
}
#: The version of ``AuditReport.to_json``'s layout (``docs/audit-report.schema.json``).
JSON_SCHEMA = "fedledger-audit/1"
Verdict = Literal["pass", "fail", "incomplete"]

#: Every check the auditor runs, and what it establishes.
CHECKS = {
    "run-config": "the run configuration is stored and hashes to the configHash recorded by startRun",
    "model-artifact": "the model a round committed (or the run's initial model) is stored and intact",
    "round-record": "the round's record (roots, manifest hash, counts, ε spent), read from its RoundCommitted log "
    "or the store, hashes to the commitment commitRound stored",
    "manifest-hash": "the stored manifest hashes to the committed manifestHash",
    "manifest-canonical": "the manifest is in canonical form (entries in order, canonical JSON)",
    "manifest-binding": "the manifest names this chain, registry, run, round, model and counts",
    "model-chain": "the round trained from the previous round's committed model (round 1: the initial model)",
    "update-hash": "every listed update is stored and hashes to its listed hash",
    "signature": "every accepted update's EIP-712 signature recovers to its listed participant",
    "registration": "every accepted participant was registered and active at the commit's block",
    "requests": "every node asked to train sent one of the listed replies or is listed as silent, and no other "
    "reply is listed; every silent or rejected evaluation node was asked",
    "updates-root": "updatesRoot rebuilds from the manifest's accepted updates",
    "rewards-root": "rewardsRoot rebuilds from the manifest's rewards",
    "anomaly": "the anomaly detector's statistics, and each update's response to the last global step, recompute "
    "from the stored updates, and its flags follow them",
    "scores": "every accepted update's contribution score recomputes from the stored updates and base model",
    "rewards": "the rewards are what the run's reward rule grants",
    "valuation-players": "the valuation's players are the Sybil clusters of the valued updates (single linkage "
    "within the Sybil distance)",
    "valuation-plan": "the valuation's coalitions are the valuation plan for its players, within the budget "
    "(a round over it: none, and the valuation says so)",
    "valuation-candidates": "every candidate model recomputes from the stored updates and hashes as recorded, bit "
    "for bit",
    "valuation-signatures": "the validators are the accepted updates' nodes; every counted report is signed by its "
    "node's participant, and no valid report was left out",
    "valuation-clip": "the valuation failed exactly when no report counted or the round was over the budget, and "
    "else its clip recomputes from the validators' signed reports",
    "valuation-contributions": "every player's contribution recomputes from the signed reports and the clip",
    "valuation-scores": "every accepted update's score is its share of its player's contribution (0 if not valued)",
    "reaggregation": "aggregating the accepted updates reproduces the committed modelHash bit for bit (central "
    "DP: the clipped updates plus the recorded noise)",
    "privacy-budget": "the privacy budget startRun recorded is the run configuration's",
    "privacy-epsilon": "every round's ε is what the accountant gives for the rounds released so far, and is what "
    "its commit carries",
    "privacy-local": "local DP: every accepted update is signed as clipped and noised with the run's clip norm "
    "and noise multiplier",
    "privacy-noise": "central DP: the recorded noise is stored, of the size the configuration promises for the "
    "round's aggregated updates, and passes a χ² test of that size (false-alarm rate 1e-6 per round)",
    "selection": "the accepted updates the manifest marks as aggregated are those the strategy selects "
    "(Krum, MultiKrum and Bulyan leave some out)",
    "claims": "no claim on-chain exceeds the manifest's amount or the round's budget",
    "rounds": "the run committed every round it plans (plannedRounds, as the registry holds it), and no more",
    "planned-rounds": "the run configuration plans (details.num_server_rounds) what the registry holds",
    "orphans": "every manifest of the run in the store is the committed manifest of its round, and every "
    "update or model such a manifest names is one a committed round points to",
    "app-bundle": "the run configuration records the Flower App Bundle the auditor approved (asked for with "
    "--app-bundle)",
}

#: The checks made once per run rather than once per round.
RUN_CHECKS = ("run-config", "app-bundle", "privacy-budget", "rounds", "planned-rounds", "orphans")


#: How the summary line names each status other than a pass (orphans are listed by run instead).
_SUMMARY_WORDS = {
    "fail": "failed",
    "not-run": "not run (input missing)",
    "needs-key": "need a key",
    "unsupported": "unsupported",
    "not-checked": "not checked (no rule)",
    "incomplete": "incomplete",
}


@dataclass(frozen=True)
class Finding:
    """What one check found for one run, round and (where it applies) participant."""

    check: str
    status: Status
    run_id: int
    round: int | None = None
    participant: str | None = None
    message: str = ""
    expected: str | None = None
    found: str | None = None

    def __str__(self) -> str:
        where = f"run {self.run_id}" + (f" round {self.round}" if self.round is not None else "")
        if self.participant:
            where += f" participant {self.participant}"
        text = f"{where} [{self.check}] {self.status.upper()}: {self.message}"
        if self.expected is not None or self.found is not None:
            text += f" (expected {self.expected}, found {self.found})"
        return text


def verdict_of(findings: Iterable[Finding]) -> Verdict:
    """``fail`` wins over ``incomplete`` (or ``not-checked``), which wins over ``pass``; orphans change nothing."""
    statuses = {finding.status for finding in findings}
    if statuses & {"fail", "not-run", "unsupported"}:
        return "fail"
    if statuses & {"incomplete", "not-checked", "needs-key"}:
        return "incomplete"
    return "pass"


@dataclass
class UpdateOutcome:
    """What became of one training reply of a round, as its manifest records it.

    Attributes:
        node_id: the Flower node that sent it.
        participant: the address it names (``None`` if none).
        status: ``accepted`` or ``rejected``.
        reason: the rejection code (``None`` when accepted).
        selected: for an accepted update, whether the strategy aggregated it; ``None`` when rejected.
        score: its contribution score (``None`` if not scored).
        reward: token base units granted.
        unpaid: why an accepted update was granted nothing, in words; ``None`` when it was paid or rejected.
    """

    node_id: int
    participant: str | None
    status: str
    reason: str | None
    selected: bool | None
    score: float | None
    reward: int
    unpaid: str | None = None


@dataclass
class ParticipantSummary:
    """One participant's updates and rewards over the committed rounds of a run.

    Attributes:
        participant: the address (``None`` for replies that named none, grouped by node).
        node_ids: the Flower nodes it sent from.
        accepted: its updates accepted.
        rejected: its updates rejected, counted by rejection code.
        selected: its accepted updates the strategy aggregated.
        score: the sum of its scores.
        reward: token base units granted, all rounds.
        claimed: token base units claimed on-chain, all rounds.
        unpaid: why it was granted nothing, in words; ``None`` when it was granted something.
    """

    participant: str | None
    node_ids: list[int] = field(default_factory=list)
    accepted: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    selected: int = 0
    score: float = 0.0
    reward: int = 0
    claimed: int = 0
    unpaid: str | None = None


@dataclass
class RoundAudit:
    """A committed round: its checks, the figures the report plots, what it committed (model and
    manifest hash, and the ``commitRound`` transaction, ``None`` where the node keeps no logs), what
    became of each update, and what each participant claimed of its reward (``claimed``: those who
    claimed anything)."""

    run_id: int
    round: int
    findings: list[Finding] = field(default_factory=list)
    outcome: str | None = None
    accepted: int = 0
    rejected: int = 0
    accuracy: float | None = None
    gas_used: int | None = None
    rewards: dict[str, int] = field(default_factory=dict)
    asked: int = 0
    silent: int = 0
    model_hash: str | None = None
    manifest_hash: str | None = None
    commit_transaction: str | None = None
    updates: list[UpdateOutcome] = field(default_factory=list)
    claimed: dict[str, int] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return all(finding.status == "pass" for finding in self.findings)


@dataclass
class RunAudit:
    """A run: its run-level findings (configuration, planned rounds, orphans) and its committed rounds.

    ``planned_rounds`` is what the registry holds; ``rerun_rounds`` are committed rounds the store
    holds another manifest for; ``configuration`` is the run configuration as stored (``None`` if it
    could not be read); ``participants`` sums each participant's updates and rewards.
    """

    run_id: int
    findings: list[Finding] = field(default_factory=list)
    rounds: list[RoundAudit] = field(default_factory=list)
    planned_rounds: int = 0
    rerun_rounds: list[int] = field(default_factory=list)
    configuration: dict[str, Any] | None = None
    participants: list[ParticipantSummary] = field(default_factory=list)

    @property
    def all_findings(self) -> list[Finding]:
        return self.findings + [finding for audit in self.rounds for finding in audit.findings]

    @property
    def orphans(self) -> list[Finding]:
        return [finding for finding in self.findings if finding.status == "orphan"]

    @property
    def verdict(self) -> Verdict:
        return verdict_of(self.all_findings)

    @property
    def passed(self) -> bool:
        return self.verdict == "pass"

    def progress(self) -> str:
        """Committed rounds against planned ones, e.g. ``7 of 10 planned rounds committed``."""
        return f"{len(self.rounds)} of {self.planned_rounds} planned rounds committed"


@dataclass
class AuditReport:
    """The verdict on a registry's history: ``pass`` only if every check of every round passed and
    every run committed the rounds it planned; a report with no run is a ``fail``."""

    chain: str
    chain_id: int
    registry: str
    store: str
    runs: list[RunAudit]

    @property
    def findings(self) -> list[Finding]:
        return [finding for run in self.runs for finding in run.all_findings]

    @property
    def verdict(self) -> Verdict:
        if not self.runs:
            return "fail"
        return verdict_of(self.findings)

    @property
    def passed(self) -> bool:
        return self.verdict == "pass"

    def problems(self) -> list[Finding]:
        """Every finding that is not a pass: failures, what could not be checked, missing rounds, orphans."""
        return [finding for finding in self.findings if finding.status != "pass"]

    def summary(self) -> str:
        """One line: the verdict, the checks passed (orphans are listed, not counted as checks), and every
        run that is short of its plan or has orphans."""
        counts = self.counts()
        total = sum(count for status, count in counts.items() if status != "orphan")
        head = f"{self.verdict.upper()}: {counts['pass']} of {total} checks passed"
        others = [f"{counts[status]} {_SUMMARY_WORDS[status]}" for status in _SUMMARY_WORDS if counts[status]]
        parts = [", ".join([head, *others])]
        for run in self.runs:
            if run.planned_rounds != len(run.rounds):
                parts.append(f"run {run.run_id}: {run.progress()}")
            if run.orphans:
                orphans = f"run {run.run_id}: {len(run.orphans)} store artifacts no committed round points to"
                if len(run.rerun_rounds) == 1:
                    orphans += f" (round {run.rerun_rounds[0]} was run again)"
                elif run.rerun_rounds:
                    orphans += f" (rounds {', '.join(map(str, run.rerun_rounds))} were run again)"
                parts.append(orphans)
        return "; ".join(parts)

    def counts(self) -> dict[str, int]:
        """How many findings have each status (every status listed, orphans included)."""
        counts = dict.fromkeys(STATUSES, 0)
        for finding in self.findings:
            counts[finding.status] += 1
        return counts

    def to_json(self) -> dict[str, Any]:
        """The report as ``docs/audit-report.schema.json`` describes it (layout ``JSON_SCHEMA``)."""
        return {
            "schema": JSON_SCHEMA,
            "verdict": self.verdict,
            "counts": self.counts(),
            "chain": self.chain,
            "chain_id": self.chain_id,
            "registry": self.registry,
            "store": self.store,
            "checks": CHECKS,
            "runs": [
                {
                    "run_id": run.run_id,
                    "verdict": run.verdict,
                    "planned_rounds": run.planned_rounds,
                    "committed_rounds": len(run.rounds),
                    "rerun_rounds": run.rerun_rounds,
                    "configuration": run.configuration,
                    "participants": [asdict(summary) for summary in run.participants],
                    "findings": [asdict(finding) for finding in run.findings],
                    "rounds": [
                        {
                            **asdict(audit),
                            "verdict": verdict_of(audit.findings),
                            "rerun": audit.round in run.rerun_rounds,
                        }
                        for audit in run.rounds
                    ],
                }
                for run in self.runs
            ],
        }


class FindingRecorder:
    """Appends the findings of one round's checks to its :class:`RoundAudit`."""

    def __init__(self, audit: RoundAudit) -> None:
        self.audit = audit
        self.sealed: str | None = None  # why the round's updates cannot be opened, in an audit without their key

    def _add(
        self,
        check: str,
        status: Status,
        message: str,
        expected: str | None = None,
        found: str | None = None,
        participant: str | None = None,
    ) -> None:
        self.audit.findings.append(
            Finding(check, status, self.audit.run_id, self.audit.round, participant, message, expected, found)
        )

    def ok(self, check: str, message: str, participant: str | None = None) -> None:
        self._add(check, "pass", message, participant=participant)

    def fail(
        self,
        check: str,
        message: str,
        expected: str | None = None,
        found: str | None = None,
        participant: str | None = None,
    ) -> None:
        self._add(check, "fail", message, expected, found, participant)

    def unsupported(self, check: str, message: str) -> None:
        self._add(check, "unsupported", message)

    def not_checked(self, check: str, message: str) -> None:
        self._add(check, "not-checked", message)

    def not_run(self, check: str, missing: str, participant: str | None = None) -> None:
        """The check could not run: ``missing`` names the input it needed that is missing or unusable.
        While ``sealed`` says the round's updates are sealed for keys the audit does not hold, that
        input is the plaintext a key would give: the finding is ``needs-key``."""
        if self.sealed is not None:
            self.needs_key(check, f"{self.sealed} ({missing})", participant)
        else:
            self._add(check, "not-run", f"input missing: {missing}", participant=participant)

    def needs_key(self, check: str, why: str, participant: str | None = None) -> None:
        """The check needs plaintext that only a key opens; ``why`` says what is sealed."""
        self._add(check, "needs-key", f"needs a key: {why}", participant=participant)

    def compare(self, check: str, expected: str, found: str, holds: str, fails: str) -> None:
        """Pass with ``holds`` when ``found == expected``, else fail with ``fails``."""
        if expected == found:
            self.ok(check, holds)
        else:
            self.fail(check, fails, expected, found)
