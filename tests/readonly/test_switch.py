"""Switching a checkout folder to another revision touches only the paths that differ."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from dvx.cache import Cache
from dvx.errors import DirtyWorkingTree
from dvx.readonly import MANIFEST_NAME, checkout_to, read_manifest
from dvx.repo import Repo


def _stats(dest: Path, paths: set[str]) -> dict[str, tuple[int, int]]:
    return {p: (os.lstat(dest / p).st_ino, os.lstat(dest / p).st_mtime_ns) for p in paths}


@pytest.mark.parametrize("link", ["hardlink", "copy"])
def test_switch_rewrites_only_changed_files(h, dataset: Repo, cache: Cache, tmp_path: Path, link: str) -> None:
    dest = tmp_path / "out"
    checkout_to(dataset, "v1", dest, link=link, cache=cache)
    v1, v2 = h.expected(dataset, "v1"), h.expected(dataset, "v2")
    unchanged = {p for p in v1 if p in v2 and v1[p].same_content(v2[p]) and v1[p].target == v2[p].target}
    changed = {p for p in v2 if p not in unchanged}
    before = _stats(dest, unchanged)

    report = checkout_to(dataset, "v2", dest, link=link, cache=cache)

    h.assert_checkout(dataset, "v2", dest)
    assert _stats(dest, unchanged) == before  # same inode, same mtime: not rewritten
    assert report.kept == len(unchanged)
    assert report.written == len(changed)
    assert report.removed == len(set(v1) - set(v2))
    assert not (dest / "data/a/002.bin").exists()
    assert (dest / "swap").is_file()  # v1's folder "swap/" became a file
    assert read_manifest(dest).commit == dataset.resolve("v2")  # type: ignore[union-attr]

    # And back: v1 again, exactly.
    checkout_to(dataset, "v1", dest, link=link, cache=cache)
    h.assert_checkout(dataset, "v1", dest)
    assert not (dest / "data/new").exists()  # emptied folders are removed


def test_switch_with_an_exec_bit_change_swaps_the_variant(h, dataset: Repo, cache: Cache, tmp_path: Path) -> None:
    dest = tmp_path / "out"
    checkout_to(dataset, "v1", dest, cache=cache)
    checkout_to(dataset, "v2", dest, cache=cache)
    e = h.expected(dataset, "v2")["docs/run.txt"]
    assert e.executable
    assert os.lstat(dest / "docs/run.txt").st_ino == os.lstat(cache.path(e.id, True)).st_ino


def test_a_file_deleted_or_replaced_in_the_folder_is_restored(h, dataset: Repo, cache: Cache, tmp_path: Path) -> None:
    dest = tmp_path / "out"
    checkout_to(dataset, "v1", dest, link="copy", cache=cache)
    os.unlink(dest / "dup1.txt")
    os.chmod(dest / "dup2.txt", 0o644)
    (dest / "dup2.txt").write_bytes(b"tampered!!\n")
    os.unlink(dest / "links/rel")
    os.symlink("elsewhere", dest / "links/rel")
    report = checkout_to(dataset, "v1", dest, link="copy", cache=cache)
    assert report.written == 3
    h.assert_checkout(dataset, "v1", dest)


def test_switch_between_link_modes(h, dataset: Repo, cache: Cache, tmp_path: Path) -> None:
    dest = tmp_path / "out"
    checkout_to(dataset, "v1", dest, link="symlink", cache=cache)
    h.assert_checkout(dataset, "v1", dest, symlinked=True)
    assert read_manifest(dest).pin is not None  # type: ignore[union-attr]
    checkout_to(dataset, "v1", dest, link="hardlink", cache=cache)
    h.assert_checkout(dataset, "v1", dest)
    assert read_manifest(dest).pin is None  # type: ignore[union-attr]
    assert cache.info().pins == 0  # the pin went with the symlinks


def test_an_interrupted_checkout_is_completed_by_the_next_one(h, dataset: Repo, cache: Cache, tmp_path: Path) -> None:
    dest = tmp_path / "out"
    checkout_to(dataset, "v1", dest, cache=cache)
    # As a crash mid-switch to v2 leaves it: manifest incomplete, some v2 files written, some v1 ones deleted.
    doc = json.loads((dest / MANIFEST_NAME).read_text())
    doc["complete"] = False
    doc["pending"] = ["data/new/added.bin"]
    (dest / MANIFEST_NAME).write_text(json.dumps(doc))
    (dest / "data/new").mkdir()
    (dest / "data/new/added.bin").write_bytes(b"half")
    os.unlink(dest / "data/a/005.bin")
    report = checkout_to(dataset, "v1", dest, cache=cache)
    assert report.kept == 0  # nothing trusted
    h.assert_checkout(dataset, "v1", dest)


def test_writable_checkout_refuses_to_overwrite_local_edits(h, dataset: Repo, cache: Cache, tmp_path: Path) -> None:
    dest = tmp_path / "rw"
    checkout_to(dataset, "v1", dest, readonly=False, cache=cache)
    (dest / "data/a/000.bin").write_bytes(b"my edit")  # v2 changes this file
    with pytest.raises(DirtyWorkingTree, match="data/a/000.bin"):
        checkout_to(dataset, "v2", dest, readonly=False, cache=cache)
    assert (dest / "data/a/000.bin").read_bytes() == b"my edit"
    checkout_to(dataset, "v2", dest, readonly=False, cache=cache, force=True)
    h.assert_checkout(dataset, "v2", dest, readonly=False)


def test_switching_patterns_adds_and_removes_paths(h, dataset: Repo, cache: Cache, tmp_path: Path) -> None:
    dest = tmp_path / "out"
    checkout_to(dataset, "v2", dest, patterns=["data/a/"], cache=cache)
    h.assert_checkout(dataset, "v2", dest, patterns=["data/a/"])
    report = checkout_to(dataset, "v2", dest, patterns=["*.txt"], cache=cache)
    h.assert_checkout(dataset, "v2", dest, patterns=["*.txt"])
    assert report.removed == len(h.expected(dataset, "v2", ["data/a/"]))
    assert not (dest / "data/a").exists()
