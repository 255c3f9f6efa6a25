"""Trees nested deeper than Python's recursion limit: every walk is iterative, nothing raises RecursionError.

A real folder 1200 levels deep (its absolute path is over PATH_MAX, so it is made one level at a time through
``dir_fd``) is committed, then listed, checked, collected, diffed and checked out. A crafted tree deeper than any
file system allows reads the same way, and a crafted chain of bucket nodes is refused in one line.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from dvx.cache import Cache
from dvx.durable import remove_tree
from dvx.errors import CorruptObject
from dvx.ids import hash_bytes
from dvx.model import Commit
from dvx.readonly import checkout_to
from dvx.repo import Repo
from dvx.store import BLOB, COMMIT, TREE

DEPTH = 1200
DEEP = "/".join(["a"] * DEPTH)


def _descend(root: Path, depth: int, *, create: bool) -> int:
    """A descriptor of ``root/a/a/...`` (``depth`` levels), made on the way with ``create``; the caller closes it."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    for _ in range(depth):
        if create:
            os.mkdir("a", dir_fd=fd)
        sub = os.open("a", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        os.close(fd)
        fd = sub
    return fd


def _write_deep(root: Path, name: str, data: bytes, *, create: bool = False) -> None:
    fd = _descend(root, DEPTH, create=create)
    try:
        out = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644, dir_fd=fd)
        try:
            os.write(out, data)
        finally:
            os.close(out)
    finally:
        os.close(fd)


def _read_deep(root: Path, name: str) -> bytes:
    fd = _descend(root, DEPTH, create=False)
    try:
        inner = os.open(name, os.O_RDONLY, dir_fd=fd)
        try:
            return os.read(inner, 1 << 16)
        finally:
            os.close(inner)
    finally:
        os.close(fd)


def _remove_deep(root: Path) -> None:
    """``rm -r root``: shutil.rmtree (Python 3.11) recurses once per level, so pytest could not remove these."""
    remove_tree(root)


@pytest.fixture
def deep(repo: Repo, tmp_path: Path) -> Iterator[tuple[Repo, str, str]]:
    """``(repo, first, second)``: two commits of a 1200-level folder; the second changes the deepest file."""
    (repo.root / "top.txt").write_bytes(b"top")
    _write_deep(repo.root, "deep.txt", b"deep", create=True)
    first = repo.commit("deep")
    _write_deep(repo.root, "deep.txt", b"deeper")
    second = repo.commit("deeper")
    yield repo, first, second
    repo.close()
    for name in ("repo", "out"):
        _remove_deep(tmp_path / name)


def test_a_real_deep_folder_reads_through_the_python_api(deep: tuple[Repo, str, str], tmp_path: Path) -> None:
    repo, first, second = deep
    paths = [p for p, _ in repo.ls("HEAD")]
    assert paths == [f"{DEEP}/deep.txt", "top.txt"]  # sorted, depth first
    assert list(repo.trees.flatten(repo.read_commit(first).tree)) == paths
    report = repo.fsck()
    assert report.ok, report
    assert report.objects >= 2 * DEPTH
    reach = repo.reachable()
    assert sum(1 for t in reach.values() if t == TREE) == 2 * (DEPTH + 1)
    repo.gc(grace_seconds=0)
    assert repo.fsck().ok
    d = repo.diff(first, second)
    assert [c.path for c in d.modified] == [f"{DEEP}/deep.txt"] and not d.added and not d.deleted
    checkout_to(repo, first, tmp_path / "out", cache=Cache(tmp_path / "cache"), jobs=1)
    assert _read_deep(tmp_path / "out", "deep.txt") == b"deep"
    repo.checkout(first)
    assert _read_deep(repo.root, "deep.txt") == b"deep"


def test_a_real_deep_folder_through_the_cli_gives_no_traceback(
    deep: tuple[Repo, str, str], run_dvx: Callable[..., object]
) -> None:
    repo, _, _ = deep
    for args in (["fsck"], ["ls"], ["show", "HEAD"], ["diff", "HEAD~1", "HEAD"]):
        r = run_dvx(args, repo.root)
        assert r.returncode == 0 and "Traceback" not in r.stderr, (args, r.stderr)  # type: ignore[attr-defined]
    assert f"{DEEP}/deep.txt" in r.stdout  # type: ignore[attr-defined]


def _tree(rows: list[list[object]]) -> bytes:
    return json.dumps({"v": 1, "entries": rows}, separators=(",", ":")).encode()


