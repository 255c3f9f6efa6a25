"""The object store: packs and their indexes, loose objects, dedupe, chunked files, CDC locality."""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path

import blake3
import pytest

from dvx.errors import CorruptObject, MissingObject
from dvx.ids import hash_bytes
from dvx.repo import Repo
from dvx.store import BLOB, CHUNKED, COMMIT, LOOSE_HEADER, LOOSE_THRESHOLD, TREE, ObjectStore
from dvx.store.pack import INDEX_ENTRY, INDEX_HEADER, IndexEntry, PackIndex, encode_index, scan_pack
from dvx.worktree import Chunking, ingest_file

TEXT = b"".join(b"row %d,alpha,beta,gamma\n" % i for i in range(5000))


def new_store(tmp_path: Path) -> ObjectStore:
    (tmp_path / "tmp").mkdir(exist_ok=True)  # a repository always has it (``Repo.init`` creates it)
    return ObjectStore(tmp_path / "objects", tmp_path / "tmp")


def put(store: ObjectStore, objects: list[tuple[int, bytes]]) -> list[str]:
    ids = []
    with store.writer() as w:
        for type_, data in objects:
            oid = hash_bytes(data)
            w.add(oid, type_, data)
            ids.append(oid)
    return ids


def packs_on_disk(store: ObjectStore) -> list[Path]:
    return sorted(store.pack_dir.glob("*.pack"))


def flip_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


SMALL = [(BLOB, TEXT), (BLOB, os.urandom(3000)), (BLOB, b""), (TREE, b'{"entries":[],"v":1}'), (COMMIT, b"c" * 100)]


def test_small_objects_go_into_one_pack_and_read_back(tmp_path: Path) -> None:
    store = new_store(tmp_path)
    ids = put(store, SMALL)
    assert len(packs_on_disk(store)) == 1
    assert len(list(store.pack_dir.glob("*.idx"))) == 1
    assert list(store.iter_loose()) == []
    fresh = new_store(tmp_path)  # a new reader sees what the writer published
    for oid, (type_, data) in zip(ids, SMALL):
        info = fresh.info(oid)
        assert info is not None and info.pack is not None
        assert fresh.get(oid) == (type_, data)


def test_pack_is_named_by_its_hash_and_scans_to_its_index(tmp_path: Path) -> None:
    store = new_store(tmp_path)
    put(store, SMALL)
    (pack,) = packs_on_disk(store)
    data = pack.read_bytes()
    assert data[-32:].hex() == pack.stem
    scanned = scan_pack(data, pack.stem)
    index = PackIndex(pack.with_suffix(".idx").read_bytes(), pack.stem, len(data))
    assert sorted(scanned, key=lambda e: e.object_id) == list(index)


def test_compressible_object_is_stored_smaller(tmp_path: Path) -> None:
    store = new_store(tmp_path)
    (oid,) = put(store, [(BLOB, TEXT)])
    info = store.info(oid)
    assert info is not None and info.stored_size < len(TEXT) // 5


def test_missing_object_and_wrong_type(tmp_path: Path) -> None:
    store = new_store(tmp_path)
    (oid,) = put(store, [(BLOB, b"hello world")])
    with pytest.raises(MissingObject):
        store.get(hash_bytes(b"never stored"))
    assert not store.has(hash_bytes(b"never stored"))
    with pytest.raises(CorruptObject):
        store.get(oid, TREE)


@pytest.mark.parametrize("cut", [1, 32, 100])
def test_truncated_pack_is_corrupt(tmp_path: Path, cut: int) -> None:
    store = new_store(tmp_path)
    ids = put(store, SMALL)
    (pack,) = packs_on_disk(store)
    with open(pack, "r+b") as fh:
        fh.truncate(pack.stat().st_size - cut)
    fresh = new_store(tmp_path)
    failures = 0
    for oid in ids:  # objects before the cut may still read fine; the record at the end may not
        try:
            fresh.get(oid)
        except CorruptObject:
            failures += 1
    assert failures >= 1
    with pytest.raises(CorruptObject):
        scan_pack(pack.read_bytes(), pack.stem)


def test_flipped_byte_in_pack_payload_is_corrupt(tmp_path: Path) -> None:
    store = new_store(tmp_path)
    (oid,) = put(store, [(BLOB, os.urandom(2000))])
    (pack,) = packs_on_disk(store)
    info = store.info(oid)
    assert info is not None
    store.close()
    flip_byte(pack, info.offset + 1000)
    with pytest.raises(CorruptObject) as exc:
        new_store(tmp_path).get(oid)
    assert exc.value.object_id == oid
    with pytest.raises(CorruptObject):
        scan_pack(pack.read_bytes(), pack.stem)


