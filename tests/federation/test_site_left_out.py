"""A simulation without one site: the others take part under their own keys and data, and the final
model is still measured on every site's test rows (the leave-one-site-out value of the attack
benchmark)."""

import numpy as np
import pytest

from fedledger.chain import Registry
from fedledger.encoding import decode_model
from fedledger.hashing import from_hex
from fedledger.keys import simulated_participant
from fedledger.manifest import RoundManifest
from fedledger.simulations.runner import RequestError, SimulationRequest, simulate_federation
from fedledger.store import ArtifactStore
from tabular_app.models import TabularClassifier
from tabular_app.site import load_site
from tabular_app.training import evaluate

pytestmark = pytest.mark.simulation


def test_a_left_out_site_sends_nothing_and_its_test_rows_still_count(tmp_path):
    request = SimulationRequest(scenario="hospitals", rounds=1, left_out=(1,), output_dir=tmp_path / "run")
    result = simulate_federation(request, lambda report: None)
    ledger = result.summary.ledger
    registry, store = Registry(result.chain, ledger.registry), ArtifactStore(ledger.store)
    manifest = RoundManifest.from_bytes(store.get(registry.committed_round(ledger.run_id, 1).commitment.manifest_hash))
    settings, data = result.settings, result.data
    sites = [
        load_site(data.site_path(partition), data.schema_path, settings.test_fraction, settings.split_seed)
        for partition in range(4)
    ]
    assert {(entry.participant, entry.num_examples) for entry in manifest.accepted} == {
        (simulated_participant(0, partition).address, len(sites[partition].train_labels)) for partition in (0, 2, 3)
    }

    model = TabularClassifier.from_arrays(decode_model(store.get(from_hex(result.summary.final_model_hash))))
    labels = np.concatenate([site.test_labels for site in sites])
    p = np.concatenate([evaluate(model, site.test_inputs, site.test_labels).probabilities for site in sites])
    p = np.clip(p, 1e-12, 1 - 1e-12)
    log_loss = -np.mean(labels * np.log(p) + (1 - labels) * np.log(1 - p))
    assert result.pooled_loss == pytest.approx(log_loss, rel=1e-5)
    assert len(result.sites) == 4


def test_a_site_that_does_not_exist_cannot_be_left_out(tmp_path):
    with pytest.raises(RequestError, match="site 4 cannot be left out: the sites are numbered 0 to 3"):
        SimulationRequest(scenario="hospitals", left_out=(4,), output_dir=tmp_path)
