"""checkout_to / checkout_readonly: byte-exact trees, no write bits, link modes, storage sharing, refusals."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from dvx.cache import Cache
from dvx.errors import BadPath, StorageError, UsageError
from dvx.model import FILE
from dvx.readonly import MANIFEST_NAME, checkout, checkout_readonly, checkout_to, read_manifest
from dvx.repo import Repo


@pytest.mark.parametrize("link", ["hardlink", "copy", "symlink", "auto"])
def test_readonly_checkout_is_byte_exact_in_every_mode(h, dataset: Repo, cache: Cache, tmp_path: Path, link: str) -> None:
    for rev in ("v1", "v2"):
        dest = tmp_path / f"{link}-{rev}"
        report = checkout_to(dataset, rev, dest, link=link, cache=cache)
        assert report.link == ("hardlink" if link == "auto" else link)  # ext4/tmpfs: no reflink, same fs
        h.assert_checkout(dataset, rev, dest, symlinked=link == "symlink")
        assert report.files == report.written == len(h.expected(dataset, rev))
        assert (dest / MANIFEST_NAME).is_file()


def test_symlinks_of_the_tree_are_recreated_verbatim_never_followed(dataset: Repo, cache: Cache, tmp_path: Path) -> None:
    dest = tmp_path / "out"
    checkout_readonly(dataset, "v1", dest, cache=cache)
    assert os.readlink(dest / "links/abs") == "/etc/hostname"  # absolute: kept as text
    assert os.readlink(dest / "links/dangling") == "nowhere/x"  # dangling: still created
    assert os.readlink(dest / "links/rel") == "../data/a/000.bin"


def test_hardlink_mode_shares_inodes_between_checkouts_and_cache(h, dataset: Repo, cache: Cache, tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    checkout_readonly(dataset, "v1", a, cache=cache)
    report = checkout_to(dataset, "v2", b, cache=cache)
    assert report.link == "hardlink"
    v1, v2 = h.expected(dataset, "v1"), h.expected(dataset, "v2")
    same = [p for p in v1 if p in v2 and v1[p].kind == FILE and v1[p].same_content(v2[p]) and v1[p].size > 0]
    assert len(same) > 30
    for p in same:
        sa, sb = os.lstat(a / p), os.lstat(b / p)
        assert sa.st_ino == sb.st_ino, p
        assert sa.st_nlink >= 3  # the cache's name, a's and b's
    # The second version cost only its new contents.
    changed = {e.id for p, e in v2.items() if e.kind == FILE and e.size > 0 and (p not in v1 or v1[p].id != e.id)}
    assert report.objects_extracted == len(changed - {e.id for e in v1.values()})
    # Storage of both checkouts together: distinct inodes ~ one version plus the changes.
    inodes: dict[int, int] = {}
    for root in (a, b):
        for p in h.listing(root):
            st = os.lstat(root / p)
            if stat.S_ISREG(st.st_mode):
                inodes[st.st_ino] = st.st_size
    one_version = sum(e.size for e in v2.values() if e.kind == FILE)
    assert sum(inodes.values()) < one_version * 1.05


def test_same_bytes_executable_and_plain_use_two_cache_variants(h, dataset: Repo, cache: Cache, tmp_path: Path) -> None:
    dest = tmp_path / "out"
    checkout_readonly(dataset, "v1", dest, cache=cache)
    run, doc = os.lstat(dest / "bin/run.sh"), os.lstat(dest / "docs/run.txt")
    assert run.st_ino != doc.st_ino
    assert stat.S_IMODE(run.st_mode) == 0o555 and stat.S_IMODE(doc.st_mode) == 0o444
    e = h.expected(dataset, "v1")["bin/run.sh"]
    assert os.lstat(cache.path(e.id, True)).st_ino == run.st_ino
    assert os.lstat(cache.path(e.id, False)).st_ino == doc.st_ino


def test_copy_mode_makes_independent_files(h, dataset: Repo, cache: Cache, tmp_path: Path) -> None:
    dest = tmp_path / "out"
    report = checkout_to(dataset, "v1", dest, link="copy", cache=cache)
    assert report.placed.get("hardlink", 0) == 0
    for p, e in h.expected(dataset, "v1").items():
        if e.kind == FILE:
            assert os.lstat(dest / p).st_nlink == 1, p


def test_reflink_is_used_where_supported_and_refused_clearly_elsewhere(h, dataset: Repo, cache: Cache, tmp_path: Path) -> None:
    dest = tmp_path / "out"
    try:
        report = checkout_to(dataset, "v1", dest, link="reflink", cache=cache)
    except StorageError as exc:
        assert "reflink" in str(exc) and "--link hardlink or copy" in str(exc)
        assert h.listing(dest) == set()  # refused before anything was written
        return
    assert report.link == "reflink"
    h.assert_checkout(dataset, "v1", dest)


def test_writable_checkout_is_a_plain_copy(h, dataset: Repo, cache: Cache, tmp_path: Path) -> None:
    dest = tmp_path / "rw"
    path = checkout(dataset, "v1", dest, readonly=False)
    assert path == dest.resolve()
    h.assert_checkout(dataset, "v1", dest, readonly=False)
    for p, e in h.expected(dataset, "v1").items():
        if e.kind == FILE:
            assert os.lstat(dest / p).st_nlink == 1
    with pytest.raises(UsageError):
        checkout_to(dataset, "v1", tmp_path / "x", readonly=False, link="hardlink", cache=cache)


def test_checkout_accepts_a_repository_path(h, dataset: Repo, tmp_path: Path, isolated_cache_env: Path) -> None:
    dest = checkout(str(dataset.root), "v2", tmp_path / "out", patterns=["data/a/"])
    h.assert_checkout(dataset, "v2", dest, patterns=["data/a/"])
    assert (isolated_cache_env / "v1" / "objects").is_dir()  # the default cache came from DVX_CACHE_DIR


def test_working_tree_and_head_are_untouched(dataset: Repo, cache: Cache, tmp_path: Path) -> None:
    head = dataset.refs.head()
    before = dataset.status()
    checkout_readonly(dataset, "v1", tmp_path / "out", cache=cache)
    assert dataset.refs.head() == head
    assert dataset.status() == before
    assert (dataset.root / "swap").is_file()  # the working tree still holds v2


def test_non_empty_folder_without_manifest_is_refused_unless_forced(h, dataset: Repo, cache: Cache, tmp_path: Path) -> None:
    dest = tmp_path / "busy"
    dest.mkdir()
    (dest / "mine.txt").write_text("keep me")
    with pytest.raises(UsageError, match="not empty"):
        checkout_readonly(dataset, "v1", dest, cache=cache)
    assert sorted(os.listdir(dest)) == ["mine.txt"]
    checkout_readonly(dataset, "v1", dest, cache=cache, force=True)
    assert (dest / "mine.txt").read_text() == "keep me"
    assert h.listing(dest) == set(h.expected(dataset, "v1")) | {"mine.txt"}


def test_a_symlink_in_the_way_is_never_followed(dataset: Repo, cache: Cache, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = tmp_path / "out"
    dest.mkdir()
    os.symlink(outside, dest / "data")
    with pytest.raises(BadPath):
        checkout_readonly(dataset, "v1", dest, cache=cache, force=True)
    assert list(outside.iterdir()) == []


def test_a_tree_holding_the_manifest_name_is_refused(tmp_path: Path, cache: Cache) -> None:
    repo = Repo.init(tmp_path / "r")
    (repo.root / MANIFEST_NAME).write_text("{}")
    repo.commit("hostile")
    with pytest.raises(BadPath, match=MANIFEST_NAME):
        checkout_readonly(repo, "HEAD", tmp_path / "out", cache=cache)
    repo.close()


def test_manifest_records_the_commit_and_every_path(h, dataset: Repo, cache: Cache, tmp_path: Path) -> None:
    dest = tmp_path / "out"
    checkout_readonly(dataset, "v1", dest, cache=cache)
    m = read_manifest(dest)
    assert m is not None and m.complete and m.readonly
    assert m.commit == dataset.resolve("v1")
    assert set(m.files) == set(h.expected(dataset, "v1"))
    assert m.files[h.CHUNKED_PATH].how == "hardlink"
    assert m.files["empty.txt"].how == "copy"  # empty files are created, not linked
    assert m.files["links/rel"].how == "link"


def test_unknown_link_mode_and_bad_jobs_are_usage_errors(dataset: Repo, cache: Cache, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="link mode"):
        checkout_to(dataset, "v1", tmp_path / "o", link="teleport", cache=cache)
    with pytest.raises(UsageError):
        checkout_to(dataset, "v1", tmp_path / "o", jobs=0, cache=cache)


@pytest.mark.parametrize("where", ["files", "pending"])
@pytest.mark.parametrize("bad", ["../outside/precious.txt", "a/../../outside/precious.txt", "/abs", "a//b", ".dvx/x"])
def test_a_manifest_path_outside_the_folder_is_damage_and_nothing_outside_is_touched(
    dataset: Repo, cache: Cache, tmp_path: Path, where: str, bad: str
) -> None:
    """The manifest is read from a folder anyone may have edited: a path in it that leaves the folder (or
    names its metadata) makes it damaged; no file outside the folder is removed, and --force starts afresh."""
    import json

    dest = tmp_path / "out"
    checkout_readonly(dataset, "v1", dest, cache=cache)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious.txt").write_text("not from dvx")
    doc = json.loads((dest / MANIFEST_NAME).read_text())
    if where == "files":
        doc["files"][bad] = next(iter(doc["files"].values()))
    else:
        doc["pending"] = [bad]
    (dest / MANIFEST_NAME).write_text(json.dumps(doc))
    with pytest.raises(Exception, match="is damaged"):
        read_manifest(dest)
    with pytest.raises(Exception, match="damaged"):
        checkout_readonly(dataset, "v1", dest, cache=cache)
    checkout_readonly(dataset, "v1", dest, cache=cache, force=True)  # as the error advises: a fresh manifest
    assert (outside / "precious.txt").read_text() == "not from dvx"
    assert read_manifest(dest) is not None


def _dead_pid() -> int:
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_temps_of_a_checkout_killed_in_a_new_folder_do_not_block_the_next_one(
    dataset: Repo, cache: Cache, tmp_path: Path
) -> None:
    """Killed after its probe or its first manifest temp went into the new folder, a checkout left only its own
    temps there: the next run removes them (their process is gone) instead of calling the folder not empty."""
    dest = tmp_path / "out"
    dest.mkdir()
    pid = _dead_pid()
    leftovers = [f".dvx.{pid}.0.tmp", f".dvx-probe.{pid}.1234.5.tmp"]
    for name in leftovers:
        (dest / name).write_bytes(b"half")
    checkout_readonly(dataset, "v1", dest, cache=cache)
    assert not any((dest / name).exists() for name in leftovers)
    assert read_manifest(dest) is not None
