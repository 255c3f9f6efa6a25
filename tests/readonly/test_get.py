"""``dvx get URL REV DIR`` and URL sources of ``dvx.checkout`` / ``dvx.open``: a remote's revision with no
repository, against a folder remote, moto's S3 server and fake-gcs-server (fixtures in tests/remote_servers.py).

Byte counts come from wrapping the backend's ``read``/``read_range``, so they measure what was really requested.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import dvx
from dvx.errors import CorruptObject, DvxError, NoMatch, RemoteError, UnknownRevision
from dvx.ids import hash_bytes
from dvx.model import FILE
from dvx.readonly import checkout_to
from dvx.remote.backend import open_backend
from dvx.repo import Repo
from dvx.source import NETWORK_GAP, RemoteSource, get, open_remote_source
from dvx.store.pack import RECORD_HEADER
from dvx.transfer import add_remote, push

KINDS = ["file", "s3", "gs"]


def _push(repo: Repo, url: str) -> None:
    add_remote(repo, "origin", url, {}, check=False)
    push(repo, "origin", ["main", "v1", "v2"])


@pytest.fixture(scope="module")
def folder_remote(h: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Repo, str]]:
    """The dataset pushed to a folder remote (branch main, tags v1 and v2); shared: do not modify it."""
    base = tmp_path_factory.mktemp("get")
    repo = h.make_dataset(base / "repo")
    url = str(base / "remote")
    _push(repo, url)
    yield repo, url
    repo.close()


@pytest.fixture
def pushed(request: pytest.FixtureRequest, h: Any, tmp_path: Path) -> Iterator[tuple[Repo, str]]:
    """The dataset pushed to a fresh remote of the kind ``request.param`` (file, s3, gs)."""
    kind = request.param
    make = request.getfixturevalue("make_remote_url")
    url = make(kind)
    repo = h.make_dataset(tmp_path / "repo")
    _push(repo, url)
    yield repo, (f"file://{url}" if kind == "file" else url)
    repo.close()


class Reads:
    """Every ``read`` and ``read_range`` a backend class serves while installed: ``(key, start, end)``."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int, int]] = []

    @property
    def range_bytes(self) -> int:
        return sum(end - start for key, start, end in self.calls if start >= 0)

    def keys(self) -> list[str]:
        return [key for key, _, _ in self.calls]


@pytest.fixture
def record(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], Reads]:
    """``record(url)`` starts recording the reads of that URL's backend class (for the rest of the test)."""

    def start(url: str) -> Reads:
        cls = type(open_backend(url))
        reads = Reads()
        range_orig, read_orig = cls.read_range, cls.read

        def read_range(self: Any, key: str, start: int, end: int) -> bytes:
            data: bytes = range_orig(self, key, start, end)
            reads.calls.append((key, start, start + len(data)))
            return data

        def read(self: Any, key: str) -> bytes:
            data: bytes = read_orig(self, key)
            reads.calls.append((key, -1, -1))
            return data

        monkeypatch.setattr(cls, "read_range", read_range)
        monkeypatch.setattr(cls, "read", read)
        return reads

    return start


def _content_ids(h: Any, repo: Repo, rev: str, patterns: list[str] | None = None) -> set[str]:
    return {e.id for e in h.expected(repo, rev, patterns).values() if e.kind == FILE and e.size > 0}


def _stored(src: RemoteSource, ids: set[str]) -> tuple[int, set[str]]:
    """Stored bytes of the blobs that make up these files, and the blob ids."""
    pieces = {p for fid in ids for p, _ in src.content.pieces(fid)}
    return sum(src.content.entry(p)[1].stored_size for p in pieces), pieces


@pytest.mark.parametrize("pushed", KINDS, indirect=True)
def test_get_is_byte_exact_readonly_or_writable(h: Any, pushed: tuple[Repo, str], tmp_path: Path) -> None:
    repo, url = pushed
    report = get(url, "v1", tmp_path / "ro", readonly=True)
    assert report.link == "hardlink" and report.files == len(h.expected(repo, "v1"))
    h.assert_checkout(repo, "v1", tmp_path / "ro", readonly=True)
    # Without --readonly: a writable copy, as `clearml-data get --copy`; the API returns the folder.
    assert dvx.checkout(url, "v2", tmp_path / "rw", readonly=False) == (tmp_path / "rw").resolve()
    h.assert_checkout(repo, "v2", tmp_path / "rw", readonly=False)
    # A full clone was never made: only the metadata store and the cache exist besides the two folders.
    remotes = list((Path(os.environ["DVX_CACHE_DIR"]) / "v1" / "remotes").iterdir())
    assert len(remotes) == 1 and (remotes[0] / "url").read_text().strip() in (url, url.removeprefix("file://"))


