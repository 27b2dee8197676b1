"""A finished run's directory, saved the way a simulation on the in-process chain leaves it."""

from collections.abc import Callable
from pathlib import Path

import pytest

from fedledger.chain import Chain
from fedledger.coordinator.session import CHAIN_FILE
from fedledger.deployment import LedgerLocation
from fedledger.simulations.history import SyntheticHistory
from fedledger.store import ArtifactStore


@pytest.fixture
def write_run() -> Callable[..., SyntheticHistory]:
    """Write a run of ``planned_rounds`` into ``directory``: ``committed`` rounds committed, then
    ``uncommitted`` rounds stored but never committed; its chain kept in the journal chain.jsonl, its
    store in store/, and its ledger.json."""

    def write(directory: Path, planned_rounds: int = 3, committed: int = 3, uncommitted: int = 0) -> SyntheticHistory:
        chain = Chain.in_process()
        chain.journal_to(directory / CHAIN_FILE)
        store = ArtifactStore(directory / "store")
        history = SyntheticHistory(chain, store, {"w": (5, 3), "b": (5,)}, clients=3, planned_rounds=planned_rounds)
        for _ in range(committed):
            history.add_round()
        for _ in range(uncommitted):
            history.add_round(commit=False)
        LedgerLocation(
            chain_id=chain.chain_id,
            registry=history.registry.address,
            run_id=history.run_id,
            store=str(directory / "store"),
            saved_chain=str(directory / CHAIN_FILE),
        ).save(directory)
        return history

    return write


@pytest.fixture
def finished_run(tmp_path: Path, write_run: Callable[..., SyntheticHistory]) -> tuple[Path, SyntheticHistory]:
    """A three-round history, every planned round committed."""
    return tmp_path, write_run(tmp_path)
