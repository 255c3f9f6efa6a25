"""``dvx.merge.merge`` / ``squash`` on real repositories through the Python API."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from dvx.errors import DirtyWorkingTree, MergeConflict, RefExists, UsageError
from dvx.merge import (
    BOTH_ADDED,
    BOTH_MODIFIED,
    CONFLICT_HINT,
    MODIFIED_DELETED,
    UnrelatedHistories,
    ancestors,
    merge,
    merge_bases,
    squash,
)
from dvx.refs import HEADS, TAGS
from dvx.repo import Repo


def commit_files(repo: Repo, h: Any, files: dict[str, str | None], message: str) -> str:
    h.write_files(repo.root, files)
    return repo.commit(message)


def disk(root: Path) -> dict[str, str]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d != ".dvx"]
        for name in filenames:
            full = Path(dirpath, name)
            rel = full.relative_to(root).as_posix()
            out[rel] = ("->" + os.readlink(full)) if full.is_symlink() else full.read_text()
        for name in dirnames:
            full = Path(dirpath, name)
            if full.is_symlink():
                out[full.relative_to(root).as_posix()] = "->" + os.readlink(full)
    return out


@pytest.fixture
def forked(repo: Repo, h: Any) -> Repo:
    """main and feature diverged from a common base."""
    commit_files(repo, h, {"a.txt": "a\n", "d/x": "x\n", "d/y": "y\n", "keep": "k\n"}, "base")
    repo.create_branch("feature")
    commit_files(repo, h, {"b.txt": "b\n", "d/x": "x main\n"}, "main work")
    repo.checkout("feature")
    commit_files(repo, h, {"c.txt": "c\n", "d/y": None, "a.txt": "a feature\n"}, "feature work")
    repo.checkout("main")
    return repo


def test_merge_commit_parents_message_and_worktree(forked: Repo) -> None:
    repo = forked
    head = repo.resolve("main")
    feature = repo.resolve("feature")
    res = merge(repo, ["feature"])
    c = repo.read_commit(res.commit)
    assert c.parents == (head, feature)
    assert c.message == "Merge feature into main"
    assert repo.resolve("main") == res.commit and repo.head() == ("main", res.commit)
    assert disk(repo.root) == {"a.txt": "a feature\n", "b.txt": "b\n", "c.txt": "c\n", "d/x": "x main\n", "keep": "k\n"}
    assert not repo.status()
    assert (res.added, res.modified, res.deleted) == (1, 1, 1)
    assert res.merged == ["feature"] and not res.fast_forward and not res.up_to_date
    assert res.bases == [[repo.resolve("main~1~1")]]
    # What the merge brought in, against the first parent.
    d = repo.diff(f"{res.commit}^1", res.commit)
    assert [ch.path for ch in d.added] == ["c.txt"]
    assert [ch.path for ch in d.modified] == ["a.txt"]
    assert [ch.path for ch in d.deleted] == ["d/y"]
    assert repo.fsck().ok


def test_custom_message_and_json(forked: Repo) -> None:
    res = merge(forked, "feature", message="combine")  # a single revision as a plain string
    assert forked.read_commit(res.commit).message == "combine"
    doc = res.to_json()
    assert doc["commit"] == res.commit and doc["parents"][1] == forked.resolve("feature")
    with pytest.raises(UsageError):
        merge(forked, ["feature"], message="  ")
    with pytest.raises(UsageError):
        merge(forked, ["feature"], strategy="union")
    with pytest.raises(UsageError):
        merge(forked, [])


def test_lineage_recorded_unless_ff(repo: Repo, h: Any) -> None:
    base = commit_files(repo, h, {"a": "1\n"}, "base")
    repo.create_branch("feature")
    repo.checkout("feature")
    ahead = commit_files(repo, h, {"b": "2\n"}, "ahead")
    repo.checkout("main")
    res = merge(repo, ["feature"])
    assert not res.fast_forward
    assert repo.read_commit(res.commit).parents == (base, ahead)
    assert repo.read_commit(res.commit).tree == repo.read_commit(ahead).tree
    assert disk(repo.root) == {"a": "1\n", "b": "2\n"}
    # Opting into a fast-forward: the branch simply moves, no commit.
    repo.create_branch("ff-target", "feature")
    repo.create_branch("behind", base)
    repo.checkout("behind")
    res = merge(repo, ["ff-target"], ff=True)
    assert res.fast_forward and res.commit == ahead and res.parents == ()
    assert repo.resolve("behind") == ahead
    assert disk(repo.root) == {"a": "1\n", "b": "2\n"}


def test_already_up_to_date(forked: Repo, h: Any) -> None:
    repo = forked
    res = merge(repo, ["feature"])
    before = h.snapshot(repo.root)
    again = merge(repo, ["feature", "main~1"])
    assert again.up_to_date and again.commit == res.commit and sorted(again.skipped) == ["feature", "main~1"]
    assert h.snapshot(repo.root) == before


def test_revs_contained_in_others_are_skipped(forked: Repo) -> None:
    repo = forked
    res = merge(repo, ["feature~1", "feature", "feature"])
    assert res.parents == (repo.resolve("main~1"), repo.resolve("feature"))
    assert sorted(res.skipped) == ["feature", "feature~1"]


def test_octopus_of_three(repo: Repo, h: Any) -> None:
    base = commit_files(repo, h, {"README": "animals\n"}, "base")
    for name in ("cats", "dogs", "fish"):
        repo.create_branch(name, "main")
    for name in ("cats", "dogs", "fish"):
        repo.checkout(name)
        commit_files(repo, h, {f"{name}/1.jpg": f"{name} 1\n", f"{name}/2.jpg": f"{name} 2\n"}, f"add {name}")
        commit_files(repo, h, {"README": "animals\n", f"{name}/3.jpg": f"{name} 3\n"}, f"more {name}")
    repo.checkout("main")
    commit_files(repo, h, {"labels.csv": "id,label\n"}, "labels")
    head = repo.resolve("main")
    res = merge(repo, ["cats", "dogs", "fish"])
    c = repo.read_commit(res.commit)
    assert c.parents == (head, repo.resolve("cats"), repo.resolve("dogs"), repo.resolve("fish"))
    assert c.message == "Merge cats, dogs, fish into main"
    files = disk(repo.root)
    assert sorted(files) == sorted(
        ["README", "labels.csv"] + [f"{n}/{i}.jpg" for n in ("cats", "dogs", "fish") for i in (1, 2, 3)]
    )
    assert res.added == 9 and res.modified == 0 and res.deleted == 0
    assert len(res.bases) == 3 and all(b == [base] for b in res.bases)
    assert not repo.status()
    entries = repo.log()
    assert entries[0].id == res.commit and len(entries[0].commit.parents) == 4
    assert repo.fsck().ok


def test_octopus_conflicts_from_every_step_are_collected(repo: Repo, h: Any) -> None:
    commit_files(repo, h, {"a": "0\n", "b": "0\n"}, "base")
    repo.create_branch("one")
    repo.create_branch("two")
    commit_files(repo, h, {"a": "main\n"}, "main changes a")
    repo.checkout("one")
    commit_files(repo, h, {"a": "one\n", "new": "one\n"}, "one changes a")
    repo.checkout("two")
    commit_files(repo, h, {"new": "two\n", "b": None}, "two adds new, deletes b")
    repo.checkout("main")
    before = h.snapshot(repo.root)
    with pytest.raises(MergeConflict) as info:
        merge(repo, ["one", "two"])
    got = [(c.path, c.kind, c.theirs_label) for c in info.value.conflicts]  # type: ignore[attr-defined]
    assert got == [("a", BOTH_MODIFIED, "one"), ("new", BOTH_ADDED, "two")]
    assert str(info.value) == (
        "merge conflict in 2 paths: a (both modified), new (both added); nothing was changed" + CONFLICT_HINT
    )
    assert h.snapshot(repo.root) == before
    res = merge(repo, ["one", "two"], strategy="theirs")
    assert disk(repo.root) == {"a": "one\n", "new": "two\n"}
    meta = repo.read_commit(res.commit).meta
    assert meta["merge.strategy"] == "theirs" and meta["merge.conflicts"] == "2"
    assert meta["merge.conflict_paths"] == '["a", "new"]'


def test_conflict_leaves_everything_untouched(forked: Repo, h: Any) -> None:
    repo = forked
    repo.checkout("feature")
    commit_files(repo, h, {"b.txt": "b feature\n", "keep": None}, "clash")
    repo.checkout("main")
    commit_files(repo, h, {"keep": "k main\n"}, "keep changed")
    (repo.root / "a.txt").write_text("a main\n")
    os.chmod(repo.root / "a.txt", 0o755)
    commit_files(repo, h, {}, "edit and chmod")
    before = h.snapshot(repo.root)
    log_before = [e.id for e in repo.log()]
    with pytest.raises(MergeConflict) as info:
        merge(repo, ["feature"])
    conflicts = info.value.conflicts  # type: ignore[attr-defined]
    assert [(c.path, c.kind) for c in conflicts] == [
        ("a.txt", BOTH_MODIFIED),
        ("b.txt", BOTH_ADDED),
        ("keep", MODIFIED_DELETED),
    ]
    assert "keep (modified here, deleted in feature)" in str(info.value)
    assert conflicts[0].ours_did == "modified"
    assert h.snapshot(repo.root) == before
    assert [e.id for e in repo.log()] == log_before


def test_ours_and_theirs_record_metadata(forked: Repo, h: Any) -> None:
    repo = forked
    commit_files(repo, h, {"a.txt": "a main\n"}, "main edits a")
    repo.create_branch("saved")
    res = merge(repo, ["feature"], strategy="ours")
    meta = repo.read_commit(res.commit).meta
    assert meta == {"merge.strategy": "ours", "merge.conflicts": "1", "merge.conflict_paths": '["a.txt"]'}
    assert [c.path for c in res.conflicts] == ["a.txt"]
    assert (repo.root / "a.txt").read_text() == "a main\n"
    assert (repo.root / "c.txt").read_text() == "c\n"  # the clean part still merged
    repo.checkout("saved")
    res = merge(repo, ["feature"], strategy="theirs")
    assert repo.read_commit(res.commit).meta["merge.strategy"] == "theirs"
    assert (repo.root / "a.txt").read_text() == "a feature\n"
    # No conflict: the strategy is still recorded, with a zero count.
    repo.create_branch("other", "feature~1")
    repo.checkout("other")
    commit_files(repo, h, {"zzz": "z\n"}, "z")
    res = merge(repo, ["main"], strategy="ours")
    assert repo.read_commit(res.commit).meta == {"merge.strategy": "ours", "merge.conflicts": "0"}


def test_dirty_working_tree_is_refused(forked: Repo, h: Any) -> None:
    repo = forked
    for change in ({"a.txt": "edited\n"}, {"untracked.bin": "u\n"}, {"keep": None}):
        h.write_files(repo.root, change)
        before = h.snapshot(repo.root)
        with pytest.raises(DirtyWorkingTree) as info:
            merge(repo, ["feature"])
        assert next(iter(change)) in str(info.value)
        assert h.snapshot(repo.root) == before
        repo.checkout("main", force=True)
        h.write_files(repo.root, {"untracked.bin": None})
    assert merge(repo, ["feature"]).commit


def test_exec_bit_symlink_and_file_to_directory_on_disk(repo: Repo, h: Any) -> None:
    h.write_files(repo.root, {"run.sh": "echo\n", "data": "flat\n", "other": "o\n"})
    os.symlink("run.sh", repo.root / "latest")
    repo.commit("base")
    repo.create_branch("feature")
    repo.checkout("feature")
    os.chmod(repo.root / "run.sh", 0o755)
    os.unlink(repo.root / "latest")
    os.symlink("other", repo.root / "latest")
    h.write_files(repo.root, {"data": None})
    h.write_files(repo.root, {"data/part-0": "p0\n", "data/part-1": "p1\n"})
    repo.commit("feature")
    repo.checkout("main")
    commit_files(repo, h, {"other": "o2\n"}, "main")
    res = merge(repo, ["feature"])
    assert os.stat(repo.root / "run.sh").st_mode & 0o100
    assert os.readlink(repo.root / "latest") == "other"
    assert (repo.root / "data").is_dir() and (repo.root / "data/part-1").read_text() == "p1\n"
    assert (repo.root / "other").read_text() == "o2\n"
    assert not repo.status()
    assert res.modified == 2  # run.sh (mode), latest (target); data -> data/*: 1 deleted, 2 added
    assert (res.added, res.deleted) == (2, 1)


def test_detached_head(forked: Repo) -> None:
    repo = forked
    head = repo.resolve("main")
    repo.checkout(head)
    res = merge(repo, ["feature"])
    assert repo.head() == (None, res.commit)
    assert repo.resolve("main") == head  # no branch moved
    assert repo.read_commit(res.commit).message == "Merge feature into HEAD"


def test_unborn_branch_takes_the_revision(repo: Repo, h: Any) -> None:
    other = h.make_commit(repo, {"a": "f1", "b/c": "x2"}, [])
    h.set_branch(repo, "other", other)
    res = merge(repo, ["other"])
    assert res.fast_forward and res.commit == other
    assert repo.head() == ("main", other)
    assert disk(repo.root) == {"a": "content 1\n", "b/c": "content 2\n"}
    assert os.stat(repo.root / "b/c").st_mode & 0o100


def test_unrelated_histories(repo: Repo, h: Any) -> None:
    main = h.make_commit(repo, {"shared": "f1", "cats/1": "f2"}, [])
    h.set_branch(repo, "main", main)
    other = h.make_commit(repo, {"shared": "f1", "dogs/1": "f3"}, [])
    h.set_branch(repo, "dogs", other)
    clash = h.make_commit(repo, {"shared": "f4"}, [])
    h.set_branch(repo, "clash", clash)
    before = h.snapshot(repo.root)
    with pytest.raises(UnrelatedHistories) as info:
        merge(repo, ["dogs"], update_worktree=False)
    assert "--allow-unrelated" in str(info.value) and "dogs" in str(info.value)
    assert h.snapshot(repo.root) == before
    res = merge(repo, ["dogs"], allow_unrelated=True, update_worktree=False)
    assert res.bases == [[]]
    assert h.flat_codes(repo.trees, res.tree) == {"shared": "f1", "cats/1": "f2", "dogs/1": "f3"}
    assert repo.read_commit(res.commit).parents == (main, other)
    with pytest.raises(MergeConflict) as conflict:
        merge(repo, ["clash"], allow_unrelated=True, update_worktree=False)
    assert [(c.path, c.kind) for c in conflict.value.conflicts] == [("shared", BOTH_ADDED)]  # type: ignore[attr-defined]


def test_without_worktree_only_objects_and_ref(repo: Repo, h: Any) -> None:
    base = h.make_commit(repo, {"a": "f1", "b": "f1"}, [])
    main = h.make_commit(repo, {"a": "f2", "b": "f1"}, [base])
    feature = h.make_commit(repo, {"a": "f1", "b": "f3"}, [base])
    h.set_branch(repo, "main", main)
    h.set_branch(repo, "feature", feature)
    h.write_files(repo.root, {"stray": "not part of any commit\n"})  # not checked, not touched
    reads = h.count_reads(repo)
    res = merge(repo, ["feature"], update_worktree=False)
    from dvx.store import BLOB, CHUNKED

    assert not [t for t in reads if t in (BLOB, CHUNKED)]
    assert repo.resolve("main") == res.commit
    assert h.flat_codes(repo.trees, res.tree) == {"a": "f2", "b": "f3"}
    assert disk(repo.root) == {"stray": "not part of any commit\n"}


def test_criss_cross_uses_a_virtual_base(repo: Repo, h: Any) -> None:
    """Two best common ancestors: picking either one alone would silently take one side's version of p."""
    base = h.make_commit(repo, {"p": "f0", "q": "f0"}, [])
    x1 = h.make_commit(repo, {"p": "f1", "q": "f0"}, [base], "x1")
    y1 = h.make_commit(repo, {"p": "f2", "q": "f0"}, [base], "y1")
    x2 = h.make_commit(repo, {"p": "f1", "q": "f0"}, [x1, y1], "x2 keeps f1")
    y2 = h.make_commit(repo, {"p": "f2", "q": "f5"}, [y1, x1], "y2 keeps f2, changes q")
    h.set_branch(repo, "main", x2)
    h.set_branch(repo, "y", y2)
    assert sorted(merge_bases(lambda c: repo.read_commit(c).parents, [x2], y2)) == sorted([x1, y1])
    with pytest.raises(MergeConflict) as info:
        merge(repo, ["y"], update_worktree=False)
    assert [(c.path, c.kind) for c in info.value.conflicts] == [("p", BOTH_MODIFIED)]  # type: ignore[attr-defined]
    res = merge(repo, ["y"], strategy="ours", update_worktree=False)
    assert h.flat_codes(repo.trees, res.tree) == {"p": "f1", "q": "f5"}
    assert sorted(res.bases[0]) == sorted([x1, y1])
    # The virtual base's placeholder trees were never stored.
    assert repo.fsck().ok


