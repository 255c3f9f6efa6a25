"""Push, fetch, pull and clone against real servers: a local directory, moto's S3 server, fake-gcs-server
and memory:// (fixtures in conftest.py)."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from dvx import NonFastForward, Repo
from dvx.errors import CorruptObject, RemoteError, UsageError
from dvx.store import BLOB
from dvx.transfer import add_remote, clone, fetch, pull, push, view_for

DVX = [sys.executable, "-m", "dvx"]


def make_tree(root: Path, seed: int = 1, files: int = 60) -> None:
    rng = random.Random(seed)
    for i in range(files):
        d = root / f"dir{i % 6}"
        d.mkdir(parents=True, exist_ok=True)
        size = rng.randint(100, 20_000)
        data = rng.randbytes(size) if i % 2 else (b"row,%d\n" % i) * (size // 8)
        (d / f"f{i}.bin").write_bytes(data)
    (root / "big.bin").write_bytes(rng.randbytes(3 << 20))  # chunked (> 2 MiB)
    (root / "run.sh").write_bytes(b"#!/bin/sh\necho hi\n")
    os.chmod(root / "run.sh", 0o755)
    os.symlink("dir0/f0.bin", root / "link")
    os.symlink("/absolute/dangling", root / "dangling")


def snapshot(root: Path) -> dict[str, object]:
    out: dict[str, object] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        if Path(dirpath) == root:
            dirnames[:] = [d for d in dirnames if d != ".dvx"]
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            p = Path(dirpath) / name
            rel = p.relative_to(root).as_posix()
            if p.is_symlink():
                out[rel] = ("link", os.readlink(p))
            else:
                out[rel] = ("file", p.read_bytes(), os.access(p, os.X_OK))
    return out


def new_repo(path: Path, seed: int = 1) -> Repo:
    path.mkdir()
    make_tree(path, seed)
    repo = Repo.init(path)
    repo.commit("v1")
    return repo


def test_round_trip_push_clone_pull(tmp_path: Path, remote_url: str) -> None:
    repo = new_repo(tmp_path / "src")
    add_remote(repo, "origin", remote_url, {})
    first = push(repo)
    assert first.objects > 60 and first.refs_updated == ["refs/heads/main"]
    assert push(repo).up_to_date

    cloned = clone(remote_url, tmp_path / "clone")
    assert snapshot(cloned.root) == snapshot(repo.root)
    assert cloned.head() == ("main", repo.head()[1])
    assert cloned.fsck().ok

    (repo.root / "dir1" / "f1.bin").write_bytes(b"changed")
    (repo.root / "dir2" / "new.txt").write_text("new file")
    (repo.root / "dir3" / "f3.bin").unlink()
    v2 = repo.commit("v2")
    push(repo)
    _, outcome = pull(cloned)
    assert outcome == "fast-forward"
    assert cloned.head()[1] == v2
    assert snapshot(cloned.root) == snapshot(repo.root)
    assert not cloned.status()


def test_second_push_sends_only_the_delta(tmp_path: Path, remote_url: str) -> None:
    repo = new_repo(tmp_path / "src")
    add_remote(repo, "origin", remote_url, {})
    first = push(repo)
    # Change 1 small file of 60 and rewrite 64 KiB in the middle of the 3 MiB chunked file.
    (repo.root / "dir0" / "f0.bin").write_bytes(b"tiny change")
    big = bytearray((repo.root / "big.bin").read_bytes())
    big[1 << 20 : (1 << 20) + (64 << 10)] = random.Random(9).randbytes(64 << 10)
    (repo.root / "big.bin").write_bytes(bytes(big))
    repo.commit("v2")
    second = push(repo)
    assert second.bytes < first.bytes * 0.5, (first.bytes, second.bytes)
    assert second.bytes < 1_600_000  # at most about one changed chunk (avg ~1 MiB) plus metadata
    assert second.requests < 30


def test_lazy_clone_fetches_no_content_until_checkout(tmp_path: Path, remote_url: str) -> None:
    repo = new_repo(tmp_path / "src")
    add_remote(repo, "origin", remote_url, {})
    push(repo)
    lazy = clone(remote_url, tmp_path / "lazy", checkout=False)
    blobs = [e for idx in lazy.store.packs().values() for e in idx if e.type == BLOB]
    loose = list(lazy.store.iter_loose())
    assert blobs == [] and loose == [], "a --no-checkout clone must hold no file contents"
    assert [e.commit.message for e in lazy.log()] == ["v1"]
    assert lazy.fsck().not_fetched > 0
    lazy.checkout("main", force=True)
    assert snapshot(lazy.root) == snapshot(repo.root)


def test_fetch_brings_metadata_only(tmp_path: Path) -> None:
    remote = str(tmp_path / "remote")
    repo = new_repo(tmp_path / "src")
    add_remote(repo, "origin", remote, {})
    push(repo)
    other = clone(remote, tmp_path / "other")
    (repo.root / "fresh.bin").write_bytes(os.urandom(50_000))
    v2 = repo.commit("v2")
    push(repo)
    stats = fetch(other)
    assert "refs/remotes/origin/main" in stats.refs_updated
    assert other.resolve("origin/main") == v2
    new_id = repo.ls(None, ["fresh.bin"])[0][1].id
    assert not other.store.has(new_id), "fetch must not download file contents"


def test_corrupt_remote_object_is_detected(tmp_path: Path) -> None:
    remote = tmp_path / "remote"
    repo = new_repo(tmp_path / "src")
    add_remote(repo, "origin", str(remote), {})
    push(repo)
    # Flip one byte in the payload of the biggest data pack (not in its header or trailer).
    pack = max((remote / "packs").glob("*.pack"), key=lambda p: p.stat().st_size)
    data = bytearray(pack.read_bytes())
    data[len(data) // 2] ^= 0xFF
    pack.write_bytes(bytes(data))
    with pytest.raises(CorruptObject) as info:
        clone(str(remote), tmp_path / "clone")
    assert "object" in str(info.value) or "corrupt" in str(info.value)
    proc = subprocess.run([*DVX, "fsck", "--remote", "origin"], cwd=repo.root, capture_output=True, text=True)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    assert pack.stem[:16] in proc.stderr or "bad" in proc.stderr


def test_concurrent_pushes_one_wins_none_lost(tmp_path: Path, shared_remote_url: str) -> None:
    base = new_repo(tmp_path / "base")
    add_remote(base, "origin", shared_remote_url, {})
    push(base)
    clones = []
    for i in range(4):
        c = clone(shared_remote_url, tmp_path / f"c{i}")
        (c.root / f"mine-{i}.txt").write_text(f"work of pusher {i}")
        c.commit(f"work {i}")
        clones.append(c)
    procs = [
        subprocess.Popen(
            [*DVX, "push"], cwd=c.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for c in clones
    ]
    results = [
        (p.wait(timeout=120), p.stdout.read() if p.stdout else "", p.stderr.read() if p.stderr else "")
        for p in procs
    ]
    winners = [i for i, (rc, _, _) in enumerate(results) if rc == 0]
    assert len(winners) == 1, results
    for rc, _, err in results:
        if rc != 0:
            assert "rejected" in err and "Traceback" not in err, err
    view = view_for(base, "origin")
    remote_main = view.refs()["refs/heads/main"][0]
    assert remote_main == clones[winners[0]].head()[1], "the push that reported success must be on the remote"
    loser = clones[(winners[0] + 1) % 4]
    with pytest.raises(NonFastForward):
        pull(loser)


def test_interrupted_push_resumes_without_resending(tmp_path: Path, shared_remote_url: str) -> None:
    repo = new_repo(tmp_path / "src")
    add_remote(repo, "origin", shared_remote_url, {})
    env = {**os.environ, "DVX_FAULT": "push.before-ref:1:kill"}
    proc = subprocess.run([*DVX, "push"], cwd=repo.root, env=env, capture_output=True, text=True)
    assert proc.returncode == -9
    view = view_for(repo, "origin")
    assert "refs/heads/main" not in view.refs()
    again = push(repo)
    assert again.bytes == 0 and again.packs == 0, "every pack had arrived: nothing is sent twice"
    assert again.refs_updated == ["refs/heads/main"]
    cloned = clone(shared_remote_url, tmp_path / "clone")
    assert snapshot(cloned.root) == snapshot(repo.root)


def test_push_refuses_non_fast_forward(tmp_path: Path) -> None:
    remote = str(tmp_path / "remote")
    a = new_repo(tmp_path / "a")
    add_remote(a, "origin", remote, {})
    push(a)
    b = clone(remote, tmp_path / "b")
    (a.root / "a.txt").write_text("a")
    a.commit("a")
    push(a)
    (b.root / "b.txt").write_text("b")
    b.commit("b")
    with pytest.raises(NonFastForward, match="dvx fetch origin' and 'dvx merge origin/main'"):
        push(b)


def test_remote_add_refuses_bad_urls_and_secrets(tmp_path: Path) -> None:
    repo = new_repo(tmp_path / "src")
    with pytest.raises(RemoteError, match="scheme"):
        add_remote(repo, "x", "ftp://host/path", {})
    from dvx.transfer import parse_options

    with pytest.raises(UsageError, match="credentials"):
        parse_options(["secret_access_key=abc"])
    proc = subprocess.run(
        [*DVX, "remote", "add", "y", "s3://bucket/x", "-o", "endpoint_url=http://127.0.0.1:9"],
        cwd=repo.root,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0 and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, (
        proc.stderr
    )
    assert (
        "remotes" not in (repo.dvx / "config").read_text() or '"y"' not in (repo.dvx / "config").read_text()
    )


def test_push_of_many_small_files_takes_few_requests(tmp_path: Path, make_remote_url: object) -> None:
    url = make_remote_url("s3")  # type: ignore[operator]
    root = tmp_path / "many"
    root.mkdir()
    rng = random.Random(3)
    for i in range(2000):
        d = root / f"d{i % 20}"
        d.mkdir(exist_ok=True)
        (d / f"{i}.txt").write_bytes(rng.randbytes(rng.randint(100, 4000)))
    repo = Repo.init(root)
    repo.commit("many")
    add_remote(repo, "origin", url, {})
    stats = push(repo)
    assert stats.objects > 2000
    assert stats.requests < 40, f"{stats.requests} requests for 2,000 files"


def test_a_no_checkout_clone_merges_without_files_and_its_first_checkout_writes_every_file(tmp_path: Path) -> None:
    """A service merges datasets in a `clone --no-checkout` through the plain API call (no working tree is read
    or written, no file content fetched); a user's first `dvx checkout BRANCH` there materializes the files
    (without --force), and status and commit refuse until then instead of reading the empty folder as a
    deletion of everything."""
    from dvx.errors import NoWorktree

    repo = new_repo(tmp_path / "src")
    repo.create_branch("labels")
    repo.checkout("labels")
    (repo.root / "labels.csv").write_text("id,label\n1,cat\n")
    repo.commit("labels")
    repo.checkout("main")
    (repo.root / "dir0" / "extra.bin").write_bytes(b"more data")
    repo.commit("more data")
    remote = str(tmp_path / "remote")
    add_remote(repo, "origin", remote, {})
    push(repo, "origin", ["main", "labels"])

    service = clone(remote, tmp_path / "service", checkout=False)
    assert not service.has_worktree
    with pytest.raises(NoWorktree, match="dvx checkout main"):
        service.status()
    with pytest.raises(NoWorktree):
        service.commit("would delete everything")
    result = service.merge(["origin/labels"], "merge labels", "fail")  # the call, nothing else
    merged = service.read_commit(service.resolve("main"))
    assert merged.parents == (repo.resolve("main"), repo.resolve("labels")) and result is not None
    assert sorted(p.name for p in service.root.iterdir()) == [".dvx"]  # no file written
    assert not [e for idx in service.store.packs().values() for e in idx if e.type == BLOB]  # none fetched
    push(service, "origin", ["main"])

    user = clone(remote, tmp_path / "user", checkout=False)
    user.checkout("main")  # no --force: every file of main is written
    assert user.has_worktree and not user.status()
    repo_view = clone(remote, tmp_path / "full")
    assert snapshot(user.root) == snapshot(repo_view.root)
    assert "labels.csv" in snapshot(user.root)


def test_a_push_clears_the_day_old_temps_a_killed_push_left_on_a_folder_remote(tmp_path: Path) -> None:
    """A push SIGKILLed while uploading a pack leaves its temp in the remote's folder; a push a day later
    removes it (by age: the folder may be shared by hosts whose pids mean nothing here). Younger temps, which
    may be another writer's at work, and files that are not dvx's temps stay."""
    repo = new_repo(tmp_path / "src")
    url = str(tmp_path / "remote")
    add_remote(repo, "origin", url, {})
    env = {**os.environ, "DVX_FAULT": "remote.write.before-fsync:1:kill"}
    proc = subprocess.run([*DVX, "push"], cwd=repo.root, env=env, capture_output=True, text=True)
    assert proc.returncode == -9, proc.stderr
    left = [p for p in (tmp_path / "remote").rglob(".dvx-remote.*.tmp")]
    assert len(left) == 1, "the kill should leave the temp of the pack being uploaded"
    day_old = os.stat(left[0]).st_mtime - 2 * 86400
    os.utime(left[0], (day_old, day_old))
    young = left[0].with_name(".dvx-remote.4242.1.1.tmp")
    young.write_bytes(b"someone else's upload, at work")
    other = left[0].with_name(".dvx-remote.notes.tmp")  # not a name dvx makes
    other.write_bytes(b"a user's file")
    os.utime(other, (day_old, day_old))
    push(repo)
    assert not left[0].exists()
    assert young.exists() and other.exists()
    young.unlink()
    other.unlink()
    cloned = clone(url, tmp_path / "clone")
    assert snapshot(cloned.root) == snapshot(repo.root)