@pytest.mark.parametrize("pushed", KINDS, indirect=True)
def test_patterns_fetch_only_the_bytes_they_need(h: Any, pushed: tuple[Repo, str], tmp_path: Path, record: Any) -> None:
    repo, url = pushed
    pats = ["data/b/", "*.sh"]
    src = open_remote_source(url)  # metadata now, so that what follows is file contents only
    reads = record(url)
    report = checkout_to(src, "v1", tmp_path / "out", patterns=pats, cache=src.cache)
    h.assert_checkout(repo, "v1", tmp_path / "out", patterns=pats)
    needed, pieces = _stored(src, _content_ids(h, repo, "v1", pats))
    everything, _ = _stored(src, _content_ids(h, repo, "v1"))
    assert all(key.startswith("packs/") and key.endswith(".pack") and start >= 0 for key, start, _ in reads.calls)
    assert report.bytes_fetched == reads.range_bytes and report.requests == len(reads.calls)
    gap = NETWORK_GAP if not url.startswith("file://") else RECORD_HEADER.size
    assert needed <= reads.range_bytes <= needed + len(pieces) * gap
    assert reads.range_bytes < everything / 10
    assert report.objects_extracted == len(_content_ids(h, repo, "v1", pats))
    src.close()


def test_a_second_get_of_another_rev_reuses_cache_and_metadata(h: Any, folder_remote: tuple[Repo, str], tmp_path: Path, record: Any) -> None:
    repo, url = folder_remote
    first = get(url, "v1", tmp_path / "v1", readonly=True)
    reads = record(url)
    second = get(url, "v2", tmp_path / "v2", readonly=True)
    h.assert_checkout(repo, "v2", tmp_path / "v2")
    assert not [k for k in reads.keys() if k.endswith(".idx")]  # indexes and metadata come from the cache
    new = _content_ids(h, repo, "v2") - _content_ids(h, repo, "v1")
    src = open_remote_source(url)
    needed, pieces = _stored(src, new)
    src.close()
    assert needed <= second.bytes_fetched <= needed + len(pieces) * RECORD_HEADER.size
    assert second.bytes_fetched < first.bytes_fetched / 10
    assert 0 < second.objects_extracted < first.objects_extracted


@pytest.mark.parametrize("pushed", KINDS, indirect=True)
def test_open_reads_exactly_one_file_and_only_its_objects(h: Any, pushed: tuple[Repo, str], record: Any) -> None:
    repo, url = pushed
    e = h.expected(repo, "v1")[h.CHUNKED_PATH]
    src = open_remote_source(url)  # metadata cached, so that dvx.open reads contents only
    chunks = src.content.pieces(e.id)
    spans = {(src.content.entry(c)[1].offset, src.content.entry(c)[1].offset + src.content.entry(c)[1].stored_size) for c, _ in chunks}
    src.close()
    assert len(chunks) > 1
    reads = record(url)
    with dvx.open(url, "v1", h.CHUNKED_PATH) as fh:
        data = fh.read()
        fh.seek(e.size - 10)
        assert fh.read() == data[-10:]
    assert len(data) == e.size and hash_bytes(data) == e.id
    ranges = [(s, t) for key, s, t in reads.calls if s >= 0]
    assert set(ranges) == spans  # one request per chunk of this file, nothing else
    with dvx.open(url, "v2", "data/b/c/002.txt") as fh:
        assert fh.read() == b"row 2\n" * 3
    assert not (Path(os.environ["DVX_CACHE_DIR"]) / "v1" / "objects").exists()  # nothing materialized


def test_revisions_resolve_against_the_remote(folder_remote: tuple[Repo, str]) -> None:
    repo, url = folder_remote
    src = open_remote_source(url)
    v1 = repo.resolve("v1")
    assert src.resolve("v1") == src.resolve("refs/tags/v1") == src.resolve(v1) == src.resolve(v1[:10]) == v1
    assert src.resolve("HEAD") == src.resolve("main") == repo.resolve("main")
    with pytest.raises(UnknownRevision, match="unknown revision 'nope'"):
        src.resolve("nope")
    with pytest.raises(UnknownRevision):
        src.resolve("0000000000")
    src.close()


