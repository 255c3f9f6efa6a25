"""Refs and HEAD that cannot be read are corrupt, never absent (docs/format.md §11, §16 "fail closed").

A refs folder that is a file or a dangling link, a ref that is a folder, a link, a fifo, or bytes that are not
UTF-8: each is one error line (never a traceback, never a hang), and gc and fsck refuse instead of taking the
refs as absent (which made gc delete every object).
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from dvx.errors import CorruptObject, RefConflict, RefExists
from dvx.refs import HEADS, TAGS
from dvx.repo import Repo
from dvx.store.gc import collect

TIMEOUT = 30  # a read that blocks (a fifo) fails the test instead of hanging it


def committed(repo: Repo, write_files) -> str:
    write_files(repo.root, {"a.txt": "hello\n", "sub/b.bin": os.urandom(3000), "big.bin": os.urandom(600 << 10)})
    return repo.commit("c1")


def objects(repo: Repo) -> dict[str, bytes]:
    base = repo.dvx / "objects"
    return {p.relative_to(base).as_posix(): p.read_bytes() for p in sorted(base.rglob("*")) if p.is_file()}


def age_objects(repo: Repo) -> None:
    """Everything older than gc's default grace period, so only reachability protects it."""
    old = time.time() - 7200
    for p in (repo.dvx / "objects").rglob("*"):
        if p.is_file():
            os.utime(p, (old, old))


def one_error_line(proc: subprocess.CompletedProcess[str], needle: str) -> str:
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("dvx: error:"), proc.stderr
    assert needle.lower() in lines[0].lower(), lines[0]
    return lines[0]


def replace_heads_with_dangling_link(repo: Repo, tmp_path: Path) -> None:
    (repo.dvx / "refs" / "heads").rename(tmp_path / "elsewhere")
    (repo.dvx / "refs" / "heads").symlink_to(tmp_path / "unmounted")


# -- bug 1: unreadable refs folders and refs that are folders -------------------------------------------------


@pytest.mark.parametrize("how", ["dangling-link", "file", "link-to-folder"])
def test_refs_heads_that_is_not_a_real_folder_is_corrupt_and_gc_deletes_nothing(
    repo: Repo, write_files, tmp_path: Path, how: str
) -> None:
    committed(repo, write_files)
    age_objects(repo)
    before = objects(repo)
    heads = repo.dvx / "refs" / "heads"
    heads.rename(tmp_path / "elsewhere")
    if how == "dangling-link":
        heads.symlink_to(tmp_path / "unmounted")
    elif how == "file":
        heads.write_text("not a folder\n")
    else:
        heads.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(CorruptObject, match=r"refs/heads is a .*not a folder"):
        repo.gc(grace_seconds=0)
    with pytest.raises(CorruptObject):
        repo.fsck()
    with pytest.raises(CorruptObject):
        repo.head()
    assert objects(repo) == before


@pytest.mark.parametrize("folder", ["refs", "refs/tags", "refs/remotes"])
def test_other_refs_folders_that_are_dangling_links_stop_gc(repo: Repo, write_files, tmp_path: Path, folder: str) -> None:
    committed(repo, write_files)
    age_objects(repo)
    before = objects(repo)
    path = repo.dvx / folder
    if path.exists():
        path.rename(tmp_path / "moved")
    path.symlink_to(tmp_path / "unmounted")
    with pytest.raises(CorruptObject, match="not a folder"):
        repo.gc(grace_seconds=0)
    with pytest.raises(CorruptObject):
        repo.fsck()
    assert objects(repo) == before


def test_head_branch_replaced_by_a_folder_is_corrupt_not_unborn(repo: Repo, write_files) -> None:
    committed(repo, write_files)
    before = objects(repo)
    main = repo.dvx / HEADS / "main"
    main.unlink()
    main.mkdir()
    with pytest.raises(CorruptObject, match="refs/heads/main is a folder"):
        repo.head()
    with pytest.raises(CorruptObject):
        repo.gc(grace_seconds=0)
    with pytest.raises(CorruptObject):
        repo.fsck()
    assert objects(repo) == before


@pytest.mark.parametrize("kind", ["symlink", "dangling-symlink", "garbage", "empty"])
def test_a_tag_that_cannot_be_read_stops_gc(repo: Repo, write_files, tmp_path: Path, kind: str) -> None:
    first = committed(repo, write_files)
    repo.create_tag("v1", first)
    write_files(repo.root, {"a.txt": "other\n"})
    repo.commit("c2")
    age_objects(repo)
    before = objects(repo)
    tag = repo.dvx / TAGS / "v1"
    tag.unlink()
    if kind == "symlink":
        (tmp_path / "target").write_text(first + "\n")
        tag.symlink_to(tmp_path / "target")
    elif kind == "dangling-symlink":
        tag.symlink_to(tmp_path / "nowhere")
    elif kind == "garbage":
        tag.write_text("not an id\n")
    else:
        tag.write_bytes(b"")
    with pytest.raises(CorruptObject, match="refs/tags/v1"):
        repo.gc(grace_seconds=0)
    with pytest.raises(CorruptObject):
        repo.fsck()
    assert objects(repo) == before


