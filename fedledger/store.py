"""A content-addressed artifact store: bytes filed under their Keccak-256 hash.

Updates, global models and round manifests are stored here. A local directory by default;
any fsspec URL (``memory://``, ``s3://``, ...) for a store shared between machines. Every read
re-hashes the bytes, so a file altered after it was written is reported, never returned.
"""

import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import fsspec
from fsspec.implementations.local import LocalFileSystem

from fedledger.errors import FedLedgerError
from fedledger.hashing import HASH_SIZE, keccak256, to_hex


class ArtifactError(FedLedgerError):
    """An artifact could not be read as stored."""

    def __init__(self, digest: bytes, message: str) -> None:
        self.digest = digest
        super().__init__(message)


class ArtifactMissing(ArtifactError):
    """No artifact is stored under the hash."""


class ArtifactTampered(ArtifactError):
    """The bytes stored under a hash do not hash to it; ``actual`` is what they hash to."""

    def __init__(self, digest: bytes, actual: bytes, message: str) -> None:
        self.actual = actual
        super().__init__(digest, message)


_ARTIFACT_NAME = re.compile(r"(?P<shard>[0-9a-f]{2})/(?P<name>(?P=shard)[0-9a-f]{62})")


class StoreMissing(FedLedgerError):
    """A store that is read does not exist: readers never create one."""


class ArtifactStore:
    """Bytes filed under their Keccak-256 hash at ``location`` (a directory or an fsspec URL).

    Files live at ``<location>/<first two hex digits>/<64 hex digits>``. The location is created
    by the first :meth:`put`, never by opening the store.
    """

    def __init__(self, location: str | Path) -> None:
        """Raises:
        StoreMissing: ``location`` names a protocol fsspec does not know, or whose package is not installed.
        """
        self.location = str(location)
        try:
            self._fs, root = fsspec.core.url_to_fs(self.location)
        except (ImportError, ValueError) as error:
            raise StoreMissing(f"artifact store {self.location} cannot be opened: {error}") from None
        self._root = root.rstrip("/")

    @classmethod
    def existing(cls, location: str | Path) -> "ArtifactStore":
        """Open a store that must already be there, as everything that only reads it does.

        Raises:
            StoreMissing: nothing is at ``location``, or it is not a directory.
        """
        store = cls(location)
        if not store._fs.isdir(store._root):
            raise StoreMissing(f"no artifact store at {store.location}: the directory does not exist")
        return store

    def __repr__(self) -> str:
        return f"ArtifactStore({self.location!r})"

    def path_of(self, digest: bytes) -> str:
        """Where the artifact with hash ``digest`` is (or would be) stored."""
        if len(digest) != HASH_SIZE:
            raise ValueError(f"an artifact hash is {HASH_SIZE} bytes, got {len(digest)}")
        name = digest.hex()
        return f"{self._root}/{name[:2]}/{name}"

    def put(self, data: bytes) -> bytes:
        """Store ``data`` and return its hash; an intact copy already stored is kept as it is."""
        digest = keccak256(data)
        path = self.path_of(digest)
        if self._fs.exists(path) and keccak256(self._fs.cat_file(path)) == digest:
            return digest
        self._fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        if isinstance(self._fs, LocalFileSystem):
            # Write beside and rename, so a crash never leaves a partial file under the hash.
            partial = f"{path}.{uuid.uuid4().hex}.partial"
            self._fs.pipe_file(partial, data)
            self._fs.mv(partial, path)
        else:
            self._fs.pipe_file(path, data)
        return digest

    def get(self, digest: bytes) -> bytes:
        """The bytes stored under ``digest``, re-hashed before they are returned.

        Raises:
            ArtifactMissing: nothing is stored under ``digest``.
            ArtifactTampered: the stored bytes hash to something else.
        """
        path = self.path_of(digest)
        try:
            data = self._fs.cat_file(path)
        except FileNotFoundError:
            raise ArtifactMissing(digest, f"artifact {to_hex(digest)} is missing from {self.location}") from None
        actual = keccak256(data)
        if actual != digest:
            raise ArtifactTampered(
                digest,
                actual,
                f"artifact {to_hex(digest)} in {self.location} is corrupted: its bytes hash to {to_hex(actual)}",
            )
        return data

    def digests(self, starting_with: bytes = b"") -> Iterator[bytes]:
        """The hash of every stored artifact whose bytes start with ``starting_with``.

        Hashes come from the file names of one listing of the store; only the first
        ``len(starting_with)`` bytes of each file are read (none when it is empty), in one batch
        (concurrent on remote stores). Nothing is re-hashed here: :meth:`get` does that.
        """
        names = [
            (path, bytes.fromhex(match["name"]))
            for path in self._fs.find(self._root)
            if (match := _ARTIFACT_NAME.fullmatch("/".join(path.rsplit("/", 2)[-2:])))
        ]
        if not starting_with:
            yield from (digest for _, digest in names)
            return
        heads = self._fs.cat_ranges(
            [path for path, _ in names], [0] * len(names), [len(starting_with)] * len(names), on_error="return"
        )
        yield from (digest for (_, digest), head in zip(names, heads, strict=True) if head == starting_with)

    def digests_named(self, prefix: bytes) -> list[bytes]:
        """The hashes of stored artifacts whose hash begins with ``prefix`` (at least one byte); one
        listing of a single shard. Nothing is re-hashed here: :meth:`get` does that."""
        if not prefix:
            raise ValueError("a hash prefix is at least one byte")
        shard = f"{self._root}/{prefix[:1].hex()}"
        if not self._fs.exists(shard):
            return []
        names = ["/".join(path.rsplit("/", 2)[-2:]) for path in self._fs.ls(shard, detail=False)]
        return [
            bytes.fromhex(match["name"])
            for name in names
            if (match := _ARTIFACT_NAME.fullmatch(name)) and match["name"].startswith(prefix.hex())
        ]

    def __contains__(self, digest: object) -> bool:
        return isinstance(digest, bytes) and self._fs.exists(self.path_of(digest))
