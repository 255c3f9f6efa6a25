"""Table-driven three-way merge of trees: every combination of unchanged / modified / deleted / added on each
side, exec-bit and symlink changes, file against directory — on trees stored in a real repository."""

from __future__ import annotations

from typing import Any

import pytest

from dvx.merge import (
    BOTH_ADDED,
    BOTH_MODIFIED,
    CONFLICT_HINT,
    DELETED_MODIFIED,
    FILE_DIRECTORY,
    MODIFIED_DELETED,
    TreeMerger,
    conflict_message,
    describe_change,
    merge_trees,
)
from dvx.model import MAX_LEAF_ENTRIES
from dvx.repo import Repo

# Directory codes: what "p" holds when it is a directory.
DIRS: dict[str, dict[str, str]] = {
    "d1": {"inner": "f1"},
    "d2": {"inner": "f2"},
    "d3": {"other": "f1"},
    "d4": {"inner": "f1", "new": "f1"},
    "d5": {"inner": "f1", "x": "f1"},
    "d6": {"inner": "f3"},
}

# (name, base, ours, theirs, expected): expected is the clean result at "p" (a code, None for absent, or a
# {path: code} dict), or the list of conflicts [(path, kind)].
ROWS: list[tuple[str, str | None, str | None, str | None, Any]] = [
    # base: a file
    ("unchanged", "f1", "f1", "f1", "f1"),
    ("ours-modified", "f1", "f2", "f1", "f2"),
    ("theirs-modified", "f1", "f1", "f2", "f2"),
    ("same-change", "f1", "f2", "f2", "f2"),
    ("both-modified", "f1", "f2", "f3", [("p", BOTH_MODIFIED)]),
    ("ours-deleted", "f1", None, "f1", None),
    ("theirs-deleted", "f1", "f1", None, None),
    ("both-deleted", "f1", None, None, None),
    ("modified-deleted", "f1", "f2", None, [("p", MODIFIED_DELETED)]),
    ("deleted-modified", "f1", None, "f2", [("p", DELETED_MODIFIED)]),
    # exec bit
    ("ours-chmod", "f1", "x1", "f1", "x1"),
    ("theirs-chmod", "f1", "f1", "x1", "x1"),
    ("same-chmod", "f1", "x1", "x1", "x1"),
    ("theirs-unchmod", "x1", "x1", "f1", "f1"),
    # as git: content and exec bit merge apart; only two different contents clash
    ("chmod-vs-modified", "f1", "x1", "f2", "x2"),
    ("chmod-vs-modified-x", "f1", "x1", "x2", "x2"),
    ("modified-vs-chmod", "f1", "f2", "x1", "x2"),
    ("unchmod-vs-modified", "x1", "f1", "x2", "f2"),
    ("same-edit-vs-chmod", "f1", "f2", "x2", "x2"),
    ("chmod-vs-different-edits", "f1", "x2", "f3", [("p", BOTH_MODIFIED)]),
    ("chmod-vs-deleted", "f1", "x1", None, [("p", MODIFIED_DELETED)]),
    ("chmod-vs-dir", "f1", "x1", "d1", [("p", FILE_DIRECTORY)]),
    ("dir-vs-chmod", "f1", "d1", "x1", [("p", FILE_DIRECTORY)]),
    ("deleted-vs-chmod", "f1", None, "x1", [("p", DELETED_MODIFIED)]),
    # symlinks
    ("file-to-link", "f1", "l1", "f1", "l1"),
    ("file-to-link-vs-mod", "f1", "l1", "f2", [("p", BOTH_MODIFIED)]),
    ("link-retarget-ours", "l1", "l2", "l1", "l2"),
    ("link-retarget-theirs", "l1", "l1", "l2", "l2"),
    ("link-same-retarget", "l1", "l2", "l2", "l2"),
    ("link-retarget-both", "l1", "l2", "l3", [("p", BOTH_MODIFIED)]),
    ("link-retarget-deleted", "l1", "l2", None, [("p", MODIFIED_DELETED)]),
    ("link-deleted-retarget", "l1", None, "l2", [("p", DELETED_MODIFIED)]),
    ("link-to-file-theirs", "l1", "l1", "f1", "f1"),
    # file against directory, base a file
    ("ours-file-to-dir", "f1", "d1", "f1", "d1"),
    ("theirs-file-to-dir", "f1", "f1", "d1", "d1"),
    ("same-file-to-dir", "f1", "d1", "d1", "d1"),
    ("dir-vs-modified", "f1", "d1", "f2", [("p", FILE_DIRECTORY)]),
    ("modified-vs-dir", "f1", "f2", "d1", [("p", FILE_DIRECTORY)]),
    ("link-vs-dir", "f1", "l1", "d1", [("p", FILE_DIRECTORY)]),
    ("dir-vs-deleted", "f1", "d1", None, "d1"),
    ("deleted-vs-dir", "f1", None, "d1", "d1"),
    ("both-to-dirs-union", "f1", "d1", "d3", {"p/inner": "f1", "p/other": "f1"}),
    ("both-to-dirs-clash", "f1", "d1", "d2", [("p/inner", BOTH_ADDED)]),
    # base: absent
    ("ours-added", None, "f1", None, "f1"),
    ("theirs-added", None, None, "f1", "f1"),
    ("same-added", None, "f1", "f1", "f1"),
    ("both-added", None, "f1", "f2", [("p", BOTH_ADDED)]),
    ("both-added-chmod-differs", None, "f1", "x1", [("p", BOTH_ADDED)]),
    ("both-added-file-link", None, "f1", "l1", [("p", BOTH_ADDED)]),
    ("both-added-links", None, "l1", "l2", [("p", BOTH_ADDED)]),
    ("ours-added-dir", None, "d1", None, "d1"),
    ("theirs-added-dir", None, None, "d1", "d1"),
    ("added-file-vs-dir", None, "f1", "d1", [("p", FILE_DIRECTORY)]),
    ("added-dir-vs-file", None, "d1", "f1", [("p", FILE_DIRECTORY)]),
    ("added-dirs-union", None, "d1", "d3", {"p/inner": "f1", "p/other": "f1"}),
    ("added-dirs-clash", None, "d1", "d2", [("p/inner", BOTH_ADDED)]),
    # base: a directory (d1 = {inner: f1})
    ("dir-unchanged", "d1", "d1", "d1", "d1"),
    ("dir-ours-modified", "d1", "d2", "d1", "d2"),
    ("dir-theirs-modified", "d1", "d1", "d2", "d2"),
    ("dir-same-change", "d1", "d2", "d2", "d2"),
    ("dir-both-modified", "d1", "d2", "d6", [("p/inner", BOTH_MODIFIED)]),
    ("dir-both-added-other-names", "d1", "d4", "d5", {"p/inner": "f1", "p/new": "f1", "p/x": "f1"}),
    ("dir-ours-deleted", "d1", None, "d1", None),
    ("dir-theirs-deleted", "d1", "d1", None, None),
    ("dir-both-deleted", "d1", None, None, None),
    ("dir-modified-deleted", "d1", "d2", None, [("p/inner", MODIFIED_DELETED)]),
    ("dir-deleted-modified", "d1", None, "d2", [("p/inner", DELETED_MODIFIED)]),
    ("dir-added-in-vs-deleted", "d1", "d5", None, {"p/x": "f1"}),
    ("dir-deleted-vs-added-in", "d1", None, "d5", {"p/x": "f1"}),
    ("dir-to-file-ours", "d1", "f1", "d1", "f1"),
    ("dir-to-file-theirs", "d1", "d1", "f1", "f1"),
    ("dir-to-same-file", "d1", "f1", "f1", "f1"),
    ("dir-to-file-vs-modified", "d1", "f1", "d2", [("p", FILE_DIRECTORY)]),
    ("modified-vs-dir-to-file", "d1", "d2", "f1", [("p", FILE_DIRECTORY)]),
    ("dir-to-file-vs-deleted", "d1", "f1", None, "f1"),
    ("deleted-vs-dir-to-file", "d1", None, "f1", "f1"),
    ("dir-to-different-files", "d1", "f1", "f2", [("p", BOTH_ADDED)]),
    ("dir-to-link-vs-file", "d1", "l1", "f1", [("p", BOTH_ADDED)]),
]
IDS = [r[0] for r in ROWS]
MIRROR = {MODIFIED_DELETED: DELETED_MODIFIED, DELETED_MODIFIED: MODIFIED_DELETED}