def test_a_crafted_tree_deeper_than_any_path_reads_without_recursion(repo: Repo, run_dvx: Callable[..., object],
                                                                     tmp_path: Path) -> None:
    depth = 3000  # 6000 bytes of path: no file system holds it, but reading the tree must not crash
    base = repo.commit("base", allow_empty=True)
    with repo.store.writer() as w:
        w.add(hash_bytes(b"deep"), BLOB, b"deep")
        t = _tree([["deep.txt", "f", 0, 4, hash_bytes(b"deep")]])
        w.add(hash_bytes(t), TREE, t)
        for _ in range(depth):
            t = _tree([["a", "d", 0, 4, hash_bytes(t)]])
            w.add(hash_bytes(t), TREE, t)
        c = Commit(hash_bytes(t), (base,), "deep", "x <x@x>", "2026-01-01T00:00:00.000000Z")
        w.add(c.id, COMMIT, c.encode())
    repo.create_branch("deep", c.id)
    assert [p for p, _ in repo.ls("deep")] == ["/".join(["a"] * depth) + "/deep.txt"]
    assert repo.fsck().ok
    assert c.id in repo.reachable()
    for args in (["fsck"], ["checkout", "deep", "--to", str(tmp_path / "out")]):
        r = run_dvx(args, repo.root)
        assert "Traceback" not in r.stderr and len(r.stderr.splitlines()) <= 1, (args, r.stderr)  # type: ignore[attr-defined]
    _remove_deep(tmp_path / "out")  # what the failed checkout made (up to the longest path the system allows)


def test_a_chain_of_bucket_nodes_past_the_digest_is_refused(repo: Repo) -> None:
    """Bucket nodes split on one byte of a 32-byte hash: one at depth 32 or more is corrupt (not a recursion)."""
    leaf = _tree([["x", "f", 0, 1, hash_bytes(b"x")]])
    node_id = hash_bytes(leaf)
    nodes = [(node_id, leaf)]
    for depth in reversed(range(3000)):
        data = json.dumps({"buckets": [[0, node_id, 1, 1]], "depth": depth, "v": 1}, separators=(",", ":")).encode()
        node_id = hash_bytes(data)
        nodes.append((node_id, data))
    with repo.store.writer() as w:
        for oid, data in nodes:
            w.add(oid, TREE, data)
    with pytest.raises(CorruptObject, match="at depth 32") as info:
        repo.trees.read_dir(node_id)
    assert "\n" not in str(info.value)
    one = json.dumps({"buckets": [[0, hash_bytes(leaf), 1, 1]], "depth": 40, "v": 1}, separators=(",", ":")).encode()
    with repo.store.writer() as w:
        w.add(hash_bytes(one), TREE, one)
    with pytest.raises(CorruptObject, match=hash_bytes(one)):
        repo.trees.read_dir(hash_bytes(one))


def test_a_merge_of_a_deep_tree_runs_on_a_deep_stack(deep: tuple[Repo, str, str], run_dvx: Callable[..., object]) -> None:
    """The merge is the one tree walk still recursive (about three calls per level): past ~300 levels it is run
    again on a thread with a deep stack, and succeeds."""
    repo, first, second = deep
    repo.checkout(first)
    repo.create_branch("side")
    repo.checkout("side")
    (repo.root / "side.txt").write_bytes(b"side")
    side = repo.commit("side")
    r = run_dvx(["merge", "main", "-m", "m"], repo.root)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr  # type: ignore[attr-defined]
    branch, merged = repo.head()
    assert branch == "side" and repo.read_commit(merged or "").parents == (side, second)
    assert _read_deep(repo.root, "deep.txt") == b"deeper" and (repo.root / "side.txt").read_bytes() == b"side"
    assert repo.status().to_json() == {"added": [], "modified": [], "deleted": []}
    assert repo.fsck().ok


def test_checkout_clears_an_ignored_folder_deeper_than_the_recursion_limit(repo: Repo, tmp_path: Path) -> None:
    (repo.root / ".dvxignore").write_text("scratch/\n")
    (repo.root / "x").write_text("file")
    with_x = repo.commit("x is a file")
    (repo.root / "x").unlink()
    without = repo.commit("no x")
    (repo.root / "x").mkdir()
    (repo.root / ".dvxignore").write_text("scratch/\nx/\n")  # x/ ignored, 1200 levels of it
    outside = tmp_path / "outside"
    outside.write_text("keep")
    fd = _descend(repo.root / "x", DEPTH, create=True)
    try:
        os.symlink(outside, "link", dir_fd=fd)  # removed as a link, never followed
    finally:
        os.close(fd)
    repo.checkout(with_x, force=True)  # .dvxignore differs: --force; the ignored folder x/ is in the way of x
    assert (repo.root / "x").read_text() == "file" and outside.read_text() == "keep"
    assert repo.status().to_json() == {"added": [], "modified": [], "deleted": []}
    assert without != with_x


def test_remove_tree_at_any_depth_follows_no_symlink(tmp_path: Path) -> None:
    target = tmp_path / "target"
    (target / "sub").mkdir(parents=True)
    (target / "sub" / "f").write_text("kept")
    root = tmp_path / "deep"
    root.mkdir()
    fd = _descend(root, DEPTH, create=True)
    try:
        os.symlink(target, "to-target", dir_fd=fd)
        os.close(os.open("file", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd))
    finally:
        os.close(fd)
    os.symlink(target / "sub", root / "top-link")
    remove_tree(root)
    assert not root.exists() and (target / "sub" / "f").read_text() == "kept"
    remove_tree(root)  # nothing there: fine
    (tmp_path / "plain").write_text("x")
    remove_tree(tmp_path / "plain")
    assert not (tmp_path / "plain").exists()
