"""The demo federations ``fedledger simulate`` can run."""

from simulations.scenarios.banks import Banks
from simulations.scenarios.base import PreparedData, Scenario, ScenarioError, Site
from simulations.scenarios.hospitals import Hospitals
from simulations.scenarios.synthetic import Synthetic, SyntheticIid

SCENARIOS: dict[str, Scenario] = {
    scenario.name: scenario for scenario in (Hospitals(), Banks(), Synthetic(), SyntheticIid())
}

__all__ = ["SCENARIOS", "PreparedData", "Scenario", "ScenarioError", "Site"]
