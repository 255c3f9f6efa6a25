"""kill -9 at any moment of a `dvx gc` loses nothing reachable.

A template repository has a live history (main) and garbage that shares its packs: main was rewritten to a
parentless commit, so the first commit's own files (small ones in the same packs as live files, and a big
chunked file's loose chunks) are unreachable. Each case copies it, starts `dvx gc --grace 0` as a real process
and SIGKILLs it, at a named fault point of the rewrite of a pack (new pack written, published, indexed, old one
deleted) or after a delay. Afterwards: `dvx fsck` passes, main checks out byte for byte, and a second gc
completes, frees the garbage and leaves no temp file.
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

from dvx.repo import Repo


@dataclass(frozen=True)
class Template:
    root: Path
    live: dict[str, str]  # path -> BLAKE3 of main's files
    garbage: int  # objects a complete gc removes
    gc_seconds: float
    argv: list[str]
    env: dict[str, str]

    def dvx(self, root: Path, *args: str, fault: str | None = None) -> subprocess.CompletedProcess[str]:
        env = {**self.env, "DVX_FAULT": fault} if fault else self.env
        return subprocess.run([*self.argv, *args], cwd=root, env=env, capture_output=True, text=True, timeout=60)


def _tree(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): blake3.blake3(p.read_bytes()).hexdigest()
            for p in root.rglob("*") if p.is_file() and ".dvx" not in p.relative_to(root).parts}


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory, dvx_argv: list[str], cli_env) -> Template:
    base = tmp_path_factory.mktemp("gc-crash-template")
    repo = Repo.init(base / "repo")
    rng = random.Random(3)
    for d in range(10):
        for i in range(30):
            path = repo.root / f"d{d}" / f"f{i:02d}.bin"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(rng.randbytes(rng.randrange(100, 6000)))
    (repo.root / "big.bin").write_bytes(rng.randbytes(6 << 20))  # chunked: loose chunks
    repo.commit("c1")
    # Half the small files and the big one change: their c1 versions become garbage once c1 is unreachable.
    for d in range(10):
        for i in range(0, 30, 2):
            (repo.root / f"d{d}" / f"f{i:02d}.bin").write_bytes(rng.randbytes(rng.randrange(100, 6000)))
    (repo.root / "big.bin").write_bytes(rng.randbytes(6 << 20))
    c2 = repo.commit("c2")
    orphan = repo.write_commit(repo.read_commit(c2).tree, [], "c2, history rewritten")
    repo.refs.update("refs/heads/main", orphan, c2)
    dry = repo.gc(grace_seconds=0, dry_run=True)
    assert dry.objects_removed > 150  # c1, its trees, 150 small files, the big file's chunks and manifest
    live = _tree(repo.root)
    repo.close()
    draft = Template(repo.root, live, dry.objects_removed, 0.0, dvx_argv, cli_env(None))
    trial = base / "trial"
    shutil.copytree(repo.root, trial, symlinks=True)
    started = time.monotonic()
    proc = draft.dvx(trial, "gc", "--grace", "0")
    assert proc.returncode == 0, proc.stderr
    seconds = time.monotonic() - started
    shutil.rmtree(trial)
    return Template(draft.root, live, draft.garbage, seconds, dvx_argv, draft.env)


def check_after_crash(root: Path, template: Template, tmp_path: Path) -> None:
    fsck = template.dvx(root, "fsck")
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
    fresh = tmp_path / "fresh"
    got = template.dvx(root, "checkout", "main", "--to", str(fresh))
    assert got.returncode == 0, got.stderr
    assert {k: v for k, v in _tree(fresh).items() if k != ".dvx-checkout.json"} == template.live
    again = template.dvx(root, "gc", "--grace", "0")  # no stale lock, nothing half-done in the way
    assert again.returncode == 0, again.stderr
    repo = Repo(root)
    assert repo.gc(grace_seconds=0, dry_run=True).objects_removed == 0  # all the garbage is gone now
    assert repo.fsck().ok
    repo.close()
    leftovers = [p for p in (root / ".dvx").rglob("*") if p.name.endswith((".tmp", ".lock"))]
    assert leftovers == []


FAULTS = [
    "pack.before-fsync:1:kill",  # the live objects' new pack written, not durable
    "pack.before-link:1:kill",
    "pack.before-dirsync:1:kill",
    "index.before-link:1:kill",  # new pack published, not its index
    "index.before-dirsync:1:kill",
    "gc.before-delete:1:kill",  # new pack and index published, no old pack deleted yet
    "gc.before-delete:2:kill",  # one old pack deleted, others not
]


@pytest.mark.parametrize("fault", FAULTS)
def test_sigkill_of_gc_at_a_fault_point(template: Template, tmp_path: Path, fault: str) -> None:
    root = tmp_path / "repo"
    shutil.copytree(template.root, root, symlinks=True)
    proc = template.dvx(root, "gc", "--grace", "0", fault=fault)
    assert proc.returncode == -signal.SIGKILL, f"fault point {fault} was not reached: {proc.stderr}"
    check_after_crash(root, template, tmp_path)


@pytest.mark.parametrize("fraction", [0.2, 0.5, 0.8])
def test_sigkill_of_gc_after_a_delay(template: Template, tmp_path: Path, fraction: float) -> None:
    root = tmp_path / "repo"
    shutil.copytree(template.root, root, symlinks=True)
    proc = subprocess.Popen([*template.argv, "gc", "--grace", "0"], cwd=root, env=template.env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(fraction * template.gc_seconds)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    check_after_crash(root, template, tmp_path)
