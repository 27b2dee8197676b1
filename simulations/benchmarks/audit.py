"""Audit throughput: how long the audit takes beside hashing the same bytes, measured in one run.

    python -m fedledger.simulations.benchmarks.audit [--rounds 50] [--clients 20] [--parameters 1000000] [--sealed]

Writes a history of ``rounds`` FedAvg rounds with ``clients`` signed updates each of a model with
about ``parameters`` float32 parameters (``simulations.history``), on the in-process chain with the
store in a temporary directory. Then it audits the history (timed; the audit reads, hashes and
decodes a round's updates, and rebuilds its candidate models, on every core), and hashes every
stored artifact the audit reads on one core (bytes in memory, timed) for the raw hashing throughput.
The audit hashes more than the stored bytes: every valued round's candidate models (2m + 2 for m
players) are rebuilt and hashed again. It also times, alone, the audit's search of
the store for manifests no commit points to: one listing, and only artifacts that start like JSON read.

With ``--sealed`` the updates are stored sealed for an auditor key (``fedledger.sealing``), as a
coordinator stores them: the audit is timed with that key (every update decrypted) and without it
(the checks that need the plaintext reported as needing a key).
"""

import argparse
import math
import tempfile
import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from fedledger.audit import Auditor
from fedledger.audit.orphans import StoredManifests
from fedledger.chain import Chain
from fedledger.hashing import keccak256
from fedledger.simulations.history import SyntheticHistory
from fedledger.store import ArtifactStore


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--parameters", type=int, default=1_000_000)
    parser.add_argument("--sealed", action="store_true", help="store the updates sealed for an auditor key")
    arguments = parser.parse_args()
    key = X25519PrivateKey.generate() if arguments.sealed else None
    sealed_for = () if key is None else (key.public_key().public_bytes_raw(),)
    side = round(math.sqrt(arguments.parameters))
    shapes = {"dense.weight": (side, side), "dense.bias": (side,)}
    parameters = side * side + side

    with tempfile.TemporaryDirectory() as workdir:
        store = ArtifactStore(Path(workdir) / "store")
        started = time.perf_counter()
        history = SyntheticHistory(
            Chain.in_process(),
            store,
            shapes,
            arguments.clients,
            planned_rounds=arguments.rounds,
            seed=1,
            sealed_for=sealed_for,
        )
        for _ in range(arguments.rounds):
            history.add_round()
        print(
            f"history: {arguments.rounds} rounds x {arguments.clients} clients, model of {parameters:,} float32 "
            f"parameters{', updates sealed' if key else ''}, written in {time.perf_counter() - started:.1f} s"
        )

        keyless_seconds = None
        if key is not None:
            started = time.perf_counter()
            keyless = Auditor(history.registry, store).audit()
            keyless_seconds = time.perf_counter() - started
            if keyless.verdict != "incomplete" or keyless.counts()["fail"]:
                raise SystemExit("the keyless audit of the sealed history is not incomplete:\n" + keyless.summary())
            needing = keyless.counts()["needs-key"]
        auditor = Auditor(history.registry, store, key=key)
        started = time.perf_counter()
        report = auditor.audit()
        audit_seconds = time.perf_counter() - started
        if not report.passed:
            raise SystemExit(
                "the synthetic history does not pass its audit:\n" + "\n".join(map(str, report.problems()))
            )
        started = time.perf_counter()
        StoredManifests(store)
        scan_seconds = time.perf_counter() - started
        json_like = sum(1 for _ in store.digests(starting_with=b"{"))

        files = [path for path in (Path(workdir) / "store").rglob("*") if path.is_file()]
        total_bytes, hashing_seconds = 0, 0.0
        for path in files:
            data = path.read_bytes()
            started = time.perf_counter()
            keccak256(data)
            hashing_seconds += time.perf_counter() - started
            total_bytes += len(data)

    checks = len(report.findings)
    with_key = " with the auditor's key (every update decrypted)" if key else ""
    print(f"audit{with_key}: {audit_seconds:.2f} s for {checks:,} checks, all passed")
    if keyless_seconds is not None:
        print(f"audit without a key: {keyless_seconds:.2f} s ({needing:,} checks reported as needing a key)")
    print(
        f"  of which the store search for orphans: {1000 * scan_seconds:.0f} ms "
        f"({len(files):,} artifacts listed, {json_like} read whole)"
    )
    print(
        f"raw hashing of the same {len(files):,} artifacts ({total_bytes / 1e9:.2f} GB): {hashing_seconds:.2f} s, "
        f"{total_bytes / hashing_seconds / 1e6:,.0f} MB/s"
    )
    print(f"audit time / raw hashing time: {audit_seconds / hashing_seconds:.2f} (goal: at most 1.0)")


if __name__ == "__main__":
    main()
