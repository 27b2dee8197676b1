"""Write a scenario's per-site data files for ``flwr run``, and print the run config that uses them.

python -m fedledger.simulations.prepare hospitals [--clients N] [--seed S] [--out DIR]
"""

import argparse
from pathlib import Path

from fedledger.simulations.scenarios import SCENARIOS, ScenarioError


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenario", choices=sorted(SCENARIOS))
    parser.add_argument("--clients", type=int, help="number of sites (default: the scenario's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path(".fedledger") / "data")
    arguments = parser.parse_args()
    scenario = SCENARIOS[arguments.scenario]
    clients = scenario.default_clients if arguments.clients is None else arguments.clients
    directory = (arguments.out / f"{scenario.name}-{clients}-seed{arguments.seed}").resolve()
    try:
        data = scenario.prepare(directory, clients, arguments.seed)
    except ScenarioError as error:
        parser.error(str(error))
    print(f"wrote {len(data.sites)} site files and the schema to {directory}")
    settings = (
        f"split-seed={arguments.seed} model-seed={arguments.seed} "
        f"num-server-rounds={scenario.default_rounds} local-epochs={scenario.training.local_epochs}"
    )
    print(f"run it with Flower's Simulation Engine (num-supernodes must be {len(data.sites)}):")
    print(
        f"  flwr run examples/tabular local --stream --run-config \"data-dir='{directory}' "
        f'fedledger.simulated-participants={clients} fedledger.key-seed={arguments.seed} {settings}"'
    )
    print("or with fedledger, which records the run on an in-process chain and audits it:")
    print(
        f"  fedledger simulate --app examples/tabular --clients {len(data.sites)} --seed {arguments.seed} "
        f"--run-config \"data-dir='{directory}' {settings}\""
    )


if __name__ == "__main__":
    main()
