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
from hypothesis import given, settings
from hypothesis import strategies as st

from dvx.repo import Repo
from dvx.worktree import IgnoreRules, _tame, compile_patterns

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
    # runs of stars: "**" as a whole component, else one "*" (git's wildmatch)
    (["abcab", "xa", "ab", "d/ab", "d/e/ab"], "***a*b\n", ["xa"]),
    (["d/x", "d/e/x", "y"], "d/***/x\n", ["y"]),
    (["aab", "ab", "a/b"], "a**b\n", ["a/b"]),
    (["ab.c", "a.b", "abc"], "*.*\n", ["abc"]),
    (["zaab", "aab", "abab", "baba", "a"], "*a*a*b\n", ["a", "baba"]),
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


def test_a_bad_range_or_a_posix_class_in_dvxignore_is_no_traceback(repo: Repo, run_dvx) -> None:
    """`[z-a]` matches nothing (git cannot read it either); as a command-line pattern it is one error line."""
    (repo.root / "abc").write_text("x")
    (repo.root / "a.txt").write_text("y")
    (repo.root / ".dvxignore").write_text("a[z-a]c\n[[:alpha:]]x\n")
    r = run_dvx(["status"], repo.root)
    assert r.stderr == "" and "abc" in r.stdout and "a.txt" in r.stdout
    repo.commit("one")
    r = run_dvx(["ls", "HEAD", "a[z-a]c"], repo.root, check=False)
    assert r.stderr.startswith("dvx: error: invalid pattern") and len(r.stderr.splitlines()) == 1


def test_many_stars_match_in_linear_time(repo: Repo) -> None:
    """`*a*a*...*b` backtracked over every way to place the stars (seconds per name at 8 stars, minutes at 10,
    as pathspec writes the regex); now each star commits to the leftmost match. No timing: a run that regressed
    would not finish in the suite's time."""
    (repo.root / ".dvxignore").write_text("*a" * 12 + "b\n" + "*" * 30 + "a\n")
    (repo.root / ("a" * 200)).write_text("1")
    (repo.root / ("a" * 100 + "b")).write_text("2")
    assert sorted(repo.status().added) == [".dvxignore"]


def test_a_dvxignore_that_is_not_a_regular_file_is_not_read(repo: Repo, run_dvx) -> None:
    """As git >= 2.32 with .gitignore: a symlink (here to /dev/zero) or a fifo is not read, with a warning,
    instead of reading forever or blocking."""
    import os

    (repo.root / "f").write_text("x")
    os.symlink("/dev/zero", repo.root / ".dvxignore")
    r = run_dvx(["status"], repo.root)
    assert ".dvxignore is a symbolic link: not read" in r.stderr and "f" in r.stdout
    (repo.root / ".dvxignore").unlink()
    os.mkfifo(repo.root / ".dvxignore")
    r = run_dvx(["status"], repo.root, timeout=30)
    assert ".dvxignore is a fifo: not read" in r.stderr


_glob = st.text(alphabet="ab*?/[]!", min_size=1, max_size=9)
_path = st.text(alphabet="ab/", min_size=1, max_size=10).filter(lambda p: not p.startswith("/") and "//" not in p)


@settings(max_examples=400, deadline=None)
@given(pattern=_glob, paths=st.lists(_path, min_size=1, max_size=8))
def test_tamed_regexes_match_what_pathspecs_own_match(pattern: str, paths: list[str]) -> None:
    """The rewrite of each star into an atomic leftmost match changes no answer (against pathspec's regex of
    the same collapsed pattern)."""
    import re
    import warnings

    from pathspec.patterns.gitignore.spec import GitIgnoreSpecPattern

    from dvx.worktree import _collapse_stars

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            original = GitIgnoreSpecPattern(_collapse_stars(pattern)).regex
    except (ValueError, re.error):
        return
    if original is None:
        return
    tamed = re.compile(_tame(original.pattern))
    for path in paths:
        a, b = original.search(path), tamed.search(path)
        assert (a is None) == (b is None), (pattern, path, original.pattern, tamed.pattern)
        if a is not None and b is not None:
            assert (a.groupdict().get("ps_d") is None) == (b.groupdict().get("ps_d") is None)
    assert compile_patterns([pattern]) is not None
