"""Dropouts: every wait is bounded, and the manifest names who was asked and who never answered.

The ledger strategy and Flower's FedAvg run on Flower's InMemoryGrid and LinkState
(``inprocess_federation``), with honest sites signing real updates on an in-process chain.
"""

import logging
import re
import threading
import time

import pytest
from flwr.serverapp.strategy import FedAvg, FedMedian
from flwr.serverapp.strategy.dp_fixed_clipping import DifferentialPrivacyServerSideFixedClipping
from inprocess_federation import INITIAL_MODEL, HonestSite, InProcessFederation, Ledger

from fedledger.coordinator.waiting import BoundedWaitGrid, TooFewNodes, nodes_needed
from fedledger.encoding import model_hash
from fedledger.hashing import to_hex
from fedledger.manifest import RoundManifest
from tabular_app.settings import FederationSettings

from helpers import participant_key

SITES = [participant_key(index) for index in range(4)]


@pytest.fixture(scope="module")
def ledger(tmp_path_factory) -> Ledger:
    return Ledger.create(str(tmp_path_factory.mktemp("dropouts") / "store"), SITES)


def honest_federation(nodes: int) -> InProcessFederation:
    federation = InProcessFederation(nodes)
    for node, account in zip(federation.node_ids, SITES, strict=False):
        federation.responders[node] = HonestSite(account, step=0.01 * (1 + SITES.index(account)))
    return federation


def manifests(ledger: Ledger, run_id: int) -> list[RoundManifest]:
    registry, store = ledger.session.registry, ledger.session.store
    return [
        RoundManifest.from_bytes(store.get(registry.committed_round(run_id, number).commitment.manifest_hash))
        for number in range(1, registry.run(run_id).committed_rounds + 1)
    ]


def test_a_node_that_never_answers_is_recorded_as_asked_and_silent(ledger):
    federation = honest_federation(4)
    silent = federation.node_ids[3]
    federation.responders[silent] = lambda message: None
    settings = FederationSettings(num_server_rounds=2, min_nodes=4, round_timeout=0.5)
    started = time.monotonic()
    with federation:
        run_id, _ = ledger.run(federation, settings)
    assert time.monotonic() - started < 10, "each phase waits round-timeout for the silent node, no longer"
    everyone = tuple(sorted(federation.node_ids))
    for manifest in manifests(ledger, run_id):
        assert manifest.outcome == "aggregated"
        assert (manifest.training.asked, manifest.training.silent) == (everyone, (silent,))
        assert (manifest.evaluation.asked, manifest.evaluation.silent) == (everyone, (silent,))
        assert silent not in {entry.node_id for entry in manifest.updates}
        assert len(manifest.accepted) == 3
        assert sorted(manifest.metrics["evaluate"]["participants"]) == sorted(site.address for site in SITES[:3])
    assert [report.round for report in ledger.reports[-2:]] == [1, 2]


def test_with_too_few_nodes_connected_each_round_fails_after_the_wait_and_the_run_goes_on(ledger, caplog):
    federation = honest_federation(2)
    settings = FederationSettings(num_server_rounds=2, min_nodes=3, round_timeout=5.0)
    with federation, caplog.at_level(logging.WARNING, logger="flwr"):
        run_id, _ = ledger.run(federation, settings, connect_timeout=0.5)
    rounds = manifests(ledger, run_id)
    assert [manifest.round for manifest in rounds] == [1, 2]
    for manifest in rounds:
        assert manifest.outcome == "failed"
        assert re.fullmatch(r"too few nodes connected: 2 connected, 3 needed; waited 0\.\d s", manifest.failure or "")
        assert manifest.training == manifest.evaluation
        assert manifest.training.skipped == manifest.failure and manifest.training.asked == ()
        assert manifest.model_hash == manifest.base_model_hash
        assert manifest.updates == () and manifest.rejected_evaluations == ()
    assert rounds[1].base_model_hash == to_hex(model_hash(INITIAL_MODEL))
    lines = [record.getMessage() for record in caplog.records if "nodes connected" in record.getMessage()]
    assert len(lines) == 4, "one line per phase and round"
    for line, phase in zip(lines, ["training", "evaluation"] * 2, strict=True):
        assert re.fullmatch(
            rf"round \d: no {phase}: 2 nodes connected, 3 needed; waited 0\.\d s \(connect-timeout\)", line
        )