def test_merge_bases_pure() -> None:
    graph = {
        "r": (),
        "a": ("r",),
        "b": ("a",),
        "c": ("a",),
        "d": ("b", "c"),
        "e": ("c",),
        "f": ("e", "b"),
        "x": (),
        "y": ("x",),
    }

    def parents(c: str) -> tuple[str, ...]:
        return graph[c]

    assert ancestors(parents, ["d"]) == {"d", "b", "c", "a", "r"}
    assert merge_bases(parents, ["b"], "c") == ["a"]
    assert merge_bases(parents, ["d"], "b") == ["b"]  # an ancestor is its own base
    assert merge_bases(parents, ["b"], "d") == ["b"]
    assert merge_bases(parents, ["d"], "f") == ["b", "c"]  # criss-cross: two best, none redundant
    assert merge_bases(parents, ["d"], "e") == ["c"]
    assert merge_bases(parents, ["y"], "d") == []  # unrelated
    assert merge_bases(parents, ["b", "e"], "c") == ["c"]  # octopus: against everything merged so far


def test_squash(forked: Repo, h: Any) -> None:
    repo = forked
    before_head = repo.head()
    before_files = disk(repo.root)
    cid = squash(repo, "feature", "flat copy", branch="flat", tag="v1-flat")
    c = repo.read_commit(cid)
    assert c.parents == () and c.message == "flat copy"
    assert c.tree == repo.read_commit(repo.resolve("feature")).tree
    assert c.meta == {"squash.of": repo.resolve("feature")}
    assert repo.refs.get(HEADS + "flat") == cid and repo.refs.get(TAGS + "v1-flat") == cid
    assert repo.head() == before_head and disk(repo.root) == before_files
    assert [e.id for e in repo.log("flat")] == [cid]
    with pytest.raises(RefExists):
        squash(repo, "main", "again", branch="flat")
    with pytest.raises(UsageError):
        squash(repo, "main", "", branch="x")
    with pytest.raises(UsageError):
        squash(repo, "main", "m", branch="bad..name")
    lone = squash(repo, "main", "no name")
    assert repo.read_commit(lone).parents == () and lone not in repo.refs.list(HEADS).values()
    # A squashed copy shares no history with its source.
    with pytest.raises(UnrelatedHistories):
        merge(repo, ["flat"])
