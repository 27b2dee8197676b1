"""Updates at the edges of what float64 holds — no move at all, or values near its limit — are
scored or rejected, and the round is committed; they never end the run."""

from dataclasses import dataclass

import numpy as np
import pytest
from flwr.app import Message
from inprocess_federation import HonestSite, InProcessFederation, Ledger

from fedledger.encoding import decode_model
from fedledger.hashing import from_hex
from fedledger.manifest import RoundManifest
from tabular_app.settings import FederationSettings

from helpers import participant_key

SITES = [participant_key(index) for index in range(5)]


@pytest.fixture(scope="module")
def ledger(tmp_path_factory) -> Ledger:
    return Ledger.create(str(tmp_path_factory.mktemp("extreme") / "store"), SITES)


@dataclass(frozen=True)
class HugeValueSite(HonestSite):
    """Signs an update with one value of 1e200: infinite in a float32 model, finite in float64."""

    def arrays(self, message: Message) -> dict[str, np.ndarray]:
        arrays = super().arrays(message)
        bias = arrays["hidden.bias"].copy()
        with np.errstate(over="ignore"):
            bias[0] = 1e200
        return {**arrays, "hidden.bias": bias}


def run(ledger: Ledger, sites: list[HonestSite], settings: FederationSettings) -> list[RoundManifest]:
    federation = InProcessFederation(len(sites))
    for node, site in zip(federation.node_ids, sites, strict=True):
        federation.responders[node] = site
    with federation:
        run_id, _ = ledger.run(federation, settings)
    registry, store = ledger.session.registry, ledger.session.store
    return [
        RoundManifest.from_bytes(store.get(registry.committed_round(run_id, number).commitment.manifest_hash))
        for number in range(1, settings.num_server_rounds + 1)
    ]


def test_a_round_where_most_sites_send_the_model_back_unchanged_is_scored_and_committed(ledger):
    sites = [HonestSite(account, step=0.0) for account in SITES[:3]]
    sites += [HonestSite(account, step=0.01) for account in SITES[3:]]
    (manifest,) = run(ledger, sites, FederationSettings(num_server_rounds=1, min_nodes=5))
    assert manifest.outcome == "aggregated" and len(manifest.accepted) == 5
    scores = {entry.participant: entry.score for entry in manifest.accepted}
    assert [scores[account.address] for account in SITES[:3]] == [0.0, 0.0, 0.0], "they add nothing"
    moved = [scores[account.address] for account in SITES[3:]]
    assert moved[0] > 0 and moved == pytest.approx([moved[0]] * 2)


def test_an_update_too_far_from_a_float64_model_is_rejected_as_non_finite(ledger):
    sites = [HonestSite(account, step=0.01 * (1 + index)) for index, account in enumerate(SITES[:4])]
    sites.append(HugeValueSite(SITES[4], step=0.01))
    manifests = run(ledger, sites, FederationSettings(strategy="FedAdam", num_server_rounds=2, min_nodes=5))
    for manifest in manifests:
        assert manifest.outcome == "aggregated" and len(manifest.accepted) == 4, manifest.round
        (huge,) = manifest.rejected
        assert (huge.participant, huge.reason) == (SITES[4].address, "non-finite")
    round_one_model = decode_model(ledger.session.store.get(from_hex(manifests[0].model_hash)))
    assert round_one_model["hidden.bias"].dtype == np.float64, "FedAdam's step makes the model float64"
    first, second = (manifest.rejected[0].detail for manifest in manifests)
    assert first == "array 'hidden.bias' holds NaN or infinite values", "1e200 is infinite in float32"
    assert second.startswith("the update's distance from the global model overflows: its square is inf")
