"""A merge whose result holds a path its own .dvxignore files exclude (one side added the file, the other the
rule): the path is left out, as a commit of the merged folder would, and stays on disk untracked. Before, the
merge kept it, status called it deleted at once, and the next commit dropped it unannounced."""

from __future__ import annotations

from dvx.merge import merge
from dvx.model import FILE, Entry
from dvx.repo import Repo
from dvx.worktree import IGNORE_FILE, ignored_in_tree


def test_the_path_the_merged_rules_exclude_is_left_out_and_kept_on_disk(repo: Repo, write_files, run_dvx) -> None:
    write_files(repo.root, {"f": "a"})
    repo.commit("base")
    repo.create_branch("th")
    write_files(repo.root, {"x.log": "l", "keep.txt": "k"})
    repo.commit("ours")
    repo.checkout("th")
    write_files(repo.root, {IGNORE_FILE: "*.log\n"})
    repo.commit("theirs")
    repo.checkout("main")
    result = merge(repo, "th", "m")
    assert result.ignored == ["x.log"]
    assert [p for p, _ in repo.ls()] == [IGNORE_FILE, "f", "keep.txt"]
    assert (repo.root / "x.log").read_text() == "l"
    assert repo.status().to_json() == {"added": [], "modified": [], "deleted": []}
    write_files(repo.root, {"f": "b"})
    repo.commit("next")
    assert [p for p, _ in repo.ls()] == [IGNORE_FILE, "f", "keep.txt"]


def test_the_cli_says_what_it_left_out(repo: Repo, write_files, run_dvx) -> None:
    write_files(repo.root, {"f": "a"})
    repo.commit("base")
    repo.create_branch("th")
    write_files(repo.root, {"logs/x.log": "l"})
    repo.commit("ours")
    repo.checkout("th")
    write_files(repo.root, {IGNORE_FILE: "logs/\n"})
    repo.commit("theirs")
    repo.checkout("main")
    out = run_dvx(["merge", "th", "-m", "m"], repo.root, check=True).stdout
    assert "Left out, as the merged .dvxignore excludes them (kept on disk if they were): logs/x.log" in out


def test_ignored_in_tree_follows_the_scan_rules() -> None:
    files = {IGNORE_FILE: b"*.tmp\ncache/\n", "a/" + IGNORE_FILE: b"!keep.tmp\n*.bak\n"}
    paths = [IGNORE_FILE, "x.tmp", "cache/c.bin", "d/cache/e.bin", "a/" + IGNORE_FILE, "a/keep.tmp", "a/other.tmp",
             "a/y.bak", "y.bak", "a/b/z.bak", "plain.txt"]
    flat = {p: Entry(p.rpartition("/")[2], FILE, p, 1) for p in paths}  # ids stand in for the contents
    assert ignored_in_tree(flat, lambda oid: files[oid]) == [
        "x.tmp", "cache/c.bin", "d/cache/e.bin", "a/other.tmp", "a/y.bak", "a/b/z.bak"]
    assert ignored_in_tree({p: e for p, e in flat.items() if IGNORE_FILE not in p}, lambda oid: b"") == []


def test_a_file_the_other_side_adds_under_our_nested_rule_is_left_out(repo: Repo, write_files) -> None:
    """Our rules did not change in the merge: only what arrived is checked, against the rules of its folders
    (nested ones included), found without walking the rest of the tree."""
    write_files(repo.root, {"f": "a", "data/keep.csv": "k"})
    repo.commit("base")
    repo.create_branch("th")
    write_files(repo.root, {"data/" + IGNORE_FILE: "*.log\n"})
    repo.commit("ours: a rule")
    repo.checkout("th")
    write_files(repo.root, {"data/deep/x.log": "l", "data/deep/y.csv": "y"})
    repo.commit("theirs: a log")
    repo.checkout("main")
    merged = merge(repo, "th", "m")
    assert merged.ignored == ["data/deep/x.log"]
    listed = dict(repo.ls())
    assert "data/deep/y.csv" in listed and "data/deep/x.log" not in listed
    assert repo.status().to_json() == {"added": [], "modified": [], "deleted": []}
