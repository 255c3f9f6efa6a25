"""kill -9 in the middle of `dvx branch` and `dvx tag` (create and delete) leaves valid refs.

Each case starts the real CLI with DVX_FAULT=site:1:kill at one point of a ref update: before the compare-and-swap
check passes (``ref.before-update``), after the new value is written and fsynced but before the rename
(``ref.before-rename``), after the rename but before the folder's fsync (``ref.before-dirsync``), and for a
delete after the unlink but before empty folders are pruned (``ref.before-prune``). Afterwards the ref is either
what it was or what was asked, never anything else; `dvx fsck` passes; the lock and temp file the killed process
left block nothing (the same ref, and a ref named like its folder, can be updated at once); gc sweeps the rest.
"""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest

from dvx.repo import Repo


@pytest.fixture
def repo_with_two_commits(tmp_path: Path) -> tuple[Path, str, str]:
    repo = Repo.init(tmp_path / "repo")
    (repo.root / "a.txt").write_text("one")
    c1 = repo.commit("c1")
    (repo.root / "a.txt").write_text("two")
    c2 = repo.commit("c2")
    repo.close()
    return repo.root, c1, c2


def run(argv: list[str], env: dict[str, str], root: Path, *args: str, fault: str | None = None
        ) -> subprocess.CompletedProcess[str]:
    env = {**env, "DVX_FAULT": fault} if fault else env
    return subprocess.run([*argv, *args], cwd=root, env=env, capture_output=True, text=True, timeout=60)


def ref_value(root: Path, ref: str) -> str | None:
    repo = Repo(root)
    try:
        return repo.refs.get(ref)
    finally:
        repo.close()


def check_clean_after(root: Path, argv: list[str], env: dict[str, str]) -> None:
    fsck = run(argv, env, root, "fsck")
    assert fsck.returncode == 0, fsck.stderr
    listing = run(argv, env, root, "branch")
    assert listing.returncode == 0 and listing.stderr == "", listing.stderr
    repo = Repo(root)
    repo.gc(grace_seconds=0)
    leftovers = [p.relative_to(root).as_posix() for p in (root / ".dvx" / "refs").rglob("*")
                 if p.name.endswith((".lock", ".new"))]
    assert leftovers == []
    assert repo.fsck().ok
    repo.close()


CREATE = [("ref.before-update", "old"), ("ref.before-rename", "old"), ("ref.before-dirsync", "new")]


@pytest.mark.parametrize("kind", ["branch", "tag"])
@pytest.mark.parametrize("name", ["feat", "team/feat"])
@pytest.mark.parametrize("fault,expected", CREATE)
def test_sigkill_while_creating_a_ref(repo_with_two_commits, dvx_argv, cli_env, kind: str, name: str,
                                      fault: str, expected: str) -> None:
    root, c1, _ = repo_with_two_commits
    env = cli_env(None)
    ref = f"refs/{'heads' if kind == 'branch' else 'tags'}/{name}"
    proc = run(dvx_argv, env, root, kind, name, c1, fault=f"{fault}:1:kill")
    assert proc.returncode == -signal.SIGKILL, f"fault point {fault} was not reached: {proc.stderr}"
    assert ref_value(root, ref) == (c1 if expected == "new" else None)
    # The killed process's lock is taken over at once: the ref can be deleted or created right away.
    if expected == "new":
        again = run(dvx_argv, env, root, kind, "-d", name)
    else:
        again = run(dvx_argv, env, root, kind, name, c1)
    assert again.returncode == 0, again.stderr
    assert ref_value(root, ref) == (None if expected == "new" else c1)
    check_clean_after(root, dvx_argv, env)


DELETE = [("ref.before-update", "old"), ("ref.before-prune", "new")]


@pytest.mark.parametrize("kind", ["branch", "tag"])
@pytest.mark.parametrize("fault,expected", DELETE)
def test_sigkill_while_deleting_a_ref_in_a_folder(repo_with_two_commits, dvx_argv, cli_env, kind: str,
                                                  fault: str, expected: str) -> None:
    """Deleting ``team/feat`` removes the folder ``team`` too, so that a ref ``team`` can exist; a kill between
    the two must not leave a folder (holding only a dead lock) that refuses ``team`` forever."""
    root, c1, c2 = repo_with_two_commits
    env = cli_env(None)
    assert run(dvx_argv, env, root, kind, "team/feat", c1).returncode == 0
    section = "heads" if kind == "branch" else "tags"
    proc = run(dvx_argv, env, root, kind, "-d", "team/feat", fault=f"{fault}:1:kill")
    assert proc.returncode == -signal.SIGKILL, f"fault point {fault} was not reached: {proc.stderr}"
    assert ref_value(root, f"refs/{section}/team/feat") == (None if expected == "new" else c1)
    if expected == "old":
        done = run(dvx_argv, env, root, kind, "-d", "team/feat")
        assert done.returncode == 0, done.stderr
    made = run(dvx_argv, env, root, kind, "team", c2)
    assert made.returncode == 0, made.stderr
    assert ref_value(root, f"refs/{section}/team") == c2
    check_clean_after(root, dvx_argv, env)


def test_sigkill_while_a_branch_is_moved_by_a_commit_keeps_other_refs(repo_with_two_commits, dvx_argv,
                                                                       cli_env) -> None:
    """A tag and a second branch made before a commit killed at its ref update are untouched by it."""
    root, c1, c2 = repo_with_two_commits
    env = cli_env(None)
    assert run(dvx_argv, env, root, "tag", "v1", c1).returncode == 0
    assert run(dvx_argv, env, root, "branch", "side", c1).returncode == 0
    (root / "a.txt").write_text("three")
    proc = run(dvx_argv, env, root, "commit", "-m", "c3", fault="ref.before-rename:1:kill")
    assert proc.returncode == -signal.SIGKILL
    assert ref_value(root, "refs/heads/main") == c2
    assert ref_value(root, "refs/tags/v1") == c1
    assert ref_value(root, "refs/heads/side") == c1
    again = run(dvx_argv, env, root, "commit", "-m", "c3")
    assert again.returncode == 0, again.stderr
    assert ref_value(root, "refs/heads/main") not in (c1, c2, None)
    check_clean_after(root, dvx_argv, env)
