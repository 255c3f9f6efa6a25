"""Merging two 100,000-file datasets that share most content reads trees only, and only the changed ones."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from dvx.ids import hash_bytes
from dvx.merge import merge
from dvx.model import FILE, Commit, Entry
from dvx.refs import HEADS
from dvx.repo import Repo
from dvx.store import BLOB, CHUNKED, COMMIT, TREE
from dvx.trees import build

DISTINCT = 2000  # base files reuse this many stored contents (every file's content is in the store)


def test_merge_100k_files_reads_no_content(tmp_path: Path, monkeypatch: Any, h: Any) -> None:
    monkeypatch.setenv("DVX_AUTHOR", "Test <test@example.com>")
    repo = Repo.init(tmp_path / "repo")
    started = time.perf_counter()
    blobs: dict[str, str] = {}

    def file(path: str, n: int, writer: Any) -> Entry:
        data = f"content {n}\n".encode()
        oid = blobs.get(data.decode())
        if oid is None:
            oid = blobs[data.decode()] = hash_bytes(data)
            writer.add(oid, BLOB, data)
        return Entry(path.rpartition("/")[2], FILE, oid, len(data))

    with repo.store.writer() as w:
        base: dict[str, Entry] = {}
        for i in range(95_000):
            p = f"shard{i // 1000:03}/{i % 1000:04}.jpg"
            base[p] = file(p, i % DISTINCT, w)
        for i in range(5_000):  # one large flat folder: split into buckets
            p = f"images/{i:05}.png"
            base[p] = file(p, i % DISTINCT, w)
        ours = dict(base)
        for i in range(10):
            ours[f"shard003/{i:04}.jpg"] = file(f"shard003/{i:04}.jpg", 10_000 + i, w)
        for i in range(5):
            del ours[f"shard007/{i:04}.jpg"]
        for i in range(100):
            ours[f"ours-new/{i}.jpg"] = file(f"ours-new/{i}.jpg", 11_000 + i, w)
        for i in (3, 1234, 4999):
            ours[f"images/{i:05}.png"] = file(f"images/{i:05}.png", 12_000 + i, w)
        theirs = dict(base)
        for i in range(10):
            theirs[f"shard042/{i:04}.jpg"] = file(f"shard042/{i:04}.jpg", 20_000 + i, w)
        for i in range(50):
            theirs[f"shard007/extra-{i}.jpg"] = file(f"shard007/extra-{i}.jpg", 21_000 + i, w)
        for key in [k for k in theirs if k.startswith("shard090/")]:
            del theirs[key]
        for i in (7, 2500):
            theirs[f"images/{i:05}.png"] = file(f"images/{i:05}.png", 22_000 + i, w)
        theirs["images/zz-new.png"] = file("images/zz-new.png", 23_000, w)
        trees = [build(w, flat) for flat in (base, ours, theirs)]
        base_c = Commit(trees[0], (), "base", "t", "2026-01-01T00:00:00.000000Z")
        ours_c = Commit(trees[1], (base_c.id,), "ours", "t", "2026-01-01T00:00:01.000000Z")
        theirs_c = Commit(trees[2], (base_c.id,), "theirs", "t", "2026-01-01T00:00:02.000000Z")
        for c in (base_c, ours_c, theirs_c):
            w.add(c.id, COMMIT, c.encode())
    repo.refs.update(HEADS + "main", ours_c.id, None)
    repo.refs.update(HEADS + "theirs", theirs_c.id, None)
    repo.close()
    built = time.perf_counter() - started

    fresh = Repo(tmp_path / "repo")  # cold caches: every tree the merge needs is read from the store
    reads = h.count_reads(fresh)
    t0 = time.perf_counter()
    res = merge(fresh, ["theirs"], update_worktree=False)
    took = time.perf_counter() - t0
    print(
        f"\nbuilt 3 x 100,000-file trees in {built:.2f}s; merged in {took:.3f}s reading "
        f"{reads.count(TREE)} trees, {reads.count(COMMIT)} commits, "
        f"{reads.count(BLOB) + reads.count(CHUNKED)} file contents"
    )
    assert reads.count(BLOB) == 0 and reads.count(CHUNKED) == 0
    # Only the trees on changed paths: the three roots, shard003/007/042/090, images and a few buckets.
    assert reads.count(TREE) < 60
    assert res.conflicts == [] and fresh.resolve("main") == res.commit
    assert (res.added, res.modified, res.deleted) == (51, 12, 1000)

    want = dict(ours)
    for p, e in theirs.items():
        if p not in base or not base[p].same_content(e):
            want[p] = e
    for p in base:
        if p not in theirs:
            want.pop(p, None)
    assert res.tree == build(h.MemoryStore(), want)  # the merged tree is exactly the expected files
    # Every new tree (bucket nodes included) was written: the whole history is readable.
    assert fresh.reachable([res.commit], files=False)[res.tree] == TREE
