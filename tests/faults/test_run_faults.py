"""The coordinator is killed mid-run and resumed, or a site sends garbage every round: the record survives."""

from pathlib import Path

import pytest
from survival import assert_the_record_survives

from fedledger.simulations.faults import FAULTS, Fault

pytestmark = [pytest.mark.faults, pytest.mark.anvil]


@pytest.mark.parametrize("fault", [fault for fault in FAULTS if not fault.name.startswith("chain node")], ids=str)
def test_the_record_survives(fault: Fault, tmp_path: Path):
    assert_the_record_survives(fault, tmp_path)
