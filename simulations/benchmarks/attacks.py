"""Poisoning, collusion, Sybils and free-riding against each defence: accuracy, detection and who gets paid.

    python -m fedledger.simulations.benchmarks.attacks [--scenarios banks hospitals] [--clients 10]
        [--rounds 10] [--fractions 0.1 0.3] [--attacks alie sybil ...] [--defences detector Krum ...]
        [--jobs 2]

For every scenario, attack and share of malicious sites it runs the federation once per defence:
FedAvg undefended, the default defences (FedAvg with the anomaly detector and the default scoring,
``detector``), and each robust strategy (Krum, MultiKrum, Bulyan, FedMedian, FedTrimmedAvg,
configured for the number of attackers; Bulyan for at most (clients - 3) / 4). ``--clients`` is the
number of sites of every scenario that can be split that way; hospitals always has its 4.

Clean runs give each defence's baseline and, with the default defences, each site's total reward,
the detector's false-positive rate and, with one more clean run per site that leaves it out, each
site's leave-one-site-out value: the pooled test log-loss (all sites' test rows) of the final model
trained without it, minus that of the clean run. Every attacked run reports the final accuracy and
ROC-AUC on the honest sites' test rows and their change from the clean run on the same rows (and,
in the closing table, from the clean run without the attacking sites, trained on the honest
sites' data alone: what a perfect defence would keep), the detector's precision and recall, and
the attackers' share of all rewards; for ``sybil``, also that share over the share its training
site (the lowest of its partitions) earned in the clean run. The
closing table checks the default defences against their targets.

Runs go ``--jobs`` at a time, each in its own process (a Flower simulation each); if they cannot,
the rest run one at a time.
"""

import argparse
import math
import multiprocessing
import tempfile
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fedledger.chain import Registry
from fedledger.encoding import decode_model
from fedledger.hashing import from_hex
from fedledger.keys import simulated_participant
from fedledger.manifest import RoundManifest
from fedledger.simulations.adversaries import ATTACKS, choose_attackers
from fedledger.simulations.runner import SimulationRequest, SimulationResult, prepare_data, simulate_federation
from fedledger.simulations.scenarios import SCENARIOS
from fedledger.store import ArtifactStore
from tabular_app.metrics import accuracy, roc_auc
from tabular_app.models import TabularClassifier
from tabular_app.site import load_site
from tabular_app.training import evaluate

DEFENCES = ("FedAvg", "detector", "Krum", "MultiKrum", "Bulyan", "FedMedian", "FedTrimmedAvg")
DEFAULT_DEFENCES = "detector"
#: The targets the default defences are held to.
MAX_ATTACKER_SHARE = 0.02
MAX_SYBIL_RATIO = 1.1
MAX_HONEST_CHANGE_POINTS = 1.0
MAX_FALSE_POSITIVE_RATE = 0.02
FALSE_POSITIVE_TARGET_SCENARIOS = ("banks",)


