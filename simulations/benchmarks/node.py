"""What `fedledger chain node` pays to save the chain before answering, per transaction, as the chain grows.

    python -m fedledger.simulations.benchmarks.node [--sizes 0 100 500 1000 2000] [--samples 20]

One anvil node (``AnvilNode``, as `fedledger chain node` runs it). At each chain size, the same
transfer is sent ``--samples`` times through the node's JSON-RPC port, which saves the whole chain
to its state file before answering, and as many times straight to anvil's own port, which does
not; the chain is grown between sizes through anvil's own port. Each figure is the median wall
time of one ``Chain.send_value`` (build, sign, send, receipt).
"""

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from fedledger.chain import Chain
from fedledger.chain.anvil import AnvilNode, free_port


def median_send_ms(chain: Chain, samples: int) -> float:
    sender, receiver = chain.signers[:2]
    times = []
    for _ in range(samples):
        started = time.perf_counter()
        chain.send_value(sender, receiver, 1)
        times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[0, 100, 500, 1000, 2000])
    parser.add_argument("--samples", type=int, default=20)
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir, AnvilNode(Path(workdir) / "anvil", port=free_port()) as node:
        saved, bare = Chain.connect(node.rpc_url), Chain.connect(f"http://127.0.0.1:{node.anvil_port}")
        for chain in (saved, bare):
            for account in node.dev_accounts()[:2]:
                chain.add_signer(account)
        print("transactions   per transaction (ms)           state file")
        print("in the chain   saved   anvil alone   saving     (MB)")
        for size in sorted(arguments.sizes):
            while (mined := bare.w3.eth.get_transaction_count(bare.signers[0])) < size:
                bare.send_value(bare.signers[0], bare.signers[1], 1)
            durable_ms = median_send_ms(saved, arguments.samples)
            bare_ms = median_send_ms(bare, arguments.samples)
            saving_ms, megabytes = durable_ms - bare_ms, node.state_file.stat().st_size / 1e6
            print(
                f"{mined:>12,}   {durable_ms:>5.1f}   {bare_ms:>11.1f}   {saving_ms:>6.1f}   {megabytes:>6.1f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
