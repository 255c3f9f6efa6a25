"""branch and tag (list, create, delete) and revision syntax, through the CLI."""

from __future__ import annotations

import json
from collections import defaultdict

import pytest

from dvx.model import Commit
from dvx.repo import Repo
from dvx.store import COMMIT


def history(repo: Repo, write_files) -> list[str]:
    ids = []
    for i in range(3):
        write_files(repo.root, {f"f{i}.txt": str(i)})
        ids.append(repo.commit(f"c{i}"))
    return ids


def resolve(run_dvx, repo: Repo, rev: str) -> str:
    doc = json.loads(run_dvx(["log", "--json", "-n", "1", rev], repo.root, check=True).stdout)
    return doc[0]["id"]


def test_branch_list_create_delete(repo: Repo, run_dvx, write_files) -> None:
    c0, c1, c2 = history(repo, write_files)
    assert run_dvx(["branch", "feature"], repo.root, check=True).stdout.startswith("Created branch feature")
    run_dvx(["branch", "old", "HEAD~2"], repo.root, check=True)
    run_dvx(["branch", "nested/name", c1[:6]], repo.root, check=True)
    doc = json.loads(run_dvx(["branch", "--json"], repo.root, check=True).stdout)
    assert doc == {"current": "main", "branches": {"feature": c2, "main": c2, "nested/name": c1, "old": c0}}
    lines = run_dvx(["branch"], repo.root, check=True).stdout.splitlines()
    assert [line.split()[0] for line in lines if line.startswith("*")] == ["*"]
    assert any(line.startswith("* main") for line in lines)
    dup = run_dvx(["branch", "feature"], repo.root, check=False)
    assert "already exists" in dup.stderr
    run_dvx(["branch", "-d", "feature"], repo.root, check=True)
    assert "feature" not in repo.branches()
    assert not (repo.dvx / "refs" / "heads" / "feature").exists()
    missing = run_dvx(["branch", "-d", "feature"], repo.root, check=False)
    assert missing.stderr.startswith("dvx: error:")
    current = run_dvx(["branch", "-d", "main"], repo.root, check=False)
    assert current.stderr.startswith("dvx: error:") and "checked out" in current.stderr
    assert repo.branches()["main"] == c2


def test_branch_list_on_a_detached_head_says_so_first_as_git_does(repo: Repo, run_dvx, write_files) -> None:
    c0, _, c2 = history(repo, write_files)
    run_dvx(["checkout", c0[:8]], repo.root, check=True)
    lines = run_dvx(["branch"], repo.root, check=True).stdout.splitlines()
    assert lines[0] == f"* (HEAD detached at {c0[:12]})"
    assert [line.split() for line in lines[1:]] == [["main", c2[:12]]]
    assert json.loads(run_dvx(["branch", "--json"], repo.root, check=True).stdout)["current"] is None


@pytest.mark.parametrize("kind", ["branch", "tag"])
def test_deleting_a_nested_ref_frees_its_parent_name(repo: Repo, run_dvx, write_files, kind: str) -> None:
    history(repo, write_files)
    run_dvx([kind, "feature/x"], repo.root, check=True)
    run_dvx([kind, "-d", "feature/x"], repo.root, check=True)
    run_dvx([kind, "feature"], repo.root, check=True)


def test_branch_from_unborn_head_is_an_error(repo: Repo, run_dvx) -> None:
    r = run_dvx(["branch", "x"], repo.root, check=False)
    assert r.stderr.startswith("dvx: error:") and len(r.stderr.splitlines()) == 1
    assert repo.branches() == {}