@dataclass(frozen=True)
class Run:
    """One simulation of the benchmark: clean (``attack`` is ``None``), attacked, or clean without one site."""

    scenario: str
    clients: int
    rounds: int
    defence: str
    attack: str | None = None
    fraction: float = 0.0
    left_out: tuple[int, ...] = ()

    @property
    def attackers(self) -> list[int]:
        """The attacking partitions (as the runner chooses them, with seed 0)."""
        return choose_attackers(self.clients, self.fraction, 0) if self.attack else []

    @property
    def name(self) -> str:
        if self.left_out:
            sites = ", ".join(str(site) for site in self.left_out)
            return f"{self.scenario} clean without site{'s' if len(self.left_out) > 1 else ''} {sites} ({self.defence})"
        if self.attack is None:
            return f"{self.scenario} clean ({self.defence})"
        return f"{self.scenario} {self.attack} x{len(self.attackers)} ({self.defence})"

    def request(self, workdir: Path) -> SimulationRequest:
        attackers = len(self.attackers)
        overrides: dict[str, object] = {}
        if self.defence in ("Krum", "MultiKrum"):
            overrides = {"num_malicious_nodes": attackers, "num_nodes_to_select": self.clients - attackers}
        elif self.defence == "Bulyan":
            overrides = {"num_malicious_nodes": min(attackers, (self.clients - 3) // 4)}
        elif self.defence == "FedTrimmedAvg":
            overrides = {"trim_beta": min(max(self.fraction, 0.1), 0.45)}
        directory = "-".join(
            str(part) for part in (self.scenario, self.attack or "clean", self.fraction, self.defence, *self.left_out)
        )
        return SimulationRequest(
            scenario=self.scenario,
            clients=self.clients,
            rounds=self.rounds,
            output_dir=workdir / directory,
            strategy="FedAvg" if self.defence in ("FedAvg", "detector") else self.defence,
            attack=self.attack,
            malicious=self.fraction if self.attack else 0.0,
            detector=self.defence == "detector",
            overrides=overrides,
            left_out=self.left_out,
        )


@dataclass(frozen=True)
class Outcome:
    """What one run measured: the final model on the honest sites' test rows (on every site's for a
    clean run) and, per partition, its test labels and the final model's probabilities for them,
    its total reward, updates recorded and updates flagged."""

    accuracy: float
    auc: float
    loss: float
    sites: tuple[str, ...]
    labels: tuple[np.ndarray, ...]
    probabilities: tuple[np.ndarray, ...]
    rewards: tuple[int, ...]
    updates: tuple[int, ...]
    flagged: tuple[int, ...]
    seconds: float

    def pooled(self, excluded: Sequence[int]) -> tuple[float, float]:
        """Accuracy and ROC-AUC on the test rows of every site but the ``excluded`` ones."""
        kept = [index for index in range(len(self.sites)) if index not in excluded]
        labels = np.concatenate([self.labels[index] for index in kept])
        probabilities = np.concatenate([self.probabilities[index] for index in kept])
        return accuracy(labels, probabilities), roc_auc(labels, probabilities)

    def share(self, partitions: Iterable[int]) -> float:
        """The share of all rewards paid to ``partitions``."""
        paid = sum(self.rewards)
        return sum(self.rewards[index] for index in partitions) / paid if paid else 0.0

    def flags(self, attackers: Sequence[int]) -> tuple[int, int, int, int]:
        """Flags on attackers' updates, flags on honest ones, attackers' updates missed, honest updates seen."""
        honest = [index for index in range(len(self.sites)) if index not in attackers]
        true_flags = sum(self.flagged[index] for index in attackers)
        missed = sum(self.updates[index] for index in attackers) - true_flags
        false_flags = sum(self.flagged[index] for index in honest)
        return true_flags, false_flags, missed, sum(self.updates[index] for index in honest)


def measure(run: Run, workdir: Path) -> Outcome:
    """Simulate ``run`` and read its outcome from the run's record."""
    started = time.perf_counter()
    result = simulate_federation(run.request(workdir), lambda report: None)
    return _outcome(result, time.perf_counter() - started)


def _outcome(result: SimulationResult, seconds: float) -> Outcome:
    ledger = result.summary.ledger
    if ledger is None:
        raise ValueError("the attack benchmark runs with the ledger on: its outcome is read from the record")
    registry, store = Registry(result.chain, ledger.registry), ArtifactStore(ledger.store)
    sites = len(result.data.sites)
    partition = {simulated_participant(result.ledger.key_seed, index).address: index for index in range(sites)}
    rewards, updates, flagged = [0] * sites, [0] * sites, [0] * sites
    for number in range(1, registry.run(ledger.run_id).committed_rounds + 1):
        manifest_hash = registry.committed_round(ledger.run_id, number).commitment.manifest_hash
        for entry in RoundManifest.from_bytes(store.get(manifest_hash)).updates:
            if entry.participant not in partition:
                continue
            index = partition[entry.participant]
            rewards[index] += entry.reward
            updates[index] += 1
            flagged[index] += entry.reason == "anomalous"
    model = TabularClassifier.from_arrays(decode_model(store.get(from_hex(result.summary.final_model_hash))))
    settings, data = result.settings, result.data
    local_sites = [
        load_site(data.site_path(index), data.schema_path, settings.test_fraction, settings.split_seed)
        for index in range(sites)
    ]
    return Outcome(
        result.pooled_accuracy,
        result.pooled_auc,
        result.pooled_loss,
        tuple(site.name for site in result.data.sites),
        tuple(local.test_labels for local in local_sites),
        tuple(evaluate(model, local.test_inputs, local.test_labels).probabilities for local in local_sites),
        tuple(rewards),
        tuple(updates),
        tuple(flagged),
        seconds,
    )


def run_all(runs: Sequence[Run], workdir: Path, jobs: int) -> dict[Run, Outcome]:
    """Every run's outcome, ``jobs`` at a time in separate processes; a line per finished run.

    If the runs cannot go in parallel (a worker process fails), the ones left run one at a time
    here, so that an error of the run itself is raised as it is.
    """
    for run in {(run.scenario, run.clients): run for run in runs}.values():
        prepare_data(run.request(workdir))  # once, before processes could write the same files at once
    outcomes: dict[Run, Outcome] = {}

    def finished(run: Run, outcome: Outcome) -> None:
        outcomes[run] = outcome
        line = f"accuracy {100 * outcome.accuracy:.1f}%"
        if run.attack:
            line += f", attackers' share {100 * outcome.share(run.attackers):.1f}%"
        print(f"[{len(outcomes)}/{len(runs)}] {run.name}: {line} ({outcome.seconds:.0f} s)", flush=True)

    if jobs > 1:
        try:
            with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
                futures = {pool.submit(measure, run, workdir): run for run in runs}
                for future in as_completed(futures):
                    finished(futures[future], future.result())
        except Exception as error:
            print(f"runs in parallel failed ({type(error).__name__}: {error}); running the rest one at a time")
    for run in runs:
        if run not in outcomes:
            finished(run, measure(run, workdir))
    return outcomes


def ranks(values: Sequence[float]) -> np.ndarray:
    """Ranks from 1, ties given their average rank."""
    values = np.asarray(values, dtype=np.float64)
    ranked = np.empty(len(values))
    ranked[np.argsort(values, kind="stable")] = np.arange(1, len(values) + 1)
    for value in np.unique(values):
        tied = values == value
        ranked[tied] = ranked[tied].mean()
    return ranked


def spearman(first: Sequence[float], second: Sequence[float]) -> float:
    """Spearman's rank correlation (Pearson's over average ranks); NaN if either side is all ties."""
    if len(first) != len(second):
        raise ValueError(f"Spearman's correlation needs pairs, got {len(first)} and {len(second)} values")
    first_ranks, second_ranks = ranks(first), ranks(second)
    if len(first) < 2 or np.ptp(first_ranks) == 0 or np.ptp(second_ranks) == 0:
        return math.nan
    return float(np.corrcoef(first_ranks, second_ranks)[0, 1])


def _percent(numerator: float, denominator: float) -> str:
    return f"{100 * numerator / denominator:.1f}%" if denominator else "-"


def _verdict(passed: bool) -> str:
    return "pass" if passed else "FAIL"


def _sites_of(scenario: str, clients: int) -> int:
    """``clients`` if the scenario can be split over that many sites, else its own default."""
    model = SCENARIOS[scenario]
    return clients if model.min_clients != model.max_clients() else model.default_clients


@dataclass(frozen=True)
class Plan:
    """The runs of one scenario."""

    scenario: str
    clients: int
    rounds: int
    fractions: Sequence[float]
    attacks: Sequence[str]
    defences: Sequence[str]

    def clean(self, defence: str) -> Run:
        return Run(self.scenario, self.clients, self.rounds, defence)

    def without(self, *sites: int) -> Run:
        return Run(self.scenario, self.clients, self.rounds, DEFAULT_DEFENCES, left_out=sites)

    def without_copiers(self, fraction: float) -> Run:
        """The clean run without a Sybil party's copying identities: its training site's honest
        earnings when it does its one site's work among the same others."""
        party = choose_attackers(self.clients, fraction, 0)
        return self.without(*party[1:])

    def without_attackers(self, fraction: float) -> Run:
        """The clean run without the sites that attack at ``fraction``: what the honest sites reach
        on their own data, which is all that any defence can keep of an attacked run."""
        return self.without(*choose_attackers(self.clients, fraction, 0))

    def attacked(self, attack: str, fraction: float, defence: str) -> Run:
        return Run(self.scenario, self.clients, self.rounds, defence, attack, fraction)

    def runs(self) -> list[Run]:
        clean = [self.clean(defence) for defence in dict.fromkeys([DEFAULT_DEFENCES, *self.defences])]
        attacked = [
            self.attacked(attack, fraction, defence)
            for attack in self.attacks
            for fraction in self.fractions
            for defence in self.defences
        ]
        copiers = [
            self.without_copiers(fraction)
            for fraction in self.fractions
            if "sybil" in self.attacks and len(choose_attackers(self.clients, fraction, 0)) > 1
        ]
        honest_only = [self.without_attackers(fraction) for fraction in self.fractions]
        leave_one_out = [self.without(site) for site in range(self.clients)]
        return list(dict.fromkeys(clean + attacked + leave_one_out + copiers + honest_only))


def report(plan: Plan, outcomes: dict[Run, Outcome]) -> None:
    """The scenario's clean-run figures, one line per attacked run, and the closing table."""
    clean = outcomes[plan.clean(DEFAULT_DEFENCES)]
    honest_totals = clean.rewards
    values = [outcomes[plan.without(site)].loss - clean.loss for site in range(plan.clients)]
    _, false_flags, _, honest_seen = clean.flags([])
    unpaid = [clean.sites[index] for index, total in enumerate(honest_totals) if total == 0]
    correlation = spearman(honest_totals, values)
    print(f"\n{plan.scenario}, {plan.clients} sites, {plan.rounds} rounds")
    for defence in dict.fromkeys([DEFAULT_DEFENCES, *plan.defences]):
        baseline = outcomes[plan.clean(defence)]
        print(f"clean run ({defence}): accuracy {100 * baseline.accuracy:.1f}%, AUC {baseline.auc:.3f}")
    print(f"clean run ({DEFAULT_DEFENCES}), per site: total reward share, leave-one-site-out value (log-loss)")
    for index, name in enumerate(clean.sites):
        print(f"  {name:<28} {_percent(honest_totals[index], sum(honest_totals)):>6}  {values[index]:+.5f}")
    header = (
        f"{'attack':<15} {'mal':>3} {'defence':<14} {'acc%':>6} {'Δacc':>6} {'AUC':>6} {'ΔAUC':>6} "
        f"{'precision':>9} {'recall':>7} {'attackers':>9} {'Sybil x':>8}"
    )
    print(header)
    for attack in plan.attacks:
        for fraction in plan.fractions:
            for defence in plan.defences:
                run = plan.attacked(attack, fraction, defence)
                outcome = outcomes[run]
                accuracy_run, auc, change, auc_change = _honest_figures(run, outcome, outcomes[plan.clean(defence)])
                true_flags, false_flags_run, missed, _ = outcome.flags(run.attackers)
                detection = defence == DEFAULT_DEFENCES
                precision = _percent(true_flags, true_flags + false_flags_run) if detection else "-"
                recall = _percent(true_flags, true_flags + missed) if detection else "-"
                ratio = _sybil_ratio(run, outcome, clean)
                print(
                    f"{attack:<15} {len(run.attackers):>3} {defence:<14} {100 * accuracy_run:6.1f} "
                    f"{change:+6.1f} {_auc(auc):>6} {_points(auc_change):>6} {precision:>9} {recall:>7} "
                    f"{100 * outcome.share(run.attackers):8.1f}% {_format_ratio(ratio):>8}"
                )

    print(f"\nclosing table: {plan.scenario}, {plan.clients} sites, default defences ({DEFAULT_DEFENCES})")
    print(
        f"{'attack':<15} {'mal':>3} {'attackers (≤2%)':>20} {'Sybil x (≤1.1)':>16} {'Δacc (±1)':>13} {'ΔAUC (±1)':>13}"
        f" {'Δacc* (±1)':>13} {'ΔAUC* (±1)':>13}"
    )
    for attack in plan.attacks:
        for fraction in plan.fractions:
            run = plan.attacked(attack, fraction, DEFAULT_DEFENCES)
            outcome = outcomes[run]
            share = outcome.share(run.attackers)
            ratio = _sybil_ratio(run, outcome, clean)
            changes = [
                *_honest_figures(run, outcome, clean)[2:],
                *_honest_figures(run, outcome, outcomes[plan.without_attackers(fraction)])[2:],
            ]
            sybil = f"{_format_ratio(ratio)} {_verdict(ratio <= MAX_SYBIL_RATIO)}" if ratio is not None else "-"
            held_to_share = _verdict(share <= MAX_ATTACKER_SHARE) if ratio is None else " n/a"
            print(
                f"{attack:<15} {len(run.attackers):>3} {100 * share:14.1f}% {held_to_share} {sybil:>16} "
                + " ".join(f"{change:+8.1f} {_verdict(abs(change) <= MAX_HONEST_CHANGE_POINTS)}" for change in changes)
            )
    print(
        "(Δ: the honest sites' accuracy and AUC on their test rows against the clean run; Δ*: against the clean "
        "run without the attacking sites, whose data no defence can keep)"
    )
    if "sybil" in plan.attacks:
        print(
            "(a Sybil party does one site's honest work, so it is held to the Sybil ratio, not to the attackers' "
            "share; a party of one identity sends no copies)"
        )
        for fraction in plan.fractions:
            run = plan.attacked("sybil", fraction, DEFAULT_DEFENCES)
            if len(run.attackers) < 2:
                continue
            ratio = _sybil_ratio(run, outcomes[run], outcomes[plan.without_copiers(fraction)])
            print(
                f"sybil x{len(run.attackers)}: the party's share over its training site's in a clean run without "
                f"the {len(run.attackers) - 1} copying identities (the same work among the same others): "
                f"{_format_ratio(ratio)} {_verdict(ratio is not None and ratio <= MAX_SYBIL_RATIO)}"
            )
    print(f"clean run: honest sites paid 0: {', '.join(unpaid) or 'none'}  {_verdict(not unpaid)}")
    rate = false_flags / honest_seen if honest_seen else math.nan
    target = (
        f"  {_verdict(rate <= MAX_FALSE_POSITIVE_RATE)}" if plan.scenario in FALSE_POSITIVE_TARGET_SCENARIOS else ""
    )
    print(
        f"clean run: detector false-positive rate {_percent(false_flags, honest_seen)} "
        f"({false_flags} of {honest_seen} honest updates flagged){target}"
    )
    print(
        f"clean run: Spearman's correlation of the {plan.clients} honest sites' total rewards with their "
        f"leave-one-site-out values: {correlation:+.3f}",
        flush=True,
    )


def _honest_figures(run: Run, outcome: Outcome, baseline: Outcome) -> tuple[float, float, float, float]:
    """Accuracy and ROC-AUC on the honest sites' test rows, and their change in points from
    ``baseline`` (a clean run) on the same rows."""
    (accuracy_run, auc), (accuracy_clean, auc_clean) = outcome.pooled(run.attackers), baseline.pooled(run.attackers)
    return accuracy_run, auc, 100 * (accuracy_run - accuracy_clean), 100 * (auc - auc_clean)


def _sybil_ratio(run: Run, outcome: Outcome, clean: Outcome) -> float | None:
    """The Sybil party's share over what its training site earned in the clean run (``None`` for other attacks)."""
    if run.attack != "sybil":
        return None
    trainer_share = clean.share([min(run.attackers)])
    return outcome.share(run.attackers) / trainer_share if trainer_share else math.inf


def _format_ratio(ratio: float | None) -> str:
    return "-" if ratio is None else f"{ratio:.2f}"


def _auc(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.3f}"


def _points(change: float) -> str:
    return "-" if math.isnan(change) else f"{change:+.1f}"


def _distinct_fractions(clients: int, fractions: Sequence[float]) -> list[float]:
    """The first of ``fractions`` for each set of attackers they choose among ``clients`` sites
    (on hospitals' four sites, 10% and 30% are both one site: it runs once)."""
    chosen: dict[tuple[int, ...], float] = {}
    for fraction in fractions:
        chosen.setdefault(tuple(choose_attackers(clients, fraction, 0)), fraction)
    return list(chosen.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", nargs="+", default=["banks", "hospitals"], choices=sorted(SCENARIOS))
    parser.add_argument("--clients", type=int, default=10, help="sites of every scenario that can be split so")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.1, 0.3])
    parser.add_argument("--attacks", nargs="+", default=list(ATTACKS), choices=ATTACKS)
    parser.add_argument("--defences", nargs="+", default=list(DEFENCES), choices=DEFENCES)
    parser.add_argument("--jobs", type=int, default=2, help="simulations at a time, each in its own process")
    arguments = parser.parse_args()
    plans = [
        Plan(
            scenario,
            _sites_of(scenario, arguments.clients),
            arguments.rounds,
            _distinct_fractions(_sites_of(scenario, arguments.clients), arguments.fractions),
            arguments.attacks,
            arguments.defences,
        )
        for scenario in arguments.scenarios
    ]
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as workdir:
        runs = [run for plan in plans for run in plan.runs()]
        print(f"{len(runs)} runs, {arguments.jobs} at a time", flush=True)
        outcomes = run_all(runs, Path(workdir), max(1, arguments.jobs))
    for plan in plans:
        report(plan, outcomes)
    print(f"\n{len(runs)} runs in {(time.perf_counter() - started) / 60:.1f} min")


if __name__ == "__main__":
    main()
