"""Safety through the CLI: hostile trees, symlinked parents, gc failing closed, the repository lock under
concurrent commands, and the cost of a change in a huge flat directory."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from dvx.ids import hash_bytes
from dvx.model import Commit
from dvx.repo import Repo
from dvx.store import BLOB, COMMIT, TREE
from dvx.store.pack import scan_pack


def tree_object(rows: list[list[object]]) -> bytes:
    return json.dumps({"v": 1, "entries": rows}, separators=(",", ":"), ensure_ascii=False).encode()


def hostile_commit(repo: Repo, parent: str, rows: list[list[object]], extra: dict[str, bytes]) -> str:
    """Store a commit whose root tree has ``rows`` (ids already valid), bypassing every writer-side check."""
    with repo.store.writer() as w:
        for data in extra.values():
            w.add(hash_bytes(data), TREE if data.startswith(b'{"v"') else BLOB, data)
        root = tree_object(rows)
        w.add(hash_bytes(root), TREE, root)
        c = Commit(hash_bytes(root), (parent,), "evil", "x <x@x>", "2026-01-01T00:00:00.000000Z")
        w.add(c.id, COMMIT, c.encode())
    return c.id


PAYLOAD = b'{"format": 1, "core": {}, "hacked": true}\n'


@pytest.mark.parametrize("name", [".DVX", ".dvx", ".Dvx.", ".d\u200cvx", "..", "."])
def test_checkout_of_a_hostile_tree_writes_nothing(repo: Repo, run_dvx, write_files, snapshot, name: str) -> None:
    write_files(repo.root, {"a.txt": "a"})
    base = repo.commit("base")
    blob = PAYLOAD
    sub = tree_object([["config", "f", 0, len(blob), hash_bytes(blob)]])
    rows = [["a.txt", "f", 0, 1, hash_bytes(b"a")], [name, "d", 0, len(blob), hash_bytes(sub)]]
    rows.sort(key=lambda r: str(r[0]))
    evil = hostile_commit(repo, base, rows, {"blob": blob, "sub": sub})
    repo.create_branch("evil", evil)
    volatile = (".dvx/index", ".dvx/lock")
    before = snapshot(repo.root, skip=volatile)
    for args in (["checkout", "evil"], ["checkout", "--force", "evil"]):
        r = run_dvx(args, repo.root, check=False)
        assert len(r.stderr.splitlines()) == 1 and r.stderr.startswith("dvx: error:"), r.stderr
        assert snapshot(repo.root, skip=volatile) == before
    fsck = run_dvx(["fsck"], repo.root, check=False)
    assert fsck.returncode != 0 and "Traceback" not in fsck.stderr


def test_checkout_never_writes_through_a_symlinked_parent(repo: Repo, run_dvx, write_files, tmp_path: Path) -> None:
    write_files(repo.root, {"d/x.txt": "v1"})
    c1 = repo.commit("c1")
    write_files(repo.root, {"d/x.txt": "v2", "d/new.txt": "n"})
    repo.commit("c2")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "x.txt").write_text("precious")
    # The user replaces the tracked folder by a link to somewhere else.
    for f in (repo.root / "d").iterdir():
        f.unlink()
    (repo.root / "d").rmdir()
    os.symlink(outside, repo.root / "d")
    r = run_dvx(["checkout", c1], repo.root, check=False)
    assert r.stderr.startswith("dvx: error:") and len(r.stderr.splitlines()) == 1, r.stderr
    # As git's --force: the link (untracked, in the way of the folder) goes, never followed, and the folder
    # comes back with c1's file.
    run_dvx(["checkout", "--force", c1], repo.root, check=True)
    assert not (repo.root / "d").is_symlink() and (repo.root / "d" / "x.txt").read_text() == "v1"
    assert sorted(p.name for p in outside.iterdir()) == ["x.txt"]
    assert (outside / "x.txt").read_text() == "precious"


def test_gc_fails_closed_when_a_ref_is_unreadable(repo: Repo, run_dvx, write_files) -> None:
    write_files(repo.root, {"a.bin": os.urandom(1 << 20)})
    repo.commit("c1")
    repo.create_branch("doomed")
    run_dvx(["checkout", "doomed"], repo.root, check=True)
    doomed = os.urandom(1 << 20)
    write_files(repo.root, {"b.bin": doomed})
    run_dvx(["commit", "-m", "on doomed"], repo.root, check=True)
    run_dvx(["checkout", "main"], repo.root, check=True)
    run_dvx(["branch", "-D", "doomed"], repo.root, check=True)
    (repo.dvx / "refs" / "tags" / "broken").write_text("not a commit id\n")
    objects = sorted(p for p in (repo.dvx / "objects").rglob("*") if p.is_file())
    r = run_dvx(["gc", "--grace", "0"], repo.root, check=False)
    assert r.stderr.startswith("dvx: error:")
    assert sorted(p for p in (repo.dvx / "objects").rglob("*") if p.is_file()) == objects
    assert repo.store.loose_path(hash_bytes(doomed)).exists()


def test_gc_fails_closed_when_a_reachable_object_is_missing(repo: Repo, run_dvx, write_files) -> None:
    content = os.urandom(1 << 20)
    write_files(repo.root, {"a.bin": content, "small.txt": "s"})
    repo.commit("c1")
    write_files(repo.root, {"garbage.bin": os.urandom(1 << 20)})
    garbage = repo.commit("c2")
    repo.refs.update("refs/heads/main", repo.read_commit(garbage).parents[0], garbage)  # c2 unreachable
    repo.store.loose_path(hash_bytes(content)).unlink()
    objects = sorted(p for p in (repo.dvx / "objects").rglob("*") if p.is_file())
    r = run_dvx(["gc", "--grace", "0"], repo.root, check=False)
    assert r.returncode != 0 and r.stderr.startswith("dvx: error:")
    assert sorted(p for p in (repo.dvx / "objects").rglob("*") if p.is_file()) == objects


def hold_lock(repo: Repo) -> subprocess.Popen[str]:
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import time
            from pathlib import Path
            from dvx.lock import RepoLock
            RepoLock(Path({str(repo.dvx / "lock")!r}), what="test holder").acquire()
            print("held", flush=True)
            time.sleep(120)
        """)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    return holder


