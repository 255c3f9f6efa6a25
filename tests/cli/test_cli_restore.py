"""`dvx checkout REV -- PATHS` and `dvx checkout -- PATHS`: a revision's version of some paths into the working
tree, as git's checkout of paths does (local changes to them are overwritten, HEAD does not move, other files
and files REV does not have are left as they are, unchanged files are not rewritten)."""

from __future__ import annotations

import os

from dvx.repo import Repo


def history(repo: Repo, write_files) -> tuple[str, str]:
    write_files(repo.root, {"a.txt": "a1", "d/x.csv": "x1", "d/y.csv": "y1", "d/deep/z.csv": "z1", "tool.sh": "#!\n",
                            "other.txt": "o"})
    os.symlink("../a.txt", repo.root / "d" / "link")
    c1 = repo.commit("c1")
    write_files(repo.root, {"a.txt": "a2", "d/x.csv": "x2", "d/deep/z.csv": "z2"})
    (repo.root / "tool.sh").chmod(0o755)
    (repo.root / "d" / "link").unlink()
    os.symlink("/abs/elsewhere", repo.root / "d" / "link")
    c2 = repo.commit("c2")
    return c1, c2


def status(run_dvx, repo: Repo) -> dict:  # type: ignore[type-arg]
    import json

    return json.loads(run_dvx(["status", "--json"], repo.root, check=True).stdout)


def test_checkout_dash_dash_paths_restores_deleted_and_edited_files_from_head(repo: Repo, run_dvx, write_files) -> None:
    _, c2 = history(repo, write_files)
    (repo.root / "a.txt").unlink()
    write_files(repo.root, {"d/x.csv": "local edit", "new.txt": "untracked"})
    untouched = os.stat(repo.root / "other.txt")
    r = run_dvx(["checkout", "--", "a.txt", "d/x.csv"], repo.root, check=True)
    assert r.stdout.strip() == f"Updated 2 paths from {c2[:12]}"
    assert (repo.root / "a.txt").read_text() == "a2" and (repo.root / "d" / "x.csv").read_text() == "x2"
    assert (repo.root / "new.txt").read_text() == "untracked"
    assert os.stat(repo.root / "other.txt").st_mtime_ns == untouched.st_mtime_ns
    assert repo.head() == ("main", c2)
    assert status(run_dvx, repo) == {"added": ["new.txt"], "modified": [], "deleted": []}


def test_checkout_of_an_old_revisions_paths_brings_their_old_versions_and_keeps_head(repo: Repo, run_dvx, write_files,
                                                                                     snapshot) -> None:
    c1, c2 = history(repo, write_files)
    write_files(repo.root, {"d/extra.csv": "not in c1"})
    y_before = os.stat(repo.root / "d" / "y.csv")
    r = run_dvx(["checkout", c1[:8], "--", "d", "tool.sh"], repo.root, check=True)
    # x.csv, deep/z.csv and the link differ in c1; y.csv does not and is not rewritten; tool.sh loses its x bit.
    assert r.stdout.strip() == f"Updated 4 paths from {c1[:12]}"
    assert (repo.root / "d" / "x.csv").read_text() == "x1" and (repo.root / "d" / "deep" / "z.csv").read_text() == "z1"
    assert os.readlink(repo.root / "d" / "link") == "../a.txt"
    assert not os.stat(repo.root / "tool.sh").st_mode & 0o100
    assert os.stat(repo.root / "d" / "y.csv").st_ino == y_before.st_ino
    assert os.stat(repo.root / "d" / "y.csv").st_mtime_ns == y_before.st_mtime_ns
    assert (repo.root / "d" / "extra.csv").read_text() == "not in c1"  # not in c1: left, as git leaves it
    assert repo.head() == ("main", c2)
    assert status(run_dvx, repo) == {"added": ["d/extra.csv"], "modified": ["d/deep/z.csv", "d/link", "d/x.csv",
                                                                           "tool.sh"], "deleted": []}
    # And back: HEAD's version of everything, the untracked file still there.
    run_dvx(["checkout", "HEAD", "--", "*"], repo.root, check=True)
    assert status(run_dvx, repo) == {"added": ["d/extra.csv"], "modified": [], "deleted": []}


def test_paths_are_relative_to_the_current_folder_and_globs_work(repo: Repo, run_dvx, write_files) -> None:
    c1, _ = history(repo, write_files)
    r = run_dvx(["checkout", c1, "--", "*.csv"], repo.root / "d" / "deep", check=True)
    assert r.stdout.strip() == f"Updated 1 path from {c1[:12]}"
    assert (repo.root / "d" / "deep" / "z.csv").read_text() == "z1"
    assert (repo.root / "d" / "x.csv").read_text() == "x2"  # outside the current folder
    r = run_dvx(["checkout", c1, "x.csv"], repo.root / "d", check=True)  # without --: a path after REV
    assert (repo.root / "d" / "x.csv").read_text() == "x1"


def test_a_pattern_that_matches_nothing_changes_nothing(repo: Repo, run_dvx, write_files, snapshot) -> None:
    c1, _ = history(repo, write_files)
    write_files(repo.root, {"a.txt": "local"})
    before = snapshot(repo.root, skip=(".dvx",))
    for args in (["checkout", "--", "a.txt", "nope.txt"], ["checkout", c1, "--", "d/nothing/*"],
                 ["checkout", "no-such-rev", "--", "a.txt"], ["checkout", "HEAD", "--readonly", "a.txt"]):
        r = run_dvx(args, repo.root, check=False)
        lines = r.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("dvx: error:"), r.stderr
        assert snapshot(repo.root, skip=(".dvx",)) == before, args
    assert "'nope.txt'" in run_dvx(["checkout", "--", "a.txt", "nope.txt"], repo.root, check=False).stderr


def test_restore_through_the_api(repo: Repo, write_files) -> None:
    c1, c2 = history(repo, write_files)
    assert repo.restore(c1, ["a.txt", "d/deep/"]) == ["a.txt", "d/deep/z.csv"]
    assert (repo.root / "a.txt").read_text() == "a1"
    assert repo.restore(c1, ["a.txt"]) == []  # already c1's
    assert repo.head() == ("main", c2)


def test_a_tracked_unchanged_file_in_the_way_is_replaced_and_anything_else_stops_the_restore(
    repo: Repo, run_dvx, write_files, snapshot
) -> None:
    write_files(repo.root, {"a/b": "in a folder"})
    c1 = repo.commit("c1")
    (repo.root / "a" / "b").unlink()
    (repo.root / "a").rmdir()
    write_files(repo.root, {"a": "now a file"})
    c2 = repo.commit("c2")
    # HEAD's file `a` stands where c1's folder goes: replaced, as git does (HEAD still has it).
    run_dvx(["checkout", c1, "--", "a/b"], repo.root, check=True)
    assert (repo.root / "a" / "b").read_text() == "in a folder"
    assert status(run_dvx, repo) == {"added": ["a/b"], "modified": [], "deleted": ["a"]}
    # Back: the file a/b is in HEAD's way, and HEAD does not have it: refused, nothing changed.
    before = snapshot(repo.root, skip=(".dvx",))
    r = run_dvx(["checkout", "--", "a"], repo.root, check=False)
    assert r.stderr.startswith("dvx: error: restoring would replace") and "a/b" in r.stderr, r.stderr
    assert len(r.stderr.splitlines()) == 1
    assert snapshot(repo.root, skip=(".dvx",)) == before
    assert repo.head() == ("main", c2)