def test_tag_list_create_delete(repo: Repo, run_dvx, write_files) -> None:
    c0, _, c2 = history(repo, write_files)
    assert "Tagged" in run_dvx(["tag", "v1.0", "HEAD~2"], repo.root, check=True).stdout
    run_dvx(["tag", "latest"], repo.root, check=True)
    assert json.loads(run_dvx(["tag", "--json"], repo.root, check=True).stdout) == {"latest": c2, "v1.0": c0}
    assert [line.split()[0] for line in run_dvx(["tag"], repo.root, check=True).stdout.splitlines()] == [
        "latest", "v1.0"
    ]
    assert "already exists" in run_dvx(["tag", "v1.0"], repo.root, check=False).stderr
    assert resolve(run_dvx, repo, "v1.0") == c0
    run_dvx(["tag", "-d", "v1.0"], repo.root, check=True)
    assert repo.tags() == {"latest": c2}
    assert run_dvx(["tag", "-d", "v1.0"], repo.root, check=False).stderr.startswith("dvx: error:")
    bad = run_dvx(["tag", "bad..name"], repo.root, check=False)
    assert bad.returncode == 2 and "invalid tag name" in bad.stderr


@pytest.mark.parametrize("name", ["a..b", "has space", "x~1", "y^", "-dash", "HEAD", "end.lock", "q?"])
def test_bad_branch_names_are_refused(repo: Repo, run_dvx, write_files, name: str) -> None:
    history(repo, write_files)
    r = run_dvx(["branch", "--", name] if name.startswith("-") else ["branch", name], repo.root, check=False)
    assert r.returncode == 2 and r.stderr.startswith("dvx: error:")
    assert set(repo.branches()) == {"main"}


def test_revision_syntax(repo: Repo, run_dvx, write_files) -> None:
    c0, c1, c2 = history(repo, write_files)
    side = repo.write_commit(repo.read_commit(c0).tree, [c0], "side")
    merge = repo.write_commit(repo.read_commit(c2).tree, [c2, side], "merge")
    repo.refs.update("refs/heads/main", merge, c2)
    repo.create_tag("t", c1)
    cases = {
        "HEAD": merge, "@": merge, "main": merge, merge: merge, merge[:4]: merge, merge[:4].upper(): merge,
        "HEAD^": c2, "HEAD^1": c2, "HEAD^2": side, "HEAD^2~1": c0, "HEAD~1": c2, "HEAD~2": c1, "HEAD~3": c0,
        "HEAD~1~1": c1, "HEAD^^": c1, "main~2": c1, "t": c1, "t~1": c0, "refs/tags/t": c1, "HEAD^0": merge,
    }
    for rev, expected in cases.items():  # the whole table through the API: one process start per rev is slow
        assert repo.resolve(rev) == expected, rev
    for rev in ("@", merge[:4].upper(), "HEAD^2~1", "HEAD~1~1", "t~1"):  # and a sample through the CLI
        assert resolve(run_dvx, repo, rev) == cases[rev], rev


@pytest.mark.parametrize("rev", ["HEAD~9", "HEAD^3", "nope", "abc", "zzzz", "main~x~", "HEAD~1^5"])
def test_bad_revisions_are_one_line_errors(repo: Repo, run_dvx, write_files, rev: str) -> None:
    history(repo, write_files)
    r = run_dvx(["log", "-n", "1", rev], repo.root, check=False)
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("dvx: error:"), r.stderr


def test_ambiguous_prefix_is_refused_and_longer_prefix_works(repo: Repo, run_dvx, write_files) -> None:
    (c0,) = history(repo, write_files)[:1]
    tree = repo.read_commit(c0).tree
    by_prefix: dict[str, list[str]] = defaultdict(list)
    with repo.store.writer() as w:
        i = 0
        while True:  # birthday search: two commits whose ids share 4 hex digits (~300 tries)
            c = Commit(tree, (c0,), f"probe {i}", "t <t@t>", "2026-01-01T00:00:00.000000Z")
            w.add(c.id, COMMIT, c.encode())
            by_prefix[c.id[:4]].append(c.id)
            if len(by_prefix[c.id[:4]]) == 2:
                break
            i += 1
    a, b = by_prefix[c.id[:4]]
    r = run_dvx(["show", a[:4]], repo.root, check=False)
    assert r.stderr.startswith("dvx: error:") and "ambiguous" in r.stderr
    common = next(n for n in range(4, 64) if a[n] != b[n])
    assert resolve(run_dvx, repo, a[: common + 1]) == a
    assert resolve(run_dvx, repo, b[: common + 1]) == b
