"""What a scenario is: demo records split over sites, the schema they follow, training defaults."""

import json
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pandas as pd

from fedledger.errors import FedLedgerError
from tabular_app.schema import Schema
from tabular_app.training import TrainingSettings

PARTITIONS_FILE = "partitions.json"
SCHEMA_FILE = "schema.json"


@dataclass(frozen=True)
class Site:
    """One participant's share of a scenario's records."""

    name: str
    file: str
    rows: int


@dataclass(frozen=True)
class PreparedData:
    """A scenario's records written out as one data file per site, plus the schema they follow.

    Each site reads only its own file, as a real install would; ``partition-id`` N reads
    ``sites[N].file``.
    """

    directory: Path
    sites: tuple[Site, ...]

    @property
    def schema_path(self) -> Path:
        return self.directory / SCHEMA_FILE

    def site_path(self, partition_id: int) -> Path:
        return self.directory / self.sites[partition_id].file

    @classmethod
    def load(cls, directory: Path) -> "PreparedData":
        index = json.loads((directory / PARTITIONS_FILE).read_text())
        return cls(directory, tuple(Site(**site) for site in index["sites"]))


class ScenarioError(FedLedgerError, ValueError):
    """A scenario cannot be split as asked; the message says what it supports."""


class Scenario(ABC):
    """A demo federation: real or generated records, split over sites, and how to train on them.

    A scenario declares how many sites it can be split over (``min_clients`` to ``max_clients()``)
    and must split for every count in that range and every seed.
    """

    name: ClassVar[str]
    description: ClassVar[str]
    default_clients: ClassVar[int]
    min_clients: ClassVar[int] = 2
    #: Why there is an upper limit, when there is one; ends the message that refuses a count.
    client_limit: ClassVar[str] = ""
    default_rounds: ClassVar[int] = 10
    hidden_units: ClassVar[int] = 16
    training: ClassVar[TrainingSettings] = TrainingSettings()

    def max_clients(self) -> int | None:
        """The most sites the scenario can be split over; ``None``: no limit."""
        return None

    def check_clients(self, clients: int) -> None:
        """Refuse a site count the scenario cannot be split over.

        Raises:
            ScenarioError: naming the count and the range the scenario supports.
        """
        low, high = self.min_clients, self.max_clients()
        if low <= clients and (high is None or clients <= high):
            return
        if high is None:
            supported = f"at least {low}"
        elif low == high:
            supported = f"exactly {low}"
        else:
            supported = f"{low} to {high}"
        limit = f" ({self.client_limit})" if self.client_limit else ""
        raise ScenarioError(f"the {self.name} scenario can be split over {supported} sites{limit}, not {clients}")

    @abstractmethod
    def split(self, clients: int, seed: int) -> tuple[Schema, list[tuple[str, pd.DataFrame]]]:
        """The schema and, per site, its name and records (schema columns plus the target).

        Called only with a site count ``check_clients`` accepts and a seed of at least 0.
        """

    def prepare(self, directory: Path, clients: int, seed: int) -> PreparedData:
        """Write one CSV per site, the schema and an index into ``directory``; reuse them if there.

        Raises:
            ScenarioError: the scenario cannot be split over ``clients`` sites, or ``seed`` is negative.
        """
        self.check_clients(clients)
        if seed < 0:
            raise ScenarioError(f"a scenario's seed must be at least 0, not {seed}")
        if (directory / PARTITIONS_FILE).is_file():
            return PreparedData.load(directory)
        schema, parts = self.split(clients, seed)
        directory.mkdir(parents=True, exist_ok=True)
        schema.save(directory / SCHEMA_FILE)
        sites = []
        for index, (name, frame) in enumerate(parts):
            file = f"site-{index:04d}.csv"
            frame.to_csv(directory / file, index=False)
            sites.append(Site(name, file, len(frame)))
        index_data = {
            "scenario": self.name,
            "clients": clients,
            "seed": seed,
            "sites": [vars(s) for s in sites],
        }
        (directory / PARTITIONS_FILE).write_text(json.dumps(index_data, indent=2) + "\n")
        return PreparedData(directory, tuple(sites))
