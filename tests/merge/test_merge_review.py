"""Review of the merge feature against its issue: the cases earlier tests missed, each a bug once."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from dvx.errors import MergeConflict
from dvx.graph import render_graph, rewrite_parents
from dvx.merge import (
    CONFLICT_HINT,
    DELETED_MODIFIED,
    MODIFIED_DELETED,
    ancestors,
    merge,
    merge_bases,
    merge_trees,
)
from dvx.model import Commit
from dvx.refs import HEADS
from dvx.repo import Repo
from dvx.store import COMMIT, TREE
from dvx.worktree import StatCache


def graph(dag: list[tuple[str, str]]) -> list[str]:
    """``dag``: ``(commit, "parent parent...")`` newest first; lines with each commit drawn as its name."""
    nodes = [(c, ps.split()) for c, ps in dag]
    return render_graph(nodes, {c: c for c, _ in dag})


def test_graph_draws_a_merge_into_a_column_already_open() -> None:
    """M1's second parent f1 is already expected by another column: the edge to it must be drawn, and the
    column of m1 (G1's second parent) must join m1's column, not f1's (what git log --graph draws)."""
    lines = graph([
        ("final", "m2 G1"),
        ("m2", "M1"),
        ("G1", "g1 m1"),
        ("g1", "f1"),
        ("M1", "m1 f1"),
        ("f1", "base"),
        ("m1", "base"),
        ("base", ""),
    ])
    assert lines == [
        "* final",
        "|\\",
        "* | m2",
        "| * G1",
        "| |\\",
        "| * | g1",
        "* | | M1",
        "|\\| |",
        "| |/",
        "|/|",
        "| * f1",
        "* | m1",
        "|/",
        "* base",
    ]


def test_graph_edge_to_a_far_column_is_not_drawn_into_a_neighbour() -> None:
    """f1's parent is base (column 0): its line must reach column 0, not end in d1's column."""
    lines = graph([
        ("OCTO", "m1 c1 d1 f1"),
        ("m1", "base"),
        ("f1", "base"),
        ("d1", "base"),
        ("c1", "base"),
        ("base", ""),
    ])
    assert lines == [
        "*---. OCTO",  # an octopus as git draws it
        "|\\ \\ \\",
        "* | | | m1",
        "| | | * f1",
        "| | |/",
        "| |/|",
        "|/| |",
        "| | * d1",
        "| |/",
        "|/|",
        "| * c1",
        "|/",
        "* base",
    ]


def test_graph_octopus_makes_room_beside_it() -> None:
    lines = graph([("top", "O s"), ("O", "a b c"), ("s", "a"), ("c", "a"), ("b", "a"), ("a", "")])
    assert lines == [
        "* top",
        "|\\",
        "|  \\",  # the column on the right moves out of the way of "*-."
        "*-. | O",
        "|\\ \\ \\",
        "| | | * s",
        "| | |/",
        "| |/|",
        "|/| |",
        "| | * c",
        "| |/",
        "|/|",
        "| * b",
        "|/",
        "* a",
    ]


# --- the conflict error: what each side did, one usable line ---------------------------------------------


def test_conflict_summary_says_what_each_side_did(mem: Any) -> None:
    """"both modified" for a chmod against an edit hides what happened; say what each side did."""
    b = mem.tree({"chm": "f1", "lnk": "f1", "both": "f1", "ln2": "l1"})
    o = mem.tree({"lnk": "f2", "both": "f2", "ln2": "l2", "new": "l1", "exe": "f1"})
    t = mem.tree({"chm": "x1", "lnk": "l1", "both": "f3", "ln2": "l3", "new": "f1", "exe": "x1"})
    _, conflicts, _ = merge_trees(mem, b, o, t, theirs_label="feature")
    assert {c.path: c.summary() for c in conflicts} == {
        "both": "both (both modified)",
        "chm": "chm (deleted here, made executable in feature)",
        "exe": "exe (added here, added executable in feature)",
        "ln2": "ln2 (both changed symlink target)",
        "lnk": "lnk (modified here, replaced file with symlink in feature)",
        "new": "new (added symlink here, added in feature)",
    }


def test_many_conflicts_make_one_short_line_and_json_lists_them_all(repo: Repo, h: Any) -> None:
    n = 1000
    base = h.make_commit(repo, {f"data/{i:04}": "f1" for i in range(n)}, [])
    main = h.make_commit(repo, {f"data/{i:04}": "f2" for i in range(n)}, [base])
    feature = h.make_commit(repo, {f"data/{i:04}": "f3" for i in range(n)}, [base])
    h.set_branch(repo, "main", main)
    h.set_branch(repo, "feature", feature)
    repo.checkout("main", force=True)
    with pytest.raises(MergeConflict) as info:
        merge(repo, ["feature"])
    assert len(info.value.conflicts) == n  # the API has every one
    assert str(info.value).startswith("merge conflict in 1000 paths: data/0000 (both modified), data/0001 ")
    assert str(info.value).endswith(", and 980 more (see MergeConflict.conflicts); nothing was changed" + CONFLICT_HINT)
    before = h.snapshot(repo.root)
    proc = h.run_dvx(repo.root, "merge", "feature", check=False)
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and len(proc.stderr) < 1000, proc.stderr
    assert proc.stderr.startswith("dvx: error: merge conflict in 1000 paths: data/0000 (both modified), ")
    assert proc.stderr.endswith(
        "data/0019 (both modified), and 980 more (--json lists them all); nothing was changed" + CONFLICT_HINT + "\n"
    )
    proc = h.run_dvx(repo.root, "merge", "feature", "--json", check=False)
    assert proc.returncode == 1 and len(json.loads(proc.stdout)["conflicts"]) == n
    assert proc.stderr.count("\n") == 1
    assert h.snapshot(repo.root) == before


def test_conflict_on_a_path_with_a_newline_stays_one_line(repo: Repo, h: Any) -> None:
    base = h.make_commit(repo, {"a\nb": "f1", "c\x1b[2J": "f1"}, [])
    h.set_branch(repo, "main", h.make_commit(repo, {"a\nb": "f2", "c\x1b[2J": "f2"}, [base]))
    h.set_branch(repo, "feature", h.make_commit(repo, {"a\nb": "f3", "c\x1b[2J": "f3"}, [base]))
    with pytest.raises(MergeConflict) as info:
        merge(repo, ["feature"], update_worktree=False)
    assert str(info.value) == (
        "merge conflict in 2 paths: 'a\\nb' (both modified), 'c\\x1b[2J' (both modified); nothing was changed" + CONFLICT_HINT
    )


# --- after a merge ------------------------------------------------------------------------------------------


def test_merge_records_the_new_head_listing_like_checkout(repo: Repo, h: Any) -> None:
    """As checkout does: the first status after a merge reads no tree."""
    h.write_files(repo.root, {f"d{i}/f": str(i) for i in range(20)})
    repo.commit("base")
    repo.create_branch("feature")
    repo.checkout("feature")
    h.write_files(repo.root, {"d1/f": "feature\n", "new": "n\n"})
    repo.commit("feature")
    repo.checkout("main")
    h.write_files(repo.root, {"d2/f": "main\n"})
    repo.commit("main")
    res = merge(repo, ["feature"])
    assert StatCache(repo.dvx / "index").load().head_commit == res.commit
    fresh = Repo(repo.root)
    reads = h.count_reads(fresh)
    assert not fresh.status()
    assert TREE not in reads
    fresh.close()


# --- hypothesis: A into B and B into A, through real histories (criss-cross included) -------------------

CODES = ["f1", "f2", "x1", "l1", "l2"]
MIRROR = {MODIFIED_DELETED: DELETED_MODIFIED, DELETED_MODIFIED: MODIFIED_DELETED}
PATHS = ["a", "b", "a/a", "a/b", "b/a", "a/a/b"]


def _valid(flat: dict[str, str]) -> dict[str, str]:
    return {p: c for p, c in flat.items() if not any(q.startswith(p + "/") for q in flat)}


_changes = st.dictionaries(st.sampled_from(PATHS), st.one_of(st.none(), st.sampled_from(CODES)), max_size=4)


@st.composite
def histories(draw: Any) -> tuple[list[tuple[dict[str, str], list[int]]], int, int]:
    """Commits ``(files, parent indexes)`` (index 0 a root) and two of them to merge, neither containing the
    other. Half of the histories are criss-crosses: two merges of the same two commits, in both orders."""
    def changed(flat: dict[str, str]) -> dict[str, str]:
        out = dict(flat)
        for p, c in draw(_changes).items():
            if c is None:
                out.pop(p, None)
            else:
                out[p] = c
        return _valid(out)

    commits: list[tuple[dict[str, str], list[int]]] = [(_valid(draw(st.dictionaries(st.sampled_from(PATHS), st.sampled_from(CODES)))), [])]
    if draw(st.booleans()):  # criss-cross: x1, y1 from the root; x2 = x1 + y1, y2 = y1 + x1; merge their tips
        commits.append((changed(commits[0][0]), [0]))
        commits.append((changed(commits[0][0]), [0]))
        commits.append((changed(commits[1][0]), [1, 2]))
        commits.append((changed(commits[2][0]), [2, 1]))
        tips = [3, 4]
        for _ in range(draw(st.integers(0, 2))):
            side = draw(st.integers(0, 1))
            commits.append((changed(commits[tips[side]][0]), [tips[side]]))
            tips[side] = len(commits) - 1
        return commits, tips[0], tips[1]
    for _ in range(draw(st.integers(2, 5))):
        k = len(commits)
        first = draw(st.integers(0, k - 1))
        parents = [first] + ([draw(st.integers(0, k - 1))] if draw(st.booleans()) else [])
        commits.append((changed(commits[first][0]), list(dict.fromkeys(parents))))
    k = len(commits)
    a = draw(st.integers(1, k - 1))
    b = draw(st.integers(1, k - 2))
    return commits, a, b + (b >= a)


@pytest.fixture(scope="module")
def history_repo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Repo]:
    r = Repo.init(tmp_path_factory.mktemp("histories") / "repo")
    yield r
    r.close()


