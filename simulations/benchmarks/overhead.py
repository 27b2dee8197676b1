"""What the ledger costs: the same simulation with the ledger on and off, in one process.

    python -m fedledger.simulations.benchmarks.overhead [--scenario hospitals] [--rounds 10]
        [--repeats 5] [--warmup 1] [--reward-rule score|examples]

Each arm first runs ``--warmup`` times unrecorded (imports, compilation and caches are paid there,
not by whichever arm happens to go first). Then the arms alternate in pairs whose order flips
every repeat (on/off, off/on, ...), so that neither arm always follows the other and a machine
that slows down over time slows both alike. Each run's wall time is the whole simulation, Ray's
start included: with the ledger off, the app is plain Flower and keeps no time of its own.
``--reward-rule examples`` pays by example counts, so the ledger arm values no updates: the
difference from the default (``score``) is what the valuation costs.

Prints each run, each arm's median and spread (fastest to slowest run), the ratio of the medians,
the median and spread of the per-pair ratios, gas per round, and the peak resident memory of the
whole process tree.
"""

import argparse
import statistics
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from fedledger.simulations.benchmarks.measure import PeakMemory
from fedledger.simulations.runner import SimulationRequest, simulate_federation


@dataclass
class Arms:
    """The recorded wall times of each arm, pair by pair, and the gas of the ledger's commits."""

    on: list[float] = field(default_factory=list)
    off: list[float] = field(default_factory=list)
    gas: list[int] = field(default_factory=list)

    def pair_ratios(self) -> list[float]:
        return [on / off for on, off in zip(self.on, self.off, strict=True)]


def _spread(values: list[float]) -> str:
    return f"median {statistics.median(values):.3f}, spread {min(values):.3f} to {max(values):.3f}"


def pair_order(repeat: int) -> tuple[bool, bool]:
    """Which arm (ledger on: ``True``) runs first in pair ``repeat``: on first in even pairs, off first in odd."""
    return (True, False) if repeat % 2 == 0 else (False, True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="hospitals")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5, help="recorded pairs (one run of each arm)")
    parser.add_argument("--warmup", type=int, default=1, help="unrecorded runs of each arm before the pairs")
    parser.add_argument("--reward-rule", choices=("score", "examples"), default="score", help="the ledger arm's rule")
    arguments = parser.parse_args()
    if arguments.repeats < 1 or arguments.warmup < 0:
        parser.error("--repeats is at least 1 and --warmup at least 0")
    arms = Arms()
    with tempfile.TemporaryDirectory() as workdir, PeakMemory() as memory:

        def run(label: str, ledger: bool, record: bool) -> None:
            request = SimulationRequest(
                scenario=arguments.scenario,
                output_dir=Path(workdir) / f"{label}-{'on' if ledger else 'off'}" / "run",
                rounds=arguments.rounds,
                ledger=ledger,
                overrides={"reward_rule": arguments.reward_rule},
            )
            result = simulate_federation(request, on_round=lambda report: None)
            seconds = result.wall_time_seconds
            print(f"{label:<9} ledger {'on ' if ledger else 'off'}: simulation {seconds:6.2f} s", flush=True)
            if record:
                (arms.on if ledger else arms.off).append(seconds)
                arms.gas.extend(report.gas_used for report in result.summary.rounds if report.gas_used is not None)

        for warmup in range(arguments.warmup):
            for ledger in pair_order(warmup):
                run(f"warm-up {warmup + 1}", ledger, record=False)
        for repeat in range(arguments.repeats):
            for ledger in pair_order(repeat):
                run(f"pair {repeat + 1}", ledger, record=True)

    on, off = statistics.median(arms.on), statistics.median(arms.off)
    print(f"ledger on  (s): {_spread(arms.on)}")
    print(f"ledger off (s): {_spread(arms.off)}")
    print(f"ratio of the medians: {on / off:.3f}")
    print(f"ratio per pair: {_spread(arms.pair_ratios())} ({len(arms.on)} pairs)")
    print(f"gas per round {min(arms.gas):,} to {max(arms.gas):,} (commitRound, {len(arms.gas)} rounds)")
    print(f"peak resident memory of the process tree: {memory.peak_mib:,.0f} MiB")


if __name__ == "__main__":
    main()
