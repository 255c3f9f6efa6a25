"""Costs that must follow the changed paths, not the size of the tree (found by an audit of scaling): a path
lookup in a bucketed folder reads one bucket per level, a diff of two commits skips equal subtrees and buckets,
and small packs are merged before lookups have to try hundreds of them."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from dvx.diff import diff_flat
from dvx.model import MAX_LEAF_ENTRIES
from dvx.repo import Repo
from dvx.store.gc import MAX_SMALL_PACKS


def _big(repo: Repo, n: int = MAX_LEAF_ENTRIES * 2 + 100) -> None:
    d = repo.root / "big"
    d.mkdir()
    for i in range(n):
        (d / f"f{i:05d}").write_text(str(i))
    (repo.root / "sub").mkdir()
    (repo.root / "sub" / "x").write_text("x")


def test_lookup_in_a_bucketed_folder_reads_one_bucket(repo: Repo) -> None:
    _big(repo)
    c = repo.commit("big")
    tree = repo.read_commit(c).tree
    fresh = Repo(repo.root)
    try:
        before = fresh.store.reads
        for name in ("f00000", "f02500", "f04195"):
            e = fresh.trees.lookup(tree, f"big/{name}")
            assert e is not None and e.name == name and e.size == len(str(int(name[1:])))
        assert fresh.trees.lookup(tree, "big/nope") is None and fresh.trees.lookup(tree, "big/f00001/x") is None
        assert fresh.store.reads - before < 20  # a root, a folder node and a few buckets: not 3+ leaves each
        listed = {e.name for e in fresh.trees.read_dir(fresh.trees.lookup(tree, "big").id)}  # type: ignore[union-attr]
        assert all(fresh.trees.lookup(tree, f"big/{n}") is not None for n in random.Random(1).sample(sorted(listed), 50))
    finally:
        fresh.close()


def test_diff_of_two_commits_reads_only_what_changed_and_equals_the_full_diff(repo: Repo) -> None:
    _big(repo)
    a = repo.commit("a")
    (repo.root / "big" / "f00007").write_text("changed")
    (repo.root / "big" / "new").write_text("new")
    os.chmod(repo.root / "big" / "f00009", 0o755)
    (repo.root / "sub" / "x").unlink()
    (repo.root / "sub" / "x").mkdir()  # file -> folder
    (repo.root / "sub" / "x" / "y").write_text("x")  # same content as the old file: a rename
    (repo.root / "big" / "f00011").rename(repo.root / "moved")
    b = repo.commit("b")
    ta, tb = repo.read_commit(a).tree, repo.read_commit(b).tree
    fresh = Repo(repo.root)
    try:
        before = fresh.store.reads
        old, new = fresh.trees.differing(ta, tb)
        assert fresh.store.reads - before < 40
        assert sorted(old) == ["big/f00007", "big/f00009", "big/f00011", "sub/x"]
        assert sorted(new) == ["big/f00007", "big/f00009", "big/new", "moved", "sub/x/y"]
        full = diff_flat(fresh.trees.flatten(ta), fresh.trees.flatten(tb)).to_json()
        assert diff_flat(old, new).to_json() == full == fresh.diff(a, b).to_json()
        assert fresh.trees.differing(ta, ta) == ({}, {})
        assert fresh.trees.differing(None, tb)[1] == fresh.trees.flatten(tb)
    finally:
        fresh.close()


def test_small_packs_are_merged_once_too_many_pile_up(repo: Repo) -> None:
    ids = []
    for i in range(MAX_SMALL_PACKS + 10):
        (repo.root / "hot").write_text(str(i))
        (repo.root / f"f{i}").write_text(f"file {i}")
        ids.append(repo.commit(f"c{i}"))
    packs = list(Path(repo.store.pack_dir).glob("*.pack"))
    assert len(packs) <= MAX_SMALL_PACKS + 1
    assert repo.fsck().ok
    assert [e.id for e in repo.log()] == ids[::-1]  # every commit readable through the same Repo
    other = Repo(repo.root)
    try:
        assert other.read_commit(ids[0]).message == "c0" and (other.ls(ids[5]) and True)
    finally:
        other.close()


def test_a_build_on_the_base_tree_gives_the_ids_of_a_full_build(repo: Repo) -> None:
    """Random edits (in and out of a bucketed folder, file <-> folder, emptied folders, a folder shrinking
    below the bucket limit and growing past it) built both ways: the same root id every time."""
    from dvx.model import FILE, Entry
    from dvx.trees import build

    rng = random.Random(7)

    def entry(path: str, n: int) -> Entry:
        from dvx.ids import hash_bytes

        return Entry(path.rpartition("/")[2], FILE, hash_bytes(str(n).encode()), len(str(n)), n % 7 == 0)

    files = {f"big/f{i:05d}": entry(f"big/f{i:05d}", i) for i in range(MAX_LEAF_ENTRIES + 300)}
    files.update({"a/b/c": entry("a/b/c", 1), "a/d": entry("a/d", 2), "top": entry("top", 3)})
    with repo.store.writer() as w:
        tree = build(w, files)
    for step in range(25):
        new = dict(files)
        for _ in range(rng.randint(1, 40)):
            op = rng.random()
            if op < 0.3 and new:
                new.pop(rng.choice(sorted(new)))
            elif op < 0.5:
                p = f"big/g{rng.randint(0, 500)}"
                new[p] = entry(p, rng.randint(0, 10**6))
            elif op < 0.6:
                for p in [p for p in new if p.startswith("a/")]:
                    del new[p]
                new["a"] = entry("a", step)  # folder -> file
            elif op < 0.7:
                new.pop("a", None)
                new[f"a/x{step}/y"] = entry("a/y", step)  # file -> folder
            elif op < 0.8 and step % 5 == 0:
                for p in [p for p in new if p.startswith("big/")][: MAX_LEAF_ENTRIES // 2]:
                    del new[p]  # shrinks below the bucket limit: one leaf again
            elif new:
                p = rng.choice(sorted(new))
                new[p] = entry(p, rng.randint(0, 10**6))
        if step == 12:  # grows past the bucket limit again
            new.update({f"big/h{i:05d}": entry(f"big/h{i:05d}", i) for i in range(MAX_LEAF_ENTRIES + 50)})
        with repo.store.writer() as w:
            full = build(w, new)
            on_base = build(w, new, (repo.trees, tree, files))
        assert on_base == full, step
        assert repo.trees.flatten(full) == new
        files, tree = new, full


def test_checkout_then_commit_on_the_patched_listing_matches_the_working_tree(repo: Repo) -> None:
    """A non-forced checkout reads only the paths where the commits differ and patches HEAD's listing in the
    stat cache; the next commit builds on that listing. Both must agree with a full read, every time."""
    from dvx.trees import build

    rng = random.Random(3)
    _big(repo, MAX_LEAF_ENTRIES + 50)
    commits = [repo.commit("c0")]
    for step in range(12):
        for _ in range(rng.randint(1, 6)):
            i = rng.randint(0, MAX_LEAF_ENTRIES + 80)
            p = repo.root / "big" / f"f{i:05d}"
            if p.exists() and rng.random() < 0.3:
                p.unlink()
            else:
                p.write_text(f"{step}-{i}")
        if step % 4 == 1:
            (repo.root / "sub" / f"n{step}").write_text("n")
        commits.append(repo.commit(f"c{step + 1}"))
        back = rng.choice(commits)
        repo.checkout(back)
        assert repo.status().to_json() == {"added": [], "modified": [], "deleted": []}
        listing = repo._work_entries()[0]  # noqa: SLF001 - the scan, hashed through the stat cache
        with repo.store.writer() as w:
            assert build(w, listing) == repo.read_commit(back).tree
        (repo.root / "big" / f"f{step:05d}").write_text(f"detached {step}")
        side = repo.commit(f"side {step}")  # built on the listing the checkout patched
        listing = repo._work_entries()[0]  # noqa: SLF001
        with repo.store.writer() as w:
            assert build(w, listing) == repo.read_commit(side).tree
        repo.checkout("main")


def test_a_reader_whose_packs_were_merged_by_another_writer_reads_on(repo: Repo) -> None:
    """A Repo kept open (a notebook) while another process's commits merge the small packs it has listed:
    a pack gone under a loaded index means list again (docs/format.md §15.4), not an error."""
    (repo.root / "f").write_text("first")
    first = repo.commit("first")
    reader = Repo(repo.root)
    try:
        assert reader.store.has(first)  # packs listed and the lookup table built, no pack opened yet
        for i in range(MAX_SMALL_PACKS + 5):
            (repo.root / f"g{i}").write_text(str(i))
            repo.commit(f"c{i}")
        gone = [p for p in reader.store.packs() if not (reader.store.pack_dir / f"{p}.pack").exists()]
        assert gone  # the reader still lists packs that were merged away
        assert [p for p, _ in reader.ls(first)] == ["f"]
        assert reader.store.get(reader.ls(first)[0][1].id)[1] == b"first"
        assert len(reader.log()) == MAX_SMALL_PACKS + 6
    finally:
        reader.close()


def _misplace(repo: Repo, name: str, *, duplicate: bool = False) -> str:
    """A commit on top of HEAD whose bucketed folder big/ holds ``name`` in the wrong bucket (or, with
    ``duplicate``, in both its own, with other content, and a wrong one): what a hostile writer could push."""
    from dvx.ids import hash_bytes
    from dvx.model import DIR, TREE_VERSION, Commit, Entry, _bucket_of, _dumps, encode_tree
    from dvx.store import COMMIT, TREE

    _, head = repo.refs.head()
    assert head is not None
    c = repo.read_commit(head)
    root = repo.trees.read_dir(c.tree)
    big = next(e for e in root if e.name == "big")
    node = repo.trees.node(big.id)
    rows = {b: list(repo.trees.node(sub).entries or []) for b, sub, _, _ in node.buckets}
    home = _bucket_of(name, 0)
    victim = next(e for e in rows[home] if e.name == name)
    if duplicate:
        rows[home] = [e._replace(id=hash_bytes(b"other"), size=5) if e.name == name else e for e in rows[home]]
    else:
        rows[home] = [e for e in rows[home] if e.name != name]
    wrong = next(b for b in rows if b != home)
    rows[wrong] = sorted([*rows[wrong], victim], key=lambda e: e.name)
    new, buckets = [], []
    for b in sorted(rows):
        data = _dumps({"v": TREE_VERSION, "entries": [e.to_json() for e in rows[b]]})
        new.append((hash_bytes(data), data))
        buckets.append([b, hash_bytes(data), len(rows[b]), sum(e.size for e in rows[b])])
    data = _dumps({"v": TREE_VERSION, "depth": 0, "buckets": buckets})
    new.append((hash_bytes(data), data))
    nodes = encode_tree([Entry("big", DIR, hash_bytes(data), big.size) if e.name == "big" else e for e in root])
    commit = Commit(nodes[-1][0], (head,), "misplaced", c.author, c.time)
    with repo.store.writer() as w:
        for i, d in [*new, *nodes]:
            w.add(i, TREE, d)
        w.add(commit.id, COMMIT, commit.encode())
    return commit.id


def test_a_tree_that_misplaces_a_name_is_damage_and_never_poisons_a_commit(repo: Repo) -> None:
    from dvx.errors import CorruptObject

    _big(repo)
    base = repo.commit("base")
    evil = _misplace(repo, "f00007")
    repo.create_branch("evil", evil)
    report = repo.fsck()
    assert not report.ok and any("wrong bucket" in why for why in report.bad.values())
    repo.checkout("evil", force=True)  # a forced checkout reads the full listing, as ls does
    (repo.root / "big" / "f00007").unlink()
    assert repo.status().deleted == ["big/f00007"]
    fixed = repo.commit("delete f7")  # HEAD's buckets cannot be patched: built in full
    assert "big/f00007" not in dict(repo.ls(fixed)) and repo.status().to_json()["deleted"] == []
    with repo.store.writer() as w:
        from dvx.trees import build

        assert build(w, repo._work_entries()[0]) == repo.read_commit(fixed).tree  # noqa: SLF001
    repo.create_branch("dup", _misplace(repo, "f00009", duplicate=True))
    for call in (lambda: repo.diff(base, "dup"), lambda: repo.checkout("dup")):
        try:
            call()
            raise AssertionError("a folder listing a name twice was accepted")
        except CorruptObject as exc:
            assert "wrong bucket" in str(exc) or "twice" in str(exc)


def test_readers_in_threads_while_the_same_repo_commits_and_merges_packs(repo: Repo) -> None:
    """Merging packs must not close descriptors that other threads read through (a closed number is reused
    by the next open file: reads failed with EBADF, or read another file's bytes and looked corrupt)."""
    import threading

    for i in range(20):
        (repo.root / f"f{i}").write_text(f"content {i}\n" * 50)
    first = repo.commit("base")
    ids = [e.id for _, e in repo.ls(first)]
    errors: list[str] = []
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            for oid in ids:
                try:
                    repo.store.get(oid)
                except Exception as exc:  # noqa: BLE001 - collected and asserted below
                    errors.append(f"{type(exc).__name__}: {exc}")

    def churn() -> None:  # other files the process opens take any number a close frees
        while not stop.is_set():
            os.close(os.open(os.devnull, os.O_RDONLY))

    # A read between taking a pack's descriptor and reading through it, made deterministic:
    info = repo.store.info(ids[0])
    assert info is not None and info.pack is not None
    held = repo.store._fd(info.pack)  # noqa: SLF001
    assert held is not None
    inode = os.fstat(held).st_ino
    threads = [threading.Thread(target=read) for _ in range(2)] + [threading.Thread(target=churn)]
    for t in threads:
        t.start()
    try:
        for k in range(3 * MAX_SMALL_PACKS):
            (repo.root / "changing").write_text(str(k))
            repo.commit(f"c{k}")
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert errors == []
    assert len(list(Path(repo.store.pack_dir).glob("*.pack"))) <= MAX_SMALL_PACKS + 1
    assert info.pack not in repo.store.packs()  # merged away meanwhile
    assert os.fstat(held).st_ino == inode  # still open, on the same (now unlinked) pack


def test_fsck_checks_bucket_depth_and_placement_under_every_route(repo: Repo) -> None:
    """A sub-bucket whose depth is not its parent's plus one passed fsck (ls refused it); a leaf met first as a
    plain folder was not checked again where it also sits under a bucket."""
    import blake3

    from dvx.ids import hash_bytes
    from dvx.model import DIR, FILE, Entry, _dumps, encode_tree
    from dvx.store import BLOB, TREE

    def h(n: str) -> bytes:
        return blake3.blake3(n.encode()).digest()

    blob = b"hello\n"
    bid = hash_bytes(blob)
    b0 = h("n0")[0]
    names = [n for n in (f"n{i}" for i in range(3000)) if h(n)[0] == b0][:2]
    nodes: list[tuple[str, bytes]] = []
    subs = []
    for n in names:
        leaf = encode_tree([Entry(n, FILE, bid, len(blob))])
        nodes += leaf
        subs.append([h(n)[1], leaf[-1][0], 1, len(blob)])
    sub_data = _dumps({"v": 1, "depth": 5, "buckets": sorted(subs)})
    top_data = _dumps({"v": 1, "depth": 0, "buckets": [[b0, hash_bytes(sub_data), 2, 2 * len(blob)]]})
    # A plain folder whose leaf also hangs, under a bucket byte none of its names has, below another root.
    plain = encode_tree([Entry("m1", FILE, bid, len(blob)), Entry("m2", FILE, bid, len(blob))])
    wrong = next(b for b in range(256) if all(h(n)[0] != b for n in ("m1", "m2")))
    misplaced = _dumps({"v": 1, "depth": 0, "buckets": [[wrong, plain[-1][0], 2, 2 * len(blob)]]})
    with_plain = encode_tree([Entry("dir", DIR, plain[-1][0], 2 * len(blob))])
    with repo.store.writer() as w:
        w.add(bid, BLOB, blob)
        for nid, data in [*nodes, (hash_bytes(sub_data), sub_data), (hash_bytes(top_data), top_data), *plain,
                          (hash_bytes(misplaced), misplaced), *with_plain]:
            w.add(nid, TREE, data)
    bad_depth = repo.write_commit(hash_bytes(top_data), [], "depth 5 under depth 0")
    base = repo.write_commit(hash_bytes(misplaced), [], "the leaf under a wrong bucket")
    tip = repo.write_commit(with_plain[-1][0], [base], "the same leaf as a plain folder")
    repo.refs.update("refs/heads/main", tip, None)
    bad = repo.fsck().bad
    assert any("wrong bucket" in why for why in bad.values()), bad
    repo.refs.update("refs/heads/other", bad_depth, None)
    assert any("depth 5, not 1" in why for why in repo.fsck().bad.values())


def _tree_state(root: Path) -> dict[str, tuple[str, str | bytes, bool]]:
    out: dict[str, tuple[str, str | bytes, bool]] = {}
    for dirpath, dirnames, files in os.walk(root):
        dirnames[:] = [d for d in dirnames if d != ".dvx"]
        for name in files + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            p = os.path.join(dirpath, name)
            rel = os.path.relpath(p, root)
            if os.path.islink(p):
                out[rel] = ("link", os.readlink(p), False)
            else:
                out[rel] = ("file", Path(p).read_bytes(), os.stat(p).st_mode & 0o100 != 0)
    return out


@pytest.mark.parametrize("cached", [True, False])
def test_forced_checkout_on_the_cached_listing_restores_the_target_exactly(repo: Repo, cached: bool) -> None:
    """A forced checkout reads HEAD's listing from the stat cache and only the subtrees where the commits
    differ; with or without that listing it discards every local change and writes the target exactly."""
    import shutil

    _big(repo)
    (repo.root / "sub" / "run.sh").write_text("#!/bin/sh\n")
    os.symlink("../big/f00001", repo.root / "sub" / "link")
    target_work = _tree_state(repo.root)
    target = repo.commit("target")
    # A second commit that differs in every way a path can.
    (repo.root / "big" / "f00002").write_text("changed")
    (repo.root / "big" / "f00003").unlink()
    (repo.root / "big" / "new").write_text("new")
    os.chmod(repo.root / "sub" / "run.sh", 0o755)
    (repo.root / "sub" / "link").unlink()
    (repo.root / "sub" / "link").write_text("now a file")
    shutil.rmtree(repo.root / "sub")  # and the folder goes
    (repo.root / "sub").mkdir()
    (repo.root / "sub" / "x").write_text("x")
    repo.commit("other")
    # Local changes on top: all of them are discarded, the untracked file stays.
    (repo.root / "big" / "f00004").write_text("local edit")
    (repo.root / "big" / "f00005").unlink()
    (repo.root / "sub" / "x").write_text("local")
    (repo.root / "untracked").write_text("mine")
    if not cached:
        (repo.dvx / "index").unlink()
    repo.checkout(target, force=True)
    got = _tree_state(repo.root)
    assert got.pop("untracked") == ("file", b"mine", False)
    assert got == target_work
    st = repo.status()
    assert (st.added, st.modified, st.deleted) == (["untracked"], [], [])
