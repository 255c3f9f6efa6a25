"""Repo: plan_checkout (the pure decision of what a checkout writes, deletes and refuses to clobber), and
revision resolution through the API."""

from __future__ import annotations

import pytest

from dvx.errors import UnknownRevision
from dvx.ids import hash_bytes
from dvx.model import FILE, Entry, link_entry
from dvx.repo import Repo, plan_checkout


def f(path: str, content: bytes, executable: bool = False) -> Entry:
    return Entry(path.rpartition("/")[2], FILE, hash_bytes(content), len(content), executable)


def test_only_paths_that_differ_between_commits_are_touched() -> None:
    head = {"same": f("same", b"s"), "changed": f("changed", b"1"), "gone": f("gone", b"g")}
    target = {"same": f("same", b"s"), "changed": f("changed", b"2"), "added": f("added", b"a")}
    writes, deletes, conflicts = plan_checkout(head, target, dict(head), force=False)
    assert sorted(writes) == ["added", "changed"]
    assert writes["changed"] == target["changed"]
    assert deletes == ["gone"]
    assert conflicts == []


def test_local_change_on_a_path_both_commits_agree_on_is_kept() -> None:
    head = target = {"a": f("a", b"1")}
    work = {"a": f("a", b"local edit")}
    assert plan_checkout(head, target, work, force=False) == ({}, [], [])


def test_local_change_on_a_path_the_checkout_changes_is_a_conflict() -> None:
    head, target = {"a": f("a", b"1")}, {"a": f("a", b"2")}
    writes, deletes, conflicts = plan_checkout(head, target, {"a": f("a", b"local")}, force=False)
    assert conflicts == ["a"] and "a" not in writes


def test_local_change_on_a_path_the_checkout_deletes_is_a_conflict() -> None:
    head, target = {"a": f("a", b"1")}, {}
    _, deletes, conflicts = plan_checkout(head, target, {"a": f("a", b"local")}, force=False)
    assert conflicts == ["a"] and deletes == []


def test_untracked_file_where_the_target_adds_one_is_a_conflict() -> None:
    target = {"new": f("new", b"theirs")}
    _, _, conflicts = plan_checkout({}, target, {"new": f("new", b"mine")}, force=False)
    assert conflicts == ["new"]


def test_untracked_file_equal_to_the_target_is_no_conflict() -> None:
    target = {"new": f("new", b"same")}
    assert plan_checkout({}, target, {"new": f("new", b"same")}, force=False) == ({}, [], [])


def test_untracked_files_are_never_deleted_even_with_force() -> None:
    head = {"a": f("a", b"1")}
    work = {"a": f("a", b"1"), "untracked": f("untracked", b"u")}
    for force in (False, True):
        writes, deletes, conflicts = plan_checkout(head, {}, work, force=force)
        assert deletes == ["a"] and writes == {} and conflicts == []


def test_force_discards_local_changes() -> None:
    head = {"a": f("a", b"1"), "b": f("b", b"b")}
    target = {"a": f("a", b"2"), "b": f("b", b"b")}
    work = {"a": f("a", b"local"), "b": f("b", b"local b")}
    writes, deletes, conflicts = plan_checkout(head, target, work, force=True)
    assert conflicts == [] and deletes == []
    assert writes == {"a": target["a"], "b": target["b"]}


def test_force_restores_a_locally_deleted_file() -> None:
    head = target = {"a": f("a", b"1")}
    writes, _, _ = plan_checkout(head, target, {}, force=True)
    assert writes == {"a": target["a"]}


def test_exec_bit_and_kind_changes_are_writes() -> None:
    head = {"run": f("run", b"x"), "l": f("l", b"t")}
    target = {"run": f("run", b"x", True), "l": link_entry("l", "t")}
    writes, _, conflicts = plan_checkout(head, target, dict(head), force=False)
    assert writes == target and conflicts == []


def test_untracked_file_where_the_target_needs_a_directory_is_a_conflict() -> None:
    target = {"d/x": f("x", b"1")}
    _, _, conflicts = plan_checkout({}, target, {"d": f("d", b"untracked file")}, force=False)
    assert conflicts == ["d"]


def test_untracked_files_in_a_directory_the_target_makes_a_file_is_a_conflict() -> None:
    head = {"d/x": f("x", b"1")}
    target = {"d": f("d", b"now a file")}
    work = {"d/x": f("x", b"1"), "d/untracked": f("untracked", b"u")}
    _, _, conflicts = plan_checkout(head, target, work, force=False)
    assert conflicts == ["d"]


def test_tracked_directory_replaced_by_a_file_is_planned_cleanly() -> None:
    head = {"d/x": f("x", b"1")}
    target = {"d": f("d", b"now a file")}
    writes, deletes, conflicts = plan_checkout(head, target, dict(head), force=False)
    assert writes == {"d": target["d"]} and deletes == ["d/x"] and conflicts == []


# --- revisions through the API -------------------------------------------------------------------------


def test_prefix_of_a_large_commit_resolves(repo: Repo) -> None:
    cid = repo.commit("x" * (600 << 10), allow_empty=True)
    assert repo.resolve(cid[:8]) == cid


def test_prefix_resolution_ignores_non_commit_objects(repo: Repo) -> None:
    (repo.root / "a").write_text("a")
    cid = repo.commit("c1")
    assert repo.resolve(cid[:6]) == cid
    blob = repo.ls()[0][1].id
    if blob[:6] != cid[:6]:
        with pytest.raises(UnknownRevision):
            repo.resolve(blob[:6])


def test_path_history_follows_the_parent_a_merge_kept_as_git_does(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """git log -- PATH: a merge that kept one parent's version of PATH is walked through that parent only, so
    the other side's edits of PATH, which never reached the result, are not listed; a merge that took the
    other side's version lists that side's history."""
    repo = Repo.init(tmp_path / "r")
    root = repo.root
    (root / "a").write_text("a")
    (root / "b").write_text("b")
    c1 = repo.commit("c1")
    repo.create_branch("side")
    (root / "a").write_text("a2")
    c2 = repo.commit("c2")
    repo.checkout("side")
    (root / "a").write_text("a-side")
    repo.commit("s1 edits a")
    (root / "b").write_text("b-side")
    s2 = repo.commit("s2 edits b")
    repo.checkout("main")
    merged = repo.merge(["side"], "merge", "ours")  # a conflicts, HEAD's a kept; b taken from side
    merge_id = merged.commit if hasattr(merged, "commit") else repo.resolve("HEAD")
    assert repo.resolve("HEAD") == merge_id
    assert [e.id for e in repo.log(paths=["a"])] == [c2, c1]  # s1's edit of a never reached HEAD
    assert [e.id for e in repo.log(paths=["b"])] == [s2, c1]  # the merge equals side on b: side's history
    assert [e.id for e in repo.log(paths=["a", "b"])][0] == merge_id  # differs from both parents on a+b
