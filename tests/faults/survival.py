"""What every fault test asserts: the record survived the fault."""

from pathlib import Path

from fedledger.simulations.faults import PLANNED_ROUNDS, Fault


def assert_the_record_survives(fault: Fault, directory: Path) -> None:
    """Every planned round committed once, none the coordinator was told is mined lost, one run id
    (resumed as many times as the fault needs), and an audit that passes."""
    outcome = fault.run(directory)
    assert (outcome.planned, outcome.committed) == (PLANNED_ROUNDS, PLANNED_ROUNDS), outcome
    assert outcome.lost == 0, outcome
    assert outcome.committed_twice == 0, outcome
    assert (outcome.runs, outcome.resumed) == (1, fault.resumes), outcome
    assert outcome.verdict == "pass", outcome
