"""dvx against git: where a dvx command has a git namesake (status, log, diff, checkout, branch, tag, revision
syntax), a git user expects git's behaviour unless issue 3 says otherwise.

Two kinds of tests, all through the real CLI (setup of small histories may use the Python API):

- differential tests on small "twin" trees: one folder that is both a git work tree and a dvx repository (.git
  is always ignored by dvx, .dvx is excluded in .git/info/exclude), the same edits, the same question asked to
  both tools;
- a replay of a real history (../shared/replay/replay.bundle: an icon theme with thousands of renames, symlinks
  incl. absolute/dangling/dir links, file<->symlink and exec-bit-only changes) over a sample of its commits,
  compared with ``git diff``, ``git status``, ``git log``, ``git ls-tree`` and ``git archive``.

Every discrepancy this file found (revision typos, tag-before-branch resolution, ``branch -d`` of unmerged work,
rename pairing by file name, ``log -- PATH`` relative to the current folder, ref/folder name clashes, empty
names, a locally deleted file at checkout, the ``--force`` refusal message, nested ``.dvxignore`` files) was
fixed; the tests stay as regression tests.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import stat
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import blake3
import pytest

from dvx.repo import Repo

BUNDLE = Path(__file__).resolve().parents[3] / "shared" / "replay" / "replay.bundle"
HAS_GIT = shutil.which("git") is not None

pytestmark = pytest.mark.skipif(not HAS_GIT, reason="git is not installed")
needs_bundle = pytest.mark.skipif(not BUNDLE.is_file(), reason=f"replay bundle not found at {BUNDLE}")

GIT_ENV = {
    "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t",
    "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull, "LC_ALL": "C",
}

RunDvx = Callable[..., subprocess.CompletedProcess[str]]


# --- helpers ---------------------------------------------------------------------------------------------


def git(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, errors="surrogateescape",
                          env={**os.environ, **GIT_ENV})
    if check:
        assert proc.returncode == 0, f"git {' '.join(args)} failed: {proc.stderr}"
    return proc


def git_out(cwd: Path, *args: str) -> str:
    return git(cwd, *args).stdout


def one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    """The single ``dvx: error:`` line of a failed command (asserting there is exactly one and no traceback)."""
    assert proc.returncode != 0, proc.stdout
    lines = proc.stderr.splitlines()
    assert "Traceback" not in proc.stderr, proc.stderr
    assert len(lines) == 1 and lines[0].startswith("dvx: error:"), proc.stderr
    return lines[0]


def git_status(root: Path) -> dict[str, list[str]]:
    """``git status`` (untracked files one by one, no rename detection) in dvx's status shape."""
    out: dict[str, list[str]] = {"added": [], "modified": [], "deleted": []}
    for rec in git_out(root, "status", "--porcelain=v1", "-z", "-uall", "--no-renames").split("\0"):
        if not rec:
            continue
        xy, path = rec[:2], rec[3:]
        key = "added" if xy in ("??", "A ") else "deleted" if "D" in xy else "modified"
        out[key].append(path)
    return {k: sorted(v) for k, v in out.items()}


def dvx_status(run_dvx: RunDvx, root: Path) -> dict[str, list[str]]:
    doc = json.loads(run_dvx(["status", "--json"], root, check=True).stdout)
    return {k: sorted(doc[k]) for k in ("added", "modified", "deleted")}


def git_name_status(root: Path, a: str, b: str, *paths: str, cwd: Path | None = None) -> dict[str, set[str]]:
    """``git diff --name-status --no-renames A B [-- PATHS]`` as {added, deleted, modified} (T counts as modified)."""
    args = ["diff", "--name-status", "--no-renames", "-z", a, b, *(["--", *paths] if paths else [])]
    toks = [t for t in git_out(cwd or root, *args).split("\0") if t]
    out: dict[str, set[str]] = {"added": set(), "deleted": set(), "modified": set()}
    for st, path in zip(toks[::2], toks[1::2]):
        out[{"A": "added", "D": "deleted", "M": "modified", "T": "modified"}[st[0]]].add(path)
    return out


def git_exact_renames(root: Path, a: str, b: str) -> set[tuple[str, str]]:
    """git's R100 pairs of ``git diff -M A B`` (exact-content renames)."""
    toks = [t for t in git_out(root, "diff", "--name-status", "-M", "-z", a, b).split("\0") if t]
    out, i = set(), 0
    while i < len(toks):
        if toks[i][0] in "RC":
            if toks[i] == "R100":
                out.add((toks[i + 1], toks[i + 2]))
            i += 3
        else:
            i += 2
    return out


def dvx_diff(run_dvx: RunDvx, root: Path, a: str, b: str) -> dict[str, Any]:
    return json.loads(run_dvx(["diff", a, b, "--json"], root, check=True).stdout)


def without_renames(d: dict[str, Any]) -> dict[str, set[str]]:
    """A dvx diff seen as git's --no-renames: a rename is a deletion of ``from`` and an addition of ``path``."""
    return {
        "added": {c["path"] for c in d["added"]} | {c["path"] for c in d["renamed"]},
        "deleted": {c["path"] for c in d["deleted"]} | {c["from"] for c in d["renamed"]},
        "modified": {c["path"] for c in d["modified"]},
    }


def git_archive(root: Path, commit: str) -> dict[str, tuple[Any, ...]]:
    """What ``git archive COMMIT`` holds: path -> ("f", exec, bytes) or ("l", target)."""
    data = subprocess.run(["git", "archive", "--format=tar", commit], cwd=root, capture_output=True, check=True).stdout
    out: dict[str, tuple[Any, ...]] = {}
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        for m in tf.getmembers():
            if m.issym():
                out[m.name] = ("l", m.linkname)
            elif m.isfile():
                fh = tf.extractfile(m)
                assert fh is not None
                out[m.name] = ("f", bool(m.mode & 0o100), fh.read())
    return out


def tree_state(snapshot: Callable[..., dict[str, tuple[Any, ...]]], root: Path) -> dict[str, tuple[Any, ...]]:
    """The working tree's files and links (no directories, no .git/.dvx), in git_archive's shape."""
    return {p: v for p, v in snapshot(root, skip=[".git", ".dvx"]).items() if v[0] != "d"}


