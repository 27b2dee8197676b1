"""Faults injected into real runs (a coordinator process, a chain node process): each run still ends
with every planned round committed once, nothing the coordinator was told is mined lost, one run
id, and an audit that passes."""

from pathlib import Path

import pytest

from simulations.faults import FAULTS, PLANNED_ROUNDS, Fault

pytestmark = pytest.mark.faults


@pytest.mark.parametrize("fault", FAULTS, ids=lambda fault: fault.name)
def test_the_record_survives(fault: Fault, tmp_path: Path):
    outcome = fault.run(tmp_path)
    assert (outcome.planned, outcome.committed) == (PLANNED_ROUNDS, PLANNED_ROUNDS), outcome
    assert outcome.lost == 0, outcome
    assert outcome.committed_twice == 0, outcome
    assert (outcome.runs, outcome.resumed) == (1, fault.resumes), outcome
    assert outcome.verdict == "pass", outcome
