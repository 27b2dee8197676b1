"""Many sites: the same simulation with the ledger (audit included) and as plain Flower, by time and memory.

    python -m fedledger.simulations.benchmarks.scale [--sites 1000 10000] [--rounds 3] [--fraction 0.01]

For each site count, runs the synthetic scenario with ``--fraction`` of the sites sampled per
round, once with the ledger (the in-process chain; every site registered, every round committed,
then the run audited) and once as plain Flower (the ledger off), each in its own process, so
that each arm's peak resident memory is its own process tree's. Neither arm evaluates the final
model on every site afterwards (plain Flower records none to evaluate). Prints each arm's wall time
(process start to end, imports included) and peak memory, and the ledger's ratios.
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from fedledger.simulations.benchmarks.measure import PeakMemory

SCENARIO = "synthetic"


def run_arm(sites: int, rounds: int, fraction: float, ledger: bool, output_dir: Path) -> dict[str, object]:
    """Run one arm in this process; what it reports (the audit's verdict with the ledger)."""
    from fedledger.simulations.runner import SimulationRequest, audit_result, simulate_federation

    request = SimulationRequest(
        scenario=SCENARIO,
        output_dir=output_dir,
        rounds=rounds,
        clients=sites,
        fraction_train=fraction,
        ledger=ledger,
    )
    result = simulate_federation(
        request, on_round=lambda report: print(f"round {report.round} done", flush=True), evaluate_final=False
    )
    verdict = audit_result(result).verdict if ledger else None
    return {"simulation_seconds": result.wall_time_seconds, "verdict": verdict}


def measure_arm(sites: int, rounds: int, fraction: float, ledger: bool, workdir: Path) -> dict[str, object]:
    """Run one arm in a child process; its wall time, peak memory and report."""
    command = [sys.executable, "-m", "fedledger.simulations.benchmarks.scale", "--arm", "on" if ledger else "off"]
    command += ["--sites", str(sites), "--rounds", str(rounds), "--fraction", str(fraction)]
    command += ["--output-dir", str(workdir / f"{sites}-{'on' if ledger else 'off'}")]
    started = time.perf_counter()
    with PeakMemory() as memory:
        completed = subprocess.run(command, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if completed.returncode != 0:
        raise RuntimeError(f"the {'ledger' if ledger else 'plain Flower'} arm failed:\n{completed.stderr[-4000:]}")
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    return {**report, "seconds": seconds, "peak_mib": memory.peak_mib}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sites", type=int, nargs="+", default=[1_000, 10_000])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--fraction", type=float, default=0.01)
    parser.add_argument("--arm", choices=("on", "off"), help=argparse.SUPPRESS)
    parser.add_argument("--output-dir", type=Path, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.arm is not None:
        (sites,) = arguments.sites
        report = run_arm(sites, arguments.rounds, arguments.fraction, arguments.arm == "on", arguments.output_dir)
        print(json.dumps(report))
        return
    print(f"{SCENARIO} scenario, {arguments.rounds} rounds, {arguments.fraction:.0%} of the sites sampled per round")
    with tempfile.TemporaryDirectory() as workdir:
        for sites in arguments.sites:
            arms = {
                ledger: measure_arm(sites, arguments.rounds, arguments.fraction, ledger, Path(workdir))
                for ledger in (False, True)
            }
            for ledger, figures in arms.items():
                audit = f", audit {figures['verdict']}" if ledger else ""
                print(
                    f"{sites:>6,} sites, ledger {'on ' if ledger else 'off'}: {figures['seconds']:8.1f} s "
                    f"(simulation {figures['simulation_seconds']:.1f} s{audit}), peak {figures['peak_mib']:,.0f} MiB",
                    flush=True,
                )
            on, off = arms[True], arms[False]
            print(
                f"{sites:>6,} sites: time ratio {on['seconds'] / off['seconds']:.2f} (target 1.10), "
                f"memory ratio {on['peak_mib'] / off['peak_mib']:.2f} (target 1.25)",
                flush=True,
            )


if __name__ == "__main__":
    main()
