"""What ``fedledger simulate`` prints: a line per round as it is committed, then a summary."""

import math
import statistics

from rich.console import Console
from rich.table import Table

from fedledger.cli.common import show_table
from fedledger.coordinator.recorder import RoundReport
from fedledger.keys import simulated_participant
from fedledger.simulations.runner import SimulationResult
from fedledger.simulations.scenarios import PreparedData
from tabular_app import task_keys

#: The tabular app's evaluation metric each row shows.
ACCURACY = task_keys.EVAL_ACCURACY
MAX_SITE_COLUMNS = 6
MAX_SITE_ROWS = 12


def _percent(value: float | None) -> str:
    return "-" if value is None or math.isnan(value) else f"{100 * value:.1f}"


def _gas(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


class RoundPrinter:
    """Prints one row per committed round: accepted and rejected updates, global and per-site
    accuracy, gas and the model hash."""

    def __init__(self, console: Console, data: PreparedData, key_seed: int) -> None:
        self.console = console
        self.site_of = {
            simulated_participant(key_seed, index).address: site.name for index, site in enumerate(data.sites)
        }
        self.names = [site.name for site in data.sites]
        self.per_site = len(self.names) <= MAX_SITE_COLUMNS

    def header(self) -> None:
        sites = "  ".join(f"{name[:11]:>11}" for name in self.names) if self.per_site else "site acc min / median / max"
        self.console.print(f"[bold]round  acc/rej  global acc  {sites}        gas  model[/bold]", highlight=False)

    def __call__(self, report: RoundReport) -> None:
        by_name = {
            self.site_of.get(address, address): metrics.get(ACCURACY)
            for address, metrics in report.site_evaluation.items()
            if isinstance(metrics.get(ACCURACY), float | int)
        }
        if self.per_site:
            sites = "  ".join(f"{_percent(by_name.get(name)):>11}" for name in self.names)
        else:
            values = sorted(by_name.values())
            sites = (
                f"{_percent(values[0])} / {_percent(statistics.median(values))} / {_percent(values[-1])}"
                if values
                else "-"
            )
            sites = f"{sites:>27}"
        status = f"{report.accepted:>3}/{report.rejected:<3}"
        failed = "  [red]failed[/red]" if report.outcome == "failed" else ""
        self.console.print(
            f"{report.round:>5}  {status}  {_percent(report.evaluation.get(ACCURACY)):>10}  {sites}  "
            f"{_gas(report.gas_used):>9}  {report.model_hash[:14]}…{failed}",
            highlight=False,
        )
        for cluster in report.clusters:
            sites = ", ".join(self.site_of.get(address, address) for address in cluster)
            self.console.print(f"       [yellow]near-identical updates share one contribution: {sites}[/yellow]")


def print_summary(console: Console, result: SimulationResult) -> None:
    """The final model's figures per site and pooled, and where the record is."""
    summary = result.summary
    if result.sites:
        table = Table("site", "participant", "test rows", "accuracy %", "ROC-AUC", title="final global model")
        for site in result.sites[:MAX_SITE_ROWS]:
            name = f"{site.name} ({site.behaviour})" if site.behaviour else site.name
            table.add_row(name, site.address, str(site.examples), _percent(site.accuracy), f"{site.auc:.3f}")
        if len(result.sites) > MAX_SITE_ROWS:
            accuracies = sorted(site.accuracy for site in result.sites)
            spread = f"min {_percent(accuracies[0])}, median {_percent(statistics.median(accuracies))}"
            table.add_row(
                f"… {len(result.sites) - MAX_SITE_ROWS} more", "", "", f"{spread}, max {_percent(accuracies[-1])}", ""
            )
        honest = [site for site in result.sites if site.behaviour is None]
        table.add_row(
            "all honest sites" if len(honest) < len(result.sites) else "all sites",
            "",
            str(sum(site.examples for site in honest)),
            _percent(result.pooled_accuracy),
            f"{result.pooled_auc:.3f}",
            style="bold",
        )
        show_table(table)
    gas = [report.gas_used for report in summary.rounds if report.gas_used is not None]
    if gas:
        console.print(f"gas per round   {min(gas):,} to {max(gas):,} (commitRound)")
    console.print(f"wall time       {result.wall_time_seconds:.1f} s")
    if summary.ledger is not None:
        ledger = summary.ledger
        chain = ledger.rpc_url or f"in-process chain, saved to {ledger.saved_chain}"
        console.print(f"registry        {ledger.registry} (chain id {ledger.chain_id}, {chain}), run {ledger.run_id}")
        console.print(f"store           {ledger.store}")
        console.print(f"final model     {summary.final_model_hash}")
