"""A cache object written into after it was cached (through a hard link of a checkout, as root or after a chmod)
is never linked or copied again unverified: its broken seal (mtime) gives it away, a re-hash finds it bad, and a
fresh extraction replaces it; the checkouts that share its inode are repaired at their next checkout.

The writes go through the hard link of a checkout, as a job on a training node would make them: the file is
made writable for the write and read-only again after it, so only its bytes and its mtime change.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

import dvx.cache
from dvx.cache import Cache, coarse_seal, is_sealed, seal_ns
from dvx.ids import hash_bytes
from dvx.readonly import MANIFEST_NAME, checkout_to
from dvx.repo import Repo

VICTIM = "data/a/003.bin"


def _write_through(path: Path, data: bytes, *, keep_mtime: bool = False) -> None:
    """Overwrite the start of ``path`` in place (the inode stays, so every hard link of it sees the write).
    ``keep_mtime``: put the old mtime back, as damage the cheap check cannot see would."""
    st = os.stat(path)
    os.chmod(path, 0o644)
    with open(path, "r+b") as fh:
        fh.write(data)
    os.chmod(path, stat.S_IMODE(st.st_mode))
    if keep_mtime:
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert os.stat(path).st_size == st.st_size


def _cli_json(h, args: list[str], cwd: Path) -> dict:
    r = h.run_cli([*args, "--json"], cwd)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_a_write_through_a_hard_link_never_reaches_another_checkout(h, dataset: Repo, tmp_path: Path) -> None:
    """The repro of the bug, through the real CLI: after a same-size write into a linked file, a writable ``get``,
    a new checkout, a checkout again of the folder written into and of another folder sharing the inode, and
    ``cache verify``."""
    ro, other = tmp_path / "ro", tmp_path / "other"
    for dest in (ro, other):
        assert _cli_json(h, ["checkout", "v1", "--readonly", "--to", str(dest)], dataset.root)["link"] == "hardlink"
    e = h.expected(dataset, "v1")[VICTIM]
    cached = Cache(tmp_path / "cache").path(e.id)
    assert os.lstat(ro / VICTIM).st_ino == os.lstat(cached).st_ino
    _write_through(ro / VICTIM, b"HACK")
    assert hash_bytes(cached.read_bytes()) != e.id  # the write went into the cache's inode

    r = h.run_cli(["get", str(dataset.root), "v1", str(tmp_path / "copy")], tmp_path)
    assert r.returncode == 0, r.stderr
    h.assert_checkout(dataset, "v1", tmp_path / "copy", readonly=False)
    assert hash_bytes(cached.read_bytes()) == e.id  # a fresh copy replaced the bad object

    new = tmp_path / "new"
    _cli_json(h, ["checkout", "v1", "--readonly", "--to", str(new)], dataset.root)
    _write_through(new / VICTIM, b"HACK")  # the cache's new inode this time
    _cli_json(h, ["checkout", "v1", "--readonly", "--to", str(tmp_path / "new2")], dataset.root)
    h.assert_checkout(dataset, "v1", tmp_path / "new2")

    # Folders that hold a written inode: their file changed under them, so it is replaced, not kept.
    for dest in (ro, other, new):
        doc = _cli_json(h, ["checkout", "v1", "--readonly", "--to", str(dest)], dataset.root)
        assert doc["written"] == 1 and doc["objects_extracted"] == 0
        h.assert_checkout(dataset, "v1", dest)
        assert os.lstat(dest / VICTIM).st_ino == os.lstat(cached).st_ino
    r = h.run_cli(["cache", "verify"], dataset.root)
    assert r.returncode == 0, r.stderr


def test_after_verify_removes_a_bad_object_a_checkout_really_repairs_the_folder(h, dataset: Repo, tmp_path: Path) -> None:
    """Damage that leaves the mtime alone is only found by ``cache verify``; the checkouts that hard-link the bad
    inode must then be repaired by checking them out again, never reported unchanged."""
    ro = tmp_path / "ro"
    assert _cli_json(h, ["checkout", "v1", "--readonly", "--to", str(ro)], dataset.root)["link"] == "hardlink"
    e = h.expected(dataset, "v1")[VICTIM]
    _write_through(ro / VICTIM, b"HACK", keep_mtime=True)
    r = h.run_cli(["cache", "verify"], dataset.root)
    assert r.returncode == 1 and f"bad {e.id}" in r.stderr, r.stderr
    doc = _cli_json(h, ["checkout", "v1", "--readonly", "--to", str(ro)], dataset.root)
    assert doc["written"] == 1 and doc["kept"] == doc["files"] - 1
    h.assert_checkout(dataset, "v1", ro)


def test_a_write_through_a_symlink_checkout_is_repaired(h, dataset: Repo, cache: Cache, tmp_path: Path) -> None:
    dest = tmp_path / "sym"
    checkout_to(dataset, "v1", dest, link="symlink", cache=cache)
    e = h.expected(dataset, "v1")[VICTIM]
    _write_through(cache.path(e.id), b"HACK")  # what writing through the symlink does
    report = checkout_to(dataset, "v1", dest, link="symlink", cache=cache)
    assert report.objects_extracted == 1
    h.assert_checkout(dataset, "v1", dest, symlinked=True)


@pytest.mark.parametrize("link", ["copy", "hardlink"])
def test_no_checkout_copies_or_links_a_written_object(h, dataset: Repo, cache: Cache, tmp_path: Path, link: str) -> None:
    checkout_to(dataset, "v1", tmp_path / "first", link="copy", cache=cache)
    e = h.expected(dataset, "v1")[VICTIM]
    _write_through(cache.path(e.id), b"HACK")
    checkout_to(dataset, "v1", tmp_path / "ro", link=link, cache=cache)
    h.assert_checkout(dataset, "v1", tmp_path / "ro")
    _write_through(cache.path(e.id), b"HACK")
    checkout_to(dataset, "v1", tmp_path / "rw", readonly=False, cache=cache)
    h.assert_checkout(dataset, "v1", tmp_path / "rw", readonly=False)


def test_a_touched_object_is_rehashed_and_sealed_again_not_extracted_again(h, dataset: Repo, cache: Cache, tmp_path: Path) -> None:
    """An mtime changed without the bytes (an older dvx made the object, ``touch``, a backup tool) costs a
    re-hash once; a written object of the same size and mode is replaced."""
    dest = tmp_path / "ro"
    checkout_to(dataset, "v1", dest, cache=cache)
    want = h.expected(dataset, "v1")
    touched, written = want["data/a/004.bin"], want[VICTIM]
    past = (os.stat(cache.path(touched.id)).st_mtime_ns // 10**9 - 3600) * 10**9
    os.utime(cache.path(touched.id), ns=(past, past))  # whole seconds: no seal
    _write_through(cache.path(written.id), b"HACK")
    assert cache.lookup(written.id, written.size) is None  # not trusted: the caller extracts it again
    assert cache.rechecked == 0
    name = cache.lookup(touched.id, touched.size)
    assert name is not None and cache.rechecked == 1
    st = os.lstat(name)
    assert is_sealed(touched.id, st.st_mtime_ns) and past - 10**9 < st.st_mtime_ns <= past  # its age is kept
    report = checkout_to(dataset, "v1", dest, cache=cache)
    assert report.objects_extracted == 1 and report.written == 2  # both files were changed under the checkout
    h.assert_checkout(dataset, "v1", dest)
    assert checkout_to(dataset, "v1", dest, cache=cache).written == 0


def test_the_seal_survives_links_renames_and_chmod_and_breaks_on_any_write(h, dataset: Repo, cache: Cache, tmp_path: Path) -> None:
    checkout_to(dataset, "v1", tmp_path / "ro", cache=cache)
    e = h.expected(dataset, "v1")[VICTIM]
    path = cache.path(e.id)
    sealed = os.lstat(path).st_mtime_ns
    assert sealed % 10**9 == seal_ns(e.id) and is_sealed(e.id, sealed)
    os.link(path, tmp_path / "another-link")
    os.chmod(path, 0o444)
    os.rename(tmp_path / "another-link", tmp_path / "renamed")
    os.unlink(tmp_path / "renamed")
    assert os.lstat(path).st_mtime_ns == sealed
    with open(path, "r+b") as fh:  # as root, or the owner after a chmod: the same byte written back
        first = fh.read(1)
        fh.seek(0)
        fh.write(first)
    assert not is_sealed(e.id, os.lstat(path).st_mtime_ns)
    assert not is_sealed(e.id, (os.lstat(path).st_mtime_ns // 10**9) * 10**9)  # a write on a coarse file system


def test_a_file_system_without_nanoseconds_gets_the_coarse_seal(
    h, dataset: Repo, cache: Cache, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where mtimes keep whole seconds only, objects carry a seal of whole seconds before 2002 that no later
    write can produce; their age, which that mtime no longer tells, is recorded as a use."""
    real = dvx.cache._set_mtime

    def seconds_only(fd: int, atime_ns: int, mtime_ns: int) -> None:
        real(fd, atime_ns // 10**9 * 10**9, mtime_ns // 10**9 * 10**9)

    monkeypatch.setattr(dvx.cache, "_set_mtime", seconds_only)
    dest = tmp_path / "ro"
    checkout_to(dataset, "v1", dest, cache=cache)
    e = h.expected(dataset, "v1")[VICTIM]
    assert os.lstat(cache.path(e.id)).st_mtime_ns == coarse_seal(e.id)
    assert (cache.used_dir / e.id[:2] / e.id[2:]).exists()  # its use is recorded: prune does not take it for old
    assert checkout_to(dataset, "v1", dest, cache=cache).written == 0
    _write_through(dest / VICTIM, b"HACK")
    os.utime(cache.path(e.id), ns=(os.stat(cache.path(e.id)).st_mtime_ns // 10**9 * 10**9,) * 2)  # whole seconds
    report = checkout_to(dataset, "v1", dest, cache=cache)
    assert report.written == 1 and report.objects_extracted == 1
    h.assert_checkout(dataset, "v1", dest)


def test_a_manifest_of_a_bad_hard_link_is_not_trusted(h, dataset: Repo, cache: Cache, tmp_path: Path) -> None:
    """A checkout made before the seal existed may record the mtime of a written inode as if it were good (an
    older dvx linked the bad object back in): a hard link whose recorded mtime is no seal is linked again."""
    dest = tmp_path / "ro"
    checkout_to(dataset, "v1", dest, cache=cache)
    e = h.expected(dataset, "v1")[VICTIM]
    _write_through(dest / VICTIM, b"HACK")
    manifest = json.loads((dest / MANIFEST_NAME).read_bytes())
    manifest["files"][VICTIM][5] = os.lstat(dest / VICTIM).st_mtime_ns  # as the older dvx recorded it
    (dest / MANIFEST_NAME).write_text(json.dumps(manifest))
    report = checkout_to(dataset, "v1", dest, cache=cache)
    assert report.written == 1
    h.assert_checkout(dataset, "v1", dest)
    assert hash_bytes(cache.path(e.id).read_bytes()) == e.id


def test_where_no_seal_holds_every_use_is_rehashed_and_the_report_says_so(
    h, dataset: Repo, cache: Cache, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dvx.cache, "_set_mtime", lambda fd, atime_ns, mtime_ns: None)  # mtimes it is given: lost
    dest = tmp_path / "ro"
    report = checkout_to(dataset, "v1", dest, cache=cache)
    assert any("could not be sealed" in w for w in report.warnings), report.warnings
    _write_through(dest / VICTIM, b"HACK")
    report = checkout_to(dataset, "v1", dest, cache=cache)
    assert report.objects_extracted == 1  # the written one; the others were re-hashed and found good
    h.assert_checkout(dataset, "v1", dest)


def _loop_mount(tmp_path: Path, name: str, mkfs: list[str]) -> Iterator[Path]:
    """A fresh 200 MiB file system made by ``mkfs`` (its image appended), loop-mounted; skips where that fails."""
    image, mnt = tmp_path / f"{name}.img", tmp_path / name
    mnt.mkdir()
    if shutil.which(mkfs[0]) is None:
        pytest.skip(f"no {mkfs[0]}")
    with open(image, "wb") as fh:
        fh.truncate(200 << 20)
    made = subprocess.run([*mkfs, str(image)], capture_output=True)
    if made.returncode != 0 or subprocess.run(["mount", "-o", "loop", str(image), str(mnt)], capture_output=True).returncode:
        pytest.skip(f"cannot loop-mount a file system made by {mkfs[0]} here")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=True)


@pytest.fixture
def seconds_fs(tmp_path: Path) -> Iterator[Path]:
    """A real file system whose mtimes keep whole seconds only (ext4 with 128-byte inodes)."""
    yield from _loop_mount(tmp_path, "seconds", ["mkfs.ext4", "-q", "-F", "-I", "128"])


@pytest.fixture
def reflink_fs(tmp_path: Path) -> Iterator[Path]:
    """A real file system with reflinks (btrfs)."""
    yield from _loop_mount(tmp_path, "btrfs", ["mkfs.btrfs", "-q", "-f"])


def test_reflinking_from_the_cache_keeps_its_seal_and_a_write_into_a_reflink_stays_there(
    h, dataset: Repo, reflink_fs: Path
) -> None:
    cache = Cache(reflink_fs / "cache")
    ro = reflink_fs / "ro"
    assert checkout_to(dataset, "v1", ro, cache=cache).link == "reflink"
    e = h.expected(dataset, "v1")[VICTIM]
    sealed = os.lstat(cache.path(e.id)).st_mtime_ns
    assert is_sealed(e.id, sealed)
    checkout_to(dataset, "v1", reflink_fs / "rw", readonly=False, cache=cache)
    _write_through(ro / VICTIM, b"HACK")  # copy-on-write: the cache's blocks are not touched
    assert os.lstat(cache.path(e.id)).st_mtime_ns == sealed
    assert checkout_to(dataset, "v1", ro, cache=cache).written == 1
    h.assert_checkout(dataset, "v1", ro)
    hl = reflink_fs / "hl"
    checkout_to(dataset, "v1", hl, link="hardlink", cache=cache)
    _write_through(hl / VICTIM, b"HACK")
    report = checkout_to(dataset, "v1", reflink_fs / "ro2", cache=cache)
    assert report.objects_extracted == 1
    h.assert_checkout(dataset, "v1", reflink_fs / "ro2")


def test_on_a_file_system_that_keeps_whole_seconds_a_write_is_still_caught(h, dataset: Repo, seconds_fs: Path) -> None:
    cache_dir, ro = seconds_fs / "cache", seconds_fs / "ro"
    env = {"DVX_CACHE_DIR": str(cache_dir)}
    r = h.run_cli(["checkout", "v1", "--readonly", "--to", str(ro), "--json"], dataset.root, env)
    assert r.returncode == 0 and json.loads(r.stdout)["link"] == "hardlink", r.stderr
    e = h.expected(dataset, "v1")[VICTIM]
    cached = Cache(cache_dir).path(e.id)
    assert os.lstat(cached).st_mtime_ns == coarse_seal(e.id)
    _write_through(ro / VICTIM, b"HACK")
    assert os.lstat(cached).st_mtime_ns % 10**9 == 0  # the write's mtime: whole seconds too
    r = h.run_cli(["checkout", "v1", "--readonly", "--to", str(ro), "--json"], dataset.root, env)
    assert r.returncode == 0 and json.loads(r.stdout)["written"] == 1, r.stderr
    h.assert_checkout(dataset, "v1", ro)
    assert hash_bytes(cached.read_bytes()) == e.id and not json.loads(r.stdout)["warnings"]
