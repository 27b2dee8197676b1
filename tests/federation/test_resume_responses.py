"""A resumed run measures its first round's responses to the last global step against the updates
the detector examined in the last committed round, read back from the store: they are those an
uninterrupted run records, and the audit recomputes them."""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from flwr.app import Message
from inprocess_federation import HonestSite, InProcessFederation, Ledger, received_arrays

from fedledger.audit import Auditor
from fedledger.audit.recompute import examined_entries
from fedledger.coordinator.resume import CannotResume, resumed_run
from fedledger.hashing import from_hex
from fedledger.manifest import RoundManifest
from tabular_app.settings import FederationSettings

from helpers import participant_key

SITES = [participant_key(index) for index in range(5)]
SETTINGS = FederationSettings(num_server_rounds=3, min_nodes=len(SITES), round_timeout=5.0)
DETECTOR = {"anomaly_min_updates": 3}


@dataclass(frozen=True)
class TargetSite(HonestSite):
    """A site that trains on a loss of its own: its update moves every value of the global model
    ``rate`` of the way to its ``target``, so it answers each global step with a change against it."""

    target: float = 0.0
    rate: float = 0.5

    def arrays(self, message: Message) -> dict[str, np.ndarray]:
        return {
            name: (value + self.rate * (self.target - value)).astype(value.dtype)
            for name, value in received_arrays(message).items()
        }


@pytest.fixture(scope="module")
def ledger(tmp_path_factory) -> Ledger:
    return Ledger.create(str(tmp_path_factory.mktemp("resume-responses") / "store"), SITES)


def federation() -> InProcessFederation:
    sites = InProcessFederation(len(SITES))
    for index, (node, account) in enumerate(zip(sites.node_ids, SITES, strict=True)):
        sites.responders[node] = TargetSite(account, step=0.0, target=0.1 * index, rate=0.3 + 0.1 * index)
    return sites


def manifests(ledger: Ledger, run_id: int) -> list[RoundManifest]:
    registry, store = ledger.session.registry, ledger.session.store
    return [
        RoundManifest.from_bytes(store.get(registry.committed_round(run_id, number).commitment.manifest_hash))
        for number in range(1, registry.run(run_id).committed_rounds + 1)
    ]


def responses(manifest: RoundManifest) -> dict[str | None, float | None]:
    return {entry.participant: entry.anomaly.response for entry in manifest.updates if entry.anomaly is not None}


def test_a_resumed_runs_first_round_records_the_responses_an_uninterrupted_run_records(ledger):
    with federation() as sites:
        uninterrupted, _ = ledger.run(sites, SETTINGS, **DETECTOR)
    with federation() as sites:
        run_id, _ = ledger.run(sites, SETTINGS, rounds=1, **DETECTOR)
    with federation() as sites:
        resumed_id, resumed = ledger.run(sites, SETTINGS, resume_run=run_id, **DETECTOR)
    assert resumed_id == run_id and [report.round for report in resumed.reports] == [2, 3]
    expected, recorded = manifests(ledger, uninterrupted), manifests(ledger, run_id)
    assert len(responses(recorded[1])) == len(SITES)
    assert all(response is not None and response < 0 for response in responses(recorded[1]).values())
    assert [responses(manifest) for manifest in recorded] == [responses(manifest) for manifest in expected]
    report = Auditor(ledger.session.registry, ledger.session.store, key=ledger.session.vault.key).audit([run_id])
    assert report.passed, [str(finding) for finding in report.problems()]
    (second,) = [f for f in report.findings if f.check == "anomaly" and f.round == 2]
    assert second.message.startswith(f"{len(SITES)} updates examined, {len(SITES)} responses to the last global step")


def test_a_run_whose_examined_update_is_lost_is_not_resumed(ledger):
    with federation() as sites:
        run_id, wrapped = ledger.run(sites, SETTINGS, rounds=1, **DETECTOR)
    (first,) = manifests(ledger, run_id)
    lost = first.updates[examined_entries(first)[2]]
    Path(ledger.session.store.path_of(from_hex(lost.sealed_hash or ""))).unlink()
    session = ledger.session
    with pytest.raises(CannotResume, match=f"^round 1's examined update from node {lost.node_id} cannot be read: "):
        resumed_run(session, session.registry.run(run_id), wrapped.recorder.configuration)
