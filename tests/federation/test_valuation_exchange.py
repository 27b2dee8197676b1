"""The coordinator asks for a round's valuation with the round's evaluation: a validator sampled
for evaluation gets one request holding the new model and the candidates, one that is not gets the
candidates alone, and no node gets two evaluate messages in a round."""

from collections import defaultdict
from dataclasses import dataclass, field

from flwr.app import Message, MessageType
from inprocess_federation import HonestSite, InProcessFederation, Ledger

from fedledger import messages
from fedledger.manifest import RoundManifest
from tabular_app.settings import FederationSettings

from helpers import participant_key

SITES = [participant_key(index) for index in range(40, 44)]


@dataclass
class Recording:
    """An honest site that records the ArrayRecord names of every evaluate message it is sent, by round."""

    site: HonestSite
    evaluate: dict[int, list[list[str]]] = field(default_factory=lambda: defaultdict(list))

    def __call__(self, message: Message) -> Message:
        if message.metadata.message_type == MessageType.EVALUATE:
            round_number = int(message.content[messages.CONFIG_RECORD][messages.CONFIG_ROUND])
            self.evaluate[round_number].append(sorted(message.content.array_records))
        return self.site(message)


def run(tmp_path, fraction_evaluate: float) -> tuple[list[RoundManifest], dict[int, Recording]]:
    ledger = Ledger.create(str(tmp_path / "store"), SITES)
    federation = InProcessFederation(len(SITES))
    sites = {
        node: Recording(HonestSite(account, step=0.01 * (index + 1)))
        for index, (node, account) in enumerate(zip(federation.node_ids, SITES, strict=True))
    }
    federation.responders.update(sites)
    settings = FederationSettings(
        num_server_rounds=2, min_nodes=2, fraction_evaluate=fraction_evaluate, round_timeout=10.0
    )
    with federation:
        run_id, _ = ledger.run(federation, settings)
    registry, store = ledger.session.registry, ledger.session.store
    manifests = [
        RoundManifest.from_bytes(store.get(registry.committed_round(run_id, number).commitment.manifest_hash))
        for number in (1, 2)
    ]
    return manifests, sites


def candidate_names(manifest: RoundManifest) -> list[str]:
    assert manifest.valuation is not None
    return [messages.candidate_record(index) for index in range(len(manifest.valuation.candidates))]


def test_validators_asked_to_evaluate_get_the_candidates_in_that_one_request(tmp_path):
    manifests, sites = run(tmp_path, fraction_evaluate=1.0)
    for manifest in manifests:
        assert manifest.valuation is not None and manifest.valuation.failure is None
        assert len(manifest.valuation.candidates) == 2 * len(SITES) + 2
        assert [report.reason for report in manifest.valuation.validators] == [None] * len(SITES)
        assert manifest.evaluation.asked == tuple(sorted(sites)) and not manifest.rejected_evaluations
        assert set(manifest.metrics["evaluate"]["participants"]) == {account.address for account in SITES}
        for recording in sites.values():
            assert recording.evaluate[manifest.round] == [sorted([messages.ARRAYS_RECORD, *candidate_names(manifest)])]


def test_validators_not_sampled_for_evaluation_get_the_candidates_alone_and_are_not_counted_as_evaluators(tmp_path):
    manifests, sites = run(tmp_path, fraction_evaluate=0.5)
    for manifest in manifests:
        assert manifest.valuation is not None and manifest.valuation.failure is None
        assert [report.reason for report in manifest.valuation.validators] == [None] * len(SITES)
        evaluated = set(manifest.evaluation.asked)
        assert len(evaluated) == len(SITES) // 2 and not manifest.evaluation.silent
        assert len(manifest.metrics["evaluate"]["participants"]) == len(evaluated)
        for node, recording in sites.items():
            model = [messages.ARRAYS_RECORD] if node in evaluated else []
            assert recording.evaluate[manifest.round] == [sorted([*model, *candidate_names(manifest)])]