def test_four_concurrent_gets_share_one_cache(h: Any, folder_remote: tuple[Repo, str], tmp_path: Path) -> None:
    repo, url = folder_remote
    env = {k: v for k, v in os.environ.items() if k != "DVX_FAULT"}
    procs = [
        subprocess.Popen([*h.CLI, "get", url, "v2", str(tmp_path / f"out{i}"), "--readonly", "--json"], cwd=tmp_path,
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for i in range(4)
    ]
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    for i in range(4):
        h.assert_checkout(repo, "v2", tmp_path / f"out{i}")
    assert not list((Path(os.environ["DVX_CACHE_DIR"]) / "v1" / "tmp").iterdir())


def test_cli_get_in_a_folder_with_no_repository(h: Any, folder_remote: tuple[Repo, str], tmp_path: Path) -> None:
    repo, url = folder_remote
    r = h.run_cli(["get", url, "v1", "ro", "--readonly", "data/a/", "bin/"], tmp_path)
    assert r.returncode == 0, r.stderr
    assert "read-only, hardlink" in r.stdout and "downloaded" in r.stdout
    h.assert_checkout(repo, "v1", tmp_path / "ro", patterns=["data/a/", "bin/"])
    r = h.run_cli(["get", f"file://{url}", "v2", "rw", "--link", "copy"], tmp_path)
    assert r.returncode == 0, r.stderr
    h.assert_checkout(repo, "v2", tmp_path / "rw", readonly=False)


@pytest.mark.parametrize(
    "case",
    ["unknown rev", "no such folder", "folder that is no remote", "missing bucket", "bad scheme", "hardlink writable"],
)
def test_errors_are_one_line_and_leave_nothing(
    h: Any, folder_remote: tuple[Repo, str], tmp_path: Path, case: str, request: pytest.FixtureRequest
) -> None:
    _, url = folder_remote
    rev, extra = "v1", []
    if case == "unknown rev":
        rev = "no-such-tag"
    elif case == "no such folder":
        url = str(tmp_path / "nowhere")
    elif case == "folder that is no remote":
        (tmp_path / "plain").mkdir()
        url = str(tmp_path / "plain")
    elif case == "missing bucket":
        request.getfixturevalue("s3_server")
        url = "s3://no-such-bucket-dvx/x"
    elif case == "bad scheme":
        url = "ftp://host/x"
    else:
        extra = ["--link", "hardlink"]
    dest = tmp_path / "dest"
    r = h.run_cli(["get", url, rev, str(dest), *extra], tmp_path)
    assert r.returncode != 0
    assert r.stderr.startswith("dvx: error: ") and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "Traceback" not in r.stderr
    assert not dest.exists()
    dest.mkdir()  # an existing empty folder stays empty
    r = h.run_cli(["get", url, rev, str(dest), *extra], tmp_path)
    assert r.returncode != 0 and os.listdir(dest) == []


def test_a_pattern_that_matches_nothing_is_an_error_that_changes_nothing(
    h: Any, folder_remote: tuple[Repo, str], tmp_path: Path, snapshot: Any
) -> None:
    """``dvx get`` and the API (``dvx.get``, ``dvx.checkout``) refuse patterns of which one matches no path."""
    repo, url = folder_remote
    dest = tmp_path / "ro"
    r = h.run_cli(["get", url, "v1", str(dest), "--readonly", "data/a/"], tmp_path)
    assert r.returncode == 0, r.stderr
    before = snapshot(dest)
    r = h.run_cli(["get", url, "v1", str(dest), "--readonly", "data/a/", "nomatch"], tmp_path)
    assert r.returncode == 1 and r.stderr.startswith("dvx: error: pattern 'nomatch' matches no path"), r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    r = h.run_cli(["get", url, "v1", str(tmp_path / "new"), "nomatch"], tmp_path)
    assert r.returncode == 1 and not (tmp_path / "new").exists()
    with pytest.raises(NoMatch, match="'nomatch/\\*\\*'"):
        dvx.get(url, "v1", dest, patterns=["nomatch/**"], readonly=True)
    with pytest.raises(NoMatch):
        dvx.checkout(repo, "v1", dest, patterns=["data/a/", "nomatch/**"])
    with pytest.raises(NoMatch):
        dvx.checkout(str(repo.root), "v1", tmp_path / "new", patterns=["nomatch"])
    assert snapshot(dest) == before and not (tmp_path / "new").exists()


def test_a_corrupt_remote_object_is_refused_before_anything_is_placed(h: Any, tmp_path: Path) -> None:
    repo = h.make_dataset(tmp_path / "repo")
    url = str(tmp_path / "remote")
    _push(repo, url)
    e = h.expected(repo, "v1")["data/a/005.bin"]
    src = open_remote_source(url)
    pack, entry = src.content.entry(e.id)
    src.close()
    path = Path(url) / "packs" / f"{pack}.pack"
    data = bytearray(path.read_bytes())
    data[entry.offset + entry.stored_size - 1] ^= 0xFF
    path.chmod(0o644)
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptObject, match=e.id):
        get(url, "v1", tmp_path / "out")
    assert not (tmp_path / "out").exists()
    src = open_remote_source(url)
    assert src.cache.lookup(e.id, e.size) is None and src.cache.info().temp_files == 0
    # What does not need the object still works.
    get(url, "v1", tmp_path / "out", patterns=["data/b/"])
    h.assert_checkout(repo, "v1", tmp_path / "out", patterns=["data/b/"])
    src.close()
    repo.close()


