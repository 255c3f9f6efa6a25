"""What stands where a checkout writes without the scan having reported it: ignored files, emptied or ignored
folders, special files, nested repositories. As git: ignored files and empty folders are expendable and the
checkout succeeds; anything else makes it refuse before it touches a single file (it used to fail half-way,
leaving some files of the target written and HEAD on the old commit)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dvx.errors import DirtyWorkingTree
from dvx.repo import Repo


def two_commits(repo: Repo, write_files, first: dict[str, str], second: dict[str, str], gone: list[str]) -> None:
    write_files(repo.root, first)
    repo.commit("c1")
    for rel in gone:
        path = repo.root / rel
        if path.is_dir():
            import shutil

            shutil.rmtree(path)
        else:
            path.unlink()
    write_files(repo.root, second)
    repo.commit("c2")
    repo.checkout("HEAD~1")


def assert_at_target(repo: Repo, run_dvx) -> None:
    assert repo.head()[0] == "main"
    assert repo.status().to_json() == {"added": [], "modified": [], "deleted": []}
    assert (repo.root / "other").read_text() == "t2"


def test_ignored_file_inside_a_folder_that_becomes_a_file(repo: Repo, write_files, run_dvx) -> None:
    two_commits(repo, write_files, {".dvxignore": "*.log\n", "p/a": "a", "other": "t"},
                {"p": "f", "other": "t2", "newfile": "new"}, ["p"])
    (repo.root / "p" / "x.log").write_text("ignored")
    run_dvx(["checkout", "main"], repo.root, check=True)
    assert (repo.root / "p").read_text() == "f"
    assert_at_target(repo, run_dvx)


@pytest.mark.parametrize("kind", ["file", "symlink"])
def test_empty_folders_where_the_target_puts_a_file_or_symlink(repo: Repo, write_files, run_dvx, kind: str) -> None:
    write_files(repo.root, {"other": "t"})
    repo.commit("c1")
    if kind == "file":
        (repo.root / "p").write_text("file")
    else:
        os.symlink("other", repo.root / "p")
    write_files(repo.root, {"other": "t2"})
    repo.commit("c2")
    repo.checkout("HEAD~1")
    (repo.root / "p" / "q" / "r").mkdir(parents=True)
    run_dvx(["checkout", "main"], repo.root, check=True)
    assert os.path.islink(repo.root / "p") == (kind == "symlink")
    assert_at_target(repo, run_dvx)


def test_ignored_file_where_the_target_needs_a_folder(repo: Repo, write_files, run_dvx) -> None:
    two_commits(repo, write_files, {".dvxignore": "p\n", "other": "t"}, {".dvxignore": "\n", "p/a": "a", "other": "t2"}, [])
    (repo.root / "p").write_text("ignored")
    run_dvx(["checkout", "main"], repo.root, check=True)
    assert (repo.root / "p" / "a").read_text() == "a"
    assert_at_target(repo, run_dvx)


def test_ignored_symlink_to_a_folder_is_never_written_through(repo: Repo, write_files, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    two_commits(repo, write_files, {".dvxignore": "p\n", "other": "t"}, {".dvxignore": "\n", "p/a": "a", "other": "t2"}, [])
    os.symlink(outside, repo.root / "p")
    repo.checkout("main")
    assert not os.path.islink(repo.root / "p") and (repo.root / "p" / "a").read_text() == "a"
    assert list(outside.iterdir()) == []


@pytest.mark.parametrize("where", ["at the path", "inside a folder at the path", "at a parent"])
def test_an_untracked_special_file_in_the_way_is_refused_before_anything_changes(
    repo: Repo, write_files, snapshot, where: str
) -> None:
    target = {"other": "t2", "p": "file"} if where != "at a parent" else {"other": "t2", "p/a": "a"}
    two_commits(repo, write_files, {"other": "t"}, target, [])
    if where == "inside a folder at the path":
        (repo.root / "p").mkdir()
        os.mkfifo(repo.root / "p" / "fifo")
    else:
        os.mkfifo(repo.root / "p")
    before = snapshot(repo.root, skip=(".dvx",))
    for force in (False, True):
        with pytest.raises(DirtyWorkingTree, match="untracked files are in the way: p"):
            repo.checkout("main", force=force)
        assert snapshot(repo.root, skip=(".dvx",)) == before
        assert repo.head()[0] is None  # still detached at c1


def test_a_nested_git_repository_in_the_way_is_never_deleted(repo: Repo, write_files, snapshot) -> None:
    two_commits(repo, write_files, {"other": "t"}, {"other": "t2", "p": "file"}, [])
    (repo.root / "p" / ".git").mkdir(parents=True)
    (repo.root / "p" / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    before = snapshot(repo.root, skip=(".dvx",))
    with pytest.raises(DirtyWorkingTree, match=r"p/\.git"):
        repo.checkout("main")
    assert snapshot(repo.root, skip=(".dvx",)) == before


def test_untracked_file_inside_a_folder_in_the_way_is_still_refused(repo: Repo, write_files, snapshot) -> None:
    two_commits(repo, write_files, {"other": "t"}, {"other": "t2", "p": "file"}, [])
    write_files(repo.root, {"p/mine.txt": "precious"})
    before = snapshot(repo.root, skip=(".dvx",))
    with pytest.raises(DirtyWorkingTree, match="p"):
        repo.checkout("main")
    assert snapshot(repo.root, skip=(".dvx",)) == before


def test_force_deletes_a_folder_of_untracked_files_where_the_target_needs_a_file(
    repo: Repo, write_files, snapshot
) -> None:
    """As git's ``checkout --force``: untracked files in the way are thrown away; without it, nothing changes and
    the refusal says that --force would go ahead."""
    two_commits(repo, write_files, {"other": "t"}, {"other": "t2", "p": "file"}, [])
    write_files(repo.root, {"p/mine.txt": "precious", "p/deep/er.txt": "too", "elsewhere.txt": "kept"})
    before = snapshot(repo.root, skip=(".dvx",))
    with pytest.raises(DirtyWorkingTree, match=r"untracked files: p \(.*--force to delete them\)"):
        repo.checkout("main")
    assert snapshot(repo.root, skip=(".dvx",)) == before
    repo.checkout("main", force=True)
    assert (repo.root / "p").read_text() == "file"
    assert (repo.root / "elsewhere.txt").read_text() == "kept"  # untracked files not in the way stay
    assert repo.head()[0] == "main"
    assert repo.status().to_json() == {"added": ["elsewhere.txt"], "modified": [], "deleted": []}


@pytest.mark.parametrize("kind", ["file", "symlink"])
def test_force_replaces_an_untracked_file_where_the_target_needs_a_folder(
    repo: Repo, write_files, snapshot, tmp_path: Path, kind: str
) -> None:
    two_commits(repo, write_files, {"other": "t"}, {"other": "t2", "p/a": "a", "p/b/c": "c"}, [])
    outside = tmp_path / "outside"
    outside.mkdir()
    if kind == "file":
        (repo.root / "p").write_text("mine")
    else:
        os.symlink(outside, repo.root / "p")  # never followed: the link goes, the folder outside stays empty
    before = snapshot(repo.root, skip=(".dvx",))
    with pytest.raises(DirtyWorkingTree, match="untracked files: p "):
        repo.checkout("main")
    assert snapshot(repo.root, skip=(".dvx",)) == before
    repo.checkout("main", force=True)
    assert not (repo.root / "p").is_symlink()
    assert (repo.root / "p" / "a").read_text() == "a" and (repo.root / "p" / "b" / "c").read_text() == "c"
    assert list(outside.iterdir()) == []
    assert repo.status().to_json() == {"added": [], "modified": [], "deleted": []}


def test_force_still_refuses_a_nested_repository_in_the_way(repo: Repo, write_files, snapshot) -> None:
    two_commits(repo, write_files, {"other": "t"}, {"other": "t2", "p": "file"}, [])
    write_files(repo.root, {"p/mine.txt": "precious"})
    (repo.root / "p" / ".git").mkdir()
    (repo.root / "p" / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    before = snapshot(repo.root, skip=(".dvx",))
    with pytest.raises(DirtyWorkingTree, match=r"p/\.git"):
        repo.checkout("main", force=True)
    assert snapshot(repo.root, skip=(".dvx",)) == before
    assert repo.head()[0] is None


def test_a_user_file_named_like_a_temp_file_is_content(repo: Repo, write_files) -> None:
    write_files(repo.root, {".dvx.mydata.tmp": "d", ".dvx.1.2.tmp": "leftover", ".dvx.1.2.3.tmp": "leftover"})
    assert repo.status().to_json()["added"] == [".dvx.mydata.tmp"]
