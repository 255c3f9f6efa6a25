"""Fixtures for read-only checkouts: a two-version dataset repository, a private cache, and tree checks.

The dataset (tags ``v1`` and ``v2``) holds what a checkout must get right: nested folders, an executable and a
plain file with the same bytes, duplicate contents, an empty file, relative/absolute/dangling symlinks, and a
file over 2 MiB that the store chunks. ``v2`` changes a few files, deletes and adds some, flips an exec bit,
retargets a symlink and turns a folder into a file.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import pytest

from dvx.cache import Cache
from dvx.ids import hash_bytes
from dvx.model import FILE, LINK, Entry
from dvx.readonly import MANIFEST_NAME, select_paths
from dvx.repo import Repo

CLI = [sys.executable, "-m", "dvx.cli.main"]
CHUNKED_PATH = "big/chunked.bin"


def _bytes(seed: str, n: int) -> bytes:
    return random.Random(seed).randbytes(n)


def v1_files() -> dict[str, bytes]:
    files = {f"data/a/{i:03d}.bin": _bytes(f"a{i}", 1000 + 37 * i) for i in range(24)}
    files.update({f"data/b/c/{i:03d}.txt": f"row {i}\n".encode() * (i + 1) for i in range(12)})
    files.update({
        "bin/run.sh": b"#!/bin/sh\necho same bytes\n",
        "docs/run.txt": b"#!/bin/sh\necho same bytes\n",  # same content as the executable, not executable
        "dup1.txt": b"duplicate\n",
        "dup2.txt": b"duplicate\n",
        "empty.txt": b"",
        "swap/inner.txt": b"inside a folder in v1\n",
        CHUNKED_PATH: _bytes("big", 3 << 20),
    })
    return files


EXECUTABLE_V1 = {"bin/run.sh"}
LINKS_V1 = {"links/rel": "../data/a/000.bin", "links/abs": "/etc/hostname", "links/dangling": "nowhere/x"}


def _write_tree(root: Path, files: Mapping[str, bytes], execs: set[str], links: Mapping[str, str]) -> None:
    for child in root.iterdir():
        if child.name == ".dvx":
            continue
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        os.chmod(p, 0o755 if rel in execs else 0o644)
    for rel, target in links.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(target, p)


def make_dataset(root: Path) -> Repo:
    repo = Repo.init(root)
    files = v1_files()
    _write_tree(repo.root, files, EXECUTABLE_V1, LINKS_V1)
    repo.commit("v1")
    repo.create_tag("v1")
    files2 = dict(files)
    files2["data/a/000.bin"] = _bytes("changed0", 1500)
    files2["data/a/001.bin"] = _bytes("changed1", 1001)
    del files2["data/a/002.bin"]
    del files2["data/b/c/011.txt"]
    files2["data/new/added.bin"] = _bytes("added", 4000)
    files2["data/a/100.bin"] = _bytes("a100", 2000)
    del files2["swap/inner.txt"]
    files2["swap"] = b"a file in v2\n"
    links2 = dict(LINKS_V1, **{"links/rel": "../data/a/003.bin"})
    _write_tree(repo.root, files2, {"bin/run.sh", "docs/run.txt"}, links2)
    repo.commit("v2")
    repo.create_tag("v2")
    return repo


@pytest.fixture(scope="session")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Repo]:
    """A repository with tags v1 and v2 (shared by the tests of one worker: do not modify it)."""
    repo = make_dataset(tmp_path_factory.mktemp("dataset") / "repo")
    yield repo
    repo.close()


@pytest.fixture
def fresh_dataset(tmp_path: Path) -> Iterator[Repo]:
    """A private copy of the dataset, for tests that damage the store."""
    repo = make_dataset(tmp_path / "private")
    yield repo
    repo.close()


@pytest.fixture(autouse=True)
def isolated_cache_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own default cache (``DVX_CACHE_DIR``) and no size limit unless it sets one."""
    path = tmp_path / "cache"
    monkeypatch.setenv("DVX_CACHE_DIR", str(path))
    monkeypatch.delenv("DVX_CACHE_SIZE", raising=False)
    return path


@pytest.fixture
def cache(isolated_cache_env: Path) -> Cache:
    return Cache(isolated_cache_env)


def expected(repo: Repo, rev: str, patterns: Sequence[str] | None = None) -> dict[str, Entry]:
    return select_paths(repo.trees.walk(repo.read_commit(repo.resolve(rev)).tree), patterns)


def listing(dest: Path) -> set[str]:
    """Every non-directory path under ``dest`` (not following links), without the manifest."""
    out: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(dest):
        rel = os.path.relpath(dirpath, dest)
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            out.add(name if rel == "." else f"{rel}/{name}")
    out.discard(MANIFEST_NAME)
    return out


def assert_checkout(
    repo: Repo, rev: str, dest: Path, *, patterns: Sequence[str] | None = None, readonly: bool = True,
    symlinked: bool = False,
) -> dict[str, Entry]:
    """DEST holds exactly REV's (selected) entries: bytes, exec bit, mode, symlink targets verbatim."""
    want = expected(repo, rev, patterns)
    assert listing(dest) == set(want)
    for path, e in want.items():
        full = dest / path
        st = os.lstat(full)
        if e.kind == LINK:
            assert stat.S_ISLNK(st.st_mode), path
            assert os.readlink(full) == e.target, path
            continue
        assert e.kind == FILE
        if symlinked and e.size > 0:
            assert stat.S_ISLNK(st.st_mode), path
            st = os.stat(full)
        assert stat.S_ISREG(st.st_mode), path
        assert hash_bytes(full.read_bytes()) == e.id, path
        assert st.st_size == e.size
        assert bool(st.st_mode & 0o100) == e.executable, path
        if readonly:
            assert stat.S_IMODE(st.st_mode) == (0o555 if e.executable else 0o444), path
        else:
            assert st.st_mode & 0o200, path
    return want


@contextlib.contextmanager
def counting_reads(repo: Repo) -> Iterator[list[str]]:
    """Record the id of every object ``repo.store`` reads while the block runs."""
    reads: list[str] = []
    original = repo.store.get

    def counting(object_id: str, expect_type: int | None = None) -> tuple[int, bytes]:
        reads.append(object_id)
        return original(object_id, expect_type)

    repo.store.get = counting  # type: ignore[method-assign]
    try:
        yield reads
    finally:
        del repo.store.get


def run_cli(args: Sequence[str], cwd: Path, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if k not in ("DVX_FAULT", "DVX_DIR_ROOT")}
    full.update({"NO_COLOR": "1", "DVX_LOCK_TIMEOUT": "5"})
    full.update(env or {})
    return subprocess.run([*CLI, *args], cwd=cwd, env=full, capture_output=True, text=True, timeout=120)


class Helpers:
    """The helpers above, as a fixture (test modules must not ``import conftest``: other test folders have one)."""

    CHUNKED_PATH = CHUNKED_PATH
    CLI = CLI
    expected = staticmethod(expected)
    listing = staticmethod(listing)
    assert_checkout = staticmethod(assert_checkout)
    run_cli = staticmethod(run_cli)
    counting_reads = staticmethod(counting_reads)
    make_dataset = staticmethod(make_dataset)


@pytest.fixture(scope="session")
def h() -> type[Helpers]:
    return Helpers
