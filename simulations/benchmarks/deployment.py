"""Wall time per round of a two-site deployment, with the ledger and without, in one run.

    python -m fedledger.simulations.benchmarks.deployment [--rounds 3] [--repeats 4] [--keystore-per-process]

Real processes on this machine: an anvil node; a SuperLink with TLS and SuperNode authentication;
two SuperNodes (the Cleveland and Hungary hospitals), each with its own data file, encrypted
keystore and authentication key, whose key a local signer (``fedledger client signer``) unlocks
once; with ``--keystore-per-process``, every ClientApp process decrypts the keystore itself
instead. `flwr run` runs the federation with the ledger on and off in pairs whose order flips
every repeat, after one unrecorded warm-up pair; each run's time is the time `flwr run` takes,
from submitting the app to its end (with the ledger off, the app is plain Flower and leaves no
record of its own time). Prints each run, each arm's median and spread, and the ledger's share.
"""

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from fedledger.certificates import create_certificates
from fedledger.chain import Chain, Registry
from fedledger.chain.anvil import AnvilNode, free_port
from fedledger.coordinator.config import LedgerSettings
from fedledger.hashing import keccak256
from fedledger.identity import SUPERNODE_PUBLIC_KEY_FILE, create_participant
from fedledger.keys import PRIVATE_KEY_ENV
from fedledger.simulations.benchmarks.overhead import pair_order
from fedledger.simulations.deployment import LocalDeployment
from fedledger.simulations.scenarios import SCENARIOS

PASSWORD = "benchmark site password"
CONNECTION = "federation"
SITES = ("cleveland", "hungary")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=4, help="recorded pairs (one run of each arm)")
    parser.add_argument(
        "--keystore-per-process",
        action="store_true",
        help="no local signer: every ClientApp process decrypts its site's keystore",
    )
    arguments = parser.parse_args()
    times: dict[bool, list[float]] = {True: [], False: []}
    with tempfile.TemporaryDirectory() as workdir:
        directory = Path(workdir)
        data = SCENARIOS["hospitals"].prepare(directory / "data", 4, 0)
        certificates = create_certificates(directory / "certs", ["127.0.0.1", "localhost"])
        with AnvilNode(directory / "anvil", port=free_port()) as anvil, LocalDeployment(directory) as deployment:
            chain = Chain.connect(anvil.rpc_url)
            coordinator = anvil.dev_accounts()[0]
            registry, _ = Registry.deploy(chain, chain.add_signer(coordinator))
            run_budget = LedgerSettings().rewards.budget * arguments.rounds
            ledger_runs = arguments.repeats + 1  # the warm-up pair has one too
            registry.set_run_allowance(coordinator.address, run_budget * ledger_runs)
            port = free_port()
            deployment.superlink(
                port, tls=certificates, node_authentication=True, env={PRIVATE_KEY_ENV: coordinator.key.to_0x_hex()}
            )
            deployment.connection(CONNECTION, port, root_certificates=certificates.ca_certificate)
            for index, name in enumerate(SITES):
                keys = directory / name
                identity = create_participant(keys, PASSWORD)
                registry.add_participant(identity.address, keccak256(name.encode()))
                deployment.flwr("supernode", "register", str(keys / SUPERNODE_PUBLIC_KEY_FILE), CONNECTION)
                site_data = data.site_path(index)
                signer = not arguments.keystore_per_process
                deployment.site(name, port, keys, site_data, data.schema_path, certificates, PASSWORD, signer)
            for repeat in range(-1, arguments.repeats):
                for ledger in pair_order(repeat):
                    output = directory / f"run-{repeat}-{ledger}"
                    started = time.perf_counter()
                    deployment.flwr_run(
                        CONNECTION,
                        {
                            "fedledger.rpc-url": anvil.rpc_url,
                            "fedledger.registry": registry.address,
                            "fedledger.enabled": ledger,
                            "num-server-rounds": arguments.rounds,
                            "schema-path": str(data.schema_path),
                            "fedledger.store": str(directory / "store"),
                            "fedledger.output-dir": str(output),
                        },
                        timeout=1800,
                    )
                    per_round = (time.perf_counter() - started) / arguments.rounds
                    label = "warm-up" if repeat < 0 else f"pair {repeat + 1}"
                    if repeat >= 0:
                        times[ledger].append(per_round)
                    print(f"{label:<8} ledger {'on ' if ledger else 'off'}: {per_round:.2f} s/round", flush=True)
    on, off = statistics.median(times[True]), statistics.median(times[False])
    keys = "keystore decrypted per ClientApp process" if arguments.keystore_per_process else "a local signer per site"
    print(f"two SuperNodes, TLS and SuperNode authentication, {keys}, {arguments.rounds} rounds per run")
    for ledger in (True, False):
        values = times[ledger]
        print(
            f"ledger {'on ' if ledger else 'off'}: median {statistics.median(values):.2f} s/round, "
            f"spread {min(values):.2f} to {max(values):.2f} ({len(values)} runs)"
        )
    print(f"the ledger adds {on - off:+.2f} s per round ({100 * (on / off - 1):+.1f}%), medians")


if __name__ == "__main__":
    main()