def test_gc_itself_refuses_when_a_ref_cannot_be_read_or_is_not_live(repo: Repo, write_files, tmp_path: Path) -> None:
    """The sweep re-reads the refs before deleting: a caller's live set that misses a root deletes nothing."""
    committed(repo, write_files)
    age_objects(repo)
    before = objects(repo)
    with pytest.raises(RefConflict, match="nothing was deleted"):
        collect(repo.store, set(), grace_seconds=0)
    assert objects(repo) == before
    replace_heads_with_dangling_link(repo, tmp_path)
    with pytest.raises(CorruptObject):
        collect(repo.store, set(), grace_seconds=0)
    assert objects(repo) == before


def test_unborn_branch_of_a_new_repository_still_works(repo: Repo) -> None:
    assert repo.head() == ("main", None)
    assert repo.branches() == {}
    repo.gc(grace_seconds=0)
    assert repo.fsck().ok
    (repo.dvx / "refs" / "heads").rmdir()  # a missing refs folder is empty (§2)
    (repo.dvx / "refs" / "tags").rmdir()
    assert repo.head() == ("main", None)
    assert repo.branches() == {} and repo.tags() == {}
    repo.gc(grace_seconds=0)


def test_a_folder_of_refs_is_not_a_ref_but_its_refs_are_listed(repo: Repo, write_files) -> None:
    first = committed(repo, write_files)
    repo.create_branch("feature/x", first)
    assert repo.refs.get(HEADS + "feature") is None  # a namespace (§11.1), not a corrupt ref
    assert repo.branches() == {"feature/x": first, "main": first}
    (repo.dvx / HEADS / "feature" / "x.lock").write_text("pid 1\n")  # locks and dot-files are not refs
    (repo.dvx / HEADS / "feature" / ".x.1.new").write_text("partial")
    assert repo.branches() == {"feature/x": first, "main": first}


def test_cli_gc_with_refs_heads_a_dangling_link_deletes_nothing(repo: Repo, write_files, run_dvx, tmp_path: Path) -> None:
    committed(repo, write_files)
    age_objects(repo)
    before = objects(repo)
    replace_heads_with_dangling_link(repo, tmp_path)
    for args in (["gc"], ["gc", "--grace", "0"], ["fsck"], ["status"], ["log"]):
        one_error_line(run_dvx(args, repo.root, timeout=TIMEOUT), "refs/heads is a symbolic link")
    assert objects(repo) == before


def test_cli_gc_with_head_branch_a_folder_deletes_nothing(repo: Repo, write_files, run_dvx) -> None:
    committed(repo, write_files)
    before = objects(repo)
    main = repo.dvx / HEADS / "main"
    main.unlink()
    main.mkdir()
    one_error_line(run_dvx(["gc", "--grace", "0"], repo.root, timeout=TIMEOUT), "is a folder")
    one_error_line(run_dvx(["fsck"], repo.root, timeout=TIMEOUT), "is a folder")
    assert objects(repo) == before


# -- bug 2: bytes that are not UTF-8 ---------------------------------------------------------------------------


@pytest.mark.parametrize("content", [b"\xff\n", b"ref: refs/heads/\xff\n", b"\xfe\xff" * 10])
def test_head_that_is_not_utf8_is_a_corrupt_head(repo: Repo, write_files, run_dvx, content: bytes) -> None:
    committed(repo, write_files)
    (repo.dvx / "HEAD").write_bytes(content)
    with pytest.raises(CorruptObject, match="HEAD holds neither a branch nor a commit id"):
        repo.head()
    for args in (["status"], ["log"], ["gc"]):
        one_error_line(run_dvx(args, repo.root, timeout=TIMEOUT), "HEAD holds neither a branch nor a commit id")


@pytest.mark.parametrize("content", [b"\xff", b"\xff" * 64 + b"\n", b"0" * 10000])
def test_ref_that_is_not_utf8_or_too_big_does_not_hold_a_commit_id(
    repo: Repo, write_files, run_dvx, content: bytes
) -> None:
    committed(repo, write_files)
    before = objects(repo)
    (repo.dvx / HEADS / "main").write_bytes(content)
    with pytest.raises(CorruptObject, match="ref refs/heads/main does not hold a commit id"):
        repo.head()
    for args in (["status"], ["branch"], ["gc", "--grace", "0"], ["fsck"]):
        one_error_line(run_dvx(args, repo.root, timeout=TIMEOUT), "does not hold a commit id")
    assert objects(repo) == before


