"""Fetch into a repository that is not a lazy clone (made by ``init``, a remote added) brings the file contents
of what it fetches, so that the repository stays complete (docs/format.md §15.2 invariant 3, §17.6): fetch
brought commits and trees only, and then ``merge origin/main`` (what a rejected push advises), ``checkout
origin/main`` and ``gc`` failed on "object ... is missing from the store" and ``fsck`` called the repository
corrupt. A lazy clone still fetches metadata only.

Through real ``dvx`` processes (the ``run_dvx`` fixture) where the CLI matters, in-process against every kind of
remote (tests/remote_servers.py) where the stores are inspected."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest

from dvx import Repo
from dvx.readonly import MANIFEST_NAME
from dvx.store import BLOB
from dvx.transfer import add_remote, clone, fetch, push


def stored(repo: Repo) -> dict[str, int]:
    """Every object id in a repository's store (read afresh from disk) → its type."""
    fresh = Repo(repo.root)
    try:
        out = {e.object_id.hex(): e.type for idx in fresh.store.packs().values() for e in idx}
        for oid, _ in fresh.store.iter_loose():
            info = fresh.store.info(oid)
            assert info is not None
            out[oid] = info.type
        return out
    finally:
        fresh.close()


def files_of(root: Path) -> dict[str, bytes]:
    """The files of a working tree or a read-only checkout (without its manifest)."""
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and ".dvx" not in p.relative_to(root).parts and p.name != MANIFEST_NAME
    }


def readonly_checkout(run_dvx, repo: Path, rev: str, to: Path) -> None:
    """``checkout REV --readonly --to DIR``, through a cache of the test's own."""
    env = {"DVX_CACHE_DIR": str(to.parent / "cache")}
    run_dvx(["checkout", rev, "--readonly", "--to", str(to)], repo, env=env, check=True)


def diverged(tmp_path: Path, run_dvx) -> tuple[Path, Path]:
    """The tester's repro up to the rejected push: ``a`` (init, remote added) and a clone ``b`` each committed
    on top of c1; ``b`` pushed first. Returns (a, b)."""
    remote, a, b = tmp_path / "remote", tmp_path / "a", tmp_path / "b"
    a.mkdir()
    run_dvx(["init"], a, check=True)
    (a / "one.txt").write_text("one\n")
    run_dvx(["commit", "-m", "c1"], a, check=True)
    run_dvx(["remote", "add", "origin", str(remote)], a, check=True)
    run_dvx(["push"], a, check=True)
    run_dvx(["clone", str(remote), "b"], tmp_path, check=True)
    (b / "two.txt").write_text("two\n")
    run_dvx(["commit", "-m", "b2"], b, check=True)
    run_dvx(["push"], b, check=True)
    (a / "three.txt").write_text("three\n")
    run_dvx(["commit", "-m", "a2"], a, check=True)
    rejected = run_dvx(["push"], a, check=False)
    assert "dvx fetch origin" in rejected.stderr and "dvx merge origin/main" in rejected.stderr
    return a, b


def test_fetch_then_merge_as_a_rejected_push_advises(tmp_path: Path, run_dvx) -> None:
    a, _ = diverged(tmp_path, run_dvx)
    run_dvx(["fetch"], a, check=True)
    merged = run_dvx(["merge", "origin/main"], a, check=True)
    assert "Merged origin/main into main" in merged.stdout
    assert files_of(a) == {"one.txt": b"one\n", "two.txt": b"two\n", "three.txt": b"three\n"}
    assert run_dvx(["fsck"], a, check=True).stdout.splitlines()[-1] == "ok"
    run_dvx(["gc"], a, check=True)
    run_dvx(["push"], a, check=True)  # and the advice ends where it promised


def test_fetched_branch_checks_out_with_and_without_readonly(tmp_path: Path, run_dvx) -> None:
    a, _ = diverged(tmp_path, run_dvx)
    run_dvx(["fetch"], a, check=True)
    theirs = {"one.txt": b"one\n", "two.txt": b"two\n"}
    readonly_checkout(run_dvx, a, "origin/main", tmp_path / "ro")
    assert files_of(tmp_path / "ro") == theirs
    run_dvx(["checkout", "origin/main"], a, check=True)
    assert files_of(a) == theirs
    doc = json.loads(run_dvx(["fsck", "--json"], a, check=True).stdout)
    assert doc["ok"] is True and doc["missing"] == [] and doc.get("not_fetched", 0) == 0


