"""The chain node fails mid-run (killed, restarted, gone past the retry budget): the record survives."""

from pathlib import Path

import pytest
from survival import assert_the_record_survives

from fedledger.simulations.faults import FAULTS, Fault

pytestmark = [pytest.mark.faults, pytest.mark.anvil]


@pytest.mark.parametrize("fault", [fault for fault in FAULTS if fault.name.startswith("chain node")], ids=str)
def test_the_record_survives(fault: Fault, tmp_path: Path):
    assert_the_record_survives(fault, tmp_path)
