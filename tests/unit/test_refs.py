"""Refs: compare-and-swap updates, lock files left by dead processes, name validation."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from dvx.errors import RefConflict, UsageError
from dvx.ids import hash_bytes
from dvx.refs import HEADS, TAGS, RefStore, check_ref_name

C1, C2, C3 = (hash_bytes(x) for x in (b"1", b"2", b"3"))


@pytest.fixture
def refs(tmp_path: Path) -> RefStore:
    (tmp_path / "refs" / "heads").mkdir(parents=True)
    return RefStore(tmp_path)


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_create_update_delete_with_expected_values(refs: RefStore) -> None:
    ref = HEADS + "main"
    assert refs.get(ref) is None
    refs.update(ref, C1, None)
    assert refs.get(ref) == C1
    assert (refs.dir / ref).read_text() == C1 + "\n"
    refs.update(ref, C2, C1)
    assert refs.get(ref) == C2
    refs.update(ref, None, C2)
    assert refs.get(ref) is None
    assert not (refs.dir / ref).exists()


def test_update_with_wrong_expected_value_is_refused_and_changes_nothing(refs: RefStore) -> None:
    ref = HEADS + "main"
    refs.update(ref, C1, None)
    with pytest.raises(RefConflict):
        refs.update(ref, C3, C2)
    with pytest.raises(RefConflict):
        refs.update(ref, C3, None)  # "must not exist" but it does
    with pytest.raises(RefConflict):
        refs.update(ref, None, C2)  # delete guarded too
    assert refs.get(ref) == C1
    with pytest.raises(RefConflict):
        refs.update(HEADS + "other", C1, C1)  # expected a value, found none
    assert refs.get(HEADS + "other") is None
    assert not list(refs.dir.rglob("*.lock"))


def test_lock_file_of_a_dead_process_is_taken_over(refs: RefStore) -> None:
    ref = HEADS + "main"
    refs.update(ref, C1, None)
    lock = refs.dir / (ref + ".lock")
    lock.write_text(f"pid {dead_pid()}\n")
    refs.update(ref, C2, C1, timeout=2)
    assert refs.get(ref) == C2
    assert not lock.exists()


def test_lock_file_of_a_live_process_makes_the_update_fail(refs: RefStore) -> None:
    ref = HEADS + "main"
    refs.update(ref, C1, None)
    lock = refs.dir / (ref + ".lock")
    lock.write_text(f"pid {os.getpid()}\n")
    with pytest.raises(RefConflict):
        refs.update(ref, C2, C1, timeout=0.2)
    assert refs.get(ref) == C1
    assert lock.read_text() == f"pid {os.getpid()}\n"  # somebody else's lock is not removed


def test_lock_file_left_between_write_and_rename_is_taken_over(refs: RefStore) -> None:
    """What a SIGKILL at fault site ref.before-rename leaves: the lock holds the new id, not a pid."""
    ref = HEADS + "main"
    refs.update(ref, C1, None)
    (refs.dir / (ref + ".lock")).write_text(C2 + "\n")
    refs.update(ref, C3, C1, timeout=1)
    assert refs.get(ref) == C3


def test_head_symbolic_and_detached(refs: RefStore) -> None:
    assert refs.head() == (HEADS + "main", None)  # no HEAD file: unborn main
    refs.update(HEADS + "main", C1, None)
    refs.set_head_symbolic(HEADS + "main")
    assert refs.head() == (HEADS + "main", C1)
    refs.set_head_detached(C2)
    assert refs.head() == (None, C2)


def test_list_skips_lock_files(refs: RefStore) -> None:
    refs.update(HEADS + "main", C1, None)
    refs.update(HEADS + "feature/x", C2, None)
    (refs.dir / HEADS / "main.lock").write_text("pid 1\n")
    assert refs.list(HEADS) == {"feature/x": C2, "main": C1}
    assert refs.list(TAGS) == {}


@pytest.mark.parametrize(
    "name",
    ["", "a..b", "a b", "a~1", "a^", "a:b", "a?", "a*", "a[x", "a\\b", "-x", "HEAD", "@", ".hidden", "a/.b",
     "a.lock", "x.lock/y", "a/", "/a", "a//b", "a.", "a@{1}", "tab\tx", "nul\0x", "del\x7fx"],
)
def test_invalid_ref_names_are_refused(refs: RefStore, name: str) -> None:
    with pytest.raises(UsageError):
        check_ref_name(name)


@pytest.mark.parametrize("name", ["main", "feature/x", "v1.0", "a-b_c", "release/2024.01", "日本", "a@b"])
def test_valid_ref_names(name: str) -> None:
    check_ref_name(name)