def at_p(code: str | None, prefix: str = "") -> dict[str, str]:
    """The spec of path ``p`` (under ``prefix``) for a code."""
    if code is None:
        return {}
    if code in DIRS:
        return {f"{prefix}p/{k}": v for k, v in DIRS[code].items()}
    return {f"{prefix}p": code}


def expected_spec(expected: Any, prefix: str = "") -> dict[str, str]:
    if isinstance(expected, dict):
        return {prefix + k: v for k, v in expected.items()}
    return at_p(expected, prefix)


def side(code: str | None) -> dict[str, str]:
    return {"keep/a": "f9", "top": "f8", **at_p(code)}


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory, h: Any) -> tuple[Repo, dict[str, tuple[str, str, str]]]:
    """One repository holding the three trees of every row (written with one store writer)."""
    repo = Repo.init(tmp_path_factory.mktemp("table") / "repo")
    trees: dict[str, tuple[str, str, str]] = {}
    with repo.store.writer() as w:
        for name, b, o, t, _ in ROWS:
            trees[name] = (h.write_tree(w, side(b)), h.write_tree(w, side(o)), h.write_tree(w, side(t)))
    return repo, trees


def test_table_covers_every_combination() -> None:
    """Every (ours, theirs) pair of {unchanged, modified, deleted, added, dir, chmod, link} shows up."""
    def state(b: str | None, x: str | None) -> str:
        if x == b:
            return "unchanged" if b is not None else "absent"
        if x is None:
            return "deleted"
        if b is None:
            return "added-dir" if x in DIRS else "added"
        if (x in DIRS) != (b in DIRS):
            return "kind-change"
        if x[0] == "x" or b[0] == "x":
            return "chmod" if x[1:] == b[1:] else "modified"
        return "modified"

    states = {(state(b, o), state(b, t)) for _, b, o, t, _ in ROWS}
    with_base = ["unchanged", "modified", "deleted", "chmod", "kind-change"]
    for a in with_base:
        for c in with_base:
            assert (a, c) in states, (a, c)
    for a in ("absent", "added", "added-dir"):
        for c in ("absent", "added", "added-dir"):
            if a == c == "absent":
                continue
            assert (a, c) in states, (a, c)