def file_stats(root: Path) -> dict[str, tuple[int, int]]:
    """path -> (inode, mtime_ns) of every regular file of the working tree (not .git/.dvx)."""
    out: dict[str, tuple[int, int]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        if dirpath == str(root):
            dirnames[:] = [d for d in dirnames if d not in (".git", ".dvx")]
        for name in filenames:
            full = os.path.join(dirpath, name)
            st = os.lstat(full)
            if stat.S_ISREG(st.st_mode):
                out[os.path.relpath(full, root)] = (st.st_ino, st.st_mtime_ns)
    return out


def disk_state(root: Path) -> dict[str, tuple[Any, ...]]:
    """Everything under root incl. .dvx (minus the stat cache and lock file), for "nothing changed" checks."""
    out: dict[str, tuple[Any, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, root)
            if rel in (".dvx/index", ".dvx/lock") or rel.startswith(".git"):
                continue
            st = os.lstat(full)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("l", os.readlink(full))
            elif stat.S_ISREG(st.st_mode):
                out[rel] = ("f", st.st_mode, Path(full).read_bytes())
            else:
                out[rel] = ("d", st.st_mode)
    return out


def stat_state(root: Path) -> dict[str, tuple[int, ...]]:
    """A cheap "nothing changed" fingerprint of a big folder: type, mode, size, mtime, inode of every entry
    (links: their target's hash), minus the stat cache, the lock file and .git."""
    out: dict[str, tuple[int, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        if dirpath == str(root):
            dirnames[:] = [d for d in dirnames if d != ".git"]
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, root)
            if rel not in (".dvx/index", ".dvx/lock"):
                st = os.lstat(full)
                extra = hash(os.readlink(full)) if stat.S_ISLNK(st.st_mode) else 0
                out[rel] = (st.st_mode, st.st_size, st.st_mtime_ns, st.st_ino, extra)
    return out


def put(root: Path, files: dict[str, Any]) -> None:
    """Create files: ``"text"``, ``("x", "text")`` (executable) or ``("l", target)`` (symlink)."""
    for rel, spec in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_symlink() or path.is_file():
            path.unlink()
        if isinstance(spec, tuple) and spec[0] == "l":
            os.symlink(spec[1], path)
            continue
        text = spec[1] if isinstance(spec, tuple) else spec
        path.write_bytes(text.encode() if isinstance(text, str) else text)
        os.chmod(path, 0o755 if isinstance(spec, tuple) else 0o644)


def api(root: Path, action: Callable[[Repo], Any]) -> Any:
    """Set-up through the Python API (a fresh handle each time, so it never holds state the CLI changed)."""
    with Repo(root) as repo:
        return action(repo)


@dataclass
class Twin:
    """One folder that is a git work tree and a dvx repository; ``commit`` records the same tree in both."""

    root: Path
    run_dvx: RunDvx
    ids: dict[str, str] = field(default_factory=dict)  # git sha -> dvx id

    @classmethod
    def make(cls, root: Path, run_dvx: RunDvx) -> Twin:
        root.mkdir(parents=True)
        git(root, "init", "-q", "-b", "main")
        (root / ".git" / "info" / "exclude").write_text("/.dvx/\n")
        Repo.init(root).close()
        return cls(root, run_dvx)

    def commit(self, message: str) -> tuple[str, str]:
        git(self.root, "add", "-A")
        git(self.root, "commit", "-q", "--allow-empty", "-m", message)
        sha = git_out(self.root, "rev-parse", "HEAD").strip()
        cid = api(self.root, lambda r: r.commit(message, allow_empty=True))
        self.ids[sha] = cid
        return sha, cid

    def dvx(self, *args: str, check: bool | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        return self.run_dvx(list(args), cwd or self.root, check=check)


@pytest.fixture
def twin(tmp_path: Path, run_dvx: RunDvx) -> Twin:
    return Twin.make(tmp_path / "twin", run_dvx)


def dvx_resolve(t: Twin, rev: str) -> subprocess.CompletedProcess[str]:
    return t.dvx("log", "--json", "-n", "1", rev)


# --- status ----------------------------------------------------------------------------------------------


def test_status_before_first_commit_lists_everything_as_added_like_git(twin: Twin) -> None:
    put(twin.root, {"a.txt": "a", "sub/deep/b.bin": b"\0\1", "run.sh": ("x", "#!/bin/sh\n"),
                    "link": ("l", "a.txt"), "dangling": ("l", "/no/such/target"), "dirlink": ("l", "sub")})
    got = dvx_status(twin.run_dvx, twin.root)
    assert got == git_status(twin.root) and len(got["added"]) == 6


def test_status_matches_git_for_every_kind_of_change(twin: Twin) -> None:
    put(twin.root, {"content": "1", "exec_on": "x", "exec_off": ("x", "y"), "file_to_link": "target",
                    "link_to_file": ("l", "content"), "retarget": ("l", "content"), "deleted": "d",
                    "deleted_link": ("l", "gone"), "touched": "same", "dir/file_to_dir": "f", "dir_to_file/x": "x",
                    "dir_to_link/f": "f"})
    twin.commit("c1")
    put(twin.root, {"content": "2", "file_to_link": ("l", "target"),  # a link whose target text = old bytes
                    "link_to_file": "content", "retarget": ("l", "/abs/dangling"), "new/deep/added": "n",
                    "added_link": ("l", "../outside")})
    os.chmod(twin.root / "exec_on", 0o755)
    os.chmod(twin.root / "exec_off", 0o644)
    (twin.root / "deleted").unlink()
    (twin.root / "deleted_link").unlink()
    os.utime(twin.root / "touched", ns=(1, 1))  # mtime only: not a change for either tool
    shutil.rmtree(twin.root / "dir_to_file")
    put(twin.root, {"dir_to_file": "now a file"})
    shutil.rmtree(twin.root / "dir_to_link")
    put(twin.root, {"dir_to_link": ("l", "dir")})
    expected = git_status(twin.root)
    assert "exec_on" in expected["modified"] and "file_to_link" in expected["modified"]
    assert dvx_status(twin.run_dvx, twin.root) == expected


def test_diff_between_commits_matches_git_name_status(twin: Twin) -> None:
    put(twin.root, {"m": "1", "x": "x", "t": "abc", "l": ("l", "m"), "d": "gone", "mv/a": "moved-bytes",
                    "keep": "k"})
    a = twin.commit("c1")
    put(twin.root, {"m": "2", "t": ("l", "abc"), "l": ("l", "/abs"), "new": "n", "moved/a": "moved-bytes"})
    os.chmod(twin.root / "x", 0o755)
    (twin.root / "d").unlink()
    shutil.rmtree(twin.root / "mv")
    b = twin.commit("c2")
    d = dvx_diff(twin.run_dvx, twin.root, a[1], b[1])
    assert without_renames(d) == git_name_status(twin.root, a[0], b[0])
    assert {(c["from"], c["path"]) for c in d["renamed"]} == git_exact_renames(twin.root, a[0], b[0])


def test_diff_of_some_paths_matches_git_diff_with_pathspecs(twin: Twin) -> None:
    put(twin.root, {"data/a.csv": "1", "data/b.csv": "2", "data/sub/c.csv": "3", "database": "x", "other/o": "o",
                    "top": "t"})
    a = twin.commit("c1")
    put(twin.root, {"data/a.csv": "11", "data/sub/c.csv": "33", "data/new.csv": "n", "database": "xx",
                    "other/o": "oo", "moved/b.csv": "2"})
    (twin.root / "data" / "b.csv").unlink()
    b = twin.commit("c2")
    for spec, cwd in ((["data"], twin.root), (["data/"], twin.root), (["data/sub", "top", "other/o"], twin.root),
                      (["sub"], twin.root / "data"), (["."], twin.root / "data"), (["../other"], twin.root / "data")):
        got = json.loads(twin.run_dvx(["diff", a[1], b[1], "--json", "--", *spec], cwd, check=True).stdout)
        # Renames are paired only among the selected paths: data/b.csv -> moved/b.csv is a deletion here.
        assert without_renames(got) == git_name_status(twin.root, a[0], b[0], *spec, cwd=cwd), (spec, cwd)
    work = json.loads(twin.run_dvx(["diff", a[1], "--json", "--", "data/sub"], twin.root, check=True).stdout)
    assert without_renames(work) == {"added": set(), "deleted": set(), "modified": {"data/sub/c.csv"}}


def test_diff_exact_rename_prefers_same_basename_like_git(twin: Twin) -> None:
    put(twin.root, {"old/alpha.svg": "same", "old/zeta.svg": "same", "keep": "k"})
    a = twin.commit("c1")
    shutil.rmtree(twin.root / "old")
    put(twin.root, {"new/zeta.svg": "same"})
    b = twin.commit("c2")
    assert git_exact_renames(twin.root, a[0], b[0]) == {("old/zeta.svg", "new/zeta.svg")}
    d = dvx_diff(twin.run_dvx, twin.root, a[1], b[1])
    assert {(c["from"], c["path"]) for c in d["renamed"]} == {("old/zeta.svg", "new/zeta.svg")}
    assert [c["path"] for c in d["deleted"]] == ["old/alpha.svg"]


# --- log --------------------------------------------------------------------------------------------------


def test_log_paths_and_max_count_match_git(twin: Twin) -> None:
    put(twin.root, {"a": "1", "dir/b": "1", "dir/sub/c": "1", "x": "1", "l": ("l", "a")})
    twin.commit("c1")
    put(twin.root, {"a": "2"})
    twin.commit("c2")
    os.chmod(twin.root / "x", 0o755)  # exec bit only
    twin.commit("c3")
    put(twin.root, {"dir/sub/c": "2", "l": ("l", "x")})
    twin.commit("c4")
    (twin.root / "a").unlink()
    put(twin.root, {"a": ("l", "x")})  # file -> symlink
    twin.commit("c5")
    twin.commit("c6 empty")
    for paths in (["a"], ["x"], ["l"], ["dir/"], ["a", "dir/sub"]):
        expected = [twin.ids[h] for h in git_out(twin.root, "log", "--format=%H", "--", *paths).split()]
        got = [e["id"] for e in json.loads(twin.dvx("log", "--json", "--", *paths, check=True).stdout)]
        assert got == expected, paths
    for n in ("0", "3"):
        expected = [twin.ids[h] for h in git_out(twin.root, "log", "--format=%H", "-n", n).split()]
        got = [e["id"] for e in json.loads(twin.dvx("log", "--json", "-n", n, check=True).stdout)]
        assert got == expected, n
    expected = [twin.ids[h] for h in git_out(twin.root, "log", "--format=%H", "-n", "2", "HEAD~1", "--", "a").split()]
    got = [e["id"] for e in json.loads(twin.dvx("log", "--json", "-n", "2", "HEAD~1", "--", "a", check=True).stdout)]
    assert got == expected


def test_log_json_fields(twin: Twin) -> None:
    put(twin.root, {"a": "1"})
    twin.commit("first")
    api(twin.root, lambda r: r.create_tag("v1"))
    put(twin.root, {"a": "2"})
    twin.commit("second\n\nbody")
    doc = json.loads(twin.dvx("log", "--json", check=True).stdout)
    assert [e["message"] for e in doc] == ["second\n\nbody", "first"]
    for e in doc:
        assert {"id", "parents", "message", "author", "time", "refs"} <= set(e)
        assert e["time"].endswith("Z") and e["author"]
    assert doc[0]["parents"] == [doc[1]["id"]] and doc[1]["parents"] == []
    assert doc[0]["refs"] == ["HEAD -> main"] and doc[1]["refs"] == ["tag: v1"]


def test_log_path_is_relative_to_the_current_folder_like_git(twin: Twin) -> None:
    put(twin.root, {"sub/f": "1", "top": "1"})
    twin.commit("c1")
    put(twin.root, {"sub/f": "2"})
    twin.commit("c2")
    put(twin.root, {"top": "2"})
    twin.commit("c3")
    sub = twin.root / "sub"
    for path in ("f", "."):
        expected = [twin.ids[h] for h in git_out(sub, "log", "--format=%H", "--", path).split()]
        got = [e["id"] for e in json.loads(twin.dvx("log", "--json", "--", path, check=True, cwd=sub).stdout)]
        assert got == expected, path


# --- revision syntax -------------------------------------------------------------------------------------


def _linear(t: Twin) -> Twin:
    """Four commits c0..c3 in both tools, tag v1 at c1 in both."""
    for i in range(4):
        put(t.root, {f"f{i}": str(i)})
        t.commit(f"c{i}")
    git(t.root, "tag", "v1", "HEAD~2")
    api(t.root, lambda r: r.create_tag("v1", "HEAD~2"))
    return t


@pytest.fixture
def linear(twin: Twin) -> Twin:
    return _linear(twin)


@pytest.fixture
def one_commit(twin: Twin) -> Twin:
    put(twin.root, {"f": "1"})
    twin.commit("c0")
    return twin


@pytest.fixture(scope="module")
def linear_shared(tmp_path_factory: pytest.TempPathFactory, run_dvx: RunDvx) -> Twin:
    """The same history, shared by the tests that only read it."""
    return _linear(Twin.make(tmp_path_factory.mktemp("linear") / "twin", run_dvx))


def test_revision_syntax_matches_git_rev_parse(linear_shared: Twin) -> None:
    t = linear_shared
    head = git_out(t.root, "rev-parse", "HEAD").strip()
    dvx_head = t.ids[head]
    same = ["@", "HEAD^0", "HEAD^^", "HEAD~1~1", "main~3", "v1~1", "refs/tags/v1"]
    pairs = [(r, r) for r in same] + [(dvx_head[:4], head[:4]), (dvx_head[:5].upper() + "~2", head[:5] + "~2")]
    for rev, git_rev in pairs:
        expected = t.ids[git_out(t.root, "rev-parse", "--verify", "-q", git_rev + "^{commit}").strip()]
        got = json.loads(dvx_resolve(t, rev).stdout)
        assert got and got[0]["id"] == expected, rev


@pytest.mark.parametrize("rev", ["HEAD~4", "HEAD^2", "HEAD~1^2", "v1~2", "nope", "0123", "012"])
def test_revisions_git_refuses_are_one_line_errors(linear_shared: Twin, rev: str) -> None:
    assert git(linear_shared.root, "rev-parse", "--verify", "-q", rev, check=False).returncode != 0
    one_line_error(dvx_resolve(linear_shared, rev))


@pytest.mark.parametrize("rev", ["HEAD~0x", "HEAD~x", "HEAD~1-", "main^1y", "v1^0{"])
def test_revision_with_trailing_garbage_is_refused_like_git(linear_shared: Twin, rev: str) -> None:
    assert git(linear_shared.root, "rev-parse", "--verify", "-q", rev, check=False).returncode != 0
    one_line_error(dvx_resolve(linear_shared, rev))


def test_name_that_is_both_branch_and_tag_resolves_to_the_tag_like_git(linear_shared: Twin) -> None:
    t = linear_shared
    git(t.root, "branch", "amb", "HEAD")
    git(t.root, "tag", "amb", "HEAD~3")
    api(t.root, lambda r: (r.create_branch("amb"), r.create_tag("amb", "HEAD~3")))
    expected = t.ids[git_out(t.root, "rev-parse", "amb").strip()]
    assert json.loads(dvx_resolve(t, "amb").stdout)[0]["id"] == expected


def test_checkout_of_a_name_that_is_both_branch_and_tag_switches_to_the_branch_like_git(one_commit: Twin) -> None:
    t = one_commit
    api(t.root, lambda r: (r.create_branch("amb"), r.create_tag("amb")))
    t.dvx("checkout", "amb", check=True)
    assert json.loads(t.dvx("branch", "--json", check=True).stdout)["current"] == "amb"


# --- branch and tag --------------------------------------------------------------------------------------


def test_branch_edge_cases_like_git(linear: Twin) -> None:
    t = linear
    # -d of the checked-out branch: refused by both, nothing changes.
    assert git(t.root, "branch", "-d", "main", check=False).returncode != 0
    one_line_error(t.dvx("branch", "-d", "main"))
    # a/b, then a: refused by both; after deleting a/b, a can be created (and is then a duplicate).
    git(t.root, "branch", "a/b")
    t.dvx("branch", "a/b", check=True)
    assert git(t.root, "branch", "a", check=False).returncode != 0
    one_line_error(t.dvx("branch", "a"))
    t.dvx("branch", "-d", "a/b", check=True)
    t.dvx("branch", "a", "v1~1", check=True)
    one_line_error(t.dvx("branch", "a"))
    branches = json.loads(t.dvx("branch", "--json", check=True).stdout)
    assert branches["current"] == "main" and set(branches["branches"]) == {"main", "a"}
    assert branches["branches"]["a"] == t.ids[git_out(t.root, "rev-parse", "v1~1").strip()]
    # names git refuses, deleting what does not exist
    for name in ("HEAD", "x..y"):
        assert git(t.root, "branch", name, check=False).returncode != 0, name
        one_line_error(t.dvx("branch", name))
    one_line_error(t.dvx("tag", "-d", "nope"))


def test_deleting_an_unmerged_branch_is_refused_like_git(one_commit: Twin) -> None:
    t = one_commit
    def feature(r: Repo) -> None:
        r.create_branch("feat")
        r.checkout("feat")
        put(t.root, {"only-on-feat": "x"})
        r.commit("feat work")
        r.checkout("main")

    api(t.root, feature)
    one_line_error(t.dvx("branch", "-d", "feat"))
    assert "feat" in json.loads(t.dvx("branch", "--json", check=True).stdout)["branches"]


@pytest.mark.parametrize("kind,first,second", [("branch", "a/b", "a"), ("tag", "a", "a/x")])
def test_ref_name_clashing_with_a_ref_folder_is_a_clear_error(one_commit: Twin, kind: str, first: str, second: str) -> None:
    t = one_commit
    t.dvx(kind, first, check=True)
    before = disk_state(t.root)
    line = one_line_error(t.dvx(kind, second))
    assert disk_state(t.root) == before
    assert "directory" not in line.lower() and ".new" not in line, line
    assert f"'{first}'" in line or f"refs/{'heads' if kind == 'branch' else 'tags'}/{first}'" in line, line


@pytest.mark.parametrize("args", [["branch", "-d", ""], ["tag", "-d", ""], ["branch", ""], ["tag", ""], ["log", ""]])
def test_empty_names_are_errors_like_git(linear_shared: Twin, args: list[str]) -> None:
    assert git(linear_shared.root, *args, check=False).returncode != 0
    one_line_error(linear_shared.dvx(*args))


# --- checkout --------------------------------------------------------------------------------------------


def test_checkout_round_trips_symlinks_exec_bits_and_bytes_like_git_archive(twin: Twin, snapshot) -> None:
    long_target = "x/" * 1500 + "y"
    files = {"dir/f": "f", "bin/run": ("x", "#!/bin/sh\n"), "empty": "", "l_abs": ("l", "/abs/dangling/target"),
             "l_up": ("l", "../../../outside"), "l_dir": ("l", "dir"), "l_dir_slash": ("l", "dir/"),
             "l_dot": ("l", "./dir//f"), "l_self": ("l", "."), "l_space": ("l", " sp ace "), "l_uni": ("l", "ünï/ço"),
             "l_long": ("l", long_target), "l_glob": ("l", "*"), "bytes.bin": bytes(range(256)) * 9}
    put(twin.root, files)
    a = twin.commit("with links")
    for name in list(files):
        p = twin.root / name
        if p.is_symlink() or p.is_file():
            p.unlink()
    put(twin.root, {"other": "o"})
    twin.commit("without")
    twin.dvx("checkout", a[1], check=True)
    assert tree_state(snapshot, twin.root) == git_archive(twin.root, a[0])
    targets = {e["path"]: e.get("target") for e in json.loads(twin.dvx("ls", "--json", check=True).stdout)}
    assert targets["l_abs"] == "/abs/dangling/target" and targets["l_long"] == long_target
    assert twin.dvx("status", "--json", check=True).stdout.count("[]") == 3


def test_checkout_leaves_files_that_did_not_change_untouched(twin: Twin) -> None:
    put(twin.root, {f"same/{i}": str(i) for i in range(50)} | {"changes": "1", "mode": "m", "l": ("l", "same/1")})
    twin.commit("c1")
    put(twin.root, {"changes": "2", "l": ("l", "same/2"), "added": "a"})
    os.chmod(twin.root / "mode", 0o755)
    twin.commit("c2")
    time.sleep(0.01)
    before = file_stats(twin.root)
    twin.dvx("checkout", "HEAD~1", check=True)
    after = file_stats(twin.root)
    for i in range(50):
        assert after[f"same/{i}"] == before[f"same/{i}"]
    assert after["mode"][0] == before["mode"][0]  # an exec-bit-only change is a chmod, not a rewrite
    assert os.readlink(twin.root / "l") == "same/1" and not (twin.root / "added").exists()


def test_checkout_carries_unrelated_local_changes_and_refuses_conflicting_ones(twin: Twin) -> None:
    put(twin.root, {"differs": "1", "same": "s", "exe": "e", "gone": "g"})
    twin.commit("c1")
    put(twin.root, {"differs": "2"})
    twin.commit("c2")
    # unrelated local changes: carried over by both tools
    put(twin.root, {"same": "local", "untracked": "u"})
    os.chmod(twin.root / "exe", 0o755)
    (twin.root / "gone").unlink()
    twin.dvx("checkout", "HEAD~1", check=True)
    assert (twin.root / "same").read_text() == "local" and (twin.root / "untracked").read_text() == "u"
    assert os.stat(twin.root / "exe").st_mode & 0o100 and not (twin.root / "gone").exists()
    assert (twin.root / "differs").read_text() == "1"
    twin.dvx("checkout", "main", check=True)
    # a local change to a path that differs between the revisions: refused, named, nothing changed
    put(twin.root, {"differs": "mine"})
    before = disk_state(twin.root)
    line = one_line_error(twin.dvx("checkout", "HEAD~1"))
    assert "differs" in line and disk_state(twin.root) == before
    assert git(twin.root, "checkout", "-q", "HEAD~1", check=False).returncode != 0  # git refuses too


def _local_change_case(tmp: Path, run_dvx: RunDvx, v0: dict[str, Any], v1: dict[str, Any],
                       local: Callable[[Path], None]) -> tuple[subprocess.CompletedProcess[str], int, Path]:
    """Same two commits in a git repo and a dvx repo, HEAD at v1, the same local edit, checkout of v0 in both."""
    results = []
    for tool in ("git", "dvx"):
        root = tmp / tool
        root.mkdir()
        if tool == "git":
            git(root, "init", "-q", "-b", "main")
        else:
            Repo.init(root).close()
        for i, files in enumerate((v0, v1)):
            for p in list(root.iterdir()):
                if p.name not in (".git", ".dvx"):
                    shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
            put(root, files)
            if tool == "git":
                git(root, "add", "-A")
                git(root, "commit", "-q", "-m", f"v{i}")
            else:
                api(root, lambda r, i=i: r.commit(f"v{i}"))
        local(root)
        results.append(root)
    g = git(results[0], "checkout", "-q", "HEAD~1", check=False)
    d = run_dvx(["checkout", "HEAD~1"], results[1])
    return d, g.returncode, results[1]


def test_checkout_restores_a_locally_deleted_file_like_git(tmp_path: Path, run_dvx: RunDvx) -> None:
    d, git_rc, root = _local_change_case(tmp_path, run_dvx, {"a": "1", "b": "b"}, {"a": "2", "b": "b"},
                                         lambda r: (r / "a").unlink())
    assert git_rc == 0
    assert d.returncode == 0, d.stderr
    assert (root / "a").read_text() == "1"


def test_forced_checkout_deletes_untracked_files_in_the_way_like_git(tmp_path: Path, run_dvx: RunDvx) -> None:
    """``git checkout --force`` throws away a folder of untracked files where the target has a file, and an
    untracked file where it has a folder; without --force both refuse. dvx does the same."""
    for tool in ("git", "dvx"):
        root = tmp_path / tool
        if tool == "git":
            root.mkdir()
            git(root, "init", "-q", "-b", "main")
        else:
            Repo.init(root).close()

        def commit(msg: str, tool: str = tool, root: Path = root) -> None:
            if tool == "git":
                git(root, "add", "-A")
                git(root, "commit", "-q", "-m", msg)
            else:
                api(root, lambda repo: repo.commit(msg))

        put(root, {"d": "file", "f/y": "y"})
        commit("v0")
        (root / "d").unlink()
        shutil.rmtree(root / "f")
        put(root, {"b": "b"})
        commit("v1")
        put(root, {"d/untracked": "u", "d/deeper/u2": "u2", "f": "untracked file", "other": "kept"})
        if tool == "git":
            assert git(root, "checkout", "-q", "HEAD~1", check=False).returncode != 0
            git(root, "checkout", "-q", "--force", "HEAD~1")
        else:
            r = run_dvx(["checkout", "HEAD~1"], root)
            assert r.returncode != 0 and "--force to delete them" in one_line_error(r)
            assert (root / "d" / "untracked").read_text() == "u" and (root / "f").read_text() == "untracked file"
            r = run_dvx(["checkout", "--force", "HEAD~1"], root)
            assert r.returncode == 0, r.stderr
        assert (root / "d").read_text() == "file", tool
        assert (root / "f" / "y").read_text() == "y", tool
        assert (root / "other").read_text() == "kept", tool  # untracked files not in the way stay


# --- .dvxignore vs .gitignore ----------------------------------------------------------------------------

IGNORE_RULES = "\n".join([
    "*.log", "!keep.log", "build/", "/root.dat", "docs/*.md", "a/**/b", "keepdir/*", "!keepdir/keep", "\\#hash",
    "trail\\ ", "out/", "ex/", "!ex/i/keep", "lnk/", "dangling_*", "",
])

IGNORE_TREE = ["a.log", "keep.log", "sub/a.log", "sub/keep.log", "root.dat", "sub/root.dat", "build/x", "sub/build/x",
               "docs/r.md", "docs/api/r.md", "a/b/f", "a/x/y/b/f", "a/bb/f", "keepdir/keep", "keepdir/other",
               "#hash", "trail ", "trail", "sp ace", "out/x", "sub/out", "ex/i/keep", "ex/i/drop", "lnkdir/f",
               "Cap.LOG"]


def test_dvxignore_matches_gitignore(twin: Twin) -> None:
    put(twin.root, {p: p for p in IGNORE_TREE} | {"lnk": ("l", "lnkdir"), "dangling_x": ("l", "nowhere"),
                                                   "build_file": "f"})
    put(twin.root, {".gitignore": IGNORE_RULES, ".dvxignore": IGNORE_RULES})
    (twin.root / "empty" / "dir").mkdir(parents=True)  # empty folders: nothing for either tool
    assert dvx_status(twin.run_dvx, twin.root) == git_status(twin.root)


def test_nested_dvxignore_applies_to_its_folder_like_git(twin: Twin) -> None:
    put(twin.root, {"nested/n.tmp": "1", "nested/inner/n.tmp": "1", "top.tmp": "1", "nested/ok": "1"})
    rules = "*.tmp\n!inner/n.tmp\n"
    put(twin.root, {"nested/.gitignore": rules, "nested/.dvxignore": rules})
    assert dvx_status(twin.run_dvx, twin.root) == git_status(twin.root)


# --- odd files ---------------------------------------------------------------------------------------------


def test_non_utf8_file_name_is_one_line_error_naming_it(twin: Twin) -> None:
    put(twin.root, {"ok": "1"})
    twin.commit("c1")
    with open(os.path.join(os.fsencode(twin.root), b"bad\xff.txt"), "wb") as fh:
        fh.write(b"x")
    before = disk_state(twin.root)
    for args in (["status"], ["commit", "-m", "x"], ["diff"]):
        line = one_line_error(twin.dvx(*args))
        assert "UTF-8" in line and "bad\\xff.txt" in line, line
    assert disk_state(twin.root) == before


def test_non_utf8_name_matched_by_dvxignore_is_skipped(twin: Twin) -> None:
    put(twin.root, {"ok": "1", ".dvxignore": "bad*\n", ".gitignore": "bad*\n"})
    with open(os.path.join(os.fsencode(twin.root), b"bad\xff.txt"), "wb") as fh:
        fh.write(b"x")
    assert dvx_status(twin.run_dvx, twin.root) == git_status(twin.root)  # (fixed in 9d5378a: keep as regression)
    twin.dvx("commit", "-m", "c1", check=True)


def test_fifo_is_skipped_with_a_warning_and_empty_folders_are_not_tracked(twin: Twin) -> None:
    put(twin.root, {"a": "1"})
    os.mkfifo(twin.root / "fifo")
    (twin.root / "empty" / "deeper").mkdir(parents=True)
    r = twin.dvx("status", "--json", check=True)
    assert json.loads(r.stdout)["added"] == ["a"] and git_status(twin.root)["added"] == ["a"]
    assert "fifo" in r.stderr and "warning" in r.stderr
    r = twin.dvx("commit", "-m", "c1", check=True)
    assert "fifo" in r.stderr
    assert [e["path"] for e in json.loads(twin.dvx("ls", "--json", check=True).stdout)] == ["a"]
    r = twin.dvx("commit", "-m", "only an empty folder more", check=False)  # nothing to commit
    assert r.stderr.splitlines()[-1].startswith("dvx: error: nothing to commit") and "Traceback" not in r.stderr


def test_file_changed_while_committed_fails_cleanly(tmp_path: Path, run_dvx: RunDvx) -> None:
    root = tmp_path / "r"
    Repo.init(root).close()
    big = root / "big"
    big.write_bytes(os.urandom(8 << 20))
    writer = subprocess.Popen([sys.executable, "-c", (
        "import os,sys,time\n"
        "f=open(sys.argv[1],'r+b'); t=time.time(); n=0\n"
        "while time.time()-t<8:\n"
        "    f.seek(4<<20); f.write(os.urandom(4096)); f.flush(); n+=1\n"
        "    if n==1: open(sys.argv[2],'w').close()\n"), str(big), str(tmp_path / "started")])
    try:
        while not (tmp_path / "started").exists():
            time.sleep(0.01)
        r = run_dvx(["commit", "-m", "racing"], root)
    finally:
        writer.kill()
        writer.wait()
    if r.returncode != 0:
        line = one_line_error(r)
        assert "big" in line and "changed" in line
        one_line_error(run_dvx(["log"], root))  # no commit was made
    run_dvx(["commit", "-m", "calm", "--allow-empty"], root, check=True)
    run_dvx(["fsck"], root, check=True)


# --- replay of a real history --------------------------------------------------------------------------

# Indices into the bundle's 72 commits, all after its big reorganisation (commit 11) so that the set-up stays
# cheap. 15->16: 615 exec-bit-only changes; 16->50: 376 added, 230 deleted, 209 modified, 11 file<->symlink,
# 12 exact renames; 50->51: 24 file<->symlink, 124 modified; 51->70: the light theme (2,256 added); 70->71:
# symlink fixes. 71 has 11,012 files and links (5,829 symlinks); 71 vs 15 differs in 604 exec bits.
SAMPLE = (15, 16, 50, 51, 70, 71)


@dataclass
class Replay:
    root: Path
    commits: list[str]  # every git commit of the bundle, oldest first
    ids: dict[int, str]  # sample index -> dvx commit id
    run_dvx: RunDvx
    dirty: bool = False  # a test changed the working tree or HEAD; the next reset() restores them

    def sha(self, i: int) -> str:
        return self.commits[i]

    def dvx(self, *args: str, check: bool | None = None) -> subprocess.CompletedProcess[str]:
        return self.run_dvx(list(args), self.root, check=check)

    def reset(self) -> None:
        """Back to the last sample commit on branch main, clean for both tools."""
        if not self.dirty:
            return
        self.dirty = False
        self.dvx("checkout", "--force", "main", check=True)
        for rec in git_out(self.root, "status", "--porcelain=v1", "-z", "-uall").split("\0"):
            if rec.startswith("?? "):
                path = self.root / rec[3:]
                path.unlink()
                try:
                    os.removedirs(path.parent)  # the folders it made, up to the first one not empty
                except OSError:
                    pass
        assert git_status(self.root) == {"added": [], "modified": [], "deleted": []}


@pytest.fixture(scope="module")
def replay(tmp_path_factory: pytest.TempPathFactory, run_dvx: RunDvx) -> Replay:
    if not BUNDLE.is_file():
        pytest.skip(f"replay bundle not found at {BUNDLE}")
    root = tmp_path_factory.mktemp("replay") / "work"
    subprocess.run(["git", "clone", "-q", "--no-checkout", str(BUNDLE), str(root)], check=True)
    commits = git_out(root, "rev-list", "--reverse", "--first-parent", "HEAD").split()
    if len(commits) <= max(SAMPLE):
        pytest.skip("replay bundle has fewer commits than the sample needs")
    (root / ".git" / "info" / "exclude").write_text("/.dvx/\n")
    run_dvx(["init", "."], root, check=True)
    ids = {}
    for i in SAMPLE:
        git(root, "checkout", "-q", "-f", commits[i])
        doc = json.loads(run_dvx(["commit", "-m", f"git {commits[i]}", "--allow-empty", "--json"], root, check=True).stdout)
        ids[i] = doc["id"]
    return Replay(root, commits, ids, run_dvx)


def sample_pairs() -> list[tuple[int, int]]:
    return list(zip(SAMPLE, SAMPLE[1:])) + [(SAMPLE[0], SAMPLE[-1]), (SAMPLE[-1], SAMPLE[0])]


@needs_bundle
def test_replay_diff_matches_git_name_status(replay: Replay) -> None:
    for a, b in sample_pairs():
        d = dvx_diff(replay.run_dvx, replay.root, replay.ids[a], replay.ids[b])
        assert without_renames(d) == git_name_status(replay.root, replay.sha(a), replay.sha(b)), (a, b)
        # Every dvx rename is an exact move, and there are as many as git's exact (R100) renames.
        exact = git_exact_renames(replay.root, replay.sha(a), replay.sha(b))
        assert len(d["renamed"]) == len(exact), (a, b)
        for c in d["renamed"]:
            assert c["old"]["id"] == c["new"]["id"] and c["old"]["kind"] == c["new"]["kind"]


@needs_bundle
def test_replay_ls_matches_git_ls_tree(replay: Replay) -> None:
    for i in (SAMPLE[0], SAMPLE[-1]):
        rows = {e["path"]: e for e in json.loads(replay.dvx("ls", replay.ids[i], "--json", check=True).stdout)}
        tree = {}
        for rec in git_out(replay.root, "ls-tree", "-r", "-z", replay.sha(i)).split("\0"):
            if rec:
                meta, path = rec.split("\t", 1)
                mode, _, oid = meta.split()
                tree[path] = (mode, oid)
        assert set(rows) == set(tree)
        blobs = subprocess.run(["git", "cat-file", "--batch"], cwd=replay.root, capture_output=True, check=True,
                               input="".join(oid + "\n" for _, oid in tree.values()).encode()).stdout
        pos = 0
        for path, (mode, _) in tree.items():
            nl = blobs.index(b"\n", pos)
            n = int(blobs[pos:nl].split()[2])
            data = blobs[nl + 1 : nl + 1 + n]
            pos = nl + 2 + n
            e = rows[path]
            assert (e["kind"], e["executable"], e["size"]) == (
                "symlink" if mode == "120000" else "file", mode == "100755", len(data)), path
            if mode == "120000":
                assert e["target"] == data.decode(), path
            else:
                assert e["id"] == blake3.blake3(data).hexdigest(), path


@needs_bundle
def test_replay_log_of_paths_matches_git_log(replay: Replay) -> None:
    changed = {(a, b): _changed(replay, a, b) for a, b in zip(SAMPLE, SAMPLE[1:])}
    paths: set[str] = {"korla/apps", "korla-light", "README.md", "no/such/path"}
    for a, b in zip(SAMPLE, SAMPLE[1:]):
        ns = git_name_status(replay.root, replay.sha(a), replay.sha(b))
        paths.update(sorted(ns["modified"] or ns["added"])[:1])
    git_parent = {c: p for p, c in zip(replay.commits, replay.commits[1:])}
    for path in sorted(paths):
        touched = set(git_out(replay.root, "log", "--format=%H", replay.sha(SAMPLE[-1]), "--", path).split())
        expected = []
        for k in reversed(range(len(SAMPLE))):
            i = SAMPLE[k]
            if k == 0:
                hit = bool(git_out(replay.root, "ls-tree", replay.sha(i), "--", path).strip())
            elif git_parent[replay.sha(i)] == replay.sha(SAMPLE[k - 1]):
                hit = replay.sha(i) in touched  # consecutive in git: git log's own answer
            else:
                hit = any(p == path or p.startswith(path + "/") for p in changed[SAMPLE[k - 1], i])
            if hit:
                expected.append(replay.ids[i])
        got = [e["id"] for e in json.loads(replay.dvx("log", "--json", "--", path, check=True).stdout)]
        assert got == expected, path


def _changed(replay: Replay, a: int, b: int) -> set[str]:
    return set().union(*git_name_status(replay.root, replay.sha(a), replay.sha(b)).values())


def _pick(replay: Replay, mode: str, n: int, exclude: Iterable[str] = ()) -> list[str]:
    skip = set(exclude)
    out = []
    for rec in git_out(replay.root, "ls-files", "-s", "-z").split("\0"):
        if rec:
            meta, path = rec.split("\t", 1)
            if meta.split()[0] == mode and path not in skip and "/" in path:
                out.append(path)
    return out[:: max(1, len(out) // (n * 3))][:n]


@needs_bundle
def test_replay_status_after_edits_matches_git_status(replay: Replay) -> None:
    replay.reset()
    replay.dirty = True
    root = replay.root
    files = _pick(replay, "100644", 6)
    links = _pick(replay, "120000", 4)
    (root / files[0]).write_bytes((root / files[0]).read_bytes() + b"\n")  # content
    os.chmod(root / files[1], 0o755)  # exec bit only
    os.unlink(root / files[2])
    os.symlink("../elsewhere.svg", root / files[2])  # file -> symlink
    os.unlink(root / files[3])  # deleted file
    os.utime(root / files[4], ns=(10**9, 10**9))  # mtime only: no change
    old = os.readlink(root / links[0])
    os.unlink(root / links[0])
    (root / links[0]).write_text(old)  # symlink -> file holding its old target
    os.unlink(root / links[1])
    os.symlink("/absolute/dangling", root / links[1])  # retargeted
    os.unlink(root / links[2])  # deleted link
    put(root, {"new/deep/file": "n", "new-top": ("l", "korla")})
    expected = git_status(root)
    assert len(expected["modified"]) == 5 and len(expected["deleted"]) == 2 and len(expected["added"]) == 2
    assert dvx_status(replay.run_dvx, root) == expected
    replay.reset()  # dvx's forced checkout restores what git considers clean (reset checks git status)
    assert dvx_status(replay.run_dvx, root) == {"added": [], "modified": [], "deleted": []}


@needs_bundle
def test_replay_checkout_with_local_changes_like_git(replay: Replay) -> None:
    replay.reset()
    replay.dirty = True
    root, last, prev = replay.root, SAMPLE[-1], SAMPLE[-2]
    differ = sorted(_changed(replay, prev, last))
    same = [p for p in _pick(replay, "100644", 3) if p not in differ]
    mine = differ[0]
    (root / same[0]).write_text("local edit\n")
    os.chmod(root / same[1], 0o755)
    replay.dvx("checkout", replay.ids[prev], check=True)  # carried over, as git does
    assert (root / same[0]).read_text() == "local edit\n" and os.stat(root / same[1]).st_mode & 0o100
    replay.dvx("checkout", "main", check=True)
    if (root / mine).is_symlink():
        os.unlink(root / mine)
        os.symlink("local-edit", root / mine)
    else:
        (root / mine).write_text("local edit\n")
    before = stat_state(root)
    line = one_line_error(replay.dvx("checkout", replay.ids[prev]))
    assert mine in line and stat_state(root) == before
    assert git(root, "checkout", "-q", replay.sha(prev), check=False).returncode != 0  # git refuses too
    replay.reset()


@needs_bundle
def test_replay_checkout_between_distant_revisions_is_exact_and_minimal(replay: Replay, snapshot) -> None:
    replay.reset()
    replay.dirty = True
    root = replay.root
    archives = {i: git_archive(root, replay.sha(i)) for i in (SAMPLE[0], SAMPLE[-1])}
    for src, dst in ((SAMPLE[-1], SAMPLE[0]), (SAMPLE[0], SAMPLE[-1])):
        src_tree, dst_tree = archives[src], archives[dst]
        before = file_stats(root)
        replay.dvx("checkout", replay.ids[dst], check=True)
        assert tree_state(snapshot, root) == dst_tree, (src, dst)
        after = file_stats(root)
        unchanged = [p for p, v in dst_tree.items() if v[0] == "f" and src_tree.get(p) == v]
        assert len(unchanged) > 1000
        moved = [p for p in unchanged if after[p] != before[p]]
        assert not moved, moved[:5]
        mode_only = [p for p, v in dst_tree.items()
                     if v[0] == "f" and p in src_tree and src_tree[p][0] == "f" and src_tree[p][1:] == (not v[1], v[2])]
        assert len(mode_only) > 500
        rewritten = [p for p in mode_only if after[p][0] != before[p][0]]  # a chmod keeps the inode
        assert not rewritten, rewritten[:5]
    replay.reset()


@needs_bundle
@pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed")
def test_replay_noop_status_reads_no_file(replay: Replay, dvx_argv: list[str], cli_env) -> None:
    replay.reset()
    time.sleep(1.1)  # files written within a second of being hashed are re-read (racy-git rule): let them age
    replay.dvx("status", check=True)  # refresh the stat cache
    trace = replay.root.parent / "status.strace"
    subprocess.run(["strace", "-f", "-qq", "-e", "trace=open,openat,openat2", "-o", str(trace), *dvx_argv, "status"],
                   cwd=replay.root, env=cli_env(None), check=True, capture_output=True)
    opened = []
    for line in trace.read_text(errors="replace").splitlines():
        if '"' not in line or "O_DIRECTORY" in line or "ENOENT" in line:
            continue
        path = line.split('"')[1]
        if not path.startswith("/"):
            path = str(replay.root / path)
        if path.startswith(str(replay.root) + "/") and not path.startswith(str(replay.root / ".dvx")):
            opened.append(path)
    assert not opened, opened[:5]


# --- log's arguments: several revisions, paths without --, folder-only paths ------------------------------


def test_log_arguments_are_read_like_git(twin: Twin) -> None:
    """Revisions first, then paths that exist here; several revisions give the union of their histories; a
    path ending in / matches only a folder; an argument that is neither is git's "ambiguous argument"."""
    put(twin.root, {"f": "1", "d/x": "1"})
    twin.commit("c1")
    git(twin.root, "branch", "side")
    api(twin.root, lambda r: r.create_branch("side"))
    put(twin.root, {"f": "2"})
    twin.commit("c2 main")
    git(twin.root, "checkout", "-q", "side")  # the same folder is both tools' working tree
    api(twin.root, lambda r: r.checkout("side"))
    put(twin.root, {"d/x": "2"})
    twin.commit("c3 side")
    git(twin.root, "checkout", "-q", "main")
    api(twin.root, lambda r: r.checkout("main"))

    def same(*args: str) -> None:  # as sets: commits made in the same second are ordered apart by the tools
        expected = {twin.ids[h] for h in git_out(twin.root, "log", "--format=%H", *args).split()}
        got = {e["id"] for e in json.loads(twin.dvx("log", "--json", *args, check=True).stdout)}
        assert got == expected, args

    same("main", "side")
    same("side", "main", "--", "d")
    same("f")  # an existing file, no --
    same("side", "d")
    same("--", "f/")  # a file does not match a folder-only path
    same("side", "--", "d/")
    for args in (["main", "no-such"], ["f", "side"]):
        r = twin.dvx("log", *args, check=False)
        assert r.returncode != 0 and "ambiguous argument" in one_line_error(r), r
        assert git(twin.root, "log", *args, check=False).returncode != 0


def test_a_full_id_names_its_commit_even_when_a_branch_has_that_name(linear: Twin) -> None:
    """git: a full hash means that object (the ref of the same name is ignored, with a warning)."""
    head = json.loads(linear.dvx("log", "--json", "-n", "1", check=True).stdout)[0]["id"]
    api(linear.root, lambda r: r.create_branch(head, "HEAD~2"))
    shown = json.loads(linear.dvx("log", "--json", "-n", "1", head, check=True).stdout)[0]["id"]
    assert shown == head
    assert json.loads(linear.dvx("log", "--json", "-n", "1", head[:12], check=True).stdout)[0]["id"] == head
