"""kill -9 at any moment of a commit leaves a valid repository.

A template repository holds commit c1 and a working tree of ~500 files plus a 20 MiB file, not yet
committed. Each case copies it, starts `dvx commit` as a real process and SIGKILLs it, either after a delay
(a few in the first 50 ms, then spread over the measured duration of an uninterrupted commit) or at a named
fault point (DVX_FAULT=site:nth:kill). Afterwards: `dvx fsck` passes; HEAD is c1 or a complete new commit
whose checkout reproduces the tree; no stale lock blocks the next command; a following commit succeeds.
"""

from __future__ import annotations

import random
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import blake3
import pytest

from dvx.model import FILE
from dvx.repo import Repo

BIG = 20 << 20


@dataclass(frozen=True)
class Template:
    root: Path
    c1: str
    expected: dict[str, tuple[str, bool]]  # path -> (content id, executable) of the uncommitted tree
    commit_seconds: float
    argv: list[str]  # starts the CLI
    env: dict[str, str]

    def dvx(self, root: Path, *args: str, fault: str | None = None) -> subprocess.CompletedProcess[str]:
        env = {**self.env, "DVX_FAULT": fault} if fault else self.env
        return subprocess.run([*self.argv, *args], cwd=root, env=env, capture_output=True, text=True, timeout=60)


def build_tree(root: Path) -> None:
    rng = random.Random(42)
    for d in range(20):
        for i in range(25):
            path = root / f"dir{d:02d}" / (f"text{i:02d}.csv" if i % 2 else f"blob{i:02d}.bin")
            path.parent.mkdir(parents=True, exist_ok=True)
            if i % 2:
                path.write_bytes(b"".join(b"%d,%d,%d\n" % (d, i, k) for k in range(rng.randrange(50, 600))))
            else:
                path.write_bytes(rng.randbytes(rng.randrange(0, 8000)))
    (root / "dir00" / "tool.sh").write_text("#!/bin/sh\n")
    (root / "dir00" / "tool.sh").chmod(0o755)
    (root / "big.bin").write_bytes(rng.randbytes(BIG))


def expected_tree(root: Path) -> dict[str, tuple[str, bool]]:
    out = {}
    for path in root.rglob("*"):
        rel = path.relative_to(root).as_posix()
        if rel.startswith(".dvx") or not path.is_file():
            continue
        out[rel] = (blake3.blake3(path.read_bytes()).hexdigest(), bool(path.stat().st_mode & 0o100))
    return out


def copy_of(template: Template, dest: Path) -> Path:
    shutil.copytree(template.root, dest, symlinks=True)
    return dest


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory, dvx_argv: list[str], cli_env) -> Template:
    base = tmp_path_factory.mktemp("crash-template")
    repo = Repo.init(base / "repo")
    (repo.root / "old.txt").write_text("the previous commit")
    (repo.root / "dir00").mkdir()
    (repo.root / "dir00" / "text01.csv").write_text("will be replaced")
    c1 = repo.commit("c1")
    repo.close()
    (repo.root / "old.txt").unlink()
    build_tree(repo.root)
    # How long an uninterrupted commit of this tree takes here (the kill schedule is spread over it).
    draft = Template(repo.root, c1, expected_tree(repo.root), 0.0, dvx_argv, cli_env(None))
    trial = copy_of(draft, base / "trial")
    started = time.monotonic()
    assert draft.dvx(trial, "commit", "-m", "trial").returncode == 0
    seconds = time.monotonic() - started
    shutil.rmtree(trial)
    return Template(draft.root, c1, draft.expected, seconds, dvx_argv, draft.env)


def flat(repo: Repo, commit_id: str) -> dict[str, tuple[str, bool]]:
    out = {}
    for path, e in repo.trees.flatten(repo.read_commit(commit_id).tree).items():
        assert e.kind == FILE
        out[path] = (e.id, e.executable)
    return out


def check_after_crash(root: Path, template: Template, tmp_path: Path) -> str:
    """The invariants after a kill; returns which state HEAD was found in."""
    fsck = template.dvx(root, "fsck")
    assert fsck.returncode == 0, fsck.stderr
    repo = Repo(root)
    branch, head = repo.head()
    assert branch == "main"
    if head == template.c1:
        state = "old"
    else:
        assert head is not None
        c = repo.read_commit(head)
        assert c.parents == (template.c1,) and c.message == "c2"
        assert flat(repo, head) == template.expected
        # Its checkout reproduces the tree, byte for byte, in a fresh folder.
        fresh = tmp_path / "fresh-checkout"
        fresh.mkdir()
        Repo(fresh, dvx_dir=root / ".dvx").checkout("main", force=True)
        assert expected_tree(fresh) == template.expected
        state = "new"
    repo.close()
    # No stale lock: the next commit goes through at once (the CLI waits at most DVX_LOCK_TIMEOUT=5 s).
    (root / "after-crash.txt").write_text("next commit")
    nxt = template.dvx(root, "commit", "-m", "c3")
    assert nxt.returncode == 0, nxt.stderr
    repo = Repo(root)
    c3 = repo.head()[1]
    assert c3 is not None and repo.read_commit(c3).parents == (head,)
    assert flat(repo, c3) == {**template.expected, "after-crash.txt": expected_tree(root)["after-crash.txt"]}
    # gc sweeps what the killed process left (orphan objects, temp files) and breaks nothing.
    repo.gc(grace_seconds=0)
    leftovers = [p for p in (root / ".dvx").rglob("*") if p.name.endswith((".tmp", ".lock"))]
    assert leftovers == []
    assert repo.fsck().ok
    repo.close()
    return state


