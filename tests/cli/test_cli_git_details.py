"""Details where dvx differed from git (found by an audit of the command line): a name that is both a branch
and a tag, commit-message clean-up, absolute paths through a symlink to the repository, a rename that also
changes the mode, and Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from dvx.repo import Repo


def history(repo: Repo, write_files, n: int = 4) -> list[str]:
    ids = []
    for i in range(n):
        write_files(repo.root, {"f": str(i)})
        ids.append(repo.commit(f"c{i}"))
    return ids


def test_checkout_of_a_name_that_is_a_branch_and_a_tag_takes_the_branch(repo: Repo, write_files, run_dvx) -> None:
    ids = history(repo, write_files)
    repo.create_branch("feat", ids[2])
    repo.create_tag("feat", ids[1])
    r = run_dvx(["checkout", "feat"], repo.root, check=True)
    assert "both a branch and a tag" in r.stderr
    assert repo.head() == ("feat", ids[2])
    assert (repo.root / "f").read_text() == "2"
    assert repo.status().to_json() == {"added": [], "modified": [], "deleted": []}
    run_dvx(["checkout", "refs/tags/feat"], repo.root, check=True)
    assert repo.head() == (None, ids[1]) and (repo.root / "f").read_text() == "1"


def test_commit_message_is_cleaned_as_git_does(repo: Repo, write_files, run_dvx) -> None:
    write_files(repo.root, {"a": "1"})
    r = run_dvx(["commit", "-m", "\n\n  real msg  \n\n\n\nbody line   \n\n"], repo.root, check=True)
    assert r.stdout.strip().endswith("real msg")
    assert repo.read_commit(repo.head()[1] or "").message == "  real msg\n\nbody line"
    write_files(repo.root, {"a": "2"})
    r = run_dvx(["commit", "-m", " \n\t\n"], repo.root, check=False)
    assert "message" in r.stderr


def test_absolute_path_through_a_symlink_to_the_repository(repo: Repo, write_files, run_dvx, tmp_path: Path) -> None:
    write_files(repo.root, {"keep": "1", "other": "x"})
    first = repo.commit("c1")
    write_files(repo.root, {"other": "y"})
    repo.commit("c2")
    link = tmp_path / "replink"
    os.symlink(repo.root, link)
    r = run_dvx(["log", "--json", "--", str(link / "keep")], link, check=True)
    assert [e["id"] for e in __import__("json").loads(r.stdout)] == [first]
    r = run_dvx(["log", "--", str(tmp_path / "elsewhere")], link, check=False)
    assert "outside the repository" in r.stderr


def test_text_diff_shows_a_mode_change_on_a_rename(repo: Repo, write_files, run_dvx) -> None:
    write_files(repo.root, {"y1": "same bytes"})
    repo.commit("c1")
    os.rename(repo.root / "y1", repo.root / "z1")
    os.chmod(repo.root / "z1", 0o755)
    out = run_dvx(["diff"], repo.root, check=True).stdout
    assert "R  y1 -> z1  (mode +x)" in out


def test_ctrl_c_prints_one_line_and_exits_130(repo: Repo, dvx_argv: list[str]) -> None:
    big = repo.root / "big.bin"
    with open(big, "wb") as fh:
        for _ in range(64):
            fh.write(os.urandom(4 << 20))
    proc = subprocess.Popen([*dvx_argv, "commit", "-m", "big"], cwd=repo.root, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    # Inside the commit of 256 MiB (which takes seconds): once it holds the repository lock, it has its pid
    # written there. A fixed sleep was too short on a loaded machine (the signal came during start-up).
    lock = repo.root / ".dvx" / "lock"
    deadline = time.monotonic() + 60
    while str(proc.pid) not in (lock.read_text() if lock.exists() else "") and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert err.strip() == "dvx: interrupted"
    assert repo.fsck().ok


def test_status_from_a_subfolder_names_paths_from_there_as_git(repo: Repo, write_files, run_dvx) -> None:
    write_files(repo.root, {"a/b/f": "1", "c/g": "2"})
    repo.commit("c1")
    write_files(repo.root, {"a/b/f": "changed", "c/g": "changed", "a/new": "new"})
    lines = run_dvx(["status"], repo.root / "a", check=True).stdout.splitlines()
    assert [line.split()[-1] for line in lines[1:]] == ["new", "b/f", "../c/g"]
    doc = __import__("json").loads(run_dvx(["status", "--json"], repo.root / "a" / "b", check=True).stdout)
    assert doc == {"added": ["a/new"], "modified": ["a/b/f", "c/g"], "deleted": []}  # --json: repository paths


def test_a_negated_pattern_after_a_glob_leaves_the_path_out(repo: Repo, write_files, run_dvx) -> None:
    write_files(repo.root, {"a.txt": "a", "sub/s.txt": "s", "sub/new.txt": "n", "data/deep/y.csv": "y"})
    repo.commit("c1")
    assert [p for p, _ in repo.ls(None, ["*.txt", "!sub/new.txt"])] == ["a.txt", "sub/s.txt"]
    assert [p for p, _ in repo.ls(None, ["data/*.csv"])] == ["data/deep/y.csv"]  # a plain glob, as before
    assert [p for p, _ in repo.ls(None, ["sub/", "!sub/new.txt"])] == ["sub/s.txt"]


def test_ls_from_a_subfolder_lists_it_alone_as_git_ls_tree(repo: Repo, write_files, run_dvx) -> None:
    write_files(repo.root, {"a/x.txt": "1", "a/b/y.txt": "2", "a/b/z.csv": "3", "c/x.txt": "4", "top.txt": "5"})
    repo.commit("c1")

    def names(args: list[str], where: Path) -> list[str]:
        return [line.split()[-1] for line in run_dvx(["ls", *args], where, check=True).stdout.splitlines()]

    assert names([], repo.root / "a") == ["b/y.txt", "b/z.csv", "x.txt"]
    assert names(["*.txt"], repo.root / "a") == ["b/y.txt", "x.txt"]
    assert names(["/x.txt"], repo.root / "a") == ["x.txt"]  # anchored at the subfolder
    assert names(["HEAD", "b/"], repo.root / "a") == ["b/y.txt", "b/z.csv"]
    assert len(names(["--full-tree"], repo.root / "a")) == 5
    doc = __import__("json").loads(run_dvx(["ls", "--json"], repo.root / "a" / "b", check=True).stdout)
    assert [d["path"] for d in doc] == ["a/b/y.txt", "a/b/z.csv"]  # --json: repository paths
    r = run_dvx(["ls", "top.txt"], repo.root / "a", check=False)  # not below the subfolder
    assert r.returncode != 0 and "unknown revision or path" in r.stderr
    (repo.root / "new").mkdir()
    assert names([], repo.root / "new") == []  # a folder HEAD does not have
