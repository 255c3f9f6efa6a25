"""Trees and commits: canonical encoding, validation of hostile content, bucketed large directories."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from dvx.errors import BadPath, CorruptObject, UnsupportedFormat
from dvx.ids import hash_bytes
from dvx.model import (
    DIR,
    FILE,
    LINK,
    MAX_LEAF_ENTRIES,
    Commit,
    Entry,
    check_name,
    decode_commit,
    decode_tree,
    encode_tree,
    is_metadata_alias,
    link_entry,
)
from dvx.store import TREE, ObjectStore
from dvx.trees import TreeReader

A_ID = hash_bytes(b"a")
B_ID = hash_bytes(b"b")


def file_entry(name: str, content: bytes = b"x", executable: bool = False) -> Entry:
    return Entry(name, FILE, hash_bytes(content), len(content), executable)


def tree_bytes(rows: list[list[object]]) -> bytes:
    return json.dumps({"v": 1, "entries": rows}, separators=(",", ":"), ensure_ascii=False).encode()


# --- canonical encoding ------------------------------------------------------------------------------


def test_tree_encoding_is_canonical_json() -> None:
    entries = [link_entry("link", "a.txt"), file_entry("a.txt", b"abc", executable=True)]
    ((tid, data),) = encode_tree(entries)
    abc, link = hash_bytes(b"abc"), hash_bytes(b"a.txt")
    expected = f'{{"entries":[["a.txt","f",1,3,"{abc}"],["link","l",0,5,"{link}","a.txt"]],"v":1}}'.encode()
    assert data == expected
    assert tid == hash_bytes(data)


def test_tree_encoding_ignores_input_order_and_round_trips() -> None:
    entries = [file_entry(n, n.encode()) for n in ["b", "a", "ü", "Z", "a b", "日本"]]
    encoded = encode_tree(entries)
    assert encode_tree(list(reversed(entries))) == encoded
    ((tid, data),) = encoded
    node = decode_tree(data, tid)
    assert node.is_leaf
    assert node.entries == sorted(entries, key=lambda e: e.name)


def test_non_ascii_names_are_stored_as_utf8_not_escapes() -> None:
    ((_, data),) = encode_tree([file_entry("café")])
    assert "café".encode() in data


def test_commit_encoding_is_canonical_and_its_id_is_its_hash() -> None:
    c = Commit(A_ID, (B_ID,), "msg ü", "A <a@b>", "2026-01-01T00:00:00.000000Z", {"k": "v"})
    data = c.encode()
    assert json.loads(data) == {
        "v": 1, "tree": A_ID, "parents": [B_ID], "message": "msg ü", "author": "A <a@b>",
        "time": "2026-01-01T00:00:00.000000Z", "meta": {"k": "v"},
    }
    assert data == json.dumps(json.loads(data), sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    assert c.id == hash_bytes(data)
    assert decode_commit(data, c.id) == c


@pytest.mark.parametrize(
    "doc",
    [
        b"not json",
        b"[]",
        b'{"v":1,"tree":"abc","parents":[],"message":"","author":"","time":""}',
        json.dumps({"v": 1, "tree": A_ID, "parents": ["nope"], "message": "", "author": "", "time": ""}).encode(),
        json.dumps({"v": 1, "parents": [], "message": "", "author": "", "time": ""}).encode(),
    ],
)
def test_malformed_commit_is_corrupt(doc: bytes) -> None:
    with pytest.raises(CorruptObject):
        decode_commit(doc, "0" * 64)


def test_commit_of_unknown_version_is_unsupported() -> None:
    doc = json.dumps({"v": 2, "tree": A_ID, "parents": [], "message": "", "author": "", "time": ""}).encode()
    with pytest.raises(UnsupportedFormat):
        decode_commit(doc, "0" * 64)


# --- hostile names --------------------------------------------------------------------------------------

HOSTILE_NAMES = [
    "..",
    ".",
    "",
    "a/b",
    "/abs",
    "a\0b",
    ".dvx",
    ".DVX",
    ".Dvx",
    ".dvx.",
    ".dvx ",
    ".dvx. .",
    ".d\u200cvx",
    "\u200b.dvx",
    ".dvx\ufeff",
    "\uff0e\uff44\uff56\uff58",  # fullwidth ".dvx", folds to .dvx under NFKC
    "x" * 256,
    "é" * 128,  # 256 bytes in UTF-8
]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_decode_tree_rejects_hostile_names(name: str) -> None:
    data = tree_bytes([[name, "f", 0, 1, A_ID]])
    with pytest.raises((BadPath, CorruptObject)):
        decode_tree(data, hash_bytes(data))
    with pytest.raises(BadPath):
        check_name(name)


@pytest.mark.parametrize("name", ["...", ".dvxx", "dvx", "a.dvx", ".dvx-old", " .x", "é" * 127, "x" * 255])
def test_ordinary_names_are_accepted(name: str) -> None:
    check_name(name)
    data = tree_bytes([[name, "f", 0, 1, A_ID]])
    node = decode_tree(data, hash_bytes(data))
    assert node.entries is not None and node.entries[0].name == name


def test_metadata_alias_detection() -> None:
    assert is_metadata_alias(".DvX..")
    assert not is_metadata_alias("..dvx")


@pytest.mark.parametrize(
    "rows",
    [
        [["b", "f", 0, 1, A_ID], ["a", "f", 0, 1, A_ID]],  # unsorted
        [["a", "f", 0, 1, A_ID], ["a", "f", 0, 1, B_ID]],  # duplicate
        [["a", "f", 0, 1, A_ID], ["a", "d", 0, 1, B_ID]],  # duplicate, other kind
    ],
)
def test_decode_tree_rejects_unsorted_or_duplicate_entries(rows: list[list[object]]) -> None:
    data = tree_bytes(rows)
    with pytest.raises(CorruptObject):
        decode_tree(data, hash_bytes(data))


@pytest.mark.parametrize(
    "row",
    [
        ["a", "f", 0, 1, "nothex"],
        ["a", "f", 0, -1, A_ID],
        ["a", "x", 0, 1, A_ID],  # unknown kind
        ["a", "f", 2, 1, A_ID],
        ["a", "l", 1, 1, A_ID, "t"],  # exec bit on a link
        ["a", "d", 1, 1, A_ID],  # exec bit on a dir
        ["a", "l", 0, 1, A_ID],  # link without target
        ["a", "l", 0, 1, A_ID, ""],
        ["a", "l", 0, 1, A_ID, "a\0b"],
        ["a", "f", 0, 1, A_ID, "extra"],
        ["a", "f", 0, 1],
    ],
)
def test_decode_tree_rejects_malformed_entries(row: list[object]) -> None:
    data = tree_bytes([row])
    with pytest.raises(CorruptObject):
        decode_tree(data, hash_bytes(data))


def test_symlink_entry_id_must_match_its_target() -> None:
    data = tree_bytes([["l", "l", 0, 3, hash_bytes(b"safe"), "/etc/elsewhere"]])
    with pytest.raises(CorruptObject):
        decode_tree(data, hash_bytes(data))


def test_decode_tree_of_unknown_version_is_unsupported() -> None:
    data = json.dumps({"v": 9, "entries": []}).encode()
    with pytest.raises(UnsupportedFormat):
        decode_tree(data, hash_bytes(data))


# --- bucketed directories ----------------------------------------------------------------------------


def many(n: int, salt: str = "") -> list[Entry]:
    return [file_entry(f"img_{i:06d}.jpg", f"{salt}{i}".encode()) for i in range(n)]


def test_directory_at_the_leaf_limit_is_one_node() -> None:
    assert len(encode_tree(many(MAX_LEAF_ENTRIES))) == 1
    assert len(encode_tree(many(MAX_LEAF_ENTRIES + 1))) > 1


def test_large_directory_is_split_into_buckets() -> None:
    nodes = encode_tree(many(5000))
    root_id, root_data = nodes[-1]
    root = decode_tree(root_data, root_id)
    assert not root.is_leaf
    assert 1 < len(root.buckets) <= 256
    assert sum(count for _, _, count, _ in root.buckets) == 5000
    by_id = dict(nodes)
    for _, sub_id, count, _ in root.buckets:
        sub = decode_tree(by_id[sub_id], sub_id)
        assert sub.entries is not None and len(sub.entries) == count <= MAX_LEAF_ENTRIES


def test_bucketed_directory_reads_back_whole_through_the_store(tmp_path: Path) -> None:
    (tmp_path / "tmp").mkdir()
    store = ObjectStore(tmp_path / "objects", tmp_path / "tmp")
    entries = many(5000)
    nodes = encode_tree(entries)
    with store.writer() as w:
        for nid, data in nodes:
            w.add(nid, TREE, data)
    assert TreeReader(store).read_dir(nodes[-1][0]) == sorted(entries, key=lambda e: e.name)


def test_equal_sets_give_equal_ids_whatever_the_order() -> None:
    entries = many(5000)
    shuffled = entries[:]
    random.Random(7).shuffle(shuffled)
    assert encode_tree(shuffled)[-1][0] == encode_tree(entries)[-1][0]
    assert {i for i, _ in encode_tree(shuffled)} == {i for i, _ in encode_tree(entries)}


def test_changing_one_entry_rewrites_one_bucket_and_the_root() -> None:
    entries = many(5000)
    before = {i for i, _ in encode_tree(entries)}
    changed = entries[:]
    changed[1234] = file_entry(changed[1234].name, b"new content")
    after = {i for i, _ in encode_tree(changed)}
    assert len(after - before) == 2
    assert len(before - after) == 2


def test_adding_one_entry_rewrites_one_bucket_and_the_root() -> None:
    entries = many(5000)
    before = {i for i, _ in encode_tree(entries)}
    after = {i for i, _ in encode_tree(entries + [file_entry("new.jpg")])}
    assert len(after - before) == 2


def test_bucket_node_with_unsorted_or_bad_buckets_is_corrupt() -> None:
    for buckets in ([[5, A_ID, 1, 1], [3, B_ID, 1, 1]], [[3, A_ID, 1, 1], [3, B_ID, 1, 1]], [[300, A_ID, 1, 1]],
                    [[3, "zz", 1, 1]]):
        data = json.dumps({"v": 1, "depth": 0, "buckets": buckets}).encode()
        with pytest.raises(CorruptObject):
            decode_tree(data, hash_bytes(data))


def test_directory_entry_kinds() -> None:
    d = Entry("sub", DIR, A_ID, 10)
    link = link_entry("l", "/abs/target")
    ((tid, data),) = encode_tree([d, link])
    node = decode_tree(data, tid)
    assert node.entries == [link, d]
    assert link.kind == LINK and link.target == "/abs/target" and link.id == hash_bytes(b"/abs/target")
