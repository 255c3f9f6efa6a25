"""A chunk that names a manifest (docs/format.md §8.4) is refused, before anything is assembled, when its sizes lie.

The auditor's case: Z is a real 4 MiB zero blob; the inner manifest X lists ``[Z, 1]`` N times (its size, N, adds
up); the file F lists ``[X, N]``. A reader that joins X's parts before checking them holds N x 4 MiB. Every path
that reads content must refuse X with a one-line CorruptObject naming it, having decoded none of Z.
"""

from __future__ import annotations

import io
import json
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from dvx import codec
from dvx.cache import Cache
from dvx.errors import CorruptObject
from dvx.ids import hash_bytes
from dvx.model import Commit
from dvx.readonly import checkout_to, open_file
from dvx.repo import Repo
from dvx.source import RemoteContent
from dvx.store import BLOB, CHUNKED, COMMIT, TREE, encode_manifest
from dvx.store.pack import IndexEntry

N = 24  # the old reader held N x 4 MiB = 96 MiB (plus the list of parts) before failing
ZERO = bytes(4 << 20)
Z = hash_bytes(ZERO)
# Well under one 4 MiB part: the fixed reader decodes none of Z (its raw size is checked first).
PEAK_LIMIT = 3 << 20


def _store_file(repo: Repo, file_id: str, size: int, objects: list[tuple[str, int, bytes]]) -> str:
    """Store ``objects`` and a commit on branch ``evil`` whose tree holds ``big`` = (``file_id``, ``size``)."""
    base = repo.commit("base", allow_empty=True)
    with repo.store.writer() as w:
        for oid, type_, data in objects:
            w.add(oid, type_, data)
        rows = [["big", "f", 0, size, file_id]]
        tree = json.dumps({"v": 1, "entries": rows}, separators=(",", ":")).encode()
        w.add(hash_bytes(tree), TREE, tree)
        c = Commit(hash_bytes(tree), (base,), "evil", "x <x@x>", "2026-01-01T00:00:00.000000Z")
        w.add(c.id, COMMIT, c.encode())
    repo.create_branch("evil", c.id)
    return c.id


@pytest.fixture
def bomb(repo: Repo) -> Iterator[tuple[Repo, str, str]]:
    """``(repo, F, X)``: F's only chunk X is a manifest of N one-byte parts that are each really 4 MiB long."""
    x = hash_bytes(bytes(N))  # the content X claims to be
    f = hash_bytes(bytes(N) + b"!")  # any id: the reader must fail long before it checks the file's hash
    _store_file(repo, f, N, [
        (Z, BLOB, ZERO),
        (x, CHUNKED, encode_manifest(N, [(Z, 1)] * N)),
        (f, CHUNKED, encode_manifest(N, [(x, N)])),
    ])
    yield repo, f, x


def _bounded(action: Callable[[], Any]) -> tuple[BaseException | None, int, Any]:
    """Run ``action``; return (the exception it raised, peak bytes allocated meanwhile, its result)."""
    tracemalloc.start()
    try:
        try:
            result, error = action(), None
        except CorruptObject as exc:
            result, error = None, exc
        return error, tracemalloc.get_traced_memory()[1], result
    finally:
        tracemalloc.stop()


def _assert_refused(error: BaseException | None, peak: int, bad_id: str) -> None:
    assert isinstance(error, CorruptObject), error
    assert bad_id in str(error) and "\n" not in str(error)
    assert peak < PEAK_LIMIT, f"{peak} bytes allocated before the refusal"


def test_write_file_to_refuses_before_assembling(bomb: tuple[Repo, str, str]) -> None:
    repo, f, x = bomb
    reads = repo.store.reads
    error, peak, _ = _bounded(lambda: repo.store.write_file_to(f, io.BytesIO()))
    _assert_refused(error, peak, x)
    assert error.object_id == x  # type: ignore[union-attr]
    assert repo.store.reads - reads == 2  # F's and X's manifests; none of X's parts


