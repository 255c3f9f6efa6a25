"""dvx.open: one file of a revision, chunk by chunk, verified, without materializing anything."""

from __future__ import annotations

import io
import os

import pytest

from dvx.errors import CorruptObject, DvxError, UsageError
from dvx.ids import hash_bytes
from dvx.readonly import NotInRevision, VerifiedFile, open_file
from dvx.repo import Repo
from dvx.store import CHUNKED


def test_reads_a_chunked_file_whole_and_from_the_middle(h, dataset: Repo) -> None:
    e = h.expected(dataset, "v1")[h.CHUNKED_PATH]
    data = (dataset.root / h.CHUNKED_PATH).read_bytes()  # the working tree holds the same bytes (unchanged in v2)
    assert dataset.store.info(e.id).type == CHUNKED  # type: ignore[union-attr]
    assert len(dataset.store.file_chunks(e.id)) > 1
    with open_file(dataset, "v1", h.CHUNKED_PATH) as fh:
        assert isinstance(fh, io.RawIOBase) and fh.readable() and fh.seekable()
        assert fh.size == e.size == len(data)
        assert fh.read() == data
        assert fh.read() == b""
        middle = len(data) // 2 + 12345
        assert fh.seek(middle) == middle
        assert fh.read(1 << 20) == data[middle : middle + (1 << 20)]
        assert fh.tell() == middle + (1 << 20)
        fh.seek(-100, io.SEEK_END)
        assert fh.read() == data[-100:]
        fh.seek(0)
        fh.seek(10, io.SEEK_CUR)
        buf = bytearray(1000)
        assert fh.readinto(buf) == 1000 and bytes(buf) == data[10:1010]
        with pytest.raises(OSError):
            fh.seek(-1)
    with pytest.raises(ValueError):
        fh.read()


def test_reads_only_the_chunks_it_needs(h, dataset: Repo) -> None:
    e = h.expected(dataset, "v1")[h.CHUNKED_PATH]
    chunks = dataset.store.file_chunks(e.id)
    with h.counting_reads(dataset) as reads, open_file(dataset, "v1", h.CHUNKED_PATH) as fh:
        fh.seek(chunks[0][1] + 10)
        fh.read(100)
    data_reads = [r for r in reads if r in {c for c, _ in chunks}]
    assert data_reads == [chunks[1][0]]


def test_buffered_line_reading_of_a_small_file(h, dataset: Repo) -> None:
    with io.BufferedReader(open_file(dataset, "v2", "data/b/c/002.txt")) as fh:
        assert fh.readline() == b"row 2\n"
        assert fh.read() == b"row 2\n" * 2


def test_opens_by_repository_path_and_handles_odd_paths(h, dataset: Repo) -> None:
    with open_file(str(dataset.root), "v1", "./data//a/000.bin") as fh:
        assert hash_bytes(fh.read()) == h.expected(dataset, "v1")["data/a/000.bin"].id
    with open_file(dataset, "v1", "empty.txt") as fh:
        assert fh.read() == b""


def test_errors_name_the_problem(dataset: Repo) -> None:
    with pytest.raises(NotInRevision) as info:
        open_file(dataset, "v1", "no/such/file")
    assert isinstance(info.value, FileNotFoundError) and isinstance(info.value, DvxError)
    with pytest.raises(UsageError, match="directory"):
        open_file(dataset, "v1", "data")
    with pytest.raises(UsageError, match="symbolic link"):
        open_file(dataset, "v1", "links/rel")
    with pytest.raises(DvxError, match="neither a dvx repository"):
        open_file(str(dataset.root / "data"), "v1", "x")  # neither a repository nor a remote


def test_a_corrupted_chunk_is_detected_on_read(h, fresh_dataset: Repo) -> None:
    repo = fresh_dataset
    e = h.expected(repo, "v1")[h.CHUNKED_PATH]
    chunk, _ = repo.store.file_chunks(e.id)[1]
    loose = repo.store.loose_path(chunk)
    os.chmod(loose, 0o644)
    with open(loose, "r+b") as f:
        f.seek(-7, os.SEEK_END)
        byte = f.read(1)
        f.seek(-7, os.SEEK_END)
        f.write(bytes([byte[0] ^ 0x55]))
    fh = open_file(repo, "v1", h.CHUNKED_PATH)
    assert isinstance(fh, VerifiedFile)
    fh.read(100)  # the first chunk is fine
    with pytest.raises(CorruptObject):
        fh.read()
    fh.close()


def test_dvx_get_stays_a_function_after_open_and_checkout(tmp_path) -> None:
    """A submodule named like the function once replaced ``dvx.get`` after ``dvx.open`` had imported it."""
    import subprocess
    import sys

    code = ("import dvx, sys\n"
            "try:\n    dvx.open('/nonexistent-remote', 'v1', 'x')\nexcept dvx.DvxError:\n    pass\n"
            "assert callable(dvx.get), type(dvx.get)\nassert callable(dvx.checkout) and callable(dvx.open)\n")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=tmp_path)
