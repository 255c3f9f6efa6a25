"""init, status, commit, log and show through the real CLI."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from dvx.repo import Repo

ID = re.compile(r"[0-9a-f]{64}")
REQUIRED_LOG_KEYS = {"id", "parents", "message", "author", "time", "refs"}


# --- init -----------------------------------------------------------------------------------------------


def test_init_creates_a_repository_and_refuses_an_existing_one(tmp_path: Path, run_dvx, snapshot) -> None:
    r = run_dvx(["init", "data"], tmp_path, check=True)
    assert "Initialized" in r.stdout
    dvx = tmp_path / "data" / ".dvx"
    assert (dvx / "HEAD").read_text() == "ref: refs/heads/main\n"
    assert json.loads((dvx / "config").read_text())["format"] == 1
    before = snapshot(tmp_path / "data")
    again = run_dvx(["init", "data"], tmp_path, check=False)
    assert again.stderr.startswith("dvx: error:") and "already exists" in again.stderr
    assert snapshot(tmp_path / "data") == before


def test_init_in_current_folder_with_branch_name(tmp_path: Path, run_dvx) -> None:
    run_dvx(["init", "-b", "trunk"], tmp_path, check=True)
    assert (tmp_path / ".dvx" / "HEAD").read_text() == "ref: refs/heads/trunk\n"
    assert "On branch trunk" in run_dvx(["status"], tmp_path, check=True).stdout
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".dvx-init")]


def test_init_records_the_compression_level_and_commits_use_it(tmp_path: Path, run_dvx) -> None:
    text = b"".join(b"%d,alpha,%d,beta,gamma,delta\n" % (i, i * 7919 % 10007) for i in range(20000))
    sizes = {}
    for level in (1, 19):
        root = tmp_path / f"l{level}"
        run_dvx(["init", str(root), "--compression-level", str(level)], tmp_path, check=True)
        assert json.loads((root / ".dvx" / "config").read_text())["core"]["compression_level"] == level
        (root / "t.csv").write_bytes(text)
        run_dvx(["commit", "-m", "t"], root, check=True)
        sizes[level] = sum(p.stat().st_size for p in (root / ".dvx" / "objects").rglob("*") if p.is_file())
    assert sizes[19] < sizes[1] < len(text) // 2  # a higher level really compresses harder
    run_dvx(["init", str(tmp_path / "default")], tmp_path, check=True)
    assert json.loads((tmp_path / "default" / ".dvx" / "config").read_text())["core"]["compression_level"] == 1


# --- status ---------------------------------------------------------------------------------------------


def test_status_before_first_commit_lists_everything_as_added(repo: Repo, run_dvx, write_files) -> None:
    write_files(repo.root, {"b/z.txt": "z", "a.txt": "a", "b/a b.txt": "ab", "ü/日本.csv": "x", "B.txt": "B"})
    r = run_dvx(["status"], repo.root, check=True)
    assert "No commits yet" in r.stdout
    doc = json.loads(run_dvx(["status", "--json"], repo.root, check=True).stdout)
    assert list(doc) == ["added", "modified", "deleted"]
    assert doc["added"] == sorted(["B.txt", "a.txt", "b/a b.txt", "b/z.txt", "ü/日本.csv"])
    assert doc["modified"] == [] and doc["deleted"] == []


def test_status_reports_added_modified_deleted_with_slash_paths(repo: Repo, run_dvx, write_files) -> None:
    write_files(repo.root, {"keep": "k", "d/e/mod.txt": "v1", "d/gone.txt": "g"})
    repo.commit("base")
    write_files(repo.root, {"d/e/mod.txt": "version 2", "d/e/new.txt": "n", "z/new2": "n2"})
    (repo.root / "d" / "gone.txt").unlink()
    doc = json.loads(run_dvx(["status", "--json"], repo.root, check=True).stdout)
    assert doc == {"added": ["d/e/new.txt", "z/new2"], "modified": ["d/e/mod.txt"], "deleted": ["d/gone.txt"]}
    text = run_dvx(["status"], repo.root, check=True).stdout
    assert "On branch main" in text and "d/e/new.txt" in text and "d/gone.txt" in text


def test_status_of_some_paths_as_git_status_dash_dash(repo: Repo, run_dvx, write_files) -> None:
    write_files(repo.root, {"d/a.txt": "1", "d/sub/b.txt": "2", "dx": "3", "e/c.txt": "4"})
    repo.commit("c1")
    write_files(repo.root, {"d/a.txt": "11", "d/sub/new.txt": "n", "dx": "33", "e/c.txt": "44"})
    (repo.root / "d" / "sub" / "b.txt").unlink()

    def st(args: list[str], cwd=repo.root) -> dict:  # type: ignore[no-untyped-def, type-arg]
        return json.loads(run_dvx(["status", "--json", *args], cwd, check=True).stdout)

    assert st(["d"]) == {"added": ["d/sub/new.txt"], "modified": ["d/a.txt"], "deleted": ["d/sub/b.txt"]}
    assert st(["d/sub/", "e/c.txt"]) == {"added": ["d/sub/new.txt"], "modified": ["e/c.txt"], "deleted": ["d/sub/b.txt"]}
    assert st(["dx/"]) == {"added": [], "modified": [], "deleted": []}  # a final / is a folder only
    assert st(["."], repo.root / "d" / "sub") == {"added": ["d/sub/new.txt"], "modified": [], "deleted": ["d/sub/b.txt"]}
    assert st(["../e"], repo.root / "d") == {"added": [], "modified": ["e/c.txt"], "deleted": []}
    assert len(st([])["modified"]) == 3


def test_status_of_clean_tree(repo: Repo, run_dvx, write_files) -> None:
    write_files(repo.root, {"a": "1"})
    repo.commit("one")
    r = run_dvx(["status"], repo.root, check=True)
    assert "nothing to commit, working tree clean" in r.stdout
    assert json.loads(run_dvx(["status", "--json"], repo.root, check=True).stdout) == {
        "added": [], "modified": [], "deleted": []
    }


def test_status_sees_same_size_edit_and_exec_bit_change(repo: Repo, run_dvx, write_files) -> None:
    write_files(repo.root, {"a.txt": "aaaa", "run.sh": "#!/bin/sh\n"})
    repo.commit("one")
    (repo.root / "a.txt").write_text("bbbb")  # same size, possibly same mtime tick
    (repo.root / "run.sh").chmod(0o755)
    doc = json.loads(run_dvx(["status", "--json"], repo.root, check=True).stdout)
    assert doc["modified"] == ["a.txt", "run.sh"]


def test_status_works_from_a_subfolder(repo: Repo, run_dvx, write_files) -> None:
    write_files(repo.root, {"sub/deeper/x": "1"})
    doc = json.loads(run_dvx(["status", "--json"], repo.root / "sub" / "deeper", check=True).stdout)
    assert doc["added"] == ["sub/deeper/x"]


# --- commit ---------------------------------------------------------------------------------------------


def test_commit_moves_the_branch_and_prints_the_id(repo: Repo, run_dvx, write_files) -> None:
    write_files(repo.root, {"a.txt": "hello"})
    r = run_dvx(["commit", "-m", "first import"], repo.root, check=True)
    head = (repo.dvx / "refs" / "heads" / "main").read_text().strip()
    assert ID.fullmatch(head)
    assert r.stdout.strip() == f"[main (root-commit) {head[:12]}] first import"  # as git words a first commit
    assert repo.read_commit(head).message == "first import"
    assert repo.read_commit(head).author == "Test User <test@example.com>"
    assert json.loads(run_dvx(["status", "--json"], repo.root, check=True).stdout)["added"] == []
    write_files(repo.root, {"a.txt": "hello again"})
    r = run_dvx(["commit", "-m", "second"], repo.root, check=True)
    second = (repo.dvx / "refs" / "heads" / "main").read_text().strip()
    assert r.stdout.strip() == f"[main {second[:12]}] second"


@pytest.mark.parametrize("message", ["", "   ", "\n\t"])
def test_commit_refuses_an_empty_message(repo: Repo, run_dvx, write_files, message: str) -> None:
    write_files(repo.root, {"a.txt": "hello"})
    r = run_dvx(["commit", "-m", message], repo.root, check=False)
    assert r.stderr.startswith("dvx: error:") and "message" in r.stderr
    assert repo.head()[1] is None


def test_commit_without_message_option_is_refused(repo: Repo, run_dvx, write_files) -> None:
    write_files(repo.root, {"a.txt": "hello"})
    r = run_dvx(["commit"], repo.root, check=False)
    assert r.stderr.startswith("dvx: error:")
    assert repo.head()[1] is None


def test_nothing_to_commit_is_refused_and_allow_empty_works(repo: Repo, run_dvx, write_files) -> None:
    r = run_dvx(["commit", "-m", "empty tree"], repo.root, check=False)
    assert "nothing to commit" in r.stderr
    run_dvx(["commit", "-m", "root", "--allow-empty"], repo.root, check=True)
    root = repo.head()[1]
    write_files(repo.root, {"a": "1"})
    run_dvx(["commit", "-m", "one"], repo.root, check=True)
    one = repo.head()[1]
    r = run_dvx(["commit", "-m", "again"], repo.root, check=False)
    assert r.stderr.startswith("dvx: error:") and "nothing to commit" in r.stderr
    assert repo.head()[1] == one
    run_dvx(["commit", "-m", "again", "--allow-empty"], repo.root, check=True)
    again = repo.head()[1]
    assert again != one
    assert repo.read_commit(again).parents == (one,)
    assert repo.read_commit(again).tree == repo.read_commit(one).tree
    assert repo.read_commit(one).parents == (root,)


def test_commit_json_and_meta(repo: Repo, run_dvx, write_files) -> None:
    write_files(repo.root, {"a": "1"})
    r = run_dvx(["commit", "-m", "with meta", "--meta", "source=s3://x", "--meta", "k=v=w", "--json"], repo.root,
                check=True)
    doc = json.loads(r.stdout)
    assert doc["branch"] == "main" and ID.fullmatch(doc["id"])
    assert repo.read_commit(doc["id"]).meta == {"source": "s3://x", "k": "v=w"}
    bad = run_dvx(["commit", "-m", "x", "--allow-empty", "--meta", "novalue"], repo.root, check=False)
    assert bad.stderr.startswith("dvx: error:")


# --- log ------------------------------------------------------------------------------------------------


def make_history(repo: Repo, write_files) -> list[str]:
    """c1 adds a.txt and b.txt, c2 edits b.txt, c3 edits a.txt, c4 adds c.txt. Returns ids oldest first."""
    ids = []
    write_files(repo.root, {"a.txt": "a1", "b.txt": "b1"})
    ids.append(repo.commit("c1"))
    write_files(repo.root, {"b.txt": "b2"})
    ids.append(repo.commit("c2"))
    write_files(repo.root, {"a.txt": "a2"})
    ids.append(repo.commit("c3"))
    write_files(repo.root, {"dir/c.txt": "c"})
    ids.append(repo.commit("c4\n\nlong body"))
    return ids


def test_log_json_fields_and_newest_first(repo: Repo, run_dvx, write_files) -> None:
    ids = make_history(repo, write_files)
    repo.create_tag("v1", ids[1])
    doc = json.loads(run_dvx(["log", "--json"], repo.root, check=True).stdout)
    assert [e["id"] for e in doc] == ids[::-1]
    for e in doc:
        assert REQUIRED_LOG_KEYS <= set(e)
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", e["time"])
        assert e["author"] == "Test User <test@example.com>"
    assert [e["parents"] for e in doc] == [[ids[2]], [ids[1]], [ids[0]], []]
    assert doc[0]["message"] == "c4\n\nlong body"
    assert doc[0]["refs"] == ["HEAD -> main"]
    assert doc[2]["refs"] == ["tag: v1"]
    times = [e["time"] for e in doc]
    assert times == sorted(times, reverse=True)


def test_log_limit_and_start_revision(repo: Repo, run_dvx, write_files) -> None:
    ids = make_history(repo, write_files)
    assert [e["id"] for e in json.loads(run_dvx(["log", "--json", "-n", "2"], repo.root, check=True).stdout)] == [
        ids[3], ids[2]
    ]
    doc = json.loads(run_dvx(["log", "HEAD~2", "--json"], repo.root, check=True).stdout)
    assert [e["id"] for e in doc] == [ids[1], ids[0]]
    text = run_dvx(["log", "-n", "1"], repo.root, check=True).stdout
    assert text.startswith(f"commit {ids[3]}") and "    long body" in text
    oneline = run_dvx(["log", "--oneline"], repo.root, check=True).stdout.splitlines()
    assert [line.split()[0] for line in oneline] == [i[:12] for i in ids[::-1]]


def test_log_n_zero_shows_nothing(repo: Repo, run_dvx, write_files) -> None:
    write_files(repo.root, {"a": "1"})
    repo.commit("one")
    assert json.loads(run_dvx(["log", "--json", "-n", "0"], repo.root, check=True).stdout) == []


def test_log_all_starts_from_every_ref_as_git_does(repo: Repo, run_dvx, write_files, tmp_path) -> None:
    ids = make_history(repo, write_files)
    repo.create_branch("side", ids[1])
    repo.checkout("side")
    write_files(repo.root, {"side.txt": "s"})
    side = repo.commit("on side")
    repo.checkout("main")
    repo.create_tag("v1", ids[0])
    plain = [e["id"] for e in json.loads(run_dvx(["log", "--json"], repo.root, check=True).stdout)]
    assert side not in plain
    every = [e["id"] for e in json.loads(run_dvx(["log", "--all", "--json"], repo.root, check=True).stdout)]
    assert sorted(every) == sorted([*ids, side]) and every[0] == side  # newest first, each once
    assert run_dvx(["log", "--all", "--oneline", "--", "side.txt"], repo.root, check=True).stdout.split()[0] == side[:12]
    empty = Repo.init(tmp_path / "empty")
    assert run_dvx(["log", "--all"], empty.root, check=True).stdout == ""  # nothing committed: nothing shown


def test_log_of_a_path_is_the_file_history(repo: Repo, run_dvx, write_files) -> None:
    ids = make_history(repo, write_files)

    def history(*args: str) -> list[str]:
        return [e["id"] for e in json.loads(run_dvx(["log", "--json", *args], repo.root, check=True).stdout)]

    assert history("--", "a.txt") == [ids[2], ids[0]]
    assert history("--", "b.txt") == [ids[1], ids[0]]
    assert history("--", "dir") == [ids[3]]
    assert history("--", "dir/c.txt") == [ids[3]]
    assert history("--", "a.txt", "b.txt") == [ids[2], ids[1], ids[0]]
    assert history("HEAD~2", "--", "a.txt") == [ids[0]]
    assert history("--", "no/such/file") == []


def test_log_graph_draws_a_merge(repo: Repo, run_dvx, write_files) -> None:
    ids = make_history(repo, write_files)
    repo.create_branch("side", ids[1])
    side_tree = repo.read_commit(ids[1]).tree
    s1 = repo.write_commit(side_tree, [ids[1]], "side work")
    repo.refs.update("refs/heads/side", s1, ids[1])
    merge = repo.write_commit(repo.read_commit(ids[3]).tree, [ids[3], s1], "merge side")
    repo.refs.update("refs/heads/main", merge, ids[3])
    lines = run_dvx(["log", "--graph"], repo.root, check=True).stdout.splitlines()
    rows = [line for line in lines if "*" in line]
    shown = [re.search(r"\b([0-9a-f]{12})\b", row).group(1) for row in rows]  # type: ignore[union-attr]
    order = [e["id"][:12] for e in json.loads(run_dvx(["log", "--json"], repo.root, check=True).stdout)]
    assert shown == order and len(order) == 6
    assert rows[0].startswith("* ") and "merge side" in rows[0]
    side_row = next(row for row in rows if "side work" in row)
    assert side_row.startswith("| * ")  # drawn in the second lane
    assert any("\\" in line for line in lines) and any("/" in line for line in lines if "*" not in line)


def test_log_graph_shape_matches_git(repo: Repo, run_dvx, write_files) -> None:
    write_files(repo.root, {"a": "1"})
    c1 = repo.commit("c1")
    write_files(repo.root, {"b": "2"})
    c2 = repo.commit("c2")
    s1 = repo.write_commit(repo.read_commit(c1).tree, [c1], "s1")
    merge = repo.write_commit(repo.read_commit(c2).tree, [c2, s1], "m")
    repo.refs.update("refs/heads/main", merge, c2)
    lines = run_dvx(["log", "--graph"], repo.root, check=True).stdout.splitlines()
    shape = [re.sub(r"[0-9a-f]{12}.*", "", line).rstrip() for line in lines]
    # What git log --graph draws for this history.
    assert shape == ["*", "|\\", "| *", "* |", "|/", "*"]


# --- show -----------------------------------------------------------------------------------------------


def test_show_prints_the_commit_and_its_changes(repo: Repo, run_dvx, write_files) -> None:
    ids = make_history(repo, write_files)
    text = run_dvx(["show", "HEAD~1"], repo.root, check=True).stdout
    assert text.startswith(f"commit {ids[2]}")
    assert "Author: Test User <test@example.com>" in text
    assert "    c3" in text
    assert re.search(r"^M  a\.txt", text, re.M)
    assert "1 modified" in text
    doc = json.loads(run_dvx(["show", "--json"], repo.root, check=True).stdout)
    assert doc["id"] == ids[3] and doc["parents"] == [ids[2]]
    assert [c["path"] for c in doc["diff"]["added"]] == ["dir/c.txt"]
    first = json.loads(run_dvx(["show", ids[0], "--json"], repo.root, check=True).stdout)
    assert sorted(c["path"] for c in first["diff"]["added"]) == ["a.txt", "b.txt"]
    stat = run_dvx(["show", "--stat", "HEAD~1"], repo.root, check=True).stdout
    assert stat.startswith(f"commit {ids[2]}") and "    c3" in stat and "1 modified" in stat
    assert not re.search(r"^M  a\.txt", stat, re.M)  # counts only, as with diff --stat
