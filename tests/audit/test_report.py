"""What the report shows beyond the checks: chart axes, each round's commitment and transaction, each
participant's totals with the reason for a zero reward, and the run configuration."""

import json
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fedledger.audit.auditor import Auditor
from fedledger.audit.charts import nice_ticks, round_labels
from fedledger.audit.findings import AuditReport, Finding, ParticipantSummary, RoundAudit, RunAudit
from fedledger.audit.html import STATUSES, render_html
from fedledger.audit.participants import summarise_participants, update_outcomes
from fedledger.cli import app
from fedledger.hashing import to_hex
from fedledger.manifest import RoundManifest, UpdateEntry
from fedledger.runconfig import RunConfiguration
from fedledger.valuation import RoundValuation, ValidatorReport

HONEST, LAZY, FORGER, SILENT = (
    "0x1111111111111111111111111111111111111111",
    "0x2222222222222222222222222222222222222222",
    "0x3333333333333333333333333333333333333333",
    "0x4444444444444444444444444444444444444444",
)
HASH = "0x" + "ab" * 32


@pytest.mark.parametrize(
    ("rounds", "labelled"),
    [
        (1, ["1"]),
        (4, ["1", "2", "3", "4"]),
        (12, [str(number) for number in range(1, 13)]),
        (13, ["1", "2", "4", "6", "8", "10", "12"]),
        (30, ["1", "5", "10", "15", "20", "25", "30"]),
        (100, ["1", "10", "20", "30", "40", "50", "60", "70", "80", "90", "100"]),
        (200, ["1", "20", "40", "60", "80", "100", "120", "140", "160", "180", "200"]),
    ],
)
def test_rounds_are_labelled_every_round_up_to_twelve_then_in_round_steps(rounds: int, labelled: list[str]):
    labels = round_labels(rounds)
    assert len(labels) == rounds
    assert [label for label in labels if label] == labelled


@pytest.mark.parametrize(
    ("top", "integer", "ticks"),
    [
        (1.0, False, [0, 0.2, 0.4, 0.6, 0.8, 1.0]),
        (4, True, [0, 1, 2, 3, 4]),
        (2, True, [0, 1, 2]),
        (146_143, True, [0, 50_000, 100_000, 150_000]),
        (335.6, False, [0, 100, 200, 300, 400]),
        (0, False, [0, 0.2, 0.4, 0.6, 0.8, 1.0]),
    ],
)
def test_y_ticks_are_round_numbers_from_zero_past_the_top(top: float, integer: bool, ticks: list[float]):
    assert nice_ticks(top, integer) == pytest.approx(ticks)


def test_each_round_carries_its_committed_hashes_and_the_transaction_that_committed_it(finished_run):
    _, history = finished_run
    report = Auditor(history.registry, history.store).audit()
    (run,) = report.runs
    w3 = history.registry.chain.w3
    for audit in run.rounds:
        commitment = history.registry.committed_round(run.run_id, audit.round).commitment
        assert audit.model_hash == to_hex(commitment.model_hash)
        assert audit.manifest_hash == to_hex(commitment.manifest_hash)
        transaction = w3.eth.get_transaction(audit.commit_transaction)
        function, arguments = history.registry.contract.decode_function_input(transaction["input"])
        assert function.fn_name == "commitRound" and arguments["round"] == audit.round
        assert to_hex(arguments["record"]["manifestHash"]) == audit.manifest_hash
    config = RunConfiguration.from_bytes(history.store.get(history.registry.run(run.run_id).config_hash))
    assert run.configuration == config.to_json()


def test_the_json_output_carries_the_participants_claims_and_configuration(finished_run):
    directory, history = finished_run
    manifest = RoundManifest.from_bytes(
        history.store.get(history.registry.committed_round(history.run_id, 2).commitment.manifest_hash)
    )
    claimant = history.participants[1].address
    history.claim(1, 2, manifest.rewards[claimant], manifest.rewards)
    result = CliRunner().invoke(app, ["audit", "--simulation", str(directory), "--json"])
    assert result.exit_code == 0, result.output
    (run,) = json.loads(result.output)["runs"]
    assert run["configuration"]["strategy"] == {"name": "FedAvg", "params": {}}
    assert run["rounds"][1]["claimed"] == {claimant: manifest.rewards[claimant]}
    assert run["rounds"][1]["commit_transaction"].startswith("0x")
    assert [update["participant"] for update in run["rounds"][1]["updates"]] == [
        entry.participant for entry in manifest.updates
    ]
    summaries = {summary["participant"]: summary for summary in run["participants"]}
    assert set(summaries) == {account.address for account in history.participants}
    assert summaries[claimant]["claimed"] == manifest.rewards[claimant]
    assert all(summary["accepted"] == 3 and summary["unpaid"] is None for summary in summaries.values())


def _entry(node: int, participant: str, **fields: object) -> UpdateEntry:
    base = {"status": "accepted", "update_hash": HASH, "num_examples": 10, "selected": True, "score": 0.0}
    return UpdateEntry(node_id=node, participant=participant, **{**base, **fields})  # type: ignore[arg-type]


def _manifest(round_number: int, entries: list[UpdateEntry], valuation: RoundValuation | None) -> RoundManifest:
    return RoundManifest(
        chain_id=1,
        registry="0x5FbDB2315678afecb367f032d93F642f64180aa3",
        run_id=1,
        round=round_number,
        base_model_hash=HASH,
        model_hash=HASH,
        outcome="aggregated",
        strategy={"name": "FedAvg", "params": {}},
        updates=tuple(entries),
        updates_root=HASH,
        rewards_root=HASH,
        reproduction="verified",
        valuation=valuation,
    )


