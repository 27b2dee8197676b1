"""Flower messages can only be built inside a task; these tests act as one. Figures a test
measures can be added to the end of the session's summary."""

from collections.abc import Callable, Iterator

import pytest
from flwr.supercore.task_identity import TaskIdentity

_SUMMARY = pytest.StashKey[list[str]]()


@pytest.fixture(autouse=True)
def flower_task_identity() -> Iterator[None]:
    saved = (TaskIdentity._run_id, TaskIdentity._task_id, TaskIdentity._node_id)
    TaskIdentity.run_id, TaskIdentity.task_id, TaskIdentity.node_id = 1, 1, 0
    yield
    TaskIdentity._run_id, TaskIdentity._task_id, TaskIdentity._node_id = saved


@pytest.fixture(scope="session")
def summary_line(request: pytest.FixtureRequest) -> Callable[[str], None]:
    """Adds a line to the end of the session's terminal summary (a figure a test measured)."""
    return request.config.stash.setdefault(_SUMMARY, []).append


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    for line in config.stash.get(_SUMMARY, []):
        terminalreporter.write_line(line)
