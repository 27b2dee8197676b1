"""Federated accuracy and ROC-AUC beside the pooled baseline and each site training alone.

    python -m fedledger.simulations.benchmarks.accuracy [--scenarios hospitals banks] [--seed 0]

Each scenario runs with its default rounds on the Simulation Engine with the ledger on; the
baselines use the same model, optimiser, train/test splits and number of passes over the data.
"""

import argparse
import tempfile
from pathlib import Path

from fedledger.simulations.baselines import baselines
from fedledger.simulations.runner import SimulationRequest, simulate_federation


def _row(name: str, examples: int, accuracy: float, auc: float) -> str:
    return f"  {name:<28} {examples:>6} {100 * accuracy:>9.1f} {auc:>8.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", nargs="+", default=["hospitals", "banks"])
    parser.add_argument("--seed", type=int, default=0)
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        for scenario in arguments.scenarios:
            request = SimulationRequest(
                scenario=scenario, output_dir=Path(workdir) / scenario / "run", seed=arguments.seed
            )
            result = simulate_federation(request, on_round=lambda report: None)
            anchors = baselines(result.settings, result.data)
            settings = result.settings
            print(
                f"\n{scenario}: {len(result.sites)} sites, {settings.num_server_rounds} rounds x "
                f"{settings.local_epochs} local epoch(s), {settings.strategy}"
            )
            print(f"  {'model':<28} {'test':>6} {'accuracy%':>9} {'ROC-AUC':>8}")
            examples = sum(site.examples for site in result.sites)
            print(_row("federated (global model)", examples, result.pooled_accuracy, result.pooled_auc))
            print(_row("pooled (centralised)", anchors.pooled.examples, anchors.pooled.accuracy, anchors.pooled.auc))
            print(_row("each site alone", anchors.alone.examples, anchors.alone.accuracy, anchors.alone.auc))
            print(f"  per site: {'federated':>24} {'pooled':>16} {'alone':>16}")
            for site, pooled, alone in zip(result.sites, anchors.pooled_by_site, anchors.alone_by_site, strict=True):
                print(
                    f"  {site.name:<14} n={site.examples:<4} {100 * site.accuracy:6.1f}% {site.auc:5.3f}   "
                    f"{100 * pooled.accuracy:6.1f}% {pooled.auc:5.3f}   {100 * alone.accuracy:6.1f}% {alone.auc:5.3f}"
                )


if __name__ == "__main__":
    main()
