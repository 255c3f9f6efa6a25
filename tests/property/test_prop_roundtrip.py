"""Property tests: any tree commits and checks out byte-exact; diff equals the set difference of trees."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Union

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dvx.diff import diff_flat, differs
from dvx.errors import BadPath
from dvx.ids import hash_bytes
from dvx.model import FILE, LINK, Entry, check_name, link_entry
from dvx.repo import Repo

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                          HealthCheck.too_slow])


def acceptable(name: str) -> bool:
    """Names the OS and dvx accept in a working tree (dvx's own rule, plus its reserved prefixes)."""
    if name.lower().startswith((".dvx", ".git")):
        return False  # metadata dirs, .dvxignore, dvx's temp-file names
    try:
        check_name(name)
    except BadPath:
        return False
    return True


NAME = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="/\0"), min_size=1,
               max_size=10).filter(acceptable)
TARGET = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"), min_size=1, max_size=40)


class File:
    def __init__(self, data: bytes, executable: bool) -> None:
        self.data, self.executable = data, executable


class Link:
    def __init__(self, target: str) -> None:
        self.target = target


Node = Union[File, Link, dict]  # noqa: UP007 - a dict maps names to nodes

LEAF = st.one_of(
    st.builds(File, st.binary(max_size=300), st.booleans()),
    st.builds(File, st.sampled_from([b"", b"same"]), st.booleans()),  # dedupe across paths
    st.builds(File, st.integers(60_000, 70_000).map(lambda n: b"x" * n), st.booleans()),  # zstd-compressed
    st.builds(Link, TARGET | st.sampled_from(["/etc/hostname", "../../escape", "..", "a", "no/such/file"])),
)
NODE = st.recursive(LEAF, lambda children: st.dictionaries(NAME, children, min_size=1, max_size=4), max_leaves=12)
TREES = st.dictionaries(NAME, NODE, min_size=1, max_size=6)


def write_tree(root: Path, tree: dict[str, Any]) -> None:
    for name, node in tree.items():
        path = root / name
        if isinstance(node, dict):
            path.mkdir()
            write_tree(path, node)
        elif isinstance(node, Link):
            os.symlink(node.target, path)
        else:
            path.write_bytes(node.data)
            path.chmod(0o755 if node.executable else 0o644)


def expected(tree: dict[str, Any], prefix: str = "") -> dict[str, tuple[Any, ...]]:
    """What a checkout must reproduce: files (bytes, exec bit) and links (target). Empty dirs are not tracked."""
    out: dict[str, tuple[Any, ...]] = {}
    for name, node in tree.items():
        if isinstance(node, dict):
            out.update(expected(node, f"{prefix}{name}/"))
        elif isinstance(node, Link):
            out[prefix + name] = ("l", node.target)
        else:
            out[prefix + name] = ("f", node.executable, node.data)
    return out


