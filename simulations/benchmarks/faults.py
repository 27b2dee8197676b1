"""Faults injected into real runs, one row each: what was planned, committed, lost, committed twice, resumed.

    python -m fedledger.simulations.benchmarks.faults [--only NAME ...]

Every fault of ``simulations.faults`` runs a real coordinator process (four hospitals, six rounds)
and, where it applies, a real ``fedledger chain node``; the row is read off the registry and the
coordinator's own log of acknowledged commits afterwards, and the verdict is ``fedledger audit``'s.
"""

import argparse
import tempfile
from pathlib import Path

from fedledger.simulations.faults import FAULTS, FaultOutcome


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", help="Run only the fault whose name starts with this (repeatable).")
    arguments = parser.parse_args()
    chosen = [fault for fault in FAULTS if not arguments.only or any(fault.name.startswith(o) for o in arguments.only)]
    print(f"{'fault':<40} planned committed lost twice resumed runs  verdict   time")
    outcomes: list[FaultOutcome] = []
    with tempfile.TemporaryDirectory() as workdir:
        for index, fault in enumerate(chosen):
            directory = Path(workdir) / str(index)
            directory.mkdir()
            row = fault.run(directory)
            outcomes.append(row)
            print(
                f"{row.fault:<40} {row.planned:>7} {row.committed:>9} {row.lost:>4} {row.committed_twice:>5} "
                f"{row.resumed:>7} {row.runs:>4}  {row.verdict:<8} {row.wall_time_seconds:5.0f} s",
                flush=True,
            )
    clean = all(row.lost == 0 and row.committed_twice == 0 and row.verdict == "pass" for row in outcomes)
    if not clean:
        raise SystemExit("a fault lost a round, committed one twice, or left a record the audit does not pass")
    print("every fault: nothing lost, nothing committed twice, audit passed")


if __name__ == "__main__":
    main()