def make_tree(root: Path, seed: int = 1) -> None:
    rng = random.Random(seed)
    for i in range(30):
        d = root / f"dir{i % 3}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i}.bin").write_bytes(rng.randbytes(rng.randint(100, 20_000)))
    (root / "big.bin").write_bytes(rng.randbytes(3 << 20))  # chunked (> 2 MiB)


def pushed_source(tmp_path: Path, remote_url: str) -> Repo:
    """A repository ``tmp_path/src`` with :func:`make_tree` committed as v1 and pushed to ``remote_url``."""
    (tmp_path / "src").mkdir()
    make_tree(tmp_path / "src")
    src = Repo.init(tmp_path / "src")
    src.commit("v1")
    add_remote(src, "origin", remote_url, {})
    push(src)
    return src


def test_fetch_sends_only_the_missing_contents_and_a_second_fetch_nothing(tmp_path: Path, remote_url: str) -> None:
    src = pushed_source(tmp_path, remote_url)
    src_root = src.root
    mine = Repo.init(tmp_path / "mine")
    add_remote(mine, "origin", remote_url, {})
    first = fetch(mine)
    assert mine.resolve("origin/main") == src.resolve("HEAD")
    assert set(stored(mine)) >= set(src.reachable()), "every object of v1 is here after the first fetch"

    # Change one small file and 64 KiB in the middle of the 3 MiB chunked one, add a file, push.
    (src_root / "dir0" / "f0.bin").write_bytes(b"tiny change")
    big = bytearray((src_root / "big.bin").read_bytes())
    big[1 << 20 : (1 << 20) + (64 << 10)] = random.Random(9).randbytes(64 << 10)
    (src_root / "big.bin").write_bytes(bytes(big))
    (src_root / "new.txt").write_text("a new file\n")
    v2 = src.commit("v2")
    push(src)

    before = stored(mine)
    second = fetch(mine)
    after = stored(mine)
    assert mine.resolve("origin/main") == v2
    assert set(after) >= set(src.reachable()), "every object of v2 is here"
    assert second.objects == len(set(after) - set(before)), "each object received was missing, and only once"
    assert any(after[oid] == BLOB for oid in set(after) - set(before)), "contents came, not only metadata"
    assert second.bytes < first.bytes * 0.6, (first.bytes, second.bytes)
    assert second.bytes < 1_600_000  # at most about one changed chunk (avg ~1 MiB), two small files, metadata
    report = mine.fsck()
    assert report.ok and report.not_fetched == 0, report

    third = fetch(mine)
    assert third.up_to_date and third.objects == 0 and third.bytes == 0 and third.refs_updated == []
    assert stored(mine) == after


def test_fetch_brings_contents_outside_a_lazy_clone_and_none_inside_one(tmp_path: Path, remote_url: str) -> None:
    src = pushed_source(tmp_path, remote_url)
    src_root = src.root
    lazy = clone(remote_url, tmp_path / "lazy")
    full = Repo.init(tmp_path / "full")
    add_remote(full, "origin", remote_url, {})
    fetch(full)

    (src_root / "fresh.bin").write_bytes(os.urandom(50_000))
    (src_root / "large.bin").write_bytes(os.urandom(3 << 20))  # chunked
    v2 = src.commit("v2")
    push(src)
    new_contents = {oid for oid, kind in stored(src).items() if kind == BLOB} - set(stored(lazy))

    lazy_before = stored(lazy)
    stats = fetch(lazy)
    assert lazy.resolve("origin/main") == v2 and stats.refs_updated == ["refs/remotes/origin/main"]
    came = set(stored(lazy)) - set(lazy_before)
    assert came and all(stored(lazy)[oid] != BLOB for oid in came), "a lazy clone's fetch brings no file contents"
    assert not new_contents & set(stored(lazy))
    assert lazy.fsck().not_fetched > 0

    fetch(full)
    assert full.resolve("origin/main") == v2
    assert new_contents <= set(stored(full)), "outside a lazy clone, fetch brings every new content"
    assert full.fsck().ok


