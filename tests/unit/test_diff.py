"""diff_flat: added, deleted, modified and renamed paths between two flat trees."""

from __future__ import annotations

from dvx.diff import diff_flat
from dvx.ids import hash_bytes
from dvx.model import FILE, Entry, link_entry


def f(path: str, content: bytes, executable: bool = False) -> Entry:
    return Entry(path.rpartition("/")[2], FILE, hash_bytes(content), len(content), executable)


def paths(changes: list) -> list[str]:  # type: ignore[type-arg]
    return [c.path for c in changes]


def test_identical_trees_have_no_diff() -> None:
    tree = {"a": f("a", b"1"), "d/b": f("d/b", b"2")}
    d = diff_flat(tree, dict(tree))
    assert not d
    assert d.all() == []


def test_added_deleted_modified() -> None:
    old = {"keep": f("keep", b"k"), "gone": f("gone", b"g"), "mod": f("mod", b"v1")}
    new = {"keep": f("keep", b"k"), "mod": f("mod", b"v2!"), "new": f("new", b"n")}
    d = diff_flat(old, new)
    assert paths(d.added) == ["new"]
    assert paths(d.deleted) == ["gone"]
    assert paths(d.modified) == ["mod"]
    assert d.renamed == []
    s = d.stats()
    assert (s["added"], s["deleted"], s["modified"], s["renamed"]) == (1, 1, 1, 0)
    assert (s["bytes_added"], s["bytes_deleted"], s["bytes_modified_old"], s["bytes_modified_new"]) == (1, 1, 2, 3)


def test_rename_is_a_moved_content_id() -> None:
    old = {"a.txt": f("a.txt", b"same")}
    new = {"sub/b.txt": f("b.txt", b"same")}
    d = diff_flat(old, new)
    assert d.added == [] and d.deleted == []
    (r,) = d.renamed
    assert (r.old_path, r.path) == ("a.txt", "sub/b.txt")
    assert r.to_json()["from"] == "a.txt"
    assert diff_flat(old, new, renames=False).renamed == []
    assert paths(diff_flat(old, new, renames=False).added) == ["sub/b.txt"]


def test_folder_rename_is_all_renames() -> None:
    old = {f"imgs/{i}.jpg": f(f"{i}.jpg", b"img%d" % i) for i in range(50)}
    new = {f"images/{i}.jpg": f(f"{i}.jpg", b"img%d" % i) for i in range(50)}
    d = diff_flat(old, new)
    assert d.added == [] and d.deleted == [] and d.modified == []
    assert sorted((c.old_path, c.path) for c in d.renamed) == sorted(
        (f"imgs/{i}.jpg", f"images/{i}.jpg") for i in range(50)
    )
    assert d.stats()["bytes_renamed"] == sum(len(b"img%d" % i) for i in range(50))


def test_duplicate_content_pairs_each_source_once() -> None:
    old = {"a": f("a", b"dup"), "b": f("b", b"dup")}
    new = {"c": f("c", b"dup")}
    d = diff_flat(old, new)
    assert len(d.renamed) == 1 and len(d.deleted) == 1
    assert {d.renamed[0].old_path, d.deleted[0].path} == {"a", "b"}


def test_exec_bit_only_change_is_modified() -> None:
    d = diff_flat({"run.sh": f("run.sh", b"#!/bin/sh\n")}, {"run.sh": f("run.sh", b"#!/bin/sh\n", True)})
    assert paths(d.modified) == ["run.sh"]
    (m,) = d.modified
    assert m.old is not None and m.new is not None
    assert (m.old.executable, m.new.executable) == (False, True)


def test_file_to_symlink_with_same_bytes_is_modified() -> None:
    # A symlink's id is the hash of its target text: a file holding that text has the same id.
    old = {"x": f("x", b"target.txt")}
    new = {"x": link_entry("x", "target.txt")}
    assert old["x"].id == new["x"].id
    assert paths(diff_flat(old, new).modified) == ["x"]
    assert paths(diff_flat(new, old).modified) == ["x"]


def test_symlink_retarget_is_modified_and_link_never_renames_to_file() -> None:
    d = diff_flat({"l": link_entry("l", "a")}, {"l": link_entry("l", "b")})
    assert paths(d.modified) == ["l"]
    d = diff_flat({"l": link_entry("l", "same")}, {"f": f("f", b"same")})
    assert d.renamed == [] and paths(d.added) == ["f"] and paths(d.deleted) == ["l"]


def test_to_json_shape() -> None:
    d = diff_flat({"a": f("a", b"1")}, {"a": f("a", b"22"), "b": f("b", b"3")})
    doc = d.to_json()
    assert set(doc) == {"added", "deleted", "modified", "renamed", "stats"}
    assert doc["added"] == [{"path": "b", "new": {"kind": "file", "id": hash_bytes(b"3"), "size": 1, "executable": False}}]
    assert doc["modified"][0]["old"]["size"] == 1 and doc["modified"][0]["new"]["size"] == 2


def test_json_names_kinds_as_ls_does_and_gives_link_targets() -> None:
    doc = diff_flat({"l": link_entry("l", "a")}, {"l": link_entry("l", "b")}).to_json()
    assert doc["modified"] == [{"path": "l", "old": {**doc["modified"][0]["old"]}, "new": {**doc["modified"][0]["new"]}}]
    assert doc["modified"][0]["old"]["kind"] == "symlink" and doc["modified"][0]["old"]["target"] == "a"
    assert doc["modified"][0]["new"]["target"] == "b"
