"""``dvx merge`` and ``dvx squash`` in a subprocess (repositories prepared through the Python API)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from dvx.merge import CONFLICT_HINT
from dvx.repo import Repo


def commit_files(repo: Repo, h: Any, files: dict[str, str | None], message: str) -> str:
    h.write_files(repo.root, files)
    return repo.commit(message)


@pytest.fixture
def forked(repo: Repo, h: Any) -> Repo:
    commit_files(repo, h, {"a.txt": "a\n", "d/x": "x\n", "d/y": "y\n"}, "base")
    repo.create_branch("feature")
    commit_files(repo, h, {"b.txt": "b\n"}, "main work")
    repo.checkout("feature")
    commit_files(repo, h, {"c.txt": "c\n", "d/y": None, "a.txt": "a feature\n"}, "feature work")
    repo.checkout("main")
    return repo


def test_merge_summary_log_graph_show_and_diff(forked: Repo, h: Any) -> None:
    root = forked.root
    proc = h.run_dvx(root, "merge", "feature")
    assert re.fullmatch(
        r"Merged feature into main: 1 added, 1 modified, 1 deleted \(commit [0-9a-f]{12}\)\n", proc.stdout
    ), proc.stdout
    merge_id = forked.resolve("main")
    assert merge_id.startswith(proc.stdout.split("commit ")[1][:12])
    assert (root / "c.txt").read_text() == "c\n" and not (root / "d/y").exists()

    graph = h.run_dvx(root, "log", "--graph").stdout.splitlines()
    assert graph[0].startswith("* ") and "Merge feature into main" in graph[0]
    assert graph[1].startswith("|\\")  # the second parent opens a lane
    assert any(line.startswith("| * ") and "feature work" in line for line in graph)
    assert any(line.startswith("* ") and "main work" in line for line in graph)

    diff = h.run_dvx(root, "diff", "HEAD^1", "HEAD").stdout.splitlines()
    assert "A  c.txt  (2 B)" in diff and "D  d/y" in diff and any(line.startswith("M  a.txt") for line in diff)
    assert not any("b.txt" in line for line in diff)  # main's own work is not what the merge brought in
    assert [c.path for c in forked.diff("HEAD^2", "HEAD").added] == ["b.txt"]

    assert h.run_dvx(root, "merge", "feature").stdout == "Already up to date.\n"
    assert not forked.status()


def test_conflict_changes_nothing(forked: Repo, h: Any) -> None:
    commit_files(forked, h, {"a.txt": "a main\n", "d/y": "y main\n"}, "main edits")
    forked.checkout("feature")
    commit_files(forked, h, {"b.txt": "b feature\n"}, "feature adds b")
    forked.checkout("main")
    before = h.snapshot(forked.root)
    proc = h.run_dvx(forked.root, "merge", "feature", "-m", "should not happen", "--json", check=False)
    assert proc.returncode == 1
    listed = json.loads(proc.stdout)["conflicts"]  # --json: the structured list on stdout too
    assert [(c["path"], c["kind"], c["ours"], c["theirs"]) for c in listed] == [
        ("a.txt", "both-modified", "modified", "modified"),
        ("b.txt", "both-added", "added", "added"),
        ("d/y", "modified-deleted", "modified", "deleted"),
    ]
    assert proc.stderr == (
        "dvx: error: merge conflict in 3 paths: a.txt (both modified), b.txt (both added), "
        "d/y (modified here, deleted in feature); nothing was changed" + CONFLICT_HINT + "\n"
    )
    assert h.snapshot(forked.root) == before
    assert all(e.commit.message != "should not happen" for e in forked.log())

    proc = h.run_dvx(forked.root, "merge", "feature", "--strategy", "theirs", "--json")
    doc = json.loads(proc.stdout)
    assert doc["strategy"] == "theirs" and [c["path"] for c in doc["conflicts"]] == ["a.txt", "b.txt", "d/y"]
    assert doc["conflicts"][2]["kind"] == "modified-deleted" and doc["conflicts"][2]["theirs"] == "deleted"
    assert (forked.root / "a.txt").read_text() == "a feature\n" and not (forked.root / "d/y").exists()
    meta = forked.read_commit(forked.resolve("HEAD")).meta
    assert meta["merge.strategy"] == "theirs" and meta["merge.conflicts"] == "3"
    assert json.loads(meta["merge.conflict_paths"]) == ["a.txt", "b.txt", "d/y"]


def test_ours_lists_what_it_kept(forked: Repo, h: Any) -> None:
    commit_files(forked, h, {"a.txt": "a main\n"}, "main edits a")
    proc = h.run_dvx(forked.root, "merge", "-s", "ours", "feature")
    lines = proc.stdout.splitlines()
    assert lines[0].endswith("; 1 conflict resolved toward ours")
    assert lines[1:] == ["  kept ours: a.txt (both modified)"]
    assert (forked.root / "a.txt").read_text() == "a main\n"


def test_usage_errors_and_refusals(forked: Repo, h: Any) -> None:
    root = forked.root
    bad = h.run_dvx(root, "merge", "feature", "--strategy", "union", check=False)
    assert bad.returncode == 2 and "--strategy must be one of fail, ours, theirs" in bad.stderr
    h.write_files(root, {"a.txt": "dirty\n"})
    dirty = h.run_dvx(root, "merge", "feature", check=False)
    assert dirty.returncode == 1
    assert dirty.stderr.startswith("dvx: error: cannot merge with uncommitted changes: a.txt (commit them first;")


def test_octopus_and_ff(repo: Repo, h: Any) -> None:
    commit_files(repo, h, {"README": "r\n"}, "base")
    for name in ("cats", "dogs", "fish"):
        repo.create_branch(name)
        repo.checkout(name)
        commit_files(repo, h, {f"{name}/1.jpg": name}, f"add {name}")
        repo.checkout("main")
    repo.create_branch("old", "main")
    proc = h.run_dvx(repo.root, "merge", "cats", "dogs", "fish")
    assert proc.stdout.startswith("Merged cats, dogs, fish into main: 3 added, 0 modified, 0 deleted (commit ")
    parents = repo.read_commit(repo.resolve("main")).parents
    assert parents[1:] == tuple(repo.resolve(n) for n in ("cats", "dogs", "fish"))
    repo.checkout("old")
    proc = h.run_dvx(repo.root, "merge", "--ff", "cats")
    assert proc.stdout == (
        f"Fast-forwarded old to {repo.resolve('cats')[:12]}: 1 added, 0 modified, 0 deleted\n"
    )
    assert repo.resolve("old") == repo.resolve("cats")


def test_unrelated_histories(repo: Repo, h: Any) -> None:
    commit_files(repo, h, {"cats/1.jpg": "c\n"}, "cats")
    other = h.make_commit(repo, {"dogs/1.jpg": "f1"}, [], "dogs")
    h.set_branch(repo, "dogs", other)
    before = h.snapshot(repo.root)
    proc = h.run_dvx(repo.root, "merge", "dogs", check=False)
    assert proc.returncode == 1
    assert proc.stderr == (
        "dvx: error: refusing to merge unrelated histories: dogs shares no commit with main "
        "(use --allow-unrelated to merge them as a union)\n"
    )
    assert h.snapshot(repo.root) == before
    proc = h.run_dvx(repo.root, "merge", "--allow-unrelated", "dogs")
    assert proc.stdout.startswith("Merged dogs into main: 1 added")
    assert (repo.root / "dogs/1.jpg").read_text() == "content 1\n"


def test_squash(forked: Repo, h: Any) -> None:
    root = forked.root
    head = forked.head()
    # As the issue writes it, with no name: the copy is tagged, so that gc never takes it.
    plain = h.run_dvx(root, "squash", "feature", "-m", "flat")
    tags = {n: v for n, v in forked.tags().items() if n.startswith("squash-")}
    assert len(tags) == 1
    (name, sid), = tags.items()
    assert name == f"squash-{sid[:12]}" and plain.stdout == f"Squashed feature into root commit {sid[:12]} (tag {name})\n"
    assert forked.read_commit(sid).parents == () and forked.head() == head
    assert h.run_dvx(root, "squash", "feature", "-m", " ", check=False).returncode == 2
    proc = h.run_dvx(root, "squash", "feature", "-m", "flat copy", "--branch", "flat")
    cid = forked.resolve("flat")
    assert proc.stdout == f"Squashed feature into root commit {cid[:12]} (branch flat)\n"
    assert forked.read_commit(cid).parents == ()
    assert forked.read_commit(cid).tree == forked.read_commit(forked.resolve("feature")).tree
    assert forked.head() == head
    assert [e.commit.message for e in forked.log("flat")] == ["flat copy"]
    doc = json.loads(h.run_dvx(root, "squash", "main", "-m", "x", "--tag", "v1", "--json").stdout)
    assert doc["tag"] == "v1" and forked.tags()["v1"] == doc["id"] and doc["source"] == forked.resolve("main")


def test_a_merge_killed_while_placing_its_files_can_be_run_again(forked: Repo, h: Any) -> None:
    """Killed after some of its files were in place (the ref not moved), the same merge run again takes those
    files for what they are, its own result, not uncommitted changes; a different local change still stops it."""
    import os
    import subprocess
    import sys

    root = forked.root
    env = dict(os.environ, DVX_AUTHOR="Test <test@example.com>", DVX_FAULT="checkout.before-place:2:kill")
    killed = subprocess.run([sys.executable, "-m", "dvx.cli.main", "merge", "feature"], cwd=root, env=env,
                            capture_output=True, text=True, timeout=120)
    assert killed.returncode == -9, killed
    assert forked.resolve("main") == forked.resolve("main~0")  # HEAD did not move
    assert forked.read_commit(forked.resolve("main")).message == "main work"
    placed = sorted(set(forked.status().added) | set(forked.status().modified))
    assert placed, "the kill should come after the first file was placed"

    (root / "b.txt").write_text("my own edit\n")  # not what the merge writes: refused
    refused = h.run_dvx(root, "merge", "feature", check=False)
    assert refused.returncode != 0 and "b.txt" in refused.stderr and "c.txt" not in refused.stderr
    (root / "b.txt").write_text("b\n")

    h.run_dvx(root, "merge", "feature")
    merged = forked.read_commit(forked.resolve("main"))
    assert len(merged.parents) == 2
    assert (root / "c.txt").read_text() == "c\n" and (root / "a.txt").read_text() == "a feature\n"
    assert not (root / "d/y").exists()
    assert "nothing to commit" in h.run_dvx(root, "status").stdout
    assert forked.fsck().ok
