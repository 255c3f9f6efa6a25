"""`.dvxignore` decides for each path itself, as git does (found by an audit against git 2.39): a folder is
excluded only by a pattern matching the folder, so `!` rules below a `foo/**` or after `*` `!*/` apply; a
trailing `/**/` means the folders below; a byte-order mark is skipped. The expected sets are git's
(`git ls-files -co --exclude-standard` on the same trees); where git is installed, they are checked against it.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from dvx.repo import Repo
from dvx.worktree import IgnoreRules

CASES = [
    # (files, .dvxignore content, the files git keeps besides .dvxignore)
    (["foo/keep", "foo/drop.tmp", "foo/sub/x", "build/keep/k", "build/out"],
     "foo/**\n!foo/keep\nbuild/**\n!build/keep/\n!build/keep/**\n", ["build/keep/k", "foo/keep"]),
    (["x.log", "sub/y.log", "sub/z.bin", "a/b/c/f"], "*\n!*/\n!*.log\n", ["sub/y.log", "x.log"]),
    (["x.log", "a/b/c/f", "a/g"], "*\n!a\n!a/b\n!a/b/c\n!a/b/c/f\n", ["a/b/c/f"]),
    (["foo/f", "foo/bar/g", "top"], "foo/**/\n", ["foo/f", "top"]),
    (["secret.txt", "data.csv"], "\ufeffsecret.txt\n", ["data.csv"]),
    (["a.txt", "b.txt", "c.txt"], "a.txt\r\nb.txt\r\n", ["c.txt"]),
    (["sub/a", "sub/deep/b", "top"], "sub/\n!sub/deep/\n", ["top"]),  # git cannot re-include below an excluded folder
    (["a/x.log", "a/b/x.log", "x.log", "keep"], "*.log\n!/x.log\n", ["keep", "x.log"]),
    (["d/f", "e/d/f", "g"], "/d/\n", ["e/d/f", "g"]),
    (["foo bar", "foo", "x\\"], "foo\\ \n", ["foo", "foo bar", "x\\"]),  # "foo\ " is "foo " (kept by neither)
]


def _tree(root: Path, files: list[str], ignore: str, name: str) -> None:
    for f in files:
        (root / f).parent.mkdir(parents=True, exist_ok=True)
        (root / f).write_text(f)
    (root / name).write_bytes(ignore.encode("utf-8"))


@pytest.mark.parametrize("files,ignore,kept", CASES, ids=[repr(c[1])[:40] for c in CASES])
def test_ignore_rules_keep_what_git_keeps(repo: Repo, tmp_path: Path, files: list[str], ignore: str, kept: list[str]) -> None:
    _tree(repo.root, files, ignore, ".dvxignore")
    assert sorted(p for p in repo.status().added if p != ".dvxignore") == kept
    git = shutil.which("git")
    if git is not None:
        g = tmp_path / "git"
        g.mkdir()
        subprocess.run([git, "init", "-q"], cwd=g, check=True)
        _tree(g, files, ignore, ".gitignore")
        out = subprocess.run([git, "-c", "core.quotePath=false", "ls-files", "-co", "--exclude-standard", "-z"],
                             cwd=g, check=True, capture_output=True, text=True).stdout
        assert sorted(p for p in out.split("\0") if p and p != ".gitignore") == kept


def test_rules_decide_for_the_path_itself() -> None:
    rules = IgnoreRules(["foo/**", "!foo/keep", "*.tmp/", "bar"])
    assert rules.decide("foo/") is None  # foo/** is about what is inside foo
    assert rules.decide("foo/sub/") is True and rules.decide("foo/x") is True
    assert rules.decide("foo/keep") is False
    assert rules.decide("a.tmp") is None and rules.decide("a.tmp/") is True  # folder-only
    assert rules.decide("x/bar") is True and rules.decide("bar/") is True
    assert rules.decide("bar/inside") is None  # only through its folder: the walk never enters it


def test_a_committed_file_now_ignored_is_not_overwritten_by_checkout(repo: Repo) -> None:
    (repo.root / "X").write_text("v1")
    (repo.root / "keep").write_text("k")
    first = repo.commit("one")
    (repo.root / "X").write_text("v2")
    repo.commit("two")
    (repo.root / ".dvxignore").write_text("X\n")
    (repo.root / "X").write_text("precious local edit")
    from dvx.errors import DirtyWorkingTree

    with pytest.raises(DirtyWorkingTree, match="X"):
        repo.checkout(first)
    assert (repo.root / "X").read_text() == "precious local edit"
    (repo.root / "X").write_text("v2")  # as HEAD has it: nothing to lose, so the checkout goes ahead
    repo.checkout(first)
    assert (repo.root / "X").read_text() == "v1"
    (repo.root / "X").write_text("edited again")
    repo.checkout("main", force=True)  # --force discards it, as for any tracked file
    assert (repo.root / "X").read_text() == "v2"


def test_lines_git_cannot_read_match_nothing_and_bad_ls_patterns_are_one_line(repo: Repo, run_dvx) -> None:
    (repo.root / "f").write_text("x")
    (repo.root / "a").write_text("y")
    (repo.root / ".dvxignore").write_text("!\na\\\n")
    assert sorted(repo.status().added) == [".dvxignore", "a", "f"]  # as git: both lines are skipped
    repo.commit("one")
    for pattern in ("!", "a\\"):
        r = run_dvx(["ls", "HEAD", pattern], repo.root, check=False)
        assert r.stderr.startswith("dvx: error: invalid pattern") and len(r.stderr.splitlines()) == 1