def test_pull_outside_a_lazy_clone_brings_the_contents_of_the_whole_new_history(tmp_path: Path, run_dvx) -> None:
    """pull fetched the contents its checkout needed, those of the new tip: a file that only a commit in between
    held stayed missing, and fsck called the repository corrupt."""
    remote, src, mine = tmp_path / "remote", tmp_path / "src", tmp_path / "mine"
    for d in (src, mine):
        d.mkdir()
        run_dvx(["init"], d, check=True)
        run_dvx(["remote", "add", "origin", str(remote)], d, check=True)
    (src / "kept.txt").write_text("kept\n")
    run_dvx(["commit", "-m", "c1"], src, check=True)
    run_dvx(["push"], src, check=True)
    run_dvx(["pull"], mine, check=True)
    passing = os.urandom(10_000)
    (src / "passing.bin").write_bytes(passing)
    run_dvx(["commit", "-m", "c2 adds passing.bin"], src, check=True)
    (src / "passing.bin").unlink()
    run_dvx(["commit", "-m", "c3 deletes it"], src, check=True)
    run_dvx(["push"], src, check=True)

    run_dvx(["pull"], mine, check=True)
    assert files_of(mine) == {"kept.txt": b"kept\n"}
    run_dvx(["fsck"], mine, check=True)
    readonly_checkout(run_dvx, mine, "main~1", tmp_path / "c2")
    assert files_of(tmp_path / "c2") == {"kept.txt": b"kept\n", "passing.bin": passing}


@pytest.mark.parametrize("fault", ["pack.before-fsync:2:kill", "ref.before-update:1:kill"])
def test_a_killed_fetch_moves_no_ref_to_a_commit_whose_contents_are_not_here(
    tmp_path: Path, run_dvx, fault: str
) -> None:
    """Killed while the contents arrive (the second pack it seals: the first holds the metadata) or after they
    are stored but before the ref is written: the remote-tracking ref keeps its old value, fsck passes, and the
    next fetch completes it, downloading only what is still missing."""
    a, b = diverged(tmp_path, run_dvx)
    old = (a / ".dvx" / "refs" / "remotes" / "origin" / "main").read_text().strip()
    killed = run_dvx(["fetch"], a, env={"DVX_FAULT": fault})
    assert killed.returncode == -9, (killed.returncode, killed.stderr)
    assert (a / ".dvx" / "refs" / "remotes" / "origin" / "main").read_text().strip() == old
    run_dvx(["fsck"], a, check=True)

    again = json.loads(run_dvx(["fetch", "--json"], a, check=True).stdout)
    assert again["refs_updated"] == ["refs/remotes/origin/main"]
    if fault.startswith("ref."):
        assert again["objects"] == 0, "everything was stored before the kill"
    run_dvx(["fsck"], a, check=True)
    run_dvx(["merge", "origin/main"], a, check=True)
    assert files_of(a) == {"one.txt": b"one\n", "two.txt": b"two\n", "three.txt": b"three\n"}


def test_a_fetched_tag_on_no_branch_brings_its_contents(tmp_path: Path) -> None:
    remote = str(tmp_path / "remote")
    src = Repo.init(tmp_path / "src")
    (src.root / "base.txt").write_text("base\n")
    src.commit("v1")
    add_remote(src, "origin", remote, {})
    push(src)
    src.create_branch("side")
    src.checkout("side")
    (src.root / "only-on-side.bin").write_bytes(os.urandom(20_000))
    tagged = src.commit("side work")
    src.create_tag("t1")
    push(src, "origin", ["t1"])  # the tag only: no branch on the remote holds its commit

    mine = Repo.init(tmp_path / "mine")
    add_remote(mine, "origin", remote, {})
    stats = fetch(mine)
    assert mine.resolve("t1") == tagged and "refs/tags/t1" in stats.refs_updated
    assert set(stored(mine)) >= set(src.reachable([tagged]))
    assert mine.fsck().ok
