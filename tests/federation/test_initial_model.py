"""The initial model comes from the first node that gives a readable, finite one: a node that
sends garbage, NaN, an empty model, an error or nothing is passed over, and only when every node
fails does the run stop, in one line naming each of them."""

from collections.abc import Callable

import numpy as np
import pytest
from flwr.app import ArrayRecord, Message, MetricRecord, RecordDict
from inprocess_federation import INITIAL_MODEL, InProcessFederation, arrays_record

from fedledger import messages
from fedledger.coordinator.app import request_initial_model
from fedledger.coordinator.settings import FederationSettings
from fedledger.encoding import model_hash
from fedledger.errors import FedLedgerError

SETTINGS = FederationSettings(round_timeout=0.5, connect_timeout=1.0)


def model(message: Message) -> Message:
    return Message(RecordDict({messages.ARRAYS_RECORD: arrays_record(INITIAL_MODEL)}), reply_to=message)


def garbage(message: Message) -> Message:
    return Message(RecordDict({messages.METRICS_RECORD: MetricRecord({"not-a-model": 1})}), reply_to=message)


def silent(message: Message) -> None:
    return None


def test_nodes_that_send_garbage_or_nothing_are_passed_over():
    federation = InProcessFederation(3)
    first, second, third = sorted(federation.node_ids)
    federation.responders.update({first: garbage, second: silent, third: model})
    with federation:
        initial = request_initial_model(federation.grid, SETTINGS)
    assert list(initial) == sorted(INITIAL_MODEL) and model_hash(initial) == model_hash(INITIAL_MODEL)


def poisoned(value: float) -> Callable[[Message], Message]:
    def answer(message: Message) -> Message:
        arrays = {**INITIAL_MODEL, "hidden.bias": np.array([0.0, value, 0.0, 0.0], np.float32)}
        return Message(RecordDict({messages.ARRAYS_RECORD: arrays_record(arrays)}), reply_to=message)

    return answer


def empty(message: Message) -> Message:
    return Message(RecordDict({messages.ARRAYS_RECORD: ArrayRecord()}), reply_to=message)


def test_a_model_with_nan_or_infinite_values_or_none_at_all_is_passed_over():
    federation = InProcessFederation(4)
    first, second, third, fourth = sorted(federation.node_ids)
    federation.responders.update({first: poisoned(np.nan), second: poisoned(-np.inf), third: empty, fourth: model})
    with federation:
        initial = request_initial_model(federation.grid, SETTINGS)
    assert model_hash(initial) == model_hash(INITIAL_MODEL)


def test_the_refusals_of_a_poisoned_and_an_empty_model_say_what_was_wrong():
    federation = InProcessFederation(2)
    first, second = sorted(federation.node_ids)
    federation.responders.update({first: poisoned(np.nan), second: empty})
    with federation, pytest.raises(FedLedgerError) as stopped:
        request_initial_model(federation.grid, SETTINGS)
    assert f"node {first}: its model's array 'hidden.bias' holds NaN or infinite values" in str(stopped.value)
    assert f"node {second}: its reply holds an empty model" in str(stopped.value)


def test_when_no_node_gives_a_model_the_run_stops_in_one_line_naming_each():
    federation = InProcessFederation(2)
    first, second = sorted(federation.node_ids)
    federation.responders.update({first: garbage, second: silent})
    with federation, pytest.raises(FedLedgerError) as stopped:
        request_initial_model(federation.grid, SETTINGS)
    message = str(stopped.value)
    assert "\n" not in message
    assert f"node {first}: its reply holds no readable model: KeyError" in message
    assert f"node {second}: no answer within round-timeout (0.5 s)" in message
