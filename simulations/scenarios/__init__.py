"""The demo federations ``fedledger simulate`` can run."""

from fedledger.simulations.scenarios.banks import Banks
from fedledger.simulations.scenarios.base import PreparedData, Scenario, ScenarioError, Site
from fedledger.simulations.scenarios.hospitals import Hospitals
from fedledger.simulations.scenarios.synthetic import Synthetic, SyntheticIid

SCENARIOS: dict[str, Scenario] = {
    scenario.name: scenario for scenario in (Hospitals(), Banks(), Synthetic(), SyntheticIid())
}

__all__ = ["SCENARIOS", "PreparedData", "Scenario", "ScenarioError", "Site"]
