"""A site whose data, schema or key cannot be used answers the coordinator with an error reply that
names the file and what is wrong, instead of raising in its SuperNode: the tabular app's
``reply_with_site_errors`` answers for its data, ``ledger_mod`` for the key."""

from pathlib import Path

import pytest
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, MessageType, RecordDict

from fedledger import messages
from fedledger.client.identity import KEYSTORE
from fedledger.keys import KEYSTORE_PASSWORD_ENV, create_keystore
from fedledger.simulations.scenarios import SCENARIOS
from tabular_app.client_app import app
from tabular_app.models import TabularClassifier, model_arrays
from tabular_app.schema import Schema
from tabular_app.server_app import client_config
from tabular_app.settings import FederationSettings
from tabular_app.site import DATA_PATH, SCHEMA_PATH

REGISTRY = "0x5FbDB2315678afecb367f032d93F642f64180aa3"


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> tuple[Path, Path]:
    """One hospital's records and the federation's schema."""
    data = SCENARIOS["hospitals"].prepare(tmp_path_factory.mktemp("data"), 4, 0)
    return data.site_path(0), data.schema_path


def request(message_type: str, schema_path: Path) -> Message:
    """A request as the ledger strategy sends it in round 1 of run 1."""
    schema = Schema.load(schema_path)
    model = TabularClassifier.initialised(schema.num_features, 16, 0)
    config = client_config(FederationSettings())
    config[messages.CONFIG_RUN_ID], config[messages.CONFIG_ROUND] = 1, 1
    config[messages.CONFIG_CHAIN_ID], config[messages.CONFIG_REGISTRY] = 31337, REGISTRY
    arrays = ArrayRecord({name: Array(value) for name, value in sorted(model_arrays(model).items())})
    content = RecordDict({messages.ARRAYS_RECORD: arrays, messages.CONFIG_RECORD: ConfigRecord(config)})
    return Message(content, dst_node_id=0, message_type=message_type)


def reply(message_type: str, site: tuple[Path, Path], **node_config: str) -> Message:
    data_path, schema_path = site
    config = {DATA_PATH: str(data_path), SCHEMA_PATH: str(schema_path), **node_config}
    context = Context(run_id=1, node_id=0, node_config=config, state=RecordDict(), run_config={})
    return app(request(message_type, schema_path), context)


@pytest.mark.parametrize("message_type", [MessageType.TRAIN, MessageType.EVALUATE])
def test_a_garbage_keystore_is_named_in_the_error_reply(site, tmp_path: Path, monkeypatch, message_type: str):
    monkeypatch.setenv(KEYSTORE_PASSWORD_ENV, "x")
    keystore = tmp_path / "keystore.json"
    keystore.write_bytes(bytes(range(128, 256)))
    answer = reply(message_type, site, **{KEYSTORE: str(keystore)})
    assert answer.has_error()
    assert answer.error.reason == f"ledger_mod: keystore {keystore} is not an Ethereum keystore (not a JSON file)"


def test_a_wrong_keystore_password_is_named_in_the_error_reply(site, tmp_path: Path, monkeypatch):
    keystore = tmp_path / "keystore.json"
    create_keystore(keystore, "right")
    monkeypatch.setenv(KEYSTORE_PASSWORD_ENV, "wrong")
    answer = reply(MessageType.TRAIN, site, **{KEYSTORE: str(keystore)})
    assert answer.has_error()
    assert answer.error.reason == f"ledger_mod: wrong password for keystore {keystore}"


def test_a_missing_data_file_is_named_in_the_error_reply(site, tmp_path: Path):
    absent = tmp_path / "absent.csv"
    keystore = tmp_path / "keystore.json"
    create_keystore(keystore, "right")
    answer = reply(MessageType.EVALUATE, (absent, site[1]), **{KEYSTORE: str(keystore)})
    assert answer.has_error()
    assert answer.error.reason == f"data file {absent} does not exist"


def test_a_usable_site_answers_with_a_signed_update(site, tmp_path: Path, monkeypatch):
    keystore = tmp_path / "keystore.json"
    account = create_keystore(keystore, "right")
    monkeypatch.setenv(KEYSTORE_PASSWORD_ENV, "right")
    answer = reply(MessageType.TRAIN, site, **{KEYSTORE: str(keystore)})
    assert not answer.has_error()
    assert answer.content[messages.LEDGER_RECORD][messages.PARTICIPANT] == account.address