def test_read_commands_do_not_wait_for_the_repository_lock(repo: Repo, run_dvx, write_files) -> None:
    write_files(repo.root, {"a": "1"})
    repo.commit("c1")
    write_files(repo.root, {"b": "2"})
    holder = hold_lock(repo)
    try:
        env = {"DVX_LOCK_TIMEOUT": "0.5"}
        assert json.loads(run_dvx(["status", "--json"], repo.root, env=env, check=True).stdout)["added"] == ["b"]
        run_dvx(["log"], repo.root, env=env, check=True)
        run_dvx(["diff"], repo.root, env=env, check=True)
        blocked = run_dvx(["commit", "-m", "x"], repo.root, env=env, check=False)
        assert "locked" in blocked.stderr and "test holder" in blocked.stderr
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    run_dvx(["commit", "-m", "after the holder died"], repo.root, check=True)


def test_concurrent_commits_are_serialised(repo: Repo, dvx_argv: list[str], cli_env, write_files) -> None:
    write_files(repo.root, {"a": "1"})
    c1 = repo.commit("c1")
    procs = [
        subprocess.Popen([*dvx_argv, "commit", "--allow-empty", "-m", f"concurrent {i}"], cwd=repo.root,
                         env=cli_env({"DVX_LOCK_TIMEOUT": "30"}), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
        for i in range(4)
    ]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    log = repo.log()
    assert len(log) == 5 and log[-1].id == c1
    for newer, older in zip(log, log[1:]):
        assert newer.commit.parents == (older.id,)  # linear: nobody lost an update
    assert sorted(e.commit.message for e in log[:4]) == [f"concurrent {i}" for i in range(4)]


def test_one_change_in_a_huge_flat_directory_writes_only_its_bucket(repo: Repo, run_dvx, write_files) -> None:
    write_files(repo.root, {f"flat/img_{i:05d}.jpg": f"image {i}" for i in range(5000)})
    repo.commit("5000 files in one folder")
    packs = set(repo.store.pack_dir.glob("*.pack"))
    write_files(repo.root, {"flat/img_01234.jpg": "a new version of one image"})
    run_dvx(["commit", "-m", "one file changed"], repo.root, check=True)
    (new_pack,) = set(repo.store.pack_dir.glob("*.pack")) - packs
    written = scan_pack(new_pack.read_bytes(), new_pack.stem)
    types = sorted(e.type for e in written)
    # the new blob, one bucket node, the folder's bucket list, the root tree, the commit
    assert types == [BLOB, TREE, TREE, TREE, COMMIT]
    assert new_pack.stat().st_size < 16_000