EARLY = [0.005, 0.02, 0.045]
SPREAD = [0.25, 0.45, 0.6, 0.75, 0.9, 0.97]


@pytest.mark.parametrize("delay", [("s", d) for d in EARLY] + [("fraction", f) for f in SPREAD],
                         ids=[f"{d * 1000:.0f}ms" for d in EARLY] + [f"{f:.0%}-of-commit" for f in SPREAD])
def test_sigkill_at_a_delay(template: Template, tmp_path: Path, delay: tuple[str, float]) -> None:
    root = copy_of(template, tmp_path / "repo")
    seconds = delay[1] if delay[0] == "s" else delay[1] * template.commit_seconds
    proc = subprocess.Popen([*template.argv, "commit", "-m", "c2"], cwd=root, env=template.env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(seconds)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    check_after_crash(root, template, tmp_path)


FAULTS = [
    ("loose.before-write:1:kill", "old"),
    ("loose.before-fsync:2:kill", "old"),
    ("loose.before-link:5:kill", "old"),
    ("loose.before-dirsync:1:kill", "old"),
    ("pack.before-fsync:1:kill", "old"),
    ("pack.before-link:1:kill", "old"),
    ("pack.before-dirsync:1:kill", "old"),
    ("index.before-fsync:1:kill", "old"),
    ("index.before-link:1:kill", "old"),
    ("index.before-dirsync:1:kill", "old"),
    ("commit.before-ref:1:kill", "old"),
    ("ref.before-update:1:kill", "old"),
    ("ref.before-rename:1:kill", "old"),
    ("ref.before-dirsync:1:kill", "new"),
    ("commit.after-ref:1:kill", "new"),
    ("index.before-rename:1:kill", "new"),  # the stat cache, written after the ref moved
]


@pytest.mark.parametrize("fault,expected_state", FAULTS)
def test_sigkill_at_a_fault_point(template: Template, tmp_path: Path, fault: str, expected_state: str) -> None:
    root = copy_of(template, tmp_path / "repo")
    proc = template.dvx(root, "commit", "-m", "c2", fault=fault)
    assert proc.returncode == -signal.SIGKILL, f"fault point {fault} was not reached"
    assert check_after_crash(root, template, tmp_path) == expected_state


def test_sigkill_of_a_detached_head_commit_before_head_is_replaced(template: Template, tmp_path: Path) -> None:
    root = copy_of(template, tmp_path / "repo")
    (root / ".dvx" / "HEAD").write_text(template.c1 + "\n")  # detached at c1
    proc = template.dvx(root, "commit", "-m", "c2", fault="head.before-rename:1:kill")
    assert proc.returncode == -signal.SIGKILL
    assert template.dvx(root, "fsck").returncode == 0
    assert (root / ".dvx" / "HEAD").read_text().strip() == template.c1
    (root / "after-crash.txt").write_text("next commit")
    assert template.dvx(root, "commit", "-m", "c3").returncode == 0


def test_a_commit_waiting_for_the_lock_goes_on_when_the_holder_is_killed(template: Template, tmp_path: Path) -> None:
    """Two commits at once: the first holds the lock and is SIGKILLed mid-way; the second, waiting, takes the
    lock once the kernel drops it and commits the whole tree on c1, as if the first had never run.

    The first is held still just before it would move the ref, so that a fast machine cannot let it finish
    before the kill (it is killed either while it works or while it waits there)."""
    root = copy_of(template, tmp_path / "repo")
    env = {**template.env, "DVX_LOCK_TIMEOUT": "60"}
    first = subprocess.Popen([*template.argv, "commit", "-m", "c2"], cwd=root,
                             env={**env, "DVX_FAULT": "commit.before-ref:1:sleep:60"},
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    lock = root / ".dvx" / "lock"
    deadline = time.monotonic() + 60
    while str(first.pid) not in (lock.read_text() if lock.exists() else "") and time.monotonic() < deadline:
        time.sleep(0.005)
    second = subprocess.Popen([*template.argv, "commit", "-m", "c2"], cwd=root, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(min(0.3, template.commit_seconds / 3))
    first.send_signal(signal.SIGKILL)
    assert first.wait(30) == -signal.SIGKILL, "the first commit finished before it was killed"
    _, err = second.communicate(timeout=120)
    assert second.returncode == 0, err
    assert check_after_crash(root, template, tmp_path) == "new"