@pytest.mark.parametrize("row", ROWS, ids=IDS)
def test_three_way_fail(row: Any, table: Any, h: Any) -> None:
    name, _, _, _, expected = row
    repo, trees = table
    b, o, t = trees[name]
    tree, conflicts, merger = merge_trees(repo.trees, b, o, t, "fail", theirs_label="feature")
    if isinstance(expected, list):
        assert [(c.path, c.kind) for c in conflicts] == expected
        for c in conflicts:
            assert c.theirs_label == "feature"
            assert c.summary().startswith(c.display_path + " (")
    else:
        assert conflicts == []
        want = {"keep/a": "f9", "top": "f8", **expected_spec(expected)}
        assert h.flat_codes(merger, tree) == want
        # Encoded exactly as trees.build encodes the same files: same id as a commit of them would get.
        assert tree == h.tree_id(want)


@pytest.mark.parametrize("strategy", ["ours", "theirs"])
@pytest.mark.parametrize("row", ROWS, ids=IDS)
def test_three_way_resolved(row: Any, strategy: str, table: Any, h: Any) -> None:
    name, _, ours, theirs, expected = row
    repo, trees = table
    b, o, t = trees[name]
    tree, conflicts, merger = merge_trees(repo.trees, b, o, t, strategy)
    if isinstance(expected, list):
        assert [(c.path, c.kind) for c in conflicts] == expected
        want = side(ours if strategy == "ours" else theirs)
    else:
        assert conflicts == []
        want = {"keep/a": "f9", "top": "f8", **expected_spec(expected)}
    assert h.flat_codes(merger, tree) == want
    assert tree == h.tree_id(want)


