"""Fixtures shared by the whole suite: an in-process chain, its accounts and a deployed registry."""

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from eth_account.signers.local import LocalAccount

from fedledger.chain import Chain, Registry
from fedledger.chain.anvil import AnvilNode, free_port

from helpers import PARTICIPANT_FUNDING_WEI, participant_key


@dataclass(frozen=True)
class Actors:
    admin: str
    coordinator: str
    outsider: str
    participants: list[LocalAccount]


@pytest.fixture
def chain() -> Chain:
    return Chain.in_process()


@pytest.fixture
def actors(chain: Chain) -> Actors:
    admin, coordinator, outsider = chain.signers[:3]
    participants = [participant_key(index) for index in range(4)]
    for account in participants:
        chain.add_signer(account)
        chain.send_value(admin, account.address, PARTICIPANT_FUNDING_WEI)
    return Actors(admin, coordinator, outsider, participants)


@pytest.fixture
def registry(chain: Chain, actors: Actors) -> Registry:
    """A fresh registry; this handle sends as the admin."""
    deployed, _ = Registry.deploy(chain, actors.admin, coordinator=actors.coordinator)
    return deployed


#: The run allowance the admin grants the ``coordinator`` fixture: room for every run a test starts.
COORDINATOR_ALLOWANCE = 10**30


@pytest.fixture
def coordinator(registry: Registry, actors: Actors) -> Registry:
    """The same registry, sending as the coordinator, with a run allowance of ``COORDINATOR_ALLOWANCE``."""
    registry.set_run_allowance(actors.coordinator, COORDINATOR_ALLOWANCE)
    return registry.as_sender(actors.coordinator)


@pytest.fixture
def anvil(tmp_path: Path) -> Iterator[AnvilNode]:
    """A real anvil node on a free port, its chain kept in a temporary directory."""
    with AnvilNode(tmp_path / "anvil", port=free_port()) as node:
        yield node
