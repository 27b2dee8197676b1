"""The content-addressed artifact store: every read re-hashed, damage reported by kind."""

import uuid
from pathlib import Path

import pytest

from fedledger.hashing import keccak256, to_hex
from fedledger.store import ArtifactMissing, ArtifactStore, ArtifactTampered, StoreMissing


@pytest.fixture(params=["directory", "memory"])
def store(request, tmp_path: Path) -> ArtifactStore:
    if request.param == "directory":
        return ArtifactStore(tmp_path / "store")
    return ArtifactStore(f"memory://fedledger-test-{uuid.uuid4().hex}")


def test_put_returns_the_keccak_hash_and_get_returns_the_bytes(store: ArtifactStore):
    data = b"model update bytes"
    digest = store.put(data)
    assert digest == keccak256(data)
    assert digest in store
    assert store.get(digest) == data


def test_putting_the_same_bytes_twice_is_harmless(store: ArtifactStore):
    assert store.put(b"same") == store.put(b"same")
    assert store.get(keccak256(b"same")) == b"same"


def test_empty_and_large_artifacts(store: ArtifactStore):
    large = bytes(range(256)) * 40_000
    for data in (b"", large):
        assert store.get(store.put(data)) == data


def test_a_missing_artifact_is_reported_as_missing(store: ArtifactStore):
    digest = keccak256(b"never stored")
    assert digest not in store
    with pytest.raises(ArtifactMissing, match=f"artifact {to_hex(digest)} is missing") as caught:
        store.get(digest)
    assert caught.value.digest == digest


def test_a_tampered_file_is_reported_not_returned(tmp_path: Path):
    store = ArtifactStore(tmp_path)
    digest = store.put(b"honest bytes")
    Path(store.path_of(digest)).write_bytes(b"edited bytes")
    with pytest.raises(ArtifactTampered, match=f"its bytes hash to {to_hex(keccak256(b'edited bytes'))}"):
        store.get(digest)


def test_a_flipped_byte_is_reported(tmp_path: Path):
    store = ArtifactStore(tmp_path)
    data = bytes(1000)
    digest = store.put(data)
    path = Path(store.path_of(digest))
    damaged = bytearray(path.read_bytes())
    damaged[500] ^= 0x01
    path.write_bytes(bytes(damaged))
    with pytest.raises(ArtifactTampered):
        store.get(digest)


def test_putting_again_repairs_a_tampered_copy(tmp_path: Path):
    store = ArtifactStore(tmp_path)
    digest = store.put(b"original")
    Path(store.path_of(digest)).write_bytes(b"damaged")
    store.put(b"original")
    assert store.get(digest) == b"original"


def test_files_are_sharded_by_hash_prefix(tmp_path: Path):
    store = ArtifactStore(tmp_path)
    digest = store.put(b"x")
    path = Path(store.path_of(digest))
    assert path == tmp_path / digest.hex()[:2] / digest.hex()
    assert path.read_bytes() == b"x"
    assert not list(tmp_path.rglob("*.partial"))


def test_hashes_of_the_wrong_size_are_refused(store: ArtifactStore):
    with pytest.raises(ValueError, match="32 bytes"):
        store.get(b"short")


def test_opening_a_store_creates_nothing_and_the_first_put_creates_it(tmp_path: Path):
    location = tmp_path / "new" / "store"
    store = ArtifactStore(location)
    assert not location.exists()
    with pytest.raises(StoreMissing, match=f"no artifact store at {location}"):
        ArtifactStore.existing(location)
    assert not location.exists()
    store.put(b"first")
    assert ArtifactStore.existing(location).get(keccak256(b"first")) == b"first"


def test_a_file_is_not_a_store(tmp_path: Path):
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(StoreMissing):
        ArtifactStore.existing(tmp_path / "file")


def test_every_artifact_is_listed_by_its_hash_and_can_be_filtered_by_its_first_bytes(store: ArtifactStore):
    assert list(store.digests()) == []
    manifests = {store.put(b'{"round":%d}' % index) for index in range(3)}
    models = {store.put(b"FLMODEL1" + bytes([index])) for index in range(4)}
    empty = store.put(b"")
    assert set(store.digests()) == manifests | models | {empty}
    assert set(store.digests(starting_with=b"{")) == manifests
    assert set(store.digests(starting_with=b"FLMODEL1")) == models


def test_files_that_are_not_artifacts_are_not_listed(tmp_path: Path):
    store = ArtifactStore(tmp_path)
    digest = store.put(b"kept")
    name = digest.hex()
    (tmp_path / name[:2] / f"{name}.1234.partial").write_bytes(b"half")
    (tmp_path / "ab").mkdir(exist_ok=True)
    (tmp_path / "ab" / name).write_bytes(b"in the wrong shard")
    (tmp_path / "notes.txt").write_bytes(b"{")
    (tmp_path / "cd" / "nested").mkdir(parents=True)
    (tmp_path / "cd" / "nested" / ("cd" + "0" * 62)).write_bytes(b"{")
    assert list(store.digests()) == [digest]
    assert list(store.digests(starting_with=b"{")) == []
