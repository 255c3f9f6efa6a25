"""Bad objects never reach a checkout; partial checkouts read only what their patterns need."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dvx.cache import Cache
from dvx.errors import CorruptObject
from dvx.ids import hash_bytes
from dvx.model import FILE, Entry
from dvx.readonly import MANIFEST_NAME, VerifiedFile, checkout_to, open_file
from dvx.repo import Repo
from dvx.store import BLOB, CHUNKED, encode_manifest
from dvx.trees import build


def _corrupt(repo: Repo, object_id: str) -> None:
    """Flip the last stored byte of an object, in its pack or its loose file."""
    info = repo.store.info(object_id)
    assert info is not None
    if info.pack is not None:
        path, at = repo.store.pack_dir / f"{info.pack}.pack", info.offset + info.stored_size - 1
    else:
        path = repo.store.loose_path(object_id)
        at = os.path.getsize(path) - 1
    os.chmod(path, 0o644)
    with open(path, "r+b") as f:
        f.seek(at)
        b = f.read(1)
        f.seek(at)
        f.write(bytes([b[0] ^ 0xFF]))
    repo.store.close()  # drop cached pack descriptors


def test_a_corrupted_store_object_fails_before_anything_is_linked(h, fresh_dataset: Repo, cache: Cache, tmp_path: Path) -> None:
    repo = fresh_dataset
    e = h.expected(repo, "v1")[h.CHUNKED_PATH]
    chunk, _ = repo.store.file_chunks(e.id)[-1]
    _corrupt(repo, chunk)
    dest = tmp_path / "out"
    with pytest.raises(CorruptObject):
        checkout_to(repo, "v1", dest, cache=cache)
    assert not dest.exists()  # nothing linked, not even a manifest: the folder it created is gone too
    assert not cache.path(e.id).exists()
    assert cache.info().temp_files == 0
    # A checkout that does not need the bad object is unaffected.
    checkout_to(repo, "v1", dest, patterns=["data/"], cache=cache)
    h.assert_checkout(repo, "v1", dest, patterns=["data/"])


def test_a_corrupted_switch_leaves_the_previous_checkout_intact(h, fresh_dataset: Repo, cache: Cache, tmp_path: Path) -> None:
    repo = fresh_dataset
    dest = tmp_path / "out"
    checkout_to(repo, "v1", dest, cache=cache)
    e = h.expected(repo, "v2")["data/new/added.bin"]
    _corrupt(repo, e.id)
    with pytest.raises(CorruptObject):
        checkout_to(repo, "v2", dest, cache=cache)
    h.assert_checkout(repo, "v1", dest)


def _forged_repo(root: Path) -> tuple[Repo, str, bytes]:
    """A commit whose chunked file lists valid chunks that do not hash to the file's id."""
    repo = Repo.init(root)
    a, b = os.urandom(600_000), os.urandom(600_000)
    claimed = hash_bytes(b"something else entirely")
    with repo.store.writer() as w:
        w.add(hash_bytes(a), BLOB, a)
        w.add(hash_bytes(b), BLOB, b)
        w.add(claimed, CHUNKED, encode_manifest(len(a) + len(b), [(hash_bytes(a), len(a)), (hash_bytes(b), len(b))]))
        tree = build(w, {"forged.bin": Entry("forged.bin", FILE, claimed, len(a) + len(b))})
    commit = repo.write_commit(tree, [], "forged")
    repo.refs.set_head_detached(commit)
    return repo, claimed, a + b


def test_chunks_that_do_not_add_up_to_the_file_id_are_refused(cache: Cache, tmp_path: Path) -> None:
    repo, claimed, data = _forged_repo(tmp_path / "forged")
    dest = tmp_path / "out"
    with pytest.raises(CorruptObject):
        checkout_to(repo, "HEAD", dest, cache=cache)
    assert not (dest / "forged.bin").exists() and not (dest / MANIFEST_NAME).exists()
    assert cache.info().objects == 0
    # dvx.open: each chunk is genuine, so a read from the middle succeeds; a sequential read to the end fails.
    with open_file(repo, "HEAD", "forged.bin") as fh:
        assert isinstance(fh, VerifiedFile)
        fh.seek(1000)
        assert fh.read(10) == data[1000:1010]
        fh.seek(0)
        with pytest.raises(CorruptObject):
            fh.read()
    repo.close()


def test_partial_checkout_reads_only_the_contents_its_patterns_select(h, dataset: Repo, cache: Cache, tmp_path: Path) -> None:
    patterns = ["data/b/", "bin/*.sh"]
    want = h.expected(dataset, "v2", patterns)
    all_files = {e.id for e in h.expected(dataset, "v2").values() if e.kind == FILE}
    wanted = {e.id for e in want.values() if e.kind == FILE}
    assert 0 < len(wanted) < len(all_files) // 2
    with h.counting_reads(dataset) as reads:
        report = checkout_to(dataset, "v2", tmp_path / "part", patterns=patterns, cache=cache)
    h.assert_checkout(dataset, "v2", tmp_path / "part", patterns=patterns)
    content_reads = {r for r in reads if r in all_files}
    assert content_reads == wanted - {hash_bytes(b"")}
    assert report.bytes_extracted == sum({e.id: e.size for e in want.values() if e.kind == FILE}.values())


def test_fetch_missing_is_called_once_with_what_the_cache_lacks(h, dataset: Repo, cache: Cache, tmp_path: Path) -> None:
    checkout_to(dataset, "v1", tmp_path / "a", cache=cache)
    calls: list[list[str]] = []
    checkout_to(dataset, "v2", tmp_path / "b", cache=cache, fetch_missing=calls.append)
    v1 = {(e.id, e.executable) for e in h.expected(dataset, "v1").values() if e.kind == FILE}
    v2 = {(e.id, e.executable) for e in h.expected(dataset, "v2").values() if e.kind == FILE and e.size > 0}
    assert len(calls) == 1
    assert calls[0] == sorted({i for i, _ in v2 - v1})
