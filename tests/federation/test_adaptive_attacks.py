"""Colluding attackers and a Sybil party send their crafted updates through the real client mod:
signed by their registered keys, valid, and identical (colluders) or nearly so (Sybils)."""

import numpy as np
import pytest

from fedledger.chain import Registry
from fedledger.coordinator.vault import Vault
from fedledger.encoding import decode_model
from fedledger.hashing import from_hex
from fedledger.keys import simulated_participant
from fedledger.manifest import RoundManifest, UpdateEntry
from fedledger.signing import UpdateMessage, verify_update
from fedledger.simulations import collusion
from fedledger.simulations.runner import SimulationRequest, SimulationResult, simulate_federation
from fedledger.store import ArtifactStore
from tabular_app.site import load_site

pytestmark = pytest.mark.simulation

#: Partition -> attack; partitions 0 and 9 are honest. The Sybil party's trainer is partition 7.
PARTIES = {"alie": (1, 2), "min-max": (3, 4), "min-sum": (5, 6), "sybil": (7, 8)}


@pytest.fixture(scope="module")
def attacked(tmp_path_factory) -> SimulationResult:
    """Banks, 10 sites, 2 rounds, without the detector: every valid update is accepted."""
    behaviours = {partition: attack for attack, partitions in PARTIES.items() for partition in partitions}
    request = SimulationRequest(
        scenario="banks",
        clients=10,
        rounds=2,
        detector=False,
        misbehaving=behaviours,
        output_dir=tmp_path_factory.mktemp("adaptive") / "run",
    )
    return simulate_federation(request, lambda report: None)


def rounds(result: SimulationResult) -> list[tuple[RoundManifest, dict[int, UpdateEntry]]]:
    """Each round's manifest and its entries by partition."""
    ledger = result.summary.ledger
    registry, store = Registry(result.chain, ledger.registry), ArtifactStore(ledger.store)
    partition = {simulated_participant(0, index).address: index for index in range(10)}
    found = []
    for number in (1, 2):
        manifest_hash = registry.committed_round(ledger.run_id, number).commitment.manifest_hash
        manifest = RoundManifest.from_bytes(store.get(manifest_hash))
        found.append((manifest, {partition[entry.participant]: entry for entry in manifest.updates}))
    return found


def training_examples(result: SimulationResult, partition: int) -> int:
    settings = result.settings
    site = load_site(
        result.data.site_path(partition), result.data.schema_path, settings.test_fraction, settings.split_seed
    )
    return len(site.train_labels)


def opened(result: SimulationResult, entry: UpdateEntry) -> bytes:
    """An update's encoding, opened from its sealed artifact with the coordinator's key."""
    store = ArtifactStore(result.ledger.store)
    return Vault.open(result.ledger).get(store, from_hex(entry.sealed_hash), from_hex(entry.update_hash))


def test_every_attackers_update_is_signed_by_its_own_key_and_accepted(attacked: SimulationResult):
    registry = Registry(attacked.chain, attacked.summary.ledger.registry)
    domain = registry.signing_domain()
    for manifest, entries in rounds(attacked):
        assert sorted(entries) == list(range(10))
        for partition, entry in entries.items():
            assert entry.status == "accepted", (manifest.round, partition, entry.reason, entry.detail)
            assert entry.participant == simulated_participant(0, partition).address
            message = UpdateMessage(
                manifest.run_id,
                manifest.round,
                from_hex(manifest.base_model_hash),
                from_hex(entry.update_hash),
                entry.num_examples,
            )
            assert verify_update(domain, message, from_hex(entry.signature, size=None), entry.participant)


def test_colluders_send_one_update_each_round_with_their_own_example_counts(attacked: SimulationResult):
    previous: set[str] = set()
    for manifest, entries in rounds(attacked):
        hashes = set()
        for attack in ("alie", "min-max", "min-sum"):
            first, second = PARTIES[attack]
            assert entries[first].update_hash == entries[second].update_hash, (manifest.round, attack)
            for partition in (first, second):
                assert entries[partition].num_examples == training_examples(attacked, partition)
            hashes.add(entries[first].update_hash)
        assert len(hashes) == 3, "each attack crafts its own update"
        assert not hashes & previous, "each round's update is crafted from that round's model"
        previous = hashes


def test_sybils_send_the_trainers_update_plus_a_thousandth_and_claim_its_examples(attacked: SimulationResult):
    store = ArtifactStore(attacked.ledger.store)
    trainer, copy = PARTIES["sybil"]
    for manifest, entries in rounds(attacked):
        base = collusion.flatten(decode_model(store.get(from_hex(manifest.base_model_hash))))
        trained = collusion.flatten(decode_model(opened(attacked, entries[trainer])))
        copied = collusion.flatten(decode_model(opened(attacked, entries[copy])))
        relative = np.linalg.norm(copied - trained) / np.linalg.norm(trained - base)
        assert relative == pytest.approx(collusion.SYBIL_NOISE, rel=0.05), manifest.round
        assert entries[trainer].num_examples == entries[copy].num_examples == training_examples(attacked, trainer)