def _valued(losses: dict[str, tuple[float, ...]]) -> RoundValuation:
    """A valuation of two players, HONEST and LAZY, from each validator's losses on the candidates
    (), (0,), (1,), (0, 1)."""
    reports = tuple(
        ValidatorReport(node, participant, values, "0x00") for node, (participant, values) in enumerate(losses.items())
    )
    return RoundValuation(((HONEST,), (LAZY,)), ((), (0,), (1,), (0, 1)), (HASH,) * 4, reports, (0.1, 0.0), 0.1)


def test_a_zero_reward_is_explained_from_the_manifests():
    honest = _entry(0, HONEST, score=0.1, reward=100)
    forged = _entry(2, FORGER, status="rejected", reason="bad-signature", selected=None, score=None)
    # LAZY's own site sees its update alone make the loss worse; the others see it add nothing either.
    round_one = _manifest(
        1,
        [honest, _entry(1, LAZY), forged, _entry(3, SILENT, selected=False)],
        _valued({HONEST: (1.0, 0.8, 1.0, 0.8), LAZY: (1.0, 0.9, 1.1, 0.9)}),
    )
    # LAZY's own site improves with its update alone, but the others see the round's model no better with it.
    round_two = _manifest(
        2,
        [honest, _entry(1, LAZY), forged, _entry(3, SILENT, selected=False)],
        _valued({HONEST: (1.0, 0.8, 1.0, 0.8), LAZY: (1.0, 1.0, 0.9, 0.95)}),
    )
    # Not valued at all, and FORGER rejected for something else too.
    round_three = _manifest(
        3,
        [honest, _entry(1, LAZY), replace(forged, reason="anomalous")],
        RoundValuation(((HONEST,), (LAZY,)), (), (), (), (), None, "not valued: over the budget"),
    )
    rounds = []
    for manifest in (round_one, round_two, round_three):
        audit = RoundAudit(1, manifest.round, updates=update_outcomes(manifest))
        rounds.append(audit)
    rounds[0].claimed = {HONEST: 60}
    summaries = {summary.participant: summary for summary in summarise_participants(rounds)}

    assert summaries[HONEST] == ParticipantSummary(HONEST, [0], 3, {}, 3, pytest.approx(0.3), 300, 60, None)
    assert summaries[FORGER].rejected == {"anomalous": 1, "bad-signature": 2}
    assert summaries[FORGER].unpaid == "no update accepted: 3 rejected (1 anomalous, 2 bad-signature)"
    assert summaries[SILENT].unpaid == "never selected by the strategy (2 accepted, none aggregated)"
    assert summaries[LAZY].unpaid == (
        "every update scored 0: its own evaluation saw no improvement from its update alone (round 1); "
        "the other sites saw no improvement it added to the round's model (round 2); "
        "the round was not valued (not valued: over the budget) (round 3)"
    )
    assert [outcome.unpaid for outcome in rounds[0].updates] == [
        None,
        "scored 0: its own evaluation saw no improvement from its update alone",
        None,
        "not selected by the strategy",
    ]


def test_a_participant_whose_site_sent_no_valuation_report_is_told_so():
    manifest = _manifest(
        1, [_entry(0, HONEST, score=0.1, reward=5), _entry(1, LAZY)], _valued({HONEST: (1, 0.8, 1, 0.8)})
    )
    (_, lazy) = update_outcomes(manifest)
    assert lazy.unpaid == "scored 0: its own site sent no counted valuation report"


def test_the_page_shows_hashes_the_unpaid_reason_and_not_run_checks_in_their_colour():
    audit = RoundAudit(
        1,
        1,
        findings=[Finding("scores", "not-run", 1, 1, message="input missing: the update")],  # type: ignore[arg-type]
        model_hash="0x" + "01" * 32,
        manifest_hash="0x" + "02" * 32,
        commit_transaction="0x" + "03" * 32,
    )
    unpaid = ParticipantSummary(
        FORGER, [2], 0, {"bad-signature": 3}, 0, 0.0, 0, 0, "no update accepted: 3 rejected (bad-signature)"
    )
    run = RunAudit(1, rounds=[audit], planned_rounds=2, participants=[unpaid], configuration=None)
    page = render_html(AuditReport("in-process", 1, HONEST, "store", [run]))
    for digest in (audit.model_hash, audit.manifest_hash, audit.commit_transaction):
        assert f"<code class='hash'>{digest}</code>" in page
    assert "no update accepted: 3 rejected (bad-signature)" in page
    assert f"background:{STATUSES['not-run'][0]}' title='scores round 1: not-run'" in page
    assert "<code>not-run</code>" in page and "1 of 2 planned rounds committed: 1 never committed" in page
    assert "The run configuration could not be read" in page


def test_the_report_of_a_recorded_run_has_its_configuration_and_a_row_per_round(finished_run, tmp_path: Path):
    directory, history = finished_run
    page = tmp_path / "audit.html"
    result = CliRunner().invoke(app, ["audit", "--simulation", str(directory), "--report", str(page)])
    assert result.exit_code == 0, result.output
    text = page.read_text()
    config = history.store.get(history.registry.run(history.run_id).config_hash).decode()
    assert json.loads(config)["strategy"]["name"] == "FedAvg"
    assert config.replace('"', "&quot;") in text
    assert text.count("<tr><td>commit tx</td>") == 3
