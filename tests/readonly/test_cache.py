"""The shared cache: concurrent processes, LRU eviction that never breaks a checkout, pins, verify, config."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from dvx.cache import Cache, parse_size, resolve_cache_dir, resolve_size_limit
from dvx.errors import BadConfig, UsageError
from dvx.ids import hash_bytes
from dvx.model import FILE
from dvx.readonly import checkout_to
from dvx.repo import Repo


def _file_ids(h, repo: Repo, rev: str) -> set[str]:
    return {e.id for e in h.expected(repo, rev).values() if e.kind == FILE and e.size > 0}


def test_four_processes_check_out_into_one_cold_cache(h, dataset: Repo, tmp_path: Path) -> None:
    cache_dir = tmp_path / "shared-cache"
    env = {"DVX_CACHE_DIR": str(cache_dir)}
    procs = []
    for i in range(4):
        rev = "v1" if i % 2 == 0 else "v2"
        args = [*h.CLI, "checkout", rev, "--readonly", "--to", str(tmp_path / f"out{i}"), "--json"]
        full = {**os.environ, **env, "NO_COLOR": "1"}
        procs.append((rev, i, subprocess.Popen(args, cwd=dataset.root, env=full, stdout=subprocess.PIPE,
                                               stderr=subprocess.PIPE, text=True)))
    extracted = 0
    for rev, i, proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        extracted += json.loads(out)["objects_extracted"]
        h.assert_checkout(dataset, rev, tmp_path / f"out{i}")
    cache = Cache(cache_dir)
    ids = _file_ids(h, dataset, "v1") | _file_ids(h, dataset, "v2")
    info = cache.info()
    assert info.objects == len(ids) and info.temp_files == 0
    report = cache.verify()
    assert report.ok and report.files == info.files
    # Racing extractions may duplicate work, never results: every cache file was made by someone, once.
    assert extracted >= info.files
    # The four checkouts share the cache's inodes.
    for p, e in h.expected(dataset, "v1").items():
        if e.kind == FILE and e.size > 0 and not e.executable:
            assert os.lstat(tmp_path / "out0" / p).st_ino == os.lstat(cache.path(e.id)).st_ino


@pytest.mark.parametrize("log_from", [10**9, 1], ids=["stamps", "usage-log"])
def test_prune_evicts_least_recently_used_first(
    h, dataset: Repo, cache: Cache, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, log_from: int
) -> None:
    """Uses are recorded per object (a stamp) or per checkout (one usage log file): either way prune evicts
    what was used longest ago."""
    import dvx.cache

    monkeypatch.setattr(dvx.cache, "USE_LOG_FROM", log_from)
    checkout_to(dataset, "v1", tmp_path / "a", cache=cache)
    v1_only = _file_ids(h, dataset, "v1") - _file_ids(h, dataset, "v2")
    # Make every object old, then use v2's again: v1-only objects are now the least recently used.
    past = time.time() - 3600
    for de in cache.objects_dir.rglob("*"):
        if de.is_file():
            os.utime(de, (past, past), follow_symlinks=False)
    for de in cache.used_dir.rglob("*"):
        if de.is_file():
            os.utime(de, (past, past))
    checkout_to(dataset, "v2", tmp_path / "b", cache=cache)
    total = cache.info().bytes
    v1_only_bytes = sum(os.lstat(cache.path(i)).st_size for i in v1_only)
    report = cache.prune(total - v1_only_bytes)
    assert report is not None
    assert report.objects_removed == len(v1_only)
    assert report.bytes_after <= total - v1_only_bytes
    for i in v1_only:
        assert not cache.path(i).exists()
    assert all(cache.path(i).exists() or cache.path(i, True).exists() for i in _file_ids(h, dataset, "v2"))
    logs = list((cache.used_dir / "log").glob("*")) if (cache.used_dir / "log").is_dir() else []
    assert bool(logs) == (log_from == 1)


def test_usage_logs_are_folded_into_one_summary_that_keeps_the_order(
    h, dataset: Repo, cache: Cache, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dvx.cache

    monkeypatch.setattr(dvx.cache, "USE_LOG_FROM", 1)
    monkeypatch.setattr(dvx.cache, "USE_LOGS_FOLD", 2)
    monkeypatch.setattr(dvx.cache, "FRESH_SECONDS", -1.0)  # every hit is a use to record
    checkout_to(dataset, "v1", tmp_path / "a", cache=cache)
    for n in range(4):
        checkout_to(dataset, "v2" if n % 2 else "v1", tmp_path / f"w{n}", cache=cache)
    log_dir = cache.used_dir / "log"
    assert len(list(log_dir.glob("*.ids"))) <= 2 and len(list(log_dir.glob("*.last"))) >= 1
    last, _ = cache._read_use_logs()
    v2 = _file_ids(h, dataset, "v2")
    v1_only = _file_ids(h, dataset, "v1") - v2
    assert v1_only and all(last[i] < min(last[j] for j in v2) for i in v1_only)  # v2 used last


def test_eviction_never_breaks_a_hardlinked_checkout(h, dataset: Repo, cache: Cache, tmp_path: Path) -> None:
    dest = tmp_path / "a"
    checkout_to(dataset, "v1", dest, cache=cache)
    report = cache.prune(0)
    assert report is not None and report.bytes_after == 0 and cache.info().objects == 0
    h.assert_checkout(dataset, "v1", dest)  # the links kept their inodes and bytes
    # The cache refills on the next checkout, and switching still works.
    checkout_to(dataset, "v2", dest, cache=cache)
    h.assert_checkout(dataset, "v2", dest)


def test_size_limit_evicts_after_a_checkout_but_keeps_what_it_uses(h, dataset: Repo, tmp_path: Path) -> None:
    v2_bytes = sum(e.size for e in h.expected(dataset, "v2").values() if e.kind == FILE)
    limited = Cache(tmp_path / "small", size_limit=v2_bytes + 5000)
    a, b = tmp_path / "a", tmp_path / "b"
    checkout_to(dataset, "v1", a, cache=limited)
    checkout_to(dataset, "v2", b, cache=limited)
    info = limited.info()
    assert info.bytes <= v2_bytes + 5000
    for i in _file_ids(h, dataset, "v2"):
        assert limited.path(i).exists() or limited.path(i, True).exists()
    h.assert_checkout(dataset, "v1", a)
    h.assert_checkout(dataset, "v2", b)


def test_size_limit_from_the_environment(h, dataset: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DVX_CACHE_SIZE", "10K")
    checkout_to(dataset, "v1", tmp_path / "a")
    cache = Cache.open(dataset.config, dataset.root)
    assert cache.size_limit == 10 << 10
    # All of v1 was in use, so nothing it needs was evicted; a later checkout of v2 evicts v1's leftovers.
    assert cache.info().objects == len(_file_ids(h, dataset, "v1"))
    checkout_to(dataset, "v2", tmp_path / "b")
    assert not any(cache.path(i).exists() for i in _file_ids(h, dataset, "v1") - _file_ids(h, dataset, "v2"))


def test_symlink_checkouts_pin_their_objects_until_they_are_gone(h, dataset: Repo, cache: Cache, tmp_path: Path) -> None:
    dest = tmp_path / "links"
    checkout_to(dataset, "v1", dest, link="symlink", cache=cache)
    report = cache.prune(0)
    assert report is not None and report.objects_removed == 0 and report.kept_pinned > 0
    h.assert_checkout(dataset, "v1", dest, symlinked=True)  # every link still resolves
    # The folder is deleted: its pin is stale once old enough, and then nothing is kept.
    for p in sorted(dest.rglob("*"), reverse=True):
        p.unlink() if not p.is_dir() or p.is_symlink() else p.rmdir()
    dest.rmdir()
    pin = next(cache.pins_dir.iterdir())
    old = time.time() - 2 * 86400
    os.utime(pin, (old, old))
    report = cache.prune(0)
    assert report is not None and report.pins_removed == 1 and cache.info().objects == 0


def test_a_fresh_pin_protects_a_checkout_in_progress(h, dataset: Repo, cache: Cache, tmp_path: Path) -> None:
    ids = sorted(_file_ids(h, dataset, "v1"))
    checkout_to(dataset, "v1", tmp_path / "a", cache=cache)
    cache.pin(tmp_path / "not-yet-written.json", ids[:3])
    report = cache.prune(0)
    assert report is not None and report.kept_pinned == 3 and report.pins_removed == 0


def test_verify_finds_and_removes_a_corrupted_cache_file(h, dataset: Repo, cache: Cache, tmp_path: Path) -> None:
    checkout_to(dataset, "v1", tmp_path / "a", link="copy", cache=cache)
    e = h.expected(dataset, "v1")["data/a/000.bin"]
    path = cache.path(e.id)
    os.chmod(path, 0o644)
    data = bytearray(path.read_bytes())
    data[10] ^= 0xFF
    path.write_bytes(bytes(data))
    os.chmod(path, 0o444)  # same size, same mode: the cheap check trusts it, verify does not
    report = cache.verify()
    assert report.bad == [e.id] and report.removed == 1
    assert not path.exists()
    assert cache.verify().ok


def test_an_untrusted_cache_file_is_replaced_not_used(h, dataset: Repo, cache: Cache, tmp_path: Path) -> None:
    e = h.expected(dataset, "v1")["data/a/001.bin"]
    path = cache.path(e.id)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"truncated")  # wrong size and mode (as a torn or tampered file would be)
    dest = tmp_path / "a"
    checkout_to(dataset, "v1", dest, cache=cache)
    h.assert_checkout(dataset, "v1", dest)
    assert hash_bytes(path.read_bytes()) == e.id


def test_prune_removes_only_old_temp_files(cache: Cache) -> None:
    cache.setup()
    young, old = cache.tmp_dir / "1.young.tmp", cache.tmp_dir / "2.old.tmp"
    young.write_bytes(b"x")
    old.write_bytes(b"x")
    past = time.time() - 2 * 86400
    os.utime(old, (past, past))
    report = cache.prune(None)
    assert report is not None and report.temp_removed == 1
    assert young.exists() and not old.exists()


def test_prune_without_wait_skips_when_another_pruner_holds_the_lock(cache: Cache) -> None:
    import fcntl

    cache.setup()
    fd = os.open(cache.base / "prune.lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        assert cache.prune(0, wait=False) is None
    finally:
        os.close(fd)
    assert cache.prune(0, wait=False) is not None


def test_parse_size() -> None:
    assert parse_size("20G") == 20 << 30
    assert parse_size("1.5T") == int(1.5 * (1 << 40))
    assert parse_size("500M") == 500 << 20
    assert parse_size("10KiB") == 10 << 10
    assert parse_size("10KB") == 10_000
    assert parse_size("1048576") == 1 << 20
    assert parse_size(0) == 0
    for bad in ("", "G", "-1G", "12Q", "nan"):
        with pytest.raises(UsageError):
            parse_size(bad)


def test_cache_dir_and_limit_resolution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = {"cache": {"dir": "rel/cache", "size_limit": "2G"}}
    monkeypatch.setenv("DVX_CACHE_DIR", str(tmp_path / "env"))
    assert resolve_cache_dir(config, tmp_path) == tmp_path / "env"  # the environment wins
    monkeypatch.delenv("DVX_CACHE_DIR")
    assert resolve_cache_dir(config, tmp_path) == tmp_path / "rel/cache"  # relative to the repository
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert resolve_cache_dir({}, tmp_path) == tmp_path / "xdg" / "dvx"
    assert resolve_size_limit(config) == 2 << 30
    monkeypatch.setenv("DVX_CACHE_SIZE", "1M")
    assert resolve_size_limit(config) == 1 << 20
    monkeypatch.setenv("DVX_CACHE_SIZE", "lots")
    with pytest.raises(BadConfig, match="DVX_CACHE_SIZE"):
        resolve_size_limit(config)
    monkeypatch.delenv("DVX_CACHE_SIZE")
    assert resolve_size_limit({}) is None


@pytest.mark.parametrize("link", ["hardlink", "symlink"])
def test_checkout_survives_a_concurrent_prune(h, dataset: Repo, cache: Cache, tmp_path: Path, link: str) -> None:
    import threading

    stop = threading.Event()
    rounds = [0]

    def pruner() -> None:
        other = Cache(cache.root)  # as another process would: its own instance
        while not stop.is_set():
            other.prune(0)
            rounds[0] += 1
            time.sleep(0.002)

    thread = threading.Thread(target=pruner)
    thread.start()
    try:
        for i, rev in enumerate(["v1", "v2", "v1"]):
            dest = tmp_path / f"out{i % 2}"
            checkout_to(dataset, rev, dest, link=link, cache=cache)
            h.assert_checkout(dataset, rev, dest, symlinked=link == "symlink")
    finally:
        stop.set()
        thread.join()
    assert rounds[0] > 0


@pytest.mark.parametrize("anonymous", [True, False], ids=["O_TMPFILE", "named-temp"])
def test_both_kinds_of_temp_file_publish_complete_files_and_leave_none(
    h, dataset: Repo, tmp_path: Path, anonymous: bool
) -> None:
    """Cache files are written as anonymous inodes linked into place (Linux O_TMPFILE) or, where the file system
    cannot, as named temp files in tmp/: either way the checkout is byte-exact and no temp file is left."""
    cache = Cache(tmp_path / "cache")
    cache._anonymous = anonymous and hasattr(os, "O_TMPFILE")
    checkout_to(dataset, "v1", tmp_path / "a", cache=cache)
    h.assert_checkout(dataset, "v1", tmp_path / "a")
    assert cache.info().temp_files == 0 and cache.verify().ok
    assert list((tmp_path / "cache").rglob("*.tmp")) == []


def test_a_get_killed_while_filling_the_cache_leaves_no_temp_file_and_a_rerun_completes(
    h, dataset: Repo, tmp_path: Path
) -> None:
    """SIGKILL in the middle of filling a cold cache (at the durability barrier, files written, none linked
    yet): nothing half-made is visible, no temp file is left behind, and the next checkout succeeds."""
    cache_dir = tmp_path / "cache"
    env = {**os.environ, "DVX_CACHE_DIR": str(cache_dir), "NO_COLOR": "1", "DVX_FAULT": "cache.before-barrier:1:kill"}
    proc = subprocess.run([*h.CLI, "checkout", "v1", "--readonly", "--to", str(tmp_path / "out")], cwd=dataset.root,
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == -9, proc.stderr
    cache = Cache(cache_dir)
    assert cache.info().temp_files == 0 and list(cache_dir.rglob("*.tmp")) == []
    assert cache.verify().ok
    del env["DVX_FAULT"]
    proc = subprocess.run([*h.CLI, "checkout", "v1", "--readonly", "--to", str(tmp_path / "out")], cwd=dataset.root,
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    h.assert_checkout(dataset, "v1", tmp_path / "out")


@pytest.mark.parametrize("nth", [1, 5])
def test_a_checkout_killed_while_placing_files_leaves_no_temp_in_any_folder_after_the_rerun(
    h, dataset: Repo, tmp_path: Path, nth: int
) -> None:
    """SIGKILL with a file's temp written beside it in a subfolder, not yet renamed: the rerun completes the
    checkout and removes that temp (its process is gone), so nothing dvx made is left among the data."""
    dest = tmp_path / "out"
    env = {**os.environ, "DVX_CACHE_DIR": str(tmp_path / "cache"), "NO_COLOR": "1",
           "DVX_FAULT": f"readonly.before-replace:{nth}:kill"}
    argv = [*h.CLI, "checkout", "v1", "--link", "copy", "--to", str(dest)]  # copies go through a temp each
    proc = subprocess.run(argv, cwd=dataset.root, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == -9, proc.stderr
    temps = [p for p in dest.rglob("*.tmp") if p.parent != dest]
    assert temps, "the kill should have left a file temp in a subfolder"
    del env["DVX_FAULT"]
    proc = subprocess.run(argv, cwd=dataset.root, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    h.assert_checkout(dataset, "v1", dest, readonly=False)
    assert list(dest.rglob("*.tmp")) == []


def test_the_rerun_of_a_killed_checkout_never_cleans_through_a_symlinked_folder(
    h, dataset: Repo, tmp_path: Path
) -> None:
    dest = tmp_path / "out"
    env = {**os.environ, "DVX_CACHE_DIR": str(tmp_path / "cache"), "NO_COLOR": "1",
           "DVX_FAULT": "readonly.before-replace:5:kill"}
    argv = [*h.CLI, "checkout", "v1", "--link", "copy", "--to", str(dest)]
    assert subprocess.run(argv, cwd=dataset.root, env=env, capture_output=True, timeout=120).returncode == -9
    folder = next(p for p in dest.rglob("*.tmp") if p.parent != dest).parent
    outside = tmp_path / "outside"
    outside.mkdir()
    bystander = outside / next(folder.glob("*.tmp")).name  # a dead process's temp name, but not in DEST
    bystander.write_bytes(b"not dvx's to delete")
    shutil.rmtree(folder)
    folder.symlink_to(outside)
    del env["DVX_FAULT"]
    subprocess.run(argv, cwd=dataset.root, env=env, capture_output=True, timeout=120)
    assert bystander.read_bytes() == b"not dvx's to delete"
