"""Replay a real history (../shared/replay: 72 commits of an icon theme, with thousands of renames, symlinks
including absolute and dangling ones, file<->symlink changes and exec-bit-only changes) into dvx, push it to a
local remote, clone it, and check that every sampled commit checks out byte-exact against ``git archive``.

The default suite replays a bounded prefix; ``-m slow`` replays all 72 commits.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

BUNDLE = Path(__file__).resolve().parents[3] / "shared" / "replay" / "replay.bundle"
DVX = [sys.executable, "-m", "dvx"]

pytestmark = pytest.mark.skipif(not BUNDLE.is_file(), reason=f"replay bundle not found at {BUNDLE}")


def run(cmd: list[str], cwd: Path) -> str:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    assert proc.returncode == 0, f"{cmd} failed: {proc.stderr}"
    return proc.stdout


def snapshot(root: Path) -> dict[str, tuple[str, object]]:
    """Every file and symlink under root (minus .git/.dvx): path -> (kind, content or target, +x)."""
    out: dict[str, tuple[str, object]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        if rel_dir == ".":
            dirnames[:] = [d for d in dirnames if d not in (".git", ".dvx")]
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            full = os.path.join(dirpath, name)
            rel = os.path.normpath(os.path.join(rel_dir, name))
            st = os.lstat(full)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", os.readlink(full))
            else:
                with open(full, "rb") as fh:
                    out[rel] = ("file", (fh.read(), bool(st.st_mode & 0o100)))
    return out


def git_tree(git_dir: Path, commit: str, dest: Path) -> dict[str, tuple[str, object]]:
    dest.mkdir()
    archive = dest.parent / f"{commit}.tar"
    subprocess.run(["git", "--git-dir", str(git_dir), "archive", "-o", str(archive), commit], check=True)
    with tarfile.open(archive) as tf:
        tf.extractall(dest, filter="tar" if hasattr(tarfile, "tar_filter") else None)
    return snapshot(dest)


def replay(tmp_path: Path, limit: int | None) -> None:
    from dvx import Repo
    from dvx.transfer import add_remote, clone, push

    work = tmp_path / "work"
    subprocess.run(["git", "clone", "-q", str(BUNDLE), str(work)], check=True)
    commits = run(["git", "rev-list", "--reverse", "--first-parent", "HEAD"], work).split()
    if limit is not None:
        commits = commits[:limit]
    repo = Repo.init(work)
    ids = []
    for c in commits:
        run(["git", "checkout", "-q", "-f", c], work)
        ids.append(repo.commit(f"git {c}", allow_empty=True))
    assert not repo.status()
    report = repo.fsck()
    assert report.ok, (report.bad, report.missing)
    add_remote(repo, "origin", str(tmp_path / "remote"), {})
    push(repo, "origin")
    cloned = clone(str(tmp_path / "remote"), tmp_path / "clone")
    # Check out sampled commits in the clone, jumping back and forth.
    picks = sorted({0, 1, len(commits) // 2, len(commits) - 2, len(commits) - 1, *range(0, len(commits), 7)})
    order = picks[::2] + picks[1::2][::-1] + [len(commits) - 1]
    for n, i in enumerate(order):
        cloned.checkout(ids[i])
        expected = git_tree(work / ".git", commits[i], tmp_path / f"ref-{n}")
        got = snapshot(cloned.root)
        assert got.keys() == expected.keys(), f"commit {i}: paths differ: {sorted(got.keys() ^ expected.keys())[:5]}"
        diffs = [p for p in got if got[p] != expected[p]]
        assert not diffs, f"commit {i} ({commits[i]}): {len(diffs)} paths differ, e.g. {diffs[:5]}"
        assert not cloned.status(), f"commit {i}: status not clean after checkout"
    # The CLI agrees: a subprocess sees a clean tree and a valid store.
    out = run([*DVX, "status", "--json"], cloned.root)
    assert '"modified": []' in out and '"deleted": []' in out and '"added": []' in out, out
    run([*DVX, "fsck"], cloned.root)


def test_replay_prefix(tmp_path: Path) -> None:
    # The first 8 commits: the initial import (8,680 paths) and the first edits.
    replay(tmp_path, 8)


@pytest.mark.slow
def test_replay_full(tmp_path: Path) -> None:
    replay(tmp_path, None)