def test_fsck_reports_the_chunk_manifest_without_assembling(bomb: tuple[Repo, str, str]) -> None:
    repo, _, x = bomb
    error, peak, report = _bounded(repo.fsck)
    assert error is None and report is not None
    assert not report.ok and x in report.bad and x in report.bad[x]
    assert peak < PEAK_LIMIT, f"{peak} bytes allocated by fsck"


def test_checkout_refuses_without_assembling(bomb: tuple[Repo, str, str]) -> None:
    repo, _, x = bomb
    error, peak, _ = _bounded(lambda: repo.checkout("evil"))
    _assert_refused(error, peak, x)
    assert not (repo.root / "big").exists()


def test_readonly_checkout_and_open_refuse_without_assembling(bomb: tuple[Repo, str, str], tmp_path: Path) -> None:
    repo, _, x = bomb
    cache = Cache(tmp_path / "cache")
    error, peak, _ = _bounded(lambda: checkout_to(repo, "evil", tmp_path / "out", cache=cache, jobs=1))
    _assert_refused(error, peak, x)
    with open_file(repo, "evil", "big") as fh:
        error, peak, _ = _bounded(lambda: fh.read(1))
    _assert_refused(error, peak, x)


def test_inner_manifest_size_must_equal_the_listed_size(repo: Repo) -> None:
    """X is a genuine manifest of B (two parts); F lists it as one byte longer. Refused before a part is read."""
    b = bytes(range(N))
    x = hash_bytes(b)
    f = hash_bytes(b + b"!")
    half = N // 2
    _store_file(repo, f, N + 1, [
        (hash_bytes(b[:half]), BLOB, b[:half]),
        (hash_bytes(b[half:]), BLOB, b[half:]),
        (x, CHUNKED, encode_manifest(N, [(hash_bytes(b[:half]), half), (hash_bytes(b[half:]), N - half)])),
        (f, CHUNKED, encode_manifest(N + 1, [(x, N + 1)])),
    ])
    reads = repo.store.reads
    with pytest.raises(CorruptObject, match=f"chunk manifest {x} .*describes {N} bytes") as info:
        repo.store.write_file_to(f, io.BytesIO())
    assert info.value.object_id == x
    assert repo.store.reads - reads == 2  # F's and X's manifests; neither part


def test_listed_size_over_the_object_limit_is_refused_before_reading_the_manifest(repo: Repo) -> None:
    size = codec.MAX_OBJECT_SIZE + 1
    x = hash_bytes(b"x")  # the id of some chunk content; stored as a manifest
    f = hash_bytes(b"f")
    _store_file(repo, f, size, [
        (Z, BLOB, ZERO),
        (x, CHUNKED, encode_manifest(size, [(Z, 4 << 20)] * 64 + [(Z, 1)])),
        (f, CHUNKED, encode_manifest(size, [(x, size)])),
    ])
    reads = repo.store.reads
    with pytest.raises(CorruptObject, match=x):
        repo.store.write_file_to(f, io.BytesIO())
    assert repo.store.reads - reads == 1  # F's manifest only


def test_remote_pieces_check_each_part_size(bomb: tuple[Repo, str, str]) -> None:
    """``dvx get`` from a remote writes each piece whole at its offset: a part longer than listed is refused."""
    repo, f, x = bomb
    where: dict[bytes, tuple[str, IndexEntry]] = {}
    for oid in (Z, x, f):
        info = repo.store.info(oid)
        assert info is not None
        where[bytes.fromhex(oid)] = ("p", IndexEntry(bytes.fromhex(oid), info.type, info.codec, 0,
                                                     info.stored_size, info.raw_size))
    content = RemoteContent(_NoBackend(), where, repo.store)  # type: ignore[arg-type]
    with pytest.raises(CorruptObject, match=x):
        content.pieces(f)


class _NoBackend:
    """Enough of a backend for :class:`RemoteContent` to be built; nothing may be downloaded."""

    url = "test://nowhere"
    connections = 1

    def read_range(self, key: str, start: int, end: int) -> bytes:
        raise AssertionError("nothing may be downloaded")