def test_a_node_that_connects_while_the_round_waits_takes_part(ledger):
    federation = honest_federation(2)
    late = federation.connect_later()
    federation.responders[late] = HonestSite(SITES[2], step=0.03)
    settings = FederationSettings(num_server_rounds=1, min_nodes=3, round_timeout=5.0)
    with federation:
        threading.Timer(0.3, federation.connect, [late]).start()
        run_id, _ = ledger.run(federation, settings, connect_timeout=30.0)
    (manifest,) = manifests(ledger, run_id)
    assert manifest.outcome == "aggregated"
    assert late in manifest.training.asked and len(manifest.accepted) == 3


def test_a_node_that_drops_while_the_strategy_samples_does_not_hang_the_round(ledger):
    """Flower's FedAvg counts the connected nodes to size its sample, then waits until that many
    are connected: a node that drops between the two counts must not leave it waiting for ever."""
    federation = honest_federation(4)
    dropping = federation.node_ids[3]
    count_nodes = federation.grid.get_node_ids

    def count_then_drop() -> list[int]:
        nodes = list(count_nodes())
        federation.disconnect(dropping)
        return nodes

    federation.grid.get_node_ids = count_then_drop
    settings = FederationSettings(num_server_rounds=1, min_nodes=2, round_timeout=1.0)
    finished = []
    with federation:
        runner = threading.Thread(target=lambda: finished.append(ledger.run(federation, settings)), daemon=True)
        runner.start()
        runner.join(timeout=30)
    assert finished, "the round hung while the strategy sampled"
    ((run_id, _),) = finished
    (manifest,) = manifests(ledger, run_id)
    assert manifest.outcome == "aggregated" and len(manifest.accepted) == 3
    assert dropping in manifest.training.asked and manifest.training.silent == (dropping,)
    assert dropping not in manifest.evaluation.asked


def test_the_wait_is_for_what_the_strategy_needs():
    assert nodes_needed(FedAvg(min_available_nodes=3, min_train_nodes=2, min_evaluate_nodes=5), "train") == 3
    assert nodes_needed(FedAvg(min_available_nodes=3, min_train_nodes=2, min_evaluate_nodes=5), "evaluate") == 5
    assert nodes_needed(FedMedian(fraction_evaluate=0.0), "evaluate") == 0
    assert nodes_needed(DifferentialPrivacyServerSideFixedClipping(FedAvg(), 1.0, 1.0, 2), "train") == 1


def test_the_bounded_wait_gives_up_with_what_it_saw():
    federation = InProcessFederation(1)
    waiting = BoundedWaitGrid(federation.grid, needed=2, timeout=0.2)
    with pytest.raises(TooFewNodes) as caught:
        waiting.get_node_ids()
    assert (caught.value.connected, caught.value.needed) == (1, 2)
    assert 0.2 <= caught.value.waited < 1.0
    assert list(BoundedWaitGrid(federation.grid, needed=1, timeout=0.0).get_node_ids()) == federation.node_ids


def test_once_enough_nodes_were_connected_the_phase_sees_those_nodes():
    federation = InProcessFederation(3)
    waiting = BoundedWaitGrid(federation.grid, needed=2, timeout=0.0)
    connected = sorted(waiting.get_node_ids())
    federation.disconnect(connected[0])
    assert sorted(federation.grid.get_node_ids()) == connected[1:]
    assert sorted(waiting.get_node_ids()) == connected
