"""Store artifacts that belong to a run but that no committed round points to.

A round manifest names its chain, registry, run and round, so a stored manifest that is not the
committed manifest of its round is attributed to its run, and so are the updates and models it
names. A model or update that no manifest names carries no run, and cannot be attributed.

Orphans are evidence, not proof of tampering: a coordinator that stopped between storing a
round's manifest and committing it leaves one, and so does a node that lost committed blocks. A
committed round with a second stored manifest was run more than once, and is named as such.
"""

from collections import defaultdict
from dataclasses import dataclass

from fedledger.audit.findings import Finding, RunAudit
from fedledger.hashing import from_hex, to_hex
from fedledger.manifest import RoundManifest
from fedledger.store import ArtifactError, ArtifactStore

#: A run as a manifest names it: chain id, registry address (lower case), run id.
RunKey = tuple[int, str, int]


@dataclass(frozen=True)
class StoredManifest:
    """A manifest found in the store, and the hash it is stored under."""

    digest: str
    manifest: RoundManifest


class StoredManifests:
    """Every round manifest in a store, by the run it names.

    The store is listed once and only artifacts that start like JSON are read; an artifact that
    is not a well-formed manifest (a run configuration, say), or whose bytes no longer hash to its
    name, is attributed to no run.
    """

    def __init__(self, store: ArtifactStore) -> None:
        self._by_run: dict[RunKey, list[StoredManifest]] = defaultdict(list)
        for digest in store.digests(starting_with=b"{"):
            try:
                manifest = RoundManifest.from_bytes(store.get(digest))
            except (ArtifactError, ValueError):
                continue
            key = (manifest.chain_id, manifest.registry.lower(), manifest.run_id)
            self._by_run[key].append(StoredManifest(to_hex(digest), manifest))

    def of_run(self, chain_id: int, registry: str, run_id: int) -> list[StoredManifest]:
        """The manifests that name this run, by round and hash."""
        found = self._by_run.get((chain_id, registry.lower(), run_id), [])
        return sorted(found, key=lambda stored: (stored.manifest.round, stored.digest))


def record_orphans(
    audit: RunAudit,
    manifests: list[StoredManifest],
    committed: dict[int, str],
    referenced: set[str],
    store: ArtifactStore,
) -> None:
    """Add to ``audit`` every manifest in ``manifests`` that is not ``committed`` (round -> manifest
    hash), and every stored update or model it names that is not ``referenced`` (the hashes the
    committed rounds point to); mark the committed rounds that were run again."""
    committed_hashes = set(committed.values())
    listed: set[str] = set()
    for stored in manifests:
        if stored.digest in committed_hashes:
            continue
        round_number = stored.manifest.round
        if round_number in committed:
            audit.findings.append(
                _orphan(
                    audit.run_id,
                    round_number,
                    f"round {round_number} was run again: the store holds this manifest too, the commit names another",
                    expected=committed[round_number],
                    found=stored.digest,
                )
            )
            if round_number not in audit.rerun_rounds:
                audit.rerun_rounds.append(round_number)
        else:
            message = f"manifest {stored.digest} is stored, but round {round_number} was never committed"
            audit.findings.append(_orphan(audit.run_id, round_number, message))
        for kind, digest, participant in _named(stored.manifest):
            if digest in referenced or digest in listed or from_hex(digest) not in store:
                continue
            listed.add(digest)
            audit.findings.append(
                _orphan(
                    audit.run_id,
                    round_number,
                    f"{kind} {digest} is stored, named only by the uncommitted manifest {stored.digest}",
                    participant=participant,
                )
            )
    if not any(finding.status == "orphan" for finding in audit.findings):
        audit.findings.append(
            Finding(
                "orphans",
                "pass",
                audit.run_id,
                message=f"the store holds no manifest of the run besides the {len(manifests)} committed",
            )
        )


def _named(manifest: RoundManifest) -> list[tuple[str, str, str | None]]:
    """(kind, hash, participant) of every model and update ``manifest`` names."""
    named = [("model", manifest.model_hash, None), ("model", manifest.base_model_hash, None)]
    named += [
        ("update", digest, entry.participant)
        for entry in manifest.updates
        for digest in (entry.update_hash, entry.sealed_hash)
        if digest
    ]
    if manifest.privacy is not None:
        noise = (manifest.privacy.noise_hash, manifest.privacy.noise_sealed_hash)
        named += [("noise", digest, None) for digest in noise if digest]
    return named


def _orphan(
    run_id: int,
    round_number: int,
    message: str,
    expected: str | None = None,
    found: str | None = None,
    participant: str | None = None,
) -> Finding:
    return Finding("orphans", "orphan", run_id, round_number, participant, message, expected, found)