@pytest.mark.parametrize("row", ROWS, ids=IDS)
def test_three_way_is_symmetric(row: Any, table: Any) -> None:
    """Swapping the sides mirrors the conflicts and gives the same clean result; ours(A,B) == theirs(B,A)."""
    name, *_ = row
    repo, trees = table
    b, o, t = trees[name]
    ab, c_ab, _ = merge_trees(repo.trees, b, o, t, "fail")
    ba, c_ba, _ = merge_trees(repo.trees, b, t, o, "fail")
    assert [(c.path, MIRROR.get(c.kind, c.kind)) for c in c_ab] == [(c.path, c.kind) for c in c_ba]
    if not c_ab:
        assert ab == ba
    assert merge_trees(repo.trees, b, o, t, "ours")[0] == merge_trees(repo.trees, b, t, o, "theirs")[0]


def test_all_rows_in_one_tree(tmp_path: Any, h: Any) -> None:
    """Every row side by side in one tree (each under its own folder): one merge gives all the answers."""
    repo = Repo.init(tmp_path / "repo")
    specs: list[dict[str, str]] = [{}, {}, {}]
    want: dict[str, str] = {}
    want_conflicts: list[tuple[str, str]] = []
    for name, b, o, t, expected in ROWS:
        prefix = f"{name}/"
        for i, code in enumerate((b, o, t)):
            specs[i].update(at_p(code, prefix))
        if isinstance(expected, list):
            want_conflicts += [(prefix + p, k) for p, k in expected]
            want.update(at_p(o, prefix))  # strategy ours keeps HEAD's side
        else:
            want.update(expected_spec(expected, prefix))
    b, o, t = (h.make_tree(repo, s) for s in specs)
    tree, conflicts, merger = merge_trees(repo.trees, b, o, t, "ours")
    assert sorted((c.path, c.kind) for c in conflicts) == sorted(want_conflicts)
    assert h.flat_codes(merger, tree) == want
    assert tree == h.tree_id(want)


def test_conflict_descriptions(mem: Any) -> None:
    b = mem.tree({"a.txt": "f1", "b": "f1", "c": "f1", "e": "f1", "l": "l1"})
    o = mem.tree({"a.txt": "f2", "b": "f2", "c": "f2", "e": "x1", "l": "l2", "n": "f1"})
    t = mem.tree({"a.txt": "f3", "b/x": "f1", "l": "l3", "n": "f2"})
    _, conflicts, _ = merge_trees(mem, b, o, t, "fail", theirs_label="feature")
    got = {c.path: c.summary() for c in conflicts}
    assert got == {
        "a.txt": "a.txt (both modified)",
        "b": "b/ (file vs directory: file here, directory in feature)",
        "c": "c (modified here, deleted in feature)",
        "e": "e (made executable here, deleted in feature)",
        "l": "l (both changed symlink target)",
        "n": "n (both added)",
    }
    msg = conflict_message(conflicts)
    assert msg.startswith("merge conflict in 6 paths: a.txt (both modified), b/ (file vs directory")
    assert msg.endswith("; nothing was changed" + CONFLICT_HINT) and "\n" not in msg
    by_path = {c.path: c for c in conflicts}
    assert by_path["e"].ours_did == "made executable" and by_path["e"].theirs_did == "deleted"
    assert by_path["l"].ours_did == "changed symlink target"
    assert by_path["b"].theirs_did == "replaced file with directory"
    assert by_path["c"].to_json()["theirs"] == "deleted"
    _, back, _ = merge_trees(mem, b, t, o, "fail", theirs_label="main")
    assert {c.path: c.summary() for c in back}["c"] == "c (deleted here, modified in main)"


