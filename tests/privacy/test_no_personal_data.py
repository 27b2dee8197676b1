"""Nothing personal on-chain or in manifests: a real run's calldata, event logs, manifests and run
configuration hold no value of any record its sites trained on (``record_scan`` says what counts)."""

import json
import struct

import pytest
from record_scan import RecordValues, distinctive, scan_bytes, scan_json, significant_digits

from fedledger.chain import Registry
from fedledger.simulations.runner import SimulationRequest, SimulationResult, simulate_federation
from fedledger.store import ArtifactStore

pytestmark = pytest.mark.simulation


def published(result: SimulationResult) -> tuple[list[tuple[str, bytes]], list[tuple[str, bytes]]]:
    """(every transaction's calldata and every log's topics and data; every manifest and the run
    configuration), each named by where it is."""
    w3 = result.chain.w3
    onchain = []
    for number in range(w3.eth.block_number + 1):
        for transaction in w3.eth.get_block(number, full_transactions=True)["transactions"]:
            where = f"block {number} transaction {transaction['hash'].hex()}"
            calldata = transaction["input"] if "input" in transaction else transaction["data"]
            onchain.append((f"{where} calldata", bytes(calldata)))
            for index, log in enumerate(w3.eth.get_transaction_receipt(transaction["hash"])["logs"]):
                data = b"".join(bytes(topic) for topic in log["topics"]) + bytes(log["data"])
                onchain.append((f"{where} log {index}", data))
    ledger = result.summary.ledger
    registry, store = Registry(result.chain, ledger.registry), ArtifactStore(ledger.store)
    run = registry.run(ledger.run_id)
    documents = [("run configuration", store.get(run.config_hash))]
    for number in range(1, run.committed_rounds + 1):
        manifest_hash = registry.committed_round(ledger.run_id, number).commitment.manifest_hash
        documents.append((f"round {number} manifest", store.get(manifest_hash)))
    return onchain, documents


@pytest.mark.parametrize(("scenario", "clients"), [("hospitals", None), ("banks", 6)])
def test_no_record_value_is_on_chain_or_in_a_manifest(tmp_path, scenario, clients):
    request = SimulationRequest(scenario=scenario, clients=clients, rounds=2, output_dir=tmp_path / "run")
    result = simulate_federation(request, on_round=lambda report: None)
    values = RecordValues.of_csv(result.data.site_path(index) for index in range(len(result.data.sites)))
    assert len(values.rows) > 300
    assert values.numbers if scenario == "banks" else values.texts  # hospitals: no number has 4 digits

    onchain, documents = published(result)
    on_chain_found, scanned_bytes = scan_bytes(onchain, values)
    in_documents, leaves = scan_json(documents, values)

    assert scanned_bytes > 10_000 and leaves > 100
    assert on_chain_found == [], on_chain_found[:5]
    assert in_documents == [], in_documents[:5]


def test_the_scan_finds_a_planted_value(tmp_path):
    site = tmp_path / "site.csv"
    site.write_text("age,income,ratio,region\n63,58490,17.63,Cleveland\n71,4583,22.54,Hungary\n")
    values = RecordValues.of_csv([site])
    assert values.numbers == {58490.0, 17.63, 22.54} and values.texts == {"Cleveland", "Hungary"}

    leaked = {"updates": [{"metrics": {"train-loss": 0.31, "leaked": 58490, "ratio": 22.54}}], "detail": "at Cleveland"}
    found, _ = scan_json([("manifest", json.dumps(leaked).encode())], values)
    assert {finding.what for finding in found} == {"number 58490", "number 22.54", "text 'Cleveland' in 'at Cleveland'"}

    calldata = b"\x12" * 40 + struct.pack(">d", 17.63) + (58490).to_bytes(32, "big")
    found, scanned = scan_bytes([("calldata", calldata)], values)
    assert scanned == len(calldata)
    assert {finding.what for finding in found} == {"17.63 as float64 BE", "58490.0 as an ABI word"}
    row = struct.pack("<3f", 71, 4583, 22.54)
    found, _ = scan_bytes([("batch", b"\x00" * 7 + row)], values)
    assert any(finding.what.startswith("record (71.0, 4583.0, 22.54)") for finding in found)


def test_short_numbers_simple_fractions_and_small_integers_are_not_searched():
    assert [significant_digits(value) for value in (63, 360, 2.3, 5849, 17.63, 0.754237)] == [2, 2, 2, 4, 4, 6]
    assert [distinctive(value) for value in (63.0, 2.3, 1024.0, 33 / 35, 58490.0, 17.63, 0.754237)] == [
        False,
        False,
        False,
        False,
        True,
        True,
        True,
    ]
