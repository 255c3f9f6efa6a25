"""The CLI's contract in unusual environments and inputs (found by an audit of revisions, history and the
command line): a read-only ``.dvx``, an output encoding that is not UTF-8, ``TERM=dumb``, revisions with
spaces, huge counts or over-long names, message characters git keeps, the graph of a path's history, and
branch creation under the repository lock."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from dvx.errors import LockedError
from dvx.lock import RepoLock
from dvx.repo import Repo


def _one_commit(repo: Repo, message: str = "one") -> str:
    (repo.root / "a").write_text("a")
    return repo.commit(message)


def test_status_answers_when_the_lock_cannot_be_opened(repo: Repo, run_dvx) -> None:
    _one_commit(repo)
    (repo.root / "a").write_text("changed")
    lock = repo.dvx / "lock"
    lock.unlink(missing_ok=True)
    lock.mkdir()  # os.open(O_RDWR) fails, as on a read-only .dvx
    try:
        r = run_dvx(["status", "--json"], repo.root, check=True)
        assert json.loads(r.stdout)["modified"] == ["a"]
    finally:
        lock.rmdir()


def test_status_on_a_read_only_dvx_without_privileges(repo: Repo, run_dvx) -> None:
    _one_commit(repo)
    (repo.root / "a").write_text("changed")
    setpriv = shutil.which("setpriv")
    prefix = [setpriv or "setpriv", "--bounding-set=-dac_override,-dac_read_search,-fowner", "--"]
    subprocess.run(["chmod", "-R", "a-w", str(repo.dvx)], check=True)
    try:
        probe = subprocess.run([*prefix, "touch", str(repo.dvx / "probe")], capture_output=True)
        if setpriv is None or probe.returncode == 0:
            pytest.skip("cannot drop the privilege to write a read-only folder here")
        r = run_dvx(["status"], repo.root, check=True, prefix=prefix)
        assert "modified:  a" in r.stdout
    finally:
        subprocess.run(["chmod", "-R", "u+w", str(repo.dvx)], check=True)


def test_output_that_the_terminal_encoding_cannot_hold(repo: Repo, run_dvx) -> None:
    _one_commit(repo, "héllo ☃")
    env = {"LC_ALL": "C", "PYTHONUTF8": "0", "PYTHONIOENCODING": "ascii"}
    r = run_dvx(["log", "--oneline"], repo.root, env=env, check=True)
    assert "h\\xe9llo \\u2603" in r.stdout and "Traceback" not in r.stderr
    r = run_dvx(["log", "--json"], repo.root, env=env, check=True)
    assert json.loads(r.stdout)[0]["message"] == "héllo ☃"  # JSON escapes: the document stays exact


def test_term_dumb_turns_colour_off(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from dvx.cli import common

    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    monkeypatch.setenv("TERM", "xterm")
    assert common.color()
    monkeypatch.setenv("TERM", "dumb")
    assert not common.color()


def test_commit_message_keeps_characters_git_keeps(repo: Repo, run_dvx) -> None:
    (repo.root / "a").write_text("a")
    msg = "a\x0cb\x1cc\x85d\u2028e\rf"
    run_dvx(["commit", "-m", msg], repo.root, check=True)
    assert repo.read_commit(repo.head()[1] or "").message == msg


def test_revisions_are_not_stripped_and_odd_ones_fail_in_one_line(repo: Repo, run_dvx) -> None:
    _one_commit(repo)
    for rev in (" HEAD", "main ", "HEAD~" + "1" * 5000, "HEAD^" + "2" * 5000, "x" * 300):
        r = run_dvx(["log", "-n1", rev], repo.root, check=False)
        assert len(r.stderr.splitlines()) == 1 and "Traceback" not in r.stderr, (rev[:20], r.stderr)
        assert "cannot read" not in r.stderr
    r = run_dvx(["checkout", "main "], repo.root, check=False)
    assert repo.head()[0] == "main"
    r = run_dvx(["ls", "y" * 300], repo.root, check=False)  # a word no file name can be: a pattern matching nothing
    assert "unknown revision or path" in r.stderr


def test_graph_of_a_path_history_follows_the_simplified_history(repo: Repo, run_dvx) -> None:
    (repo.root / "p").write_text("1")
    (repo.root / "q").write_text("q")
    repo.commit("add-p")
    repo.create_branch("side")
    (repo.root / "q").write_text("q2")
    repo.commit("mod-q")  # main changes q only
    repo.checkout("side")
    (repo.root / "p").write_text("2")
    repo.commit("side-mod-p")
    repo.checkout("main")
    repo.merge("side")  # takes p from side
    (repo.root / "p").write_text("3")
    repo.commit("mod-p")
    lines = run_dvx(["log", "--graph", "--oneline", "--", "p"], repo.root, check=True).stdout.splitlines()
    assert [line.split()[0] for line in lines] == ["*", "*", "*"], lines  # a straight line, as git draws it
    assert [line.split()[-1] for line in lines] == ["mod-p", "side-mod-p", "add-p"]


def test_creating_a_branch_or_tag_waits_for_the_repository_lock(repo: Repo, monkeypatch: pytest.MonkeyPatch) -> None:
    """A gc holds the lock while it sweeps: a branch made meanwhile on an unreachable commit would lose it."""
    first = _one_commit(repo)
    monkeypatch.setenv("DVX_LOCK_TIMEOUT", "0.2")
    holder = RepoLock(repo.dvx / "lock", what="gc")  # its own descriptor: flock conflicts as with a process
    holder.acquire()
    try:
        with pytest.raises(LockedError):
            repo.create_branch("b", first)
        with pytest.raises(LockedError):
            repo.create_tag("t", first)
    finally:
        holder.release()
    repo.create_branch("b", first)
    assert repo.branches()["b"] == first


def test_gc_removes_a_killed_checkouts_staging_folder_and_dead_ref_temps(repo: Repo) -> None:
    import os
    import time

    _one_commit(repo)
    tmp = repo.dvx / "tmp"
    old = tmp / "checkout-old"
    (old / "sub").mkdir(parents=True)
    (old / "sub" / "f").write_bytes(b"x" * 1000)
    young = tmp / "checkout-young"
    young.mkdir()
    (young / "f").write_text("y")
    ref_tmp = repo.dvx / "refs" / "heads" / ".main.999999999.new"
    ref_tmp.write_text("0" * 64)
    hours_ago = time.time() - 7200
    for p in (old / "sub" / "f", old / "sub", old, ref_tmp):
        os.utime(p, (hours_ago, hours_ago))
    repo.gc()
    assert not old.exists() and young.exists() and not ref_tmp.exists()
    assert repo.fsck().ok and repo.branches()["main"]


def test_names_with_control_characters_or_arrows_are_quoted_as_git_does(repo: Repo, run_dvx) -> None:
    (repo.root / "a\nb").write_text("1")
    (repo.root / "a -> b").write_text("2")
    (repo.root / 'q"\\').write_text("3")
    lines = run_dvx(["status"], repo.root, check=True).stdout.splitlines()
    assert '  added:     "a\\nb"' in lines and '  added:     "q\\"\\\\"' in lines and "  added:     a -> b" in lines
    run_dvx(["commit", "-m", "one"], repo.root, check=True)
    (repo.root / "a -> b").rename(repo.root / "c")
    assert run_dvx(["diff"], repo.root, check=True).stdout.splitlines()[0] == 'R  "a -> b" -> c'
    listed = run_dvx(["ls"], repo.root, check=True).stdout.splitlines()
    assert len(listed) == 3 and listed[0].endswith('"a\\nb"')
    assert json.loads(run_dvx(["ls", "--json"], repo.root, check=True).stdout)[0]["path"] == "a\nb"  # JSON: exact
    (repo.root / "a\nb").write_text("second")
    run_dvx(["commit", "-m", "two"], repo.root, check=True)
    (repo.root / "a\nb").write_text("local edit")
    r = run_dvx(["checkout", "HEAD~1"], repo.root, check=False)  # refused, naming the file: still one line
    assert len(r.stderr.splitlines()) == 1 and "a\\nb" in r.stderr


def test_remote_add_of_a_local_folder_leaves_no_trace_and_refuses_a_typo(repo: Repo, run_dvx, tmp_path) -> None:
    _one_commit(repo)
    r = run_dvx(["remote", "add", "typo", str(tmp_path / "no-such" / "deeper" / "remote")], repo.root, check=False)
    assert "does not exist" in r.stderr and not (tmp_path / "no-such").exists()
    run_dvx(["remote", "add", "ok", str(tmp_path / "new-remote")], repo.root, check=True)
    assert not (tmp_path / "new-remote").exists()  # the probe's folder is gone again; push makes it
    run_dvx(["push", "ok"], repo.root, check=True)
    assert (tmp_path / "new-remote" / "dvx-remote.json").is_file()
    other = tmp_path / "other"
    Repo.init(other).close()
    r = run_dvx(["remote", "add", "theirs", str(other)], repo.root, check=False)
    assert "is a dvx repository, not a remote" in r.stderr and not (other / "dvx-remote.json").exists()