# -- bug 3: fifos (and other special files) where HEAD or a ref should be --------------------------------------


def test_head_that_is_a_fifo_is_refused_not_waited_on(repo: Repo, write_files, run_dvx) -> None:
    committed(repo, write_files)
    (repo.dvx / "HEAD").unlink()
    os.mkfifo(repo.dvx / "HEAD")
    for args in (["status"], ["log"], ["gc"], ["fsck"]):
        one_error_line(run_dvx(args, repo.root, timeout=TIMEOUT), "HEAD is a fifo, not a regular file")


@pytest.mark.parametrize("ref", [HEADS + "main", HEADS + "other", TAGS + "v1"])
def test_ref_that_is_a_fifo_is_refused_not_waited_on(repo: Repo, write_files, run_dvx, ref: str) -> None:
    committed(repo, write_files)
    before = objects(repo)
    path = repo.dvx / ref
    if path.exists():
        path.unlink()
    os.mkfifo(path)
    commands = [["branch" if ref.startswith(HEADS) else "tag"], ["log"], ["gc", "--grace", "0"], ["fsck"]]
    if ref == HEADS + "main":
        commands.append(["status"])  # status reads HEAD's branch only
    for args in commands:
        one_error_line(run_dvx(args, repo.root, timeout=TIMEOUT), f"ref {ref} is a fifo, not a regular file")
    assert objects(repo) == before


def test_head_that_is_a_folder_or_a_link_is_corrupt(repo: Repo, write_files, run_dvx, tmp_path: Path) -> None:
    committed(repo, write_files)
    head = repo.dvx / "HEAD"
    head.unlink()
    head.mkdir()
    one_error_line(run_dvx(["status"], repo.root, timeout=TIMEOUT), "HEAD is a folder")
    head.rmdir()
    head.symlink_to(tmp_path / "nowhere")  # dangling: was read as "missing", i.e. ref: refs/heads/main
    one_error_line(run_dvx(["gc"], repo.root, timeout=TIMEOUT), "HEAD is a symbolic link")


def test_ref_lock_that_is_a_fifo_is_not_waited_on(repo: Repo, write_files, run_dvx) -> None:
    first = committed(repo, write_files)
    os.mkfifo(repo.dvx / HEADS / "main.lock")
    r = run_dvx(["commit", "--allow-empty", "-m", "x"], repo.root, timeout=TIMEOUT)
    one_error_line(r, "not a regular file")
    assert repo.refs.get(HEADS + "main") == first


# -- a folder where a new ref goes: what a killed delete leaves is cleared, anything else refuses ---------------


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


@pytest.mark.parametrize("kind", ["branch", "tag"])
def test_a_folder_left_by_a_killed_delete_does_not_block_a_ref_of_its_name(repo: Repo, write_files, kind: str) -> None:
    c1 = committed(repo, write_files)
    section = HEADS if kind == "branch" else TAGS
    folder = repo.dvx / section / "team" / "deeper"
    folder.mkdir(parents=True)
    pid = dead_pid()
    (folder / "x.lock").write_text(f"pid {pid}\n")
    (folder / f".x.{pid}.new").write_text(c1 + "\n")
    (repo.dvx / section / "team" / "empty").mkdir()
    (repo.create_branch if kind == "branch" else repo.create_tag)("team", c1)
    assert (repo.dvx / section / "team").read_text().strip() == c1


@pytest.mark.parametrize("what", ["live-lock", "live-temp", "other-file", "link"])
def test_a_folder_with_anything_live_or_unknown_in_it_still_refuses_the_ref(repo: Repo, write_files, what: str) -> None:
    c1 = committed(repo, write_files)
    folder = repo.dvx / HEADS / "team"
    folder.mkdir(parents=True)
    if what == "live-lock":
        (folder / "x.lock").write_text(f"pid {os.getpid()}\n")
    elif what == "live-temp":
        (folder / f".x.{os.getpid()}.new").write_text(c1 + "\n")
    elif what == "other-file":
        (folder / ".notes").write_text("mine")
    else:
        (folder / "sub").symlink_to(repo.root)
    before = sorted(p.name for p in folder.iterdir())
    with pytest.raises(RefExists, match="cannot create 'refs/heads/team'"):
        repo.create_branch("team", c1)
    assert sorted(p.name for p in folder.iterdir()) == before