_counter = itertools.count()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(history=histories())
def test_merging_a_into_b_and_b_into_a_give_the_same_tree(history_repo: Repo, h: Any, history: Any) -> None:
    repo = history_repo
    commits, a, b = history
    ids: list[str] = []
    with repo.store.writer() as w:  # one writer for the whole history: no fsync per commit
        for i, (files, parents) in enumerate(commits):
            when = f"2026-01-01T00:00:{i:02}.000000Z"
            c = Commit(h.write_tree(w, files), tuple(ids[p] for p in parents), f"c{i}", "t <t@x>", when)
            w.add(c.id, COMMIT, c.encode())
            ids.append(c.id)
    parents_of = lambda c: repo.read_commit(c).parents  # noqa: E731
    assume(ids[a] not in ancestors(parents_of, [ids[b]]) and ids[b] not in ancestors(parents_of, [ids[a]]))
    bases = merge_bases(parents_of, [ids[a]], ids[b])
    event(f"{len(bases)} merge bases")

    def merge_into(head: str, other: str, strategy: str = "fail") -> tuple[str | None, list[tuple[str, str]]]:
        n = next(_counter)
        h.set_branch(repo, f"into-{n}", head)
        h.set_branch(repo, f"other-{n}", other)
        repo.refs.set_head_symbolic(HEADS + f"into-{n}")
        try:
            res = merge(repo, [f"other-{n}"], strategy=strategy, update_worktree=False)
        except MergeConflict as exc:
            return None, [(c.path, c.kind) for c in exc.conflicts]  # type: ignore[attr-defined]
        assert repo.read_commit(res.commit).parents == (head, other)
        return res.tree, [(c.path, c.kind) for c in res.conflicts]

    ab, c_ab = merge_into(ids[a], ids[b])
    ba, c_ba = merge_into(ids[b], ids[a])
    assert [(p, MIRROR.get(k, k)) for p, k in c_ab] == c_ba
    event("conflicts" if c_ab else "clean")
    if not c_ab:
        assert ab is not None and ab == ba
    ours_ab, _ = merge_into(ids[a], ids[b], "ours")
    theirs_ba, _ = merge_into(ids[b], ids[a], "theirs")
    assert ours_ab == theirs_ba


