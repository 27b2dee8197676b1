"""What the ledger costs: the same simulation with the ledger on and off, in one run.

    python -m fedledger.simulations.benchmarks.overhead [--scenario hospitals] [--rounds 10] [--repeats 2]

Runs alternate (on, off, on, off, ...) so that a busy machine slows both alike. Prints each run's
wall time (the whole simulation, Ray's start included: with the ledger off the app is plain
Flower and keeps no time of its own), the ratio, gas per round and the peak resident memory of
the whole process tree.
"""

import argparse
import statistics
import tempfile
from pathlib import Path

from fedledger.simulations.benchmarks.measure import PeakMemory
from fedledger.simulations.runner import SimulationRequest, simulate_federation


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="hospitals")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=2)
    arguments = parser.parse_args()
    times: dict[bool, list[float]] = {True: [], False: []}
    gas: list[int] = []
    with tempfile.TemporaryDirectory() as workdir, PeakMemory() as memory:
        for repeat in range(arguments.repeats):
            for ledger in (True, False):
                request = SimulationRequest(
                    scenario=arguments.scenario,
                    output_dir=Path(workdir) / f"{repeat}-{ledger}" / "run",
                    rounds=arguments.rounds,
                    ledger=ledger,
                )
                result = simulate_federation(request, on_round=lambda report: None)
                times[ledger].append(result.wall_time_seconds)
                gas.extend(report.gas_used for report in result.summary.rounds if report.gas_used is not None)
                label = "on " if ledger else "off"
                print(f"run {repeat + 1} ledger {label}: simulation {result.wall_time_seconds:6.2f} s", flush=True)
    on, off = statistics.median(times[True]), statistics.median(times[False])
    print(f"simulation median ledger on {on:6.2f} s, off {off:6.2f} s, ratio {on / off:.3f}")
    print(f"gas per round {min(gas):,} to {max(gas):,} (commitRound, {len(gas)} rounds)")
    print(f"peak resident memory of the process tree: {memory.peak_mib:,.0f} MiB")


if __name__ == "__main__":
    main()