def test_open_and_checkout_tell_a_repository_from_a_remote(h: Any, folder_remote: tuple[Repo, str], tmp_path: Path) -> None:
    repo, url = folder_remote
    with dvx.open(str(repo.root), "v1", "dup1.txt") as fh:  # a repository path: read from its store
        assert fh.read() == b"duplicate\n"
    with dvx.open(url, "v1", "dup1.txt") as fh:  # the remote it was pushed to
        assert fh.read() == b"duplicate\n"
    with pytest.raises(DvxError, match="neither a dvx repository"):
        dvx.checkout(str(tmp_path), "v1", tmp_path / "x")
    with pytest.raises(RemoteError):
        dvx.open(f"file://{tmp_path}/none", "v1", "dup1.txt")


# --- a lazy clone (clone --no-checkout) checked out read-only: contents stream from its remote ------------


def _blobs_in_store(repo: Repo) -> int:
    return sum(1 for idx in repo.store.packs().values() for e in idx if e.type == 1) + len(list(repo.store.iter_loose()))


@pytest.mark.parametrize("pushed", ["file", "s3"], indirect=True)
def test_a_lazy_clone_streams_a_readonly_checkout_into_the_cache(h: Any, pushed: tuple[Repo, str], tmp_path: Path, record: Any) -> None:
    from dvx.transfer import clone

    repo, url = pushed
    lazy = clone(url, tmp_path / "lazy", checkout=False)
    assert _blobs_in_store(lazy) == 0
    reads = record(url)
    first = checkout_to(lazy, "v1", tmp_path / "ro1")
    h.assert_checkout(repo, "v1", tmp_path / "ro1", readonly=True)
    assert first.link == "hardlink"
    # Streamed as `dvx get` does: nothing went through the clone's store, the bytes were counted.
    assert _blobs_in_store(lazy) == 0
    needed = sum(e.size for e in h.expected(repo, "v1").values() if e.kind == FILE)
    assert first.bytes_fetched >= needed * 0.9 and first.requests > 0
    assert first.bytes_fetched <= reads.range_bytes
    second = checkout_to(lazy, "v2", tmp_path / "ro2")
    h.assert_checkout(repo, "v2", tmp_path / "ro2", readonly=True)
    assert 0 < second.bytes_fetched < first.bytes_fetched / 10  # only what v2 adds
    again = checkout_to(lazy, "v1", tmp_path / "ro3")
    assert again.bytes_fetched == 0 and again.requests == 0  # all in the cache now
    # The clone itself still works as a lazy clone: a writable checkout fetches into its store.
    lazy.checkout("v2", force=True)
    for rel in ("data/new/added.bin", "big/chunked.bin", "data/a/000.bin"):
        assert (lazy.root / rel).read_bytes() == (repo.root / rel).read_bytes()  # the dataset's folder is at v2
    assert not lazy.status().added and not lazy.status().modified
    assert _blobs_in_store(lazy) > 0
    lazy.close()


def test_a_lazy_clone_takes_what_its_store_holds_and_downloads_only_the_rest(h: Any, folder_remote: tuple[Repo, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dvx.transfer import clone

    repo, url = folder_remote
    lazy = clone(url, tmp_path / "lazy", checkout=False)
    lazy.checkout("v1", force=True)  # v1's contents are now in the clone's store
    monkeypatch.setenv("DVX_CACHE_DIR", str(tmp_path / "other-cache"))
    report = checkout_to(lazy, "v2", tmp_path / "ro")
    h.assert_checkout(repo, "v2", tmp_path / "ro", readonly=True)
    new = _content_ids(h, repo, "v2") - _content_ids(h, repo, "v1")
    src = open_remote_source(url)
    needed, pieces = _stored(src, new)
    src.close()
    assert needed <= report.bytes_fetched <= needed + len(pieces) * RECORD_HEADER.size
    assert report.objects_extracted == len(_content_ids(h, repo, "v2"))
    lazy.close()


def test_a_lazy_clone_refuses_a_corrupt_remote_object_and_leaves_dest_alone(h: Any, tmp_path: Path) -> None:
    from dvx.transfer import clone

    repo = h.make_dataset(tmp_path / "repo")
    remote = tmp_path / "remote"
    _push(repo, str(remote))
    lazy = clone(str(remote), tmp_path / "lazy", checkout=False)
    for pack in (remote / "packs").glob("*.pack"):  # flip a byte in the middle of every payload-bearing pack
        data = bytearray(pack.read_bytes())
        if len(data) > 4096:
            data[len(data) // 2] ^= 0xFF
            pack.write_bytes(bytes(data))
    with pytest.raises(CorruptObject):
        checkout_to(lazy, "v1", tmp_path / "ro")
    assert not (tmp_path / "ro").exists()
    lazy.close()
    repo.close()