def test_graph_of_some_commits_rewrites_parents() -> None:
    """``log --graph -- a``: a4 and "feat a" are shown, their hidden parents are not; without rewriting, the
    drawing shows two unrelated lines and a column left open."""
    dag = {"a4": ["b3"], "b3": ["M"], "M": ["mb", "fa"], "mb": ["base"], "fa": ["base"], "base": []}
    shown = [("a4", dag["a4"]), ("fa", dag["fa"]), ("base", dag["base"])]
    nodes = rewrite_parents(shown, lambda c: dag[c])
    assert nodes == [("a4", ["base", "fa"]), ("fa", ["base"]), ("base", [])]  # first-parent line first
    assert render_graph(nodes, {c: c for c in dag}) == ["* a4", "|\\", "| * fa", "|/", "* base"]
    assert rewrite_parents([("M", ["mb", "fa"]), ("fa", ["base"])], lambda c: dag[c]) == [
        ("M", ["fa"]),  # mb's line leads to nothing shown but fa: the same parent once
        ("fa", []),
    ]


def test_a_folder_replaced_by_a_file_merges_cleanly_when_the_other_side_only_deleted_inside_it(h: Any) -> None:
    """Found by the property test: base a/a/a and a/a/b; ours deletes a/a/a; theirs replaces the folder a by a
    file. Every change ours made inside a/ is a deletion theirs made too, so the result is theirs' file (git
    merges this cleanly as well); an edit inside a/ on our side would still be a file/directory conflict."""
    from dvx.merge import FILE_DIRECTORY, merge_trees

    mem = h.MemoryTrees()
    base = mem.tree({"a/a/a": "f1", "a/a/b": "f1"})
    ours = mem.tree({"a/a/b": "f1"})
    theirs = mem.tree({"a": "f2"})
    for o, t in ((ours, theirs), (theirs, ours)):
        tree, conflicts, m = merge_trees(mem, base, o, t)
        assert conflicts == [] and h.flat_codes(m, tree) == {"a": "f2"}
    edited = mem.tree({"a/a/b": "f3"})
    _, conflicts, _ = merge_trees(mem, base, edited, theirs)
    assert [(c.path, c.kind) for c in conflicts] == [("a", FILE_DIRECTORY)]
