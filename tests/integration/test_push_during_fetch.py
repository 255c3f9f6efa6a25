"""A push that is killed, or still running, while another clone fetches from the same remote.

Real ``dvx`` processes against a folder remote and the S3 / GCS emulators. A reader of the remote sees the old
commit or the new one, complete, never a half-pushed state: objects go up first and the branch moves last, by
compare-and-swap (docs/format.md). The push is held at ``push.before-ref`` (all its packs on the remote, the
branch not moved yet; ``DVX_FAULT=push.before-ref:1:sleep:N`` prints when it gets there) while the other clone
fetches and pulls, and is then SIGKILLed; or it runs to its end (held 3 s there) while the other clone fetches
in a loop.
"""

from __future__ import annotations

import os
import random
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

from dvx import Repo

DVX = [sys.executable, "-m", "dvx"]


def dvx(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*DVX, *args], cwd=cwd, capture_output=True, text=True, timeout=180,
                          env={**os.environ, **(env or {})})


def ok(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.stdout


def files_of(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*")
            if p.is_file() and ".dvx" not in p.relative_to(root).parts}


def source_with_v1_pushed(tmp_path: Path, url: str) -> tuple[Path, str]:
    rng = random.Random(7)
    src = tmp_path / "src"
    for i in range(30):
        path = src / f"d{i % 4}" / f"f{i}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rng.randbytes(rng.randint(100, 20_000)))
    (src / "big.bin").write_bytes(rng.randbytes(4 << 20))  # chunked
    ok(dvx(tmp_path, "init", str(src)))
    ok(dvx(src, "commit", "-m", "v1"))
    ok(dvx(src, "remote", "add", "origin", url))
    ok(dvx(src, "push"))
    return src, Repo(src).resolve("HEAD")


def make_v2(src: Path) -> str:
    rng = random.Random(8)
    (src / "d0" / "f0.bin").write_bytes(rng.randbytes(9000))
    (src / "d1" / "f1.bin").unlink()
    (src / "new" / "g.bin").parent.mkdir()
    (src / "new" / "g.bin").write_bytes(rng.randbytes(50_000))
    with open(src / "big.bin", "r+b") as fh:
        fh.seek(2 << 20)
        fh.write(rng.randbytes(300_000))
    ok(dvx(src, "commit", "-m", "v2"))
    return Repo(src).resolve("HEAD")


def v2_to_push(tmp_path: Path, url: str, hold: str) -> tuple[Path, Path, str, str, subprocess.Popen[bytes]]:
    """v1 pushed and cloned; v2 committed at the source and its push started, held ``hold`` seconds before its
    ref swap. Returns the source, the clone, v1, v2 and the running push."""
    src, v1 = source_with_v1_pushed(tmp_path, url)
    ok(dvx(tmp_path, "clone", url, "c"))
    v2 = make_v2(src)
    pusher = subprocess.Popen([*DVX, "push"], cwd=src, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              env={**os.environ, "DVX_FAULT": f"push.before-ref:1:sleep:{hold}"})
    return src, tmp_path / "c", v1, v2, pusher


def tracking(clone: Path) -> str | None:
    repo = Repo(clone)
    try:
        return repo.refs.get("refs/remotes/origin/main")
    finally:
        repo.close()


def wait_for_line(proc: subprocess.Popen[bytes], needle: bytes, timeout: float) -> None:
    assert proc.stderr is not None
    deadline = time.monotonic() + timeout
    seen = b""
    while needle not in seen:
        left = deadline - time.monotonic()
        assert left > 0 and proc.poll() is None, f"the push did not reach {needle!r}: {seen!r}"
        ready, _, _ = select.select([proc.stderr], [], [], left)
        if ready:
            seen += os.read(proc.stderr.fileno(), 4096)


def test_a_fetch_while_a_push_waits_before_its_ref_then_is_killed_sees_only_complete_commits(
    tmp_path: Path, shared_remote_url: str
) -> None:
    src, clone, v1, v2, pusher = v2_to_push(tmp_path, shared_remote_url, "120")
    v1_files = files_of(clone)
    try:
        wait_for_line(pusher, b"DVX_FAULT push.before-ref reached", 120)
        # Every pack of v2 is on the remote now; its branch still names v1.
        ok(dvx(clone, "fetch"))
        assert tracking(clone) == v1
        assert "up to date" in ok(dvx(clone, "pull")).lower()
        assert files_of(clone) == v1_files
        ok(dvx(clone, "fsck", "--remote", "origin"))
        ok(dvx(clone, "fsck"))
    finally:
        pusher.send_signal(signal.SIGKILL)
        assert pusher.wait(30) == -signal.SIGKILL
        assert pusher.stderr is not None
        pusher.stderr.close()

    # The killed push moved nothing: the clone still fetches v1, and the remote is sound.
    ok(dvx(clone, "fetch"))
    assert tracking(clone) == v1
    ok(dvx(src, "fsck", "--remote", "origin"))
    # The next push completes it, and the clone pulls v2 whole.
    ok(dvx(src, "push"))
    ok(dvx(clone, "pull"))
    assert Repo(clone).head() == ("main", v2)
    assert files_of(clone) == files_of(src)
    ok(dvx(clone, "fsck"))


def test_fetches_in_a_loop_while_a_push_runs_each_see_the_old_or_the_new_commit_whole(
    tmp_path: Path, shared_remote_url: str
) -> None:
    # Held 3 s with its packs up and the branch not moved, so that fetches surely overlap the push.
    src, clone, v1, v2, pusher = v2_to_push(tmp_path, shared_remote_url, "3")
    seen = []
    while True:
        done = pusher.poll() is not None
        ok(dvx(clone, "fetch"))
        seen.append(tracking(clone))
        assert seen[-1] in (v1, v2), seen
        if seen[-1] == v2:
            # What the branch names is complete on the remote: every object of v2 can be fetched and verified.
            ok(dvx(clone, "fsck", "--remote", "origin"))
        if done:
            break
    assert pusher.stderr is not None
    err = pusher.stderr.read().decode()
    pusher.stderr.close()
    assert pusher.returncode == 0, err
    assert seen[0] == v1 and seen[-1] == v2, seen
    assert seen == sorted(seen, key=lambda c: c == v2), seen  # never back to v1 once v2 was seen
    ok(dvx(clone, "pull"))
    assert files_of(clone) == files_of(src)
    ok(dvx(clone, "fsck"))
