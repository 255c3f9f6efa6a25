"""Regression tests from an audit of the remotes: what a damaged or odd remote must not get past, and a lazy
clone whose lazy remote was removed (docs/format.md §17.3, §17.6)."""

from __future__ import annotations

import glob
import json
import struct
from pathlib import Path

import blake3
import pytest

from dvx import Repo
from dvx.errors import CorruptObject, RemoteError
from dvx.transfer import add_remote, clone, fetch, fsck_remote, push, remove_remote


def small_repo(path: Path) -> Repo:
    path.mkdir()
    (path / "f.txt").write_text("hi")
    repo = Repo.init(path)
    repo.commit("one")
    return repo


def test_a_remote_index_entry_of_unknown_type_stops_the_fetch(tmp_path: Path) -> None:
    remote = tmp_path / "rem"
    a = small_repo(tmp_path / "a")
    add_remote(a, "origin", str(remote), {})
    push(a)
    b = clone(str(remote), tmp_path / "b")
    (a.root / "sub").mkdir()
    (a.root / "sub" / "t.txt").write_text("two")
    a.commit("two")
    push(a)
    for f in glob.glob(str(remote / "packs" / "*.idx")):  # every tree entry relabelled type 9, checksum redone
        data = bytearray(Path(f).read_bytes())
        n = struct.unpack("<Q", data[40:48])[0]
        for i in range(n):
            if data[48 + 60 * i + 32] == 2:
                data[48 + 60 * i + 32] = 9
        data[-32:] = blake3.blake3(bytes(data[:-32])).digest()
        Path(f).write_bytes(bytes(data))
    before = b.refs.get("refs/remotes/origin/main")
    with pytest.raises(CorruptObject, match="unknown type 9"):
        fetch(b)
    assert b.refs.get("refs/remotes/origin/main") == before
    assert b.fsck().ok


def test_a_marker_that_is_a_folder_is_refused_by_push(tmp_path: Path) -> None:
    remote = tmp_path / "rem"
    (remote / "dvx-remote.json").mkdir(parents=True)
    a = small_repo(tmp_path / "a")
    add_remote(a, "origin", str(remote), {})
    with pytest.raises(RemoteError, match="not a file"):
        push(a)
    assert not (remote / "refs").exists()


def test_fsck_remote_reports_a_ref_that_names_a_tree(tmp_path: Path) -> None:
    remote = tmp_path / "rem"
    a = small_repo(tmp_path / "a")
    add_remote(a, "origin", str(remote), {})
    push(a)
    tree = a.read_commit(a.head()[1] or "").tree
    (remote / "refs" / "heads" / "main").write_text(tree + "\n")
    _, _, bad = fsck_remote(a, "origin")
    assert "names a tree, not a commit" in bad[tree]


def test_a_lazy_clone_without_its_remote_still_knows_contents_are_only_not_fetched(tmp_path: Path) -> None:
    remote = tmp_path / "rem"
    a = small_repo(tmp_path / "a")
    add_remote(a, "origin", str(remote), {})
    push(a)
    b = clone(str(remote), tmp_path / "b", checkout=False)  # clones are lazy: contents come on checkout
    remove_remote(b, "origin")
    b = Repo(b.root)
    assert b.is_lazy and b.store.fetcher is None
    assert b.fsck().ok
    b.gc(grace_seconds=0)
    assert json.loads((b.dvx / "config").read_text())["core"]["lazy_remote"] == "origin"


def test_clone_passes_on_the_warning_about_remote_refs_it_ignores(tmp_path: Path, run_dvx) -> None:
    remote = tmp_path / "rem"
    a = small_repo(tmp_path / "a")
    add_remote(a, "origin", str(remote), {})
    push(a)
    (remote / "refs" / "heads" / "bad..name").write_text((remote / "refs" / "heads" / "main").read_text())
    r = run_dvx(["clone", str(remote), str(tmp_path / "c")], tmp_path, check=True)
    assert "ignored remote ref 'refs/heads/bad..name'" in r.stderr