def test_flipped_byte_in_compressed_payload_is_corrupt(tmp_path: Path) -> None:
    store = new_store(tmp_path)
    (oid,) = put(store, [(BLOB, TEXT)])
    (pack,) = packs_on_disk(store)
    info = store.info(oid)
    assert info is not None
    store.close()
    flip_byte(pack, info.offset + info.stored_size // 2)
    with pytest.raises(CorruptObject):
        new_store(tmp_path).get(oid)


def test_flipped_byte_in_index_is_corrupt(tmp_path: Path) -> None:
    store = new_store(tmp_path)
    ids = put(store, SMALL)
    (pack,) = packs_on_disk(store)
    flip_byte(pack.with_suffix(".idx"), INDEX_HEADER.size + 40)
    with pytest.raises(CorruptObject):
        new_store(tmp_path).get(ids[0])


def _index_with(entries: list[IndexEntry]) -> bytes:
    return encode_index(b"\x01" * 32, entries)


def test_index_entry_pointing_past_the_pack_is_refused() -> None:
    e = IndexEntry(b"\x02" * 32, BLOB, 0, 1000, 50, 50)
    with pytest.raises(CorruptObject):
        PackIndex(_index_with([e]), "p", pack_size=900).validate(900)
    with pytest.raises(CorruptObject):
        PackIndex(_index_with([e]), "p", pack_size=900).get(b"\x02" * 32)


def test_index_entries_that_overlap_are_refused() -> None:
    a = IndexEntry(b"\x02" * 32, BLOB, 0, 58, 100, 100)
    b = IndexEntry(b"\x03" * 32, BLOB, 0, 100, 100, 100)
    with pytest.raises(CorruptObject):
        PackIndex(_index_with([a, b]), "p", pack_size=10_000).validate(10_000)


def test_index_of_the_wrong_length_is_refused() -> None:
    data = _index_with([IndexEntry(b"\x02" * 32, BLOB, 0, 58, 10, 10)])
    body = data[:-32] + INDEX_ENTRY.pack(b"\x03" * 32, 1, 0, 0, 0, 0, 0)
    with pytest.raises(CorruptObject):
        PackIndex(body + blake3.blake3(body).digest(), "p")


def test_large_object_is_stored_loose_and_verified(tmp_path: Path) -> None:
    store = new_store(tmp_path)
    data = os.urandom(LOOSE_THRESHOLD + 10)
    (oid,) = put(store, [(BLOB, data)])
    path = store.loose_path(oid)
    assert path.is_file() and path.parent.name == oid[:2]
    assert packs_on_disk(store) == []
    assert new_store(tmp_path).get(oid) == (BLOB, data)
    flip_byte(path, LOOSE_HEADER.size + 12345)
    with pytest.raises(CorruptObject):
        new_store(tmp_path).get(oid)


def test_truncated_loose_object_is_corrupt(tmp_path: Path) -> None:
    store = new_store(tmp_path)
    (oid,) = put(store, [(BLOB, os.urandom(LOOSE_THRESHOLD))])
    path = store.loose_path(oid)
    with open(path, "r+b") as fh:
        fh.truncate(path.stat().st_size - 1)
    with pytest.raises(CorruptObject):
        new_store(tmp_path).get(oid)
    with open(path, "r+b") as fh:
        fh.truncate(5)
    with pytest.raises(CorruptObject):
        new_store(tmp_path).get(oid)


def test_dedupe_within_and_across_writers(tmp_path: Path) -> None:
    store = new_store(tmp_path)
    data, big = b"same bytes", os.urandom(LOOSE_THRESHOLD)
    with store.writer() as w:
        assert w.add(hash_bytes(data), BLOB, data)
        assert not w.add(hash_bytes(data), BLOB, data)
        assert w.add(hash_bytes(big), BLOB, big)
        assert not w.add(hash_bytes(big), BLOB, big)
    (pack,) = packs_on_disk(store)
    assert len(scan_pack(pack.read_bytes(), pack.stem)) == 1
    with store.writer() as w:
        assert not w.add(hash_bytes(data), BLOB, data)
        assert not w.add(hash_bytes(big), BLOB, big)
        assert w.objects_written == 0
    assert packs_on_disk(store) == [pack]
    assert len(list(store.iter_loose())) == 1


def test_ten_mib_file_is_chunked_and_its_id_is_blake3_of_the_whole(tmp_path: Path) -> None:
    store = new_store(tmp_path)
    content = os.urandom(10 << 20)
    src = tmp_path / "big.bin"
    src.write_bytes(content)
    with store.writer() as w:
        oid, size = ingest_file(src, w, Chunking(), 3)
    assert size == len(content)
    assert oid == blake3.blake3(content).hexdigest()
    fresh = new_store(tmp_path)
    info = fresh.info(oid)
    assert info is not None and info.type == CHUNKED
    chunks = fresh.file_chunks(oid)
    assert len(chunks) > 1
    assert sum(s for _, s in chunks) == len(content)
    assert all(s <= Chunking().max for _, s in chunks)
    assert b"".join(fresh.iter_file(oid)) == content


@pytest.mark.parametrize("size", [0, 1, 63, 64, LOOSE_THRESHOLD - 1, LOOSE_THRESHOLD, (2 << 20) - 1, 2 << 20, (2 << 20) + 1])
def test_file_sizes_at_every_boundary_round_trip(tmp_path: Path, size: int) -> None:
    store = new_store(tmp_path)
    content = random.Random(size).randbytes(size)
    src = tmp_path / "f.bin"
    src.write_bytes(content)
    with store.writer() as w:
        oid, n = ingest_file(src, w, Chunking(), 3)
    assert (oid, n) == (blake3.blake3(content).hexdigest(), size)
    assert b"".join(new_store(tmp_path).iter_file(oid)) == content


def test_chunked_file_with_a_swapped_chunk_fails_the_whole_file_check(tmp_path: Path) -> None:
    """Each chunk verifies on its own; the manifest must still hash to the file id as a whole."""
    store = new_store(tmp_path)
    content = os.urandom(6 << 20)
    src = tmp_path / "big.bin"
    src.write_bytes(content)
    with store.writer() as w:
        oid, _ = ingest_file(src, w, Chunking(), 3)
    chunks = store.file_chunks(oid)
    assert len(chunks) >= 2
    # Forge a manifest under the same id listing the chunks in another order: every chunk is intact.
    from dvx.store import encode_manifest

    forged = encode_manifest(len(content), list(reversed(chunks)))
    other = tmp_path / "other"
    other.mkdir()
    forged_store = new_store(other)
    with forged_store.writer() as w:
        for cid, _ in chunks:
            _, data = store.get(cid)
            w.add(cid, BLOB, data)
        w.add(oid, CHUNKED, forged)
    with pytest.raises(CorruptObject):
        b"".join(forged_store.iter_file(oid))


def store_bytes(repo: Repo) -> int:
    return sum(p.stat().st_size for p in (repo.dvx / "objects").rglob("*") if p.is_file())


def test_cdc_locality_append_and_rewrite_in_the_middle(repo: Repo) -> None:
    # Seeded: how much an append costs depends on the size of the file's last chunk (up to chunk_max),
    # so unseeded random data would make the bound below flaky rather than wrong.
    rng = random.Random(1234)
    mib = 1 << 20
    content = bytearray(rng.randbytes(64 * mib))
    path = repo.root / "data.bin"
    path.write_bytes(content)
    repo.commit("v1")
    v1 = store_bytes(repo)
    assert 64 * mib <= v1 < 65 * mib

    path.write_bytes(bytes(content) + rng.randbytes(mib))
    repo.commit("append 1 MiB")
    appended = store_bytes(repo) - v1
    assert mib <= appended < 3 * mib

    middle = 32 * mib
    content[middle : middle + mib] = rng.randbytes(mib)
    path.write_bytes(content)
    before = store_bytes(repo)
    repo.commit("rewrite 1 MiB in the middle")
    rewritten = store_bytes(repo) - before
    assert mib <= rewritten < 4 * mib
    assert repo.ls()[0][1].id == blake3.blake3(content).hexdigest()


def test_store_without_tmp_dir_writes_loose_objects_like_packs(tmp_path: Path) -> None:
    store = ObjectStore(tmp_path / "objects", tmp_path / "tmp")
    small, big = b"small", os.urandom(LOOSE_THRESHOLD)
    put(store, [(BLOB, small)])  # packs create the missing tmp dir themselves
    shutil.rmtree(tmp_path / "tmp")
    (oid,) = put(store, [(BLOB, big)])
    assert store.get(oid) == (BLOB, big)



def _resident_bytes(path: Path) -> int | None:
    """Bytes of ``path`` in the page cache (util-linux ``fincore``), or None when it cannot be told."""
    fincore = shutil.which("fincore")
    if fincore is None:
        return None
    import subprocess

    out = subprocess.run([fincore, "--bytes", "--noheadings", "--raw", "--output", "RES", str(path)],
                         capture_output=True, text=True, check=False)
    return int(out.stdout.split()[0]) if out.returncode == 0 and out.stdout.strip() else None


def test_written_objects_leave_the_page_cache_once_on_disk(tmp_path: Path) -> None:
    """A big commit must not grow the page cache by the size of the store it writes (``start_writeback``
    drops what is on disk): packs and loose objects are not resident once the writer finished."""
    control = tmp_path / "control"
    control.write_bytes(os.urandom(4 << 20))
    with open(control, "rb+") as fh:
        os.fsync(fh.fileno())
        before = _resident_bytes(control)
        os.posix_fadvise(fh.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
    after = _resident_bytes(control)
    if before is None or after is None or before < (4 << 20) or after > (1 << 20):
        pytest.skip("this file system keeps written pages cached whatever is advised (or fincore is missing)")
    store = new_store(tmp_path)
    rng = random.Random(3)
    small = [(BLOB, rng.randbytes(40 << 10)) for _ in range(600)]  # 24 MiB into packs: writeback on the way
    big = [(BLOB, rng.randbytes(2 << 20)) for _ in range(4)]  # loose objects
    put(store, small + big)
    written = packs_on_disk(store) + [p for _, p in store.iter_loose()]
    assert sum(p.stat().st_size for p in written) > 30 << 20
    resident = sum(_resident_bytes(p) or 0 for p in written)
    assert resident < 2 << 20, f"{resident} bytes of the new objects still cached"
    for (_, data), oid in zip(small[:3] + big[:1], [hash_bytes(d) for _, d in small[:3] + big[:1]]):
        assert store.get(oid)[1] == data  # read back from disk


def _many_packs(store: ObjectStore, monkeypatch: pytest.MonkeyPatch, n: int = 40) -> list[tuple[str, bytes]]:
    """Objects enough for several packs once the pack target is 64 KiB (each pack is sealed in the background)."""
    import dvx.store as store_mod

    monkeypatch.setattr(store_mod, "PACK_TARGET_SIZE", 64 << 10)
    rng = random.Random(7)
    return [(hash_bytes(d), d) for d in (rng.randbytes(20 << 10) for _ in range(n))]


def test_full_packs_are_sealed_in_the_background_and_all_readable_after_finish(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    import dvx.store as store_mod

    store = new_store(tmp_path)
    objects = _many_packs(store, monkeypatch)
    sealers: set[str] = set()
    real_seal = store_mod.StoreWriter._seal

    def seal(self: store_mod.StoreWriter, packs: list) -> None:  # type: ignore[type-arg]
        sealers.add(threading.current_thread().name)
        real_seal(self, packs)

    monkeypatch.setattr(store_mod.StoreWriter, "_seal", seal)
    with store.writer() as w:
        for oid, data in objects:
            w.add(oid, BLOB, data)
    assert any(name.startswith("dvx-fsync") for name in sealers)  # not on the adding thread
    assert len(packs_on_disk(store)) >= 5
    reader = new_store(tmp_path)  # a new reader sees every pack the writer published
    for oid, data in objects:
        assert reader.get(oid) == (BLOB, data)
    assert list((tmp_path / "tmp").iterdir()) == []


def test_a_background_seal_that_fails_fails_the_writer_and_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import dvx.durable as durable_mod
    from dvx.errors import StorageError

    store = new_store(tmp_path)
    objects = _many_packs(store, monkeypatch)
    monkeypatch.setattr(durable_mod, "_fault_plan", {"pack.before-fsync": (2, "raise:EIO")})
    monkeypatch.setattr(durable_mod, "_fault_counts", {})
    with pytest.raises(StorageError, match="cannot write pack"):
        with store.writer(discard_on_abort=True) as w:
            for oid, data in objects:
                w.add(oid, BLOB, data)
    assert list((tmp_path / "tmp").iterdir()) == []  # no temp pack of the failed seal, or of the open ones
    assert packs_on_disk(store) == []  # the packs sealed before the failure were discarded with the rest
    assert list(store.pack_dir.glob("*.idx")) == []