def test_describe_change(h: Any) -> None:
    f1, f2, x1, l1, l2 = (h.entry("p", c) for c in ("f1", "f2", "x1", "l1", "l2"))
    assert describe_change(f1, f1) == "unchanged"
    assert describe_change(None, f1) == "added"
    assert describe_change(None, l1) == "added symlink"
    assert describe_change(f1, None) == "deleted"
    assert describe_change(f1, f2) == "modified"
    assert describe_change(f1, x1) == "made executable"
    assert describe_change(x1, f1) == "made non-executable"
    assert describe_change(l1, l2) == "changed symlink target"
    assert describe_change(f1, l1) == "replaced file with symlink"


def test_equal_subtrees_are_not_read(mem: Any) -> None:
    """Folders with the same id on two sides are taken whole: only the changed paths' trees are read."""
    base = {f"d{i:02}/s{j}/f{k}": "f1" for i in range(40) for j in range(5) for k in range(5)}
    ours = {**base, "d03/s1/f1": "f2", "d03/s1/new": "f3"}
    theirs = {**base, "d07/s4/f0": "f4"}
    del theirs["d07/s2/f2"]
    b, o, t = mem.tree(base), mem.tree(ours), mem.tree(theirs)
    merger = TreeMerger(mem)
    tree, conflicts = merger.merge(b, o, t)
    assert conflicts == []
    # The three roots, then d03 and d07 on the two sides that differ, then s1 of d03 and s2/s4 of d07.
    assert merger.reads <= 3 + 2 * 3 + 3 * 3
    want = {**ours, "d07/s4/f0": "f4"}
    del want["d07/s2/f2"]
    assert tree == mem.tree(want)
    assert merger.changes(o, tree) == (0, 1, 1)
    assert merger.changes(t, tree) == (1, 1, 0)


def test_large_flat_directory_merges_bucket_by_bucket(mem: Any, h: Any) -> None:
    """A directory split into buckets: only buckets that differ are read, the result is canonical."""
    n = MAX_LEAF_ENTRIES * 3
    base = {f"img/{i:06}.jpg": "f1" for i in range(n)}
    ours = {**base, "img/000010.jpg": "f2", "img/new-ours.jpg": "f3"}
    theirs = {**base, "img/000500.jpg": "f4"}
    del theirs["img/000999.jpg"]
    b, o, t = mem.tree(base), mem.tree(ours), mem.tree(theirs)
    merger = TreeMerger(mem)
    tree, conflicts = merger.merge(b, o, t)
    assert conflicts == []
    want = {**ours, "img/000500.jpg": "f4"}
    del want["img/000999.jpg"]
    assert tree == mem.tree(want)  # same encoding as trees.build
    buckets = len(mem.node(mem.reader.read_dir(b)[0].id).buckets)
    assert buckets > 100
    assert merger.reads < 3 + 3 * 4 + 10  # roots, img nodes, a few buckets: not all of them
    assert merger.changes(b, tree) == (1, 2, 1)
    # Shrinking the folder below the split threshold turns it back into one leaf, still canonical.
    small = {p: c for p, c in base.items() if int(p[4:10]) < 100}
    tree2, conflicts2 = TreeMerger(mem).merge(b, mem.tree(small), t, resolve="theirs")
    assert [(c.path, c.kind) for c in conflicts2] == [("img/000500.jpg", DELETED_MODIFIED)]
    assert tree2 == mem.tree({**small, "img/000500.jpg": "f4"})
    assert h.flat_codes(merger, tree) == want
