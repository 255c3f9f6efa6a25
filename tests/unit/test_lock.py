"""The repository lock: exclusive between processes and handles, free again when its holder dies."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from dvx.errors import LockedError
from dvx.lock import RepoLock


def test_second_lock_waits_then_fails_while_the_first_is_held(tmp_path: Path) -> None:
    path = tmp_path / "lock"
    first = RepoLock(path, timeout=1, what="first")
    first.acquire()
    second = RepoLock(path, timeout=0.2)
    started = time.monotonic()
    with pytest.raises(LockedError) as info:
        second.acquire()
    assert time.monotonic() - started >= 0.2
    assert str(os.getpid()) in str(info.value)  # says who holds it
    first.release()
    second.acquire()  # free once released
    second.release()


def test_lock_is_reentrant_within_one_handle(tmp_path: Path) -> None:
    path = tmp_path / "lock"
    lock = RepoLock(path, timeout=0.2)
    with lock:
        with lock:
            pass
        assert not RepoLock(path, timeout=0.2).try_acquire()  # still held by the outer block
    assert RepoLock(path, timeout=0.2).try_acquire()


def test_lock_held_by_a_killed_process_is_free(tmp_path: Path) -> None:
    path = tmp_path / "lock"
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys, time
            from pathlib import Path
            from dvx.lock import RepoLock
            RepoLock(Path({str(path)!r}), timeout=5).acquire()
            print("held", flush=True)
            time.sleep(60)
        """)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(LockedError):
            RepoLock(path, timeout=0.2).acquire()
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(10)
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
    assert holder.returncode == -signal.SIGKILL
    lock = RepoLock(path, timeout=0.5)
    lock.acquire()  # taken over at once, no waiting for a timeout
    lock.release()
