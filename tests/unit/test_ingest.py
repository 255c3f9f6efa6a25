"""Reading working-tree files into the store (``worktree.Ingest``): the batched small-file path and the files
that change between the scan and the read."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from dvx.errors import StorageError
from dvx.ids import hash_bytes
from dvx.store import BLOB, CHUNKED, LOOSE_THRESHOLD, ObjectStore
from dvx.worktree import Chunking, Ingest, scan

SMALL = Chunking(avg=16 << 10, min=4 << 10, max=64 << 10, threshold=128 << 10)


def new_store(tmp_path: Path) -> ObjectStore:
    (tmp_path / "tmp").mkdir(parents=True, exist_ok=True)
    return ObjectStore(tmp_path / "objects", tmp_path / "tmp")


def ingest(root: Path, store: ObjectStore, chunking: Chunking = SMALL, workers: int = 2) -> dict[str, tuple]:
    keys = {p: k for p, k in scan(root).keys.items() if not isinstance(k, str)}
    with store.writer() as w:
        out = list(Ingest(root, w, chunking, 3, workers=workers).run(sorted(keys.items())))
        written = w.objects_written
    return {r[0]: r for r in out} | {"": (written,)}


def test_many_small_files_are_stored_once_each_and_read_back(tmp_path: Path) -> None:
    root = tmp_path / "w"
    root.mkdir()
    contents = {f"f{i:03d}.txt": (b"line %d\n" % (i % 40)) * (50 + i % 40) for i in range(300)}
    for name, data in contents.items():
        (root / name).write_bytes(data)
    store = new_store(tmp_path)
    got = ingest(root, store)
    distinct = {hash_bytes(d) for d in contents.values()}
    assert got[""][0] == len(distinct)  # equal contents in different batches and threads: one copy
    for name, data in contents.items():
        path, oid, size, executable, stable = got[name]
        assert (oid, size, executable, stable) == (hash_bytes(data), len(data), False, True)
        assert b"".join(store.iter_file(oid)) == data
        assert store.info(oid).type == BLOB
    assert len(list(store.pack_dir.glob("*.pack"))) <= 2  # one pack per thread, not one per file


def test_a_second_ingest_writes_nothing(tmp_path: Path) -> None:
    root = tmp_path / "w"
    root.mkdir()
    for i in range(50):
        (root / f"{i}.bin").write_bytes(os.urandom(1000 + i))
    store = new_store(tmp_path)
    assert ingest(root, store)[""][0] == 50
    assert ingest(root, new_store(tmp_path))[""][0] == 0


def test_loose_sized_and_chunked_files_in_one_batch(tmp_path: Path) -> None:
    root = tmp_path / "w"
    root.mkdir()
    loose = os.urandom(LOOSE_THRESHOLD + 10)
    big = os.urandom(300 << 10)
    (root / "a.bin").write_bytes(b"small")
    (root / "b.bin").write_bytes(loose)
    (root / "c.bin").write_bytes(big)
    store = new_store(tmp_path)
    got = ingest(root, store, Chunking(avg=64 << 10, min=16 << 10, max=256 << 10, threshold=1 << 20), workers=1)
    assert b"".join(store.iter_file(got["b.bin"][1])) == loose
    assert store.loose_path(got["b.bin"][1]).exists()
    assert store.info(got["c.bin"][1]).type == BLOB  # under that threshold: whole, in a pack
    store = new_store(tmp_path / "second")
    got = ingest(root, store)  # with SMALL, c.bin is chunked
    assert store.info(got["c.bin"][1]).type == CHUNKED
    assert b"".join(store.iter_file(got["c.bin"][1])) == big


def test_a_file_that_vanished_after_the_scan_is_reported_without_id(tmp_path: Path) -> None:
    root = tmp_path / "w"
    root.mkdir()
    (root / "keep").write_bytes(b"keep")
    (root / "gone").write_bytes(b"gone")
    keys = sorted((p, k) for p, k in scan(root).keys.items())
    (root / "gone").unlink()
    store = new_store(tmp_path)
    with store.writer() as w:
        out = {r[0]: r for r in Ingest(root, w, SMALL, 3, workers=1).run(keys)}
    assert out["gone"][1] is None
    assert b"".join(store.iter_file(out["keep"][1])) == b"keep"


def read_after_change(tmp_path: Path, content: bytes, change: Callable[[Path], object]) -> tuple[ObjectStore, tuple]:
    """Scan a tree holding one file ``f`` of ``content``, apply ``change`` to it, then ingest what the scan saw:
    the store and ``(id, size, stable)`` of the one result."""
    root = tmp_path / "w"
    root.mkdir()
    (root / "f").write_bytes(content)
    keys = sorted(scan(root).keys.items())
    change(root / "f")
    store = new_store(tmp_path)
    with store.writer() as w:
        [(_, oid, size, _, stable)] = Ingest(root, w, SMALL, 3, workers=1).run(keys)
    return store, (oid, size, stable)


def test_a_file_rewritten_after_the_scan_is_stored_as_read_but_not_stable(tmp_path: Path) -> None:
    _, got = read_after_change(tmp_path, b"old", lambda f: f.write_bytes(b"new, and longer"))
    assert got == (hash_bytes(b"new, and longer"), 15, False)


def test_a_small_file_grown_past_the_threshold_since_the_scan_is_chunked(tmp_path: Path) -> None:
    data = os.urandom(400 << 10)
    store, got = read_after_change(tmp_path, b"tiny", lambda f: f.write_bytes(data))
    assert got == (hash_bytes(data), len(data), False)
    assert store.info(got[0]).type == CHUNKED
    assert b"".join(store.iter_file(got[0])) == data


def test_a_file_replaced_by_a_symlink_after_the_scan_is_refused(tmp_path: Path) -> None:
    (tmp_path / "secret").write_bytes(b"outside the tree")

    def to_symlink(f: Path) -> None:
        f.unlink()
        f.symlink_to(tmp_path / "secret")

    with pytest.raises(StorageError, match="changed while being read"):
        read_after_change(tmp_path, b"data", to_symlink)
    assert not list((tmp_path / "objects").rglob("*.pack"))  # nothing published by the failed writer


def test_same_size_rewrite_with_the_old_mtime_put_back_is_still_noticed(tmp_path: Path) -> None:
    # Size and mtime as the scan saw them: only the ctime tells, and the read must not trust the scan's key.
    def rewrite_keeping_mtime(f: Path) -> None:
        st = f.stat()
        time.sleep(0.01)
        f.write_bytes(b"version two")
        os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))

    _, got = read_after_change(tmp_path, b"version one", rewrite_keeping_mtime)
    assert got == (hash_bytes(b"version two"), 11, False)


def test_a_file_replaced_by_a_folder_after_the_scan_is_refused(tmp_path: Path) -> None:
    def to_folder(f: Path) -> None:
        f.unlink()
        f.mkdir()

    with pytest.raises(StorageError, match="changed while being read"):
        read_after_change(tmp_path, b"data", to_folder)


@pytest.mark.skipif(not hasattr(os, "O_NOATIME"), reason="O_NOATIME is Linux-only")
def test_reading_files_leaves_their_access_time_alone(tmp_path: Path) -> None:
    """With relatime, a read of a file whose atime is older than its mtime updates the atime (and dirties the
    inode, which waits for the store's fsyncs); the owner's reads use O_NOATIME, as restic's do."""
    root = tmp_path / "work"
    root.mkdir()
    (root / "small.txt").write_bytes(b"row\n" * 1000)
    (root / "big.bin").write_bytes(os.urandom(300 << 10))  # chunked at SMALL's threshold
    old = time.time_ns() - 3600 * 10**9
    for name in ("small.txt", "big.bin"):
        st = os.stat(root / name)
        os.utime(root / name, ns=(old, st.st_mtime_ns))
    store = new_store(tmp_path / "store")
    got = ingest(root, store)
    assert {"small.txt", "big.bin"} <= set(got)
    for name in ("small.txt", "big.bin"):
        assert os.stat(root / name).st_atime_ns == old
