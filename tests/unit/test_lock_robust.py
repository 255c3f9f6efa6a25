"""$DVX_LOCK_TIMEOUT that is not a finite number of seconds >= 0 is one error line naming it, not a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from dvx.errors import BadConfig
from dvx.lock import RepoLock
from dvx.refs import HEADS
from dvx.repo import Repo

BAD = ["abc", "-1", "nan", "inf", "-inf", "1e999", "3s"]


@pytest.mark.parametrize("value", BAD)
def test_bad_lock_timeout_is_a_bad_config_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("DVX_LOCK_TIMEOUT", value)
    lock = RepoLock(tmp_path / "lock")
    with pytest.raises(BadConfig, match="DVX_LOCK_TIMEOUT"):
        lock.acquire()
    assert lock.try_acquire()  # a lock that waits for nothing needs no timeout
    lock.release()


@pytest.mark.parametrize(("value", "seconds"), [("", 30.0), ("0", 0.0), ("2.5", 2.5), (" 7 ", 7.0)])
def test_good_lock_timeouts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str, seconds: float) -> None:
    monkeypatch.setenv("DVX_LOCK_TIMEOUT", value)
    lock = RepoLock(tmp_path / "lock")
    assert lock.timeout == seconds
    with lock:
        pass
    assert RepoLock(tmp_path / "lock", timeout=1).timeout == 1


@pytest.mark.parametrize("value", ["abc", "-1", "nan", "inf"])
def test_cli_commit_with_bad_lock_timeout(repo: Repo, run_dvx, value: str) -> None:
    r = run_dvx(["commit", "--allow-empty", "-m", "x"], repo.root, env={"DVX_LOCK_TIMEOUT": value}, timeout=60)
    assert r.returncode != 0 and "Traceback" not in r.stderr, r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("dvx: error:") and "DVX_LOCK_TIMEOUT" in lines[0], r.stderr
    assert repo.refs.get(HEADS + "main") is None  # nothing committed