def on_disk(root: Path) -> dict[str, tuple[Any, ...]]:
    out: dict[str, tuple[Any, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel = Path(dirpath).relative_to(root).as_posix()
        prefix = "" if rel == "." else rel + "/"
        if not prefix:
            dirnames.remove(".dvx")
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            if path.is_symlink():
                out[prefix + name] = ("l", os.readlink(path))
            elif path.is_file():
                out[prefix + name] = ("f", bool(path.stat().st_mode & 0o100), path.read_bytes())
    return out


def clear_worktree(root: Path) -> None:
    for child in root.iterdir():
        if child.name == ".dvx":
            continue
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


# Few names, so that the two trees often disagree on the kind of the same path (file, folder, symlink).
SMALL_NAME = st.sampled_from(["a", "b", "c"])
SMALL_LEAF = st.one_of(
    st.builds(File, st.sampled_from([b"", b"a", b"b", b"c"]), st.booleans()),
    st.builds(Link, st.sampled_from(["a", "b", "c", "a/b", "../a", "/tmp", "."])),
)
SMALL_NODE = st.recursive(SMALL_LEAF, lambda ch: st.dictionaries(SMALL_NAME, ch, min_size=1, max_size=3),
                          max_leaves=8)
SMALL_TREES = st.dictionaries(SMALL_NAME, SMALL_NODE, min_size=1, max_size=3)


def new_repo(tmp_path: Path) -> Repo:
    return Repo.init(tempfile.mkdtemp(dir=tmp_path))


def commit_both(repo: Repo, first: dict[str, Any], second: dict[str, Any]) -> tuple[str, str]:
    """Commit the tree ``first``, then (in its place) ``second``; the two commit ids. The working tree is left
    holding ``second``, clean."""
    write_tree(repo.root, first)
    a = repo.commit("first")
    clear_worktree(repo.root)
    write_tree(repo.root, second)
    return a, repo.commit("second", allow_empty=True)


@SETTINGS
@given(first=TREES, second=TREES)
def test_any_tree_commits_and_checks_out_byte_exact(tmp_path: Path, first: dict, second: dict) -> None:  # type: ignore[type-arg]
    round_trip(tmp_path, first, second)


@SETTINGS
@given(first=SMALL_TREES, second=SMALL_TREES)
def test_checkout_between_trees_that_change_kinds(tmp_path: Path, first: dict, second: dict) -> None:  # type: ignore[type-arg]
    round_trip(tmp_path, first, second)


def round_trip(tmp_path: Path, first: dict[str, Any], second: dict[str, Any]) -> None:
    """Commit ``first``, then ``second``; check out the first commit, then the branch: both byte-exact."""
    repo = new_repo(tmp_path)
    try:
        a, _ = commit_both(repo, first, second)
        repo.checkout(a)
        assert on_disk(repo.root) == expected(first)
        assert not repo.status()
        repo.checkout("main")
        assert on_disk(repo.root) == expected(second)
        assert not repo.status()
        assert repo.head() == ("main", repo.branches()["main"])
        assert repo.fsck().ok
    finally:
        repo.close()
        shutil.rmtree(repo.root)


@SETTINGS
@given(first=TREES, second=TREES)
def test_diff_of_two_commits_is_the_set_difference_of_their_trees(tmp_path: Path, first: dict, second: dict) -> None:  # type: ignore[type-arg]
    repo = new_repo(tmp_path)
    try:
        a, b = commit_both(repo, first, second)
        old, new = repo.trees.flatten(repo.read_commit(a).tree), repo.trees.flatten(repo.read_commit(b).tree)
        assert set(old) == set(expected(first)) and set(new) == set(expected(second))
        d = repo.diff(a, b)
        assert {c.path for c in d.added} | {c.path for c in d.renamed} == set(new) - set(old)
        assert {c.path for c in d.deleted} | {c.old_path for c in d.renamed} == set(old) - set(new)
        assert {c.path for c in d.modified} == {p for p in set(old) & set(new) if differs(old[p], new[p])}
        reverse = repo.diff(b, a)
        assert {c.path for c in reverse.modified} == {c.path for c in d.modified}
        assert not repo.diff(a, a) and not repo.diff(b, b)
    finally:
        repo.close()
        shutil.rmtree(repo.root)


# --- diff_flat, pure -------------------------------------------------------------------------------------

PATHS = st.sampled_from(["a", "b", "c", "d/a", "d/b", "d/e/f", "x y", "ü"])
ENTRIES = st.one_of(
    st.builds(lambda c, x: Entry("n", FILE, hash_bytes(c), len(c), x), st.sampled_from([b"1", b"2", b"3"]),
              st.booleans()),
    st.builds(lambda t: link_entry("n", t), st.sampled_from(["1", "2", "t"])),
)
FLAT = st.dictionaries(PATHS, ENTRIES, max_size=8)


@settings(max_examples=300, deadline=None)
@given(old=FLAT, new=FLAT, renames=st.booleans())
def test_diff_flat_partitions_the_paths(old: dict[str, Entry], new: dict[str, Entry], renames: bool) -> None:
    d = diff_flat(old, new, renames=renames)
    added, deleted = {c.path for c in d.added}, {c.path for c in d.deleted}
    renamed_new, renamed_old = [c.path for c in d.renamed], [c.old_path for c in d.renamed]
    assert added | set(renamed_new) == set(new) - set(old)
    assert deleted | set(renamed_old) == set(old) - set(new)
    assert not added & set(renamed_new) and not deleted & set(renamed_old)
    assert len(set(renamed_old)) == len(renamed_old) and len(set(renamed_new)) == len(renamed_new)
    assert {c.path for c in d.modified} == {p for p in set(old) & set(new) if differs(old[p], new[p])}
    for c in d.renamed:
        assert c.old_path is not None
        assert (old[c.old_path].kind, old[c.old_path].id) == (new[c.path].kind, new[c.path].id)
    # Pairing is maximal: nothing left as added could still have been paired with something left as deleted.
    assert not {(new[p].kind, new[p].id) for p in added} & {(old[p].kind, old[p].id) for p in deleted} or not renames
    if not renames:
        assert d.renamed == []
    assert bool(d) == (old != new and any(
        p not in new or p not in old or differs(old[p], new[p]) for p in set(old) | set(new)))
    assert d.stats()["added"] + d.stats()["renamed"] == len(set(new) - set(old))
    assert all(c.new is not None and c.new.kind in (FILE, LINK) for c in d.added)


@SETTINGS
@given(trees=st.lists(SMALL_TREES, min_size=3, max_size=5), back=st.integers(0, 10))
def test_commits_on_patched_listings_equal_a_full_build(tmp_path: Path, trees: list[dict[str, Any]], back: int) -> None:
    """Commits build on HEAD's listing from the stat cache, and a non-forced checkout patches that listing for
    its target: after any sequence of commits and checkouts, each commit's tree is what a full build of the
    working tree gives, and status is clean."""
    from dvx.trees import build

    repo = new_repo(tmp_path)
    try:
        commits = []
        for i, tree in enumerate(trees):
            clear_worktree(repo.root)
            write_tree(repo.root, tree)
            commits.append(repo.commit(f"c{i}", allow_empty=True))
            listing = repo._work_entries()[0]  # noqa: SLF001 - a fresh scan, hashed
            with repo.store.writer() as w:
                assert build(w, listing) == repo.read_commit(commits[-1]).tree
            assert not repo.status()
            if i == 1:
                repo.checkout(commits[back % len(commits)])  # later commits are made on the patched listing
                assert on_disk(repo.root) == expected(trees[back % len(commits)])
                assert not repo.status()
        assert repo.fsck().ok
    finally:
        repo.close()
        shutil.rmtree(repo.root)


def _clashes(path: str, paths: dict[str, Any]) -> bool:
    """``path`` cannot stand beside ``paths``: it is a folder of one of them, or one of them is its folder."""
    return any(q.startswith(path + "/") or path.startswith(q + "/") for q in paths)


@SETTINGS
@given(first=SMALL_TREES, second=SMALL_TREES)
def test_restoring_every_path_of_an_old_commit_gives_its_files_and_keeps_the_rest(
    tmp_path: Path, first: dict, second: dict  # type: ignore[type-arg]
) -> None:
    """`checkout A -- '*'` on a clean working tree of B: A's files exactly, plus those of B's files that can stand
    beside them (git's overlay rule: a restore deletes only what is in the way); HEAD stays at B."""
    repo = new_repo(tmp_path)
    try:
        a, b = commit_both(repo, first, second)
        repo.restore(a, ["*"])
        want = expected(first)
        want.update({p: v for p, v in expected(second).items() if p not in want and not _clashes(p, want)})
        assert on_disk(repo.root) == want
        assert repo.head() == ("main", b)
        assert bool(repo.status()) == (want != expected(second))
        assert repo.restore(a, ["*"]) == []  # nothing left to write
    finally:
        repo.close()
        shutil.rmtree(repo.root)


def _touched(d: Any) -> set[str]:
    """Every path a diff names, on either side."""
    out = {c.path for c in d.added} | {c.path for c in d.deleted} | {c.path for c in d.modified}
    return out | {c.path for c in d.renamed} | {c.old_path for c in d.renamed}


@SETTINGS
@given(first=SMALL_TREES, second=SMALL_TREES, data=st.data())
def test_diff_of_some_paths_is_the_whole_diff_cut_to_them(tmp_path: Path, first: dict, second: dict,  # type: ignore[type-arg]
                                                          data: st.DataObject) -> None:
    repo = new_repo(tmp_path)
    try:
        a, b = commit_both(repo, first, second)
        paths = set(expected(first)) | set(expected(second))
        folders = {p.rsplit("/", i)[0] for p in paths for i in range(1, p.count("/") + 1)}
        spec = data.draw(st.lists(st.sampled_from(sorted(paths | {f + "/" for f in folders} | {"zz"})), max_size=2))

        def under(q: str) -> bool:
            return any(q == s or q.startswith(s.rstrip("/") + "/") for s in spec)

        whole = _touched(repo.diff(a, b))
        assert _touched(repo.diff(a, b, paths=spec)) == {q for q in whole if under(q)}
        clear_worktree(repo.root)
        write_tree(repo.root, first)  # the working tree against HEAD (= b) takes the other road
        assert _touched(repo.diff(paths=spec)) == {q for q in _touched(repo.diff()) if under(q)}
    finally:
        repo.close()
        shutil.rmtree(repo.root)
