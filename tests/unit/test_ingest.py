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


# --- reading ahead: small files are opened (and their pages asked for) before their turn -----------------------


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def small_tree(root: Path, n: int) -> dict[str, bytes]:
    root.mkdir()
    contents = {f"f{i:03d}": b"%d\n" % i * (10 + i) for i in range(n)}
    for name, data in contents.items():
        (root / name).write_bytes(data)
    return contents


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
def test_small_files_are_asked_for_ahead_of_their_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import dvx.worktree as wt

    contents = small_tree(tmp_path / "w", 120)
    events: list[tuple[str, str]] = []
    monkeypatch.setattr(wt, "_advise", lambda fd, off, n, advice: events.append(("ask", os.readlink(f"/proc/self/fd/{fd}").rpartition("/")[2])))
    real = wt.Ingest._read_small

    def read_small(self: Ingest, path: str, *args: object) -> object:
        events.append(("read", path))
        return real(self, path, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(wt.Ingest, "_read_small", read_small)
    got = ingest(tmp_path / "w", new_store(tmp_path), workers=1)
    assert {p: got[p][1] for p in contents} == {p: hash_bytes(d) for p, d in contents.items()}
    names = sorted(contents)
    asked: set[str] = set()
    for kind, name in events:
        if kind == "ask":
            asked.add(name)
        else:  # every file up to the window's end was asked for before this one is read
            k = names.index(name)
            assert set(names[k : k + wt._READ_AHEAD]) <= asked, name
    assert asked == set(names)


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
def test_a_failure_in_a_long_batch_leaves_no_file_open(tmp_path: Path) -> None:
    root = tmp_path / "w"
    small_tree(root, 150)
    keys = sorted((p, k) for p, k in scan(root).keys.items())
    (root / "f100").unlink()
    (root / "f100").symlink_to(root / "f000")  # refused: a file became a symlink since the scan
    before = open_fds()
    store = new_store(tmp_path)
    with pytest.raises(StorageError, match="f100 changed while being read"), store.writer() as w:
        list(Ingest(root, w, SMALL, 3, workers=1).run(keys))
    assert open_fds() <= before
    assert not list((tmp_path / "objects").rglob("*.pack"))


def test_files_that_vanish_before_or_after_being_opened_ahead(tmp_path: Path) -> None:
    root = tmp_path / "w"
    contents = small_tree(root, 100)
    keys = sorted((p, k) for p, k in scan(root).keys.items())
    (root / "f002").unlink()  # inside the first window: vanished before any open
    (root / "f090").unlink()  # far ahead: vanished before its open too
    store = new_store(tmp_path)
    with store.writer() as w:
        out = {r[0]: r for r in Ingest(root, w, SMALL, 3, workers=1).run(keys)}
    assert out["f002"][1] is None and out["f090"][1] is None
    for name in set(contents) - {"f002", "f090"}:
        assert b"".join(store.iter_file(out[name][1])) == contents[name]


def test_the_read_ahead_window_follows_the_open_file_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    import resource

    import dvx.worktree as wt

    for soft, window in ((1024, 64), (256, 16), (40, 2), (8, 1), (resource.RLIM_INFINITY, 64)):
        monkeypatch.setattr(resource, "getrlimit", lambda _which, soft=soft: (soft, resource.RLIM_INFINITY))
        assert wt._read_ahead_window() == window


def test_hashing_without_a_store_reads_ahead_and_tolerates_changes(tmp_path: Path) -> None:
    """Status hashes through the same read-ahead; a file that changed since the scan is hashed as it is now and
    reported as not stable (never refused, as a commit refuses it), one that vanished has no id."""
    root = tmp_path / "w"
    contents = small_tree(root, 80)
    keys = sorted((p, k) for p, k in scan(root).keys.items())
    (root / "f001").unlink()
    (root / "f040").write_bytes(b"rewritten")
    (root / "f070").unlink()
    (root / "f070").symlink_to(root / "f000")
    before = open_fds() if os.path.isdir("/proc/self/fd") else set()
    out = {r[0]: r for r in Ingest(root, None, SMALL, 3, workers=1).run(keys)}
    assert out["f001"][1] is None
    assert (out["f040"][1], out["f040"][2], out["f040"][4]) == (hash_bytes(b"rewritten"), 9, False)
    assert out["f070"][4] is False
    for name in set(contents) - {"f001", "f040", "f070"}:
        assert out[name][1:] == (hash_bytes(contents[name]), len(contents[name]), False, True)
    if before:
        assert open_fds() <= before
