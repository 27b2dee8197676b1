"""Poisoning and free-riding against each defence: accuracy, detection and who gets paid.

    python -m fedledger.simulations.benchmarks.attacks [--scenario banks] [--clients 10] [--rounds 10]
        [--fractions 0.1 0.3] [--attacks sign-flip scaling ...] [--defences FedAvg detector Krum ...]

For every attack and share of malicious clients it runs the federation once per defence: FedAvg
undefended, FedAvg with the anomaly detector, and each robust strategy (Krum, MultiKrum, Bulyan,
FedMedian, FedTrimmedAvg, configured for the number of attackers; Bulyan for at most
(clients - 3) / 4). It prints the final accuracy and ROC-AUC on the honest sites' test rows, the
detector's precision and recall over all rounds, and the share of the rewards paid to attackers.
A clean run measures the detector's false-positive rate.
"""

import argparse
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path

from fedledger.chain import Registry
from fedledger.keys import simulated_participant
from fedledger.manifest import RoundManifest
from fedledger.simulations.adversaries import ATTACKS, choose_attackers
from fedledger.simulations.runner import SimulationRequest, SimulationResult, simulate_federation
from fedledger.store import ArtifactStore

DEFENCES = ("FedAvg", "detector", "Krum", "MultiKrum", "Bulyan", "FedMedian", "FedTrimmedAvg")


@dataclass(frozen=True)
class Outcome:
    accuracy: float
    auc: float
    true_flags: int
    false_flags: int
    missed: int
    honest_seen: int
    attacker_reward_share: float


def _request(
    scenario: str, clients: int, rounds: int, attack: str | None, fraction: float, defence: str, output_dir: Path
) -> SimulationRequest:
    attackers = len(choose_attackers(clients, fraction, 0)) if attack else 0
    overrides: dict[str, object] = {}
    if defence in ("Krum", "MultiKrum"):
        overrides = {"num_malicious_nodes": attackers, "num_nodes_to_select": clients - attackers}
    elif defence == "Bulyan":
        overrides = {"num_malicious_nodes": min(attackers, (clients - 3) // 4)}
    elif defence == "FedTrimmedAvg":
        overrides = {"trim_beta": min(max(fraction, 0.1), 0.45)}
    return SimulationRequest(
        scenario=scenario,
        clients=clients,
        rounds=rounds,
        output_dir=output_dir,
        strategy="FedAvg" if defence in ("FedAvg", "detector") else defence,
        attack=attack,
        malicious=fraction if attack else 0.0,
        detector=defence == "detector",
        overrides=overrides,
    )


def _outcome(result: SimulationResult, attackers: set[str]) -> Outcome:
    ledger = result.summary.ledger
    if ledger is None:
        raise ValueError("the attack benchmark runs with the ledger on: its outcome is read from the record")
    registry, store = Registry(result.chain, ledger.registry), ArtifactStore(ledger.store)
    true_flags = false_flags = missed = honest_seen = 0
    paid_attackers = paid = 0
    for number in range(1, registry.run(ledger.run_id).committed_rounds + 1):
        manifest_hash = registry.committed_round(ledger.run_id, number).commitment.manifest_hash
        for entry in RoundManifest.from_bytes(store.get(manifest_hash)).updates:
            flagged = entry.reason == "anomalous"
            if entry.participant in attackers:
                true_flags += flagged
                missed += not flagged
                paid_attackers += entry.reward
            else:
                false_flags += flagged
                honest_seen += 1
            paid += entry.reward
    share = paid_attackers / paid if paid else 0.0
    return Outcome(result.pooled_accuracy, result.pooled_auc, true_flags, false_flags, missed, honest_seen, share)


def _ratio(numerator: int, denominator: int) -> str:
    return f"{100 * numerator / denominator:5.1f}%" if denominator else "    - "


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="banks")
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.1, 0.3])
    parser.add_argument("--attacks", nargs="+", default=list(ATTACKS), choices=ATTACKS)
    parser.add_argument("--defences", nargs="+", default=list(DEFENCES), choices=DEFENCES)
    arguments = parser.parse_args()

    header = (
        f"{'attack':<15} {'mal':>4} {'defence':<14} {'acc%':>6} {'AUC':>6} {'precision':>9} {'recall':>7} "
        f"{'reward to attackers':>20}"
    )
    with tempfile.TemporaryDirectory() as workdir:
        clean = {}
        for defence in ("FedAvg", "detector"):
            request = _request(
                arguments.scenario,
                arguments.clients,
                arguments.rounds,
                None,
                0.0,
                defence,
                Path(workdir) / f"clean-{defence}",
            )
            clean[defence] = _outcome(simulate_federation(request, lambda report: None), set())
        detector = clean["detector"]
        print(f"{arguments.scenario}, {arguments.clients} clients, {arguments.rounds} rounds")
        print(
            f"clean run: FedAvg accuracy {100 * clean['FedAvg'].accuracy:.1f}%, AUC {clean['FedAvg'].auc:.3f}; "
            f"with the detector {100 * detector.accuracy:.1f}%, AUC {detector.auc:.3f}; false-positive rate "
            f"{_ratio(detector.false_flags, detector.honest_seen).strip()} "
            f"({detector.false_flags} of {detector.honest_seen} honest updates flagged)",
            flush=True,
        )
        print(header)
        for attack in arguments.attacks:
            for fraction in arguments.fractions:
                chosen = choose_attackers(arguments.clients, fraction, 0)
                attackers = {simulated_participant(0, index).address for index in chosen}
                for defence in arguments.defences:
                    request = _request(
                        arguments.scenario,
                        arguments.clients,
                        arguments.rounds,
                        attack,
                        fraction,
                        defence,
                        Path(workdir) / f"{attack}-{fraction}-{defence}",
                    )
                    outcome = _outcome(simulate_federation(request, lambda report: None), attackers)
                    detection = defence == "detector"
                    precision = (
                        _ratio(outcome.true_flags, outcome.true_flags + outcome.false_flags) if detection else "   - "
                    )
                    recall = _ratio(outcome.true_flags, outcome.true_flags + outcome.missed) if detection else "   - "
                    auc = f"{outcome.auc:.3f}" if not math.isnan(outcome.auc) else "  -  "
                    print(
                        f"{attack:<15} {len(chosen):>4} {defence:<14} {100 * outcome.accuracy:6.1f} {auc:>6} "
                        f"{precision:>9} {recall:>7} {100 * outcome.attacker_reward_share:19.1f}%",
                        flush=True,
                    )


if __name__ == "__main__":
    main()
