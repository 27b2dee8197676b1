"""The price of privacy: final accuracy and ROC-AUC against the privacy budget ε, central and local DP.

    python -m fedledger.simulations.benchmarks.privacy [--scenarios hospitals banks] [--epsilons 1 3 8]
        [--seed 0] [--delta 1e-5]

For each scenario (its default sites and rounds, FedAvg, the ledger on, rewards by example counts)
it runs the federation without differential privacy (ε = ∞), then with central and with local DP at
each ε, the noise calibrated so that the planned rounds spend at most ε at δ; every run is audited.
Beside them: the pooled baseline (one model trained on every site's training rows together). The
clip norm is the scenario's ``CLIP_NORMS`` entry, about the median norm of an honest update's
change to the model in round 1, so that clipping leaves most honest updates whole.
"""

import argparse
import tempfile
from pathlib import Path

from fedledger.simulations.baselines import baselines
from fedledger.simulations.runner import SimulationRequest, SimulationResult, audit_result, simulate_federation

#: The clip norm of each scenario: about the median L2 norm of an honest round-1 update's change.
CLIP_NORMS = {"hospitals": 0.3, "banks": 0.3, "synthetic": 1.0, "synthetic-iid": 1.0}


def _run(scenario: str, workdir: Path, seed: int, name: str, overrides: dict[str, object]) -> SimulationResult:
    request = SimulationRequest(
        scenario=scenario,
        output_dir=workdir / scenario / name,
        seed=seed,
        overrides={"reward_rule": "examples", **overrides},
    )
    return simulate_federation(request, on_round=lambda report: None)


def _row(mode: str, epsilon: str, multiplier: str, accuracy: float, auc: float, verdict: str) -> str:
    return f"  {mode:<10} {epsilon:>6} {multiplier:>10} {100 * accuracy:>9.1f} {auc:>8.3f}  {verdict}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", nargs="+", default=["hospitals", "banks"])
    parser.add_argument("--epsilons", nargs="+", type=float, default=[1.0, 3.0, 8.0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--delta", type=float, default=1e-5)
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        workdir = Path(directory)
        for scenario in arguments.scenarios:
            clip = CLIP_NORMS[scenario]
            plain = _run(scenario, workdir, arguments.seed, "plain", {})
            settings = plain.settings
            print(
                f"\n{scenario}: {len(plain.sites)} sites, {settings.num_server_rounds} rounds, {settings.strategy}, "
                f"clip norm {clip}, δ={arguments.delta:g}",
                flush=True,
            )
            print(f"  {'mode':<10} {'ε':>6} {'noise mult':>10} {'accuracy%':>9} {'ROC-AUC':>8}  audit")
            pooled = baselines(settings, plain.data).pooled
            print(_row("pooled", "-", "-", pooled.accuracy, pooled.auc, "(no federation)"))
            verdict = audit_result(plain).verdict
            print(_row("none", "∞", "-", plain.pooled_accuracy, plain.pooled_auc, verdict), flush=True)
            for mode in ("central", "local"):
                for epsilon in arguments.epsilons:
                    overrides = {"dp": mode, "dp_epsilon": epsilon, "dp_delta": arguments.delta, "dp_clip": clip}
                    result = _run(scenario, workdir, arguments.seed, f"{mode}-{epsilon:g}", overrides)
                    audit = audit_result(result)
                    privacy = audit.runs[0].configuration.get("privacy") or {}
                    multiplier = f"{privacy.get('noise_multiplier', float('nan')):.4g}"
                    print(
                        _row(
                            mode, f"{epsilon:g}", multiplier, result.pooled_accuracy, result.pooled_auc, audit.verdict
                        ),
                        flush=True,
                    )


if __name__ == "__main__":
    main()
