"""checkout (branches, tags, ids, HEAD~N, HEAD^N), and what it does to the working tree: only files that
differ are touched, local changes are protected, exec bits and symlinks survive; odd file names and
special files; .dvxignore."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from dvx.repo import Repo


def head_file(repo: Repo) -> str:
    return (repo.dvx / "HEAD").read_text().strip()


def tree(snapshot, repo: Repo) -> dict:  # type: ignore[type-arg]
    return snapshot(repo.root, skip=(".dvx",))


def three_commits(repo: Repo, write_files) -> list[str]:
    write_files(repo.root, {"a.txt": "a1", "keep/k.txt": "k"})
    c1 = repo.commit("c1")
    write_files(repo.root, {"a.txt": "a2", "b/b.txt": "b"})
    c2 = repo.commit("c2")
    write_files(repo.root, {"c.txt": "c"})
    c3 = repo.commit("c3")
    return [c1, c2, c3]


def test_checkout_branch_follows_it_and_commit_moves_only_it(repo: Repo, run_dvx, write_files) -> None:
    c1, _, c3 = three_commits(repo, write_files)
    repo.create_branch("old", c1)
    r = run_dvx(["checkout", "old"], repo.root, check=True)
    assert "Switched to branch 'old'" in r.stdout
    assert head_file(repo) == "ref: refs/heads/old"
    assert (repo.root / "a.txt").read_text() == "a1"
    assert not (repo.root / "c.txt").exists() and not (repo.root / "b").exists()
    write_files(repo.root, {"on-old.txt": "x"})
    run_dvx(["commit", "-m", "on old"], repo.root, check=True)
    assert repo.branches()["main"] == c3
    assert repo.read_commit(repo.branches()["old"]).parents == (c1,)
    assert "On branch old" in run_dvx(["status"], repo.root, check=True).stdout


@pytest.mark.parametrize("rev_kind", ["tag", "id", "prefix", "HEAD~1", "HEAD^", "main~0"])
def test_checkout_non_branch_detaches_head(repo: Repo, run_dvx, write_files, rev_kind: str) -> None:
    c1, c2, c3 = three_commits(repo, write_files)
    repo.create_tag("v1", c2)
    rev, expected = {
        "tag": ("v1", c2), "id": (c2, c2), "prefix": (c2[:8], c2), "HEAD~1": ("HEAD~1", c2), "HEAD^": ("HEAD^", c2),
        "HEAD~2": ("HEAD~2", c1), "main^1": ("main^1", c2), "main~0": ("main~0", c3),
    }[rev_kind]
    r = run_dvx(["checkout", rev], repo.root, check=True)
    assert "detached" in r.stdout
    assert head_file(repo) == expected
    assert repo.branches()["main"] == c3
    assert "HEAD detached at" in run_dvx(["status"], repo.root, check=True).stdout
    assert (repo.root / "a.txt").read_text() == ("a1" if expected == c1 else "a2")
    # Back to the branch: HEAD follows it again and the tree is c3's.
    run_dvx(["checkout", "main"], repo.root, check=True)
    assert head_file(repo) == "ref: refs/heads/main"
    assert (repo.root / "c.txt").read_text() == "c"


def test_commit_on_detached_head_moves_head_only(repo: Repo, run_dvx, write_files) -> None:
    c1, _, c3 = three_commits(repo, write_files)
    run_dvx(["checkout", c1], repo.root, check=True)
    write_files(repo.root, {"detached.txt": "d"})
    r = run_dvx(["commit", "-m", "detached work"], repo.root, check=True)
    assert "detached HEAD" in r.stdout
    new = head_file(repo)
    assert repo.read_commit(new).parents == (c1,)
    assert repo.branches() == {"main": c3}


def test_checkout_refuses_to_overwrite_local_changes_and_names_them(repo: Repo, run_dvx, write_files, snapshot) -> None:
    c1, _, _ = three_commits(repo, write_files)
    write_files(repo.root, {"a.txt": "local edit", "b/b.txt": "local b", "c.txt": "c"})
    before = tree(snapshot, repo)
    head_before = head_file(repo)
    r = run_dvx(["checkout", c1], repo.root, check=False)
    assert r.stderr.startswith("dvx: error:") and len(r.stderr.splitlines()) == 1
    assert "a.txt" in r.stderr and "b/b.txt" in r.stderr and "c.txt" not in r.stderr  # c.txt is unchanged
    assert "--force" in r.stderr
    assert tree(snapshot, repo) == before and head_file(repo) == head_before
    run_dvx(["checkout", "--force", c1], repo.root, check=True)
    assert (repo.root / "a.txt").read_text() == "a1"
    assert not (repo.root / "b").exists() and not (repo.root / "c.txt").exists()
    assert json.loads(run_dvx(["status", "--json"], repo.root, check=True).stdout) == {
        "added": [], "modified": [], "deleted": []
    }


def test_checkout_refuses_untracked_file_in_the_way(repo: Repo, run_dvx, write_files) -> None:
    c1, _, _ = three_commits(repo, write_files)
    run_dvx(["checkout", c1], repo.root, check=True)
    write_files(repo.root, {"c.txt": "my own untracked c"})
    r = run_dvx(["checkout", "main"], repo.root, check=False)
    assert "c.txt" in r.stderr
    assert (repo.root / "c.txt").read_text() == "my own untracked c"


def test_local_changes_on_untouched_paths_survive_checkout(repo: Repo, run_dvx, write_files) -> None:
    c1, _, _ = three_commits(repo, write_files)
    write_files(repo.root, {"keep/k.txt": "local edit on a path both commits agree on", "untracked.txt": "u"})
    run_dvx(["checkout", c1], repo.root, check=True)
    assert (repo.root / "keep" / "k.txt").read_text().startswith("local edit")
    assert (repo.root / "untracked.txt").read_text() == "u"


def test_checkout_touches_only_files_that_differ(repo: Repo, run_dvx, write_files) -> None:
    write_files(repo.root, {f"same/{i}.bin": os.urandom(1000) for i in range(20)})
    write_files(repo.root, {"changes.txt": "v1", "big.bin": os.urandom(3 << 20)})
    c1 = repo.commit("c1")
    write_files(repo.root, {"changes.txt": "v2"})
    repo.commit("c2")
    unchanged = [*(repo.root / "same").iterdir(), repo.root / "big.bin"]
    stats = {p: os.stat(p) for p in unchanged}
    changed_ino = os.stat(repo.root / "changes.txt").st_ino
    pin = os.open(repo.root / "changes.txt", os.O_RDONLY)  # keeps the old inode alive: its number is not reused
    try:
        run_dvx(["checkout", c1], repo.root, check=True)
        run_dvx(["checkout", "main"], repo.root, check=True)
    finally:
        os.close(pin)
    for p, st in stats.items():
        now = os.stat(p)
        assert (now.st_ino, now.st_mtime_ns) == (st.st_ino, st.st_mtime_ns), p
    assert (repo.root / "changes.txt").read_text() == "v2"
    assert os.stat(repo.root / "changes.txt").st_ino != changed_ino  # replaced atomically, not edited in place


def test_exec_bit_only_change(repo: Repo, run_dvx, write_files) -> None:
    write_files(repo.root, {"run.sh": "#!/bin/sh\necho hi\n"})
    script = repo.root / "run.sh"
    c1 = repo.commit("plain")
    script.chmod(0o755)
    assert json.loads(run_dvx(["status", "--json"], repo.root, check=True).stdout)["modified"] == ["run.sh"]
    run_dvx(["commit", "-m", "make executable"], repo.root, check=True)
    show = json.loads(run_dvx(["show", "--json"], repo.root, check=True).stdout)
    assert [c["path"] for c in show["diff"]["modified"]] == ["run.sh"]
    ino = os.stat(script).st_ino
    run_dvx(["checkout", c1], repo.root, check=True)
    assert not os.stat(script).st_mode & 0o111
    assert os.stat(script).st_ino == ino  # a mode change is a chmod, not a rewrite
    run_dvx(["checkout", "main"], repo.root, check=True)
    assert os.stat(script).st_mode & 0o100
    assert script.read_text() == "#!/bin/sh\necho hi\n"


def test_file_to_symlink_and_back(repo: Repo, run_dvx, write_files) -> None:
    write_files(repo.root, {"target.txt": "T", "x": "target.txt"})  # same bytes as the link target text
    c1 = repo.commit("x is a file")
    (repo.root / "x").unlink()
    os.symlink("target.txt", repo.root / "x")
    doc = json.loads(run_dvx(["status", "--json"], repo.root, check=True).stdout)
    assert doc["modified"] == ["x"]
    run_dvx(["commit", "-m", "x is a link"], repo.root, check=True)
    run_dvx(["checkout", c1], repo.root, check=True)
    assert not (repo.root / "x").is_symlink() and (repo.root / "x").read_text() == "target.txt"
    assert (repo.root / "target.txt").read_text() == "T"  # not written through the link
    run_dvx(["checkout", "main"], repo.root, check=True)
    assert (repo.root / "x").is_symlink() and os.readlink(repo.root / "x") == "target.txt"


def test_directory_to_file_and_back(repo: Repo, run_dvx, write_files) -> None:
    write_files(repo.root, {"d/inner.txt": "in", "other": "o"})
    c1 = repo.commit("d is a directory")
    (repo.root / "d" / "inner.txt").unlink()
    (repo.root / "d").rmdir()
    write_files(repo.root, {"d": "now a file"})
    repo.commit("d is a file")
    run_dvx(["checkout", c1], repo.root, check=True)
    assert (repo.root / "d" / "inner.txt").read_text() == "in"
    run_dvx(["checkout", "main"], repo.root, check=True)
    assert (repo.root / "d").read_text() == "now a file"


LINKS = {
    "dangling": "no/such/target",
    "absolute": "/etc/hostname",
    "to_dir": "realdir",
    "up_and_out": "../../outside/of/the/tree",
    "dots": "./a/../b/./c",
    "spaces and ü": "target with spaces ü",
    "realdir/back": "..",
}


def test_symlinks_round_trip_verbatim(repo: Repo, run_dvx, write_files, snapshot) -> None:
    write_files(repo.root, {"realdir/file.txt": "inside", "plain.txt": "p"})
    for name, target in LINKS.items():
        os.symlink(target, repo.root / name)
    c1 = repo.commit("links")
    expected = tree(snapshot, repo)
    # A commit without the links, then back.
    for name in LINKS:
        os.unlink(repo.root / name)
    run_dvx(["commit", "-m", "no links"], repo.root, check=True)
    assert not any(os.path.lexists(repo.root / n) for n in LINKS)
    run_dvx(["checkout", c1], repo.root, check=True)
    assert tree(snapshot, repo) == expected
    for name, target in LINKS.items():
        assert os.readlink(repo.root / name) == target
    doc = {e["path"]: e for e in json.loads(run_dvx(["ls", "--json"], repo.root, check=True).stdout)}
    assert all(doc[name]["target"] == target for name, target in LINKS.items())
    assert "realdir/file.txt" in doc and "to_dir/file.txt" not in doc  # links are not followed


NAMES = ["My Data/résumé 1.txt", "日本語/ファイル.csv", "emoji 🎉.bin", " leading and trailing ", "tab\there",
         "-starts-with-dash", "ünïcödé/ñ/ǅ.txt", "quote'\"and\\back"]


def test_non_ascii_and_space_names_round_trip(repo: Repo, run_dvx, write_files, snapshot) -> None:
    write_files(repo.root, {name: name.encode() * 3 for name in NAMES})
    doc = json.loads(run_dvx(["status", "--json"], repo.root, check=True).stdout)
    assert doc["added"] == sorted(NAMES)
    run_dvx(["commit", "-m", "names"], repo.root, check=True)
    expected = tree(snapshot, repo)
    listed = [e["path"] for e in json.loads(run_dvx(["ls", "--json"], repo.root, check=True).stdout)]
    assert sorted(listed) == sorted(NAMES)
    for name in NAMES:
        os.unlink(repo.root / name)
    run_dvx(["checkout", "--force", "HEAD"], repo.root, check=True)
    assert {k: v for k, v in tree(snapshot, repo).items() if v[0] != "d"} == {
        k: v for k, v in expected.items() if v[0] != "d"
    }


def test_non_utf8_file_name_is_a_one_line_error_naming_the_file(repo: Repo, run_dvx, write_files) -> None:
    write_files(repo.root, {"fine.txt": "ok"})
    (repo.root / "sub").mkdir()
    os.close(os.open(os.fsencode(repo.root / "sub") + b"/caf\xe9.txt", os.O_CREAT | os.O_WRONLY, 0o644))
    for args in (["status"], ["commit", "-m", "x"]):
        r = run_dvx(args, repo.root, check=False)
        lines = r.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("dvx: error:"), r.stderr
        assert "UTF-8" in lines[0] and "caf\\xe9.txt" in lines[0]
        assert "Traceback" not in r.stderr
    assert repo.head()[1] is None


def test_fifo_is_skipped_with_a_warning_by_status(repo: Repo, run_dvx, write_files) -> None:
    write_files(repo.root, {"a.txt": "a"})
    os.mkfifo(repo.root / "pipe")
    r = run_dvx(["status", "--json"], repo.root, check=True)
    assert json.loads(r.stdout)["added"] == ["a.txt"]
    assert "warning" in r.stderr and "pipe" in r.stderr
    run_dvx(["commit", "-m", "with a fifo around"], repo.root, check=True, timeout=30)
    assert [p for p, _ in repo.ls()] == ["a.txt"]


def test_fifo_is_skipped_with_a_warning_by_commit(repo: Repo, run_dvx, write_files) -> None:
    write_files(repo.root, {"a.txt": "a"})
    os.mkfifo(repo.root / "pipe")
    r = run_dvx(["commit", "-m", "with a fifo around"], repo.root, check=True, timeout=30)
    assert "warning" in r.stderr and "pipe" in r.stderr


def test_dvxignore(repo: Repo, run_dvx, write_files) -> None:
    write_files(repo.root, {
        ".dvxignore": "*.tmp\nbuild/\n!keep.tmp\n/rootonly.txt\n",
        "a.txt": "a", "x.tmp": "t", "sub/y.tmp": "t", "keep.tmp": "k", "build/out.bin": "o",
        "sub/build/deep.bin": "o", "rootonly.txt": "r", "sub/rootonly.txt": "s",
        ".git/config": "git's own",
    })
    doc = json.loads(run_dvx(["status", "--json"], repo.root, check=True).stdout)
    assert doc["added"] == [".dvxignore", "a.txt", "keep.tmp", "sub/rootonly.txt"]
    run_dvx(["commit", "-m", "c1"], repo.root, check=True)
    assert [p for p, _ in repo.ls()] == doc["added"]
    write_files(repo.root, {"x.tmp": "changed", "build/new": "n"})
    assert "nothing to commit" in run_dvx(["status"], repo.root, check=True).stdout


def test_checkout_unknown_revision_changes_nothing(repo: Repo, run_dvx, write_files, snapshot) -> None:
    three_commits(repo, write_files)
    volatile = (".dvx/lock", ".dvx/index")  # lock holder's pid, stat cache: allowed to change
    before = snapshot(repo.root, skip=volatile)
    r = run_dvx(["checkout", "no-such-branch"], repo.root, check=False)
    assert r.stderr.startswith("dvx: error:") and "no-such-branch" in r.stderr
    assert snapshot(repo.root, skip=volatile) == before


def test_checkout_from_a_subfolder_updates_the_whole_tree(repo: Repo, run_dvx, write_files) -> None:
    c1, _, _ = three_commits(repo, write_files)
    run_dvx(["checkout", c1], Path(repo.root, "keep"), check=True)
    assert (repo.root / "a.txt").read_text() == "a1" and not (repo.root / "c.txt").exists()


@pytest.mark.parametrize("meta", [".git", ".dvx"])
def test_nested_repository_does_not_break_status_or_commit(repo: Repo, run_dvx, write_files, meta: str) -> None:
    """A dataset folder holding a git clone (vendored code, a submodule) must still be versionable."""
    write_files(repo.root, {"a.txt": "a", f"vendor/lib/{meta}/HEAD": "ref: refs/heads/main\n", "vendor/lib/x.py": "x"})
    r = run_dvx(["status", "--json"], repo.root, check=True)
    added = json.loads(r.stdout)["added"]
    assert "a.txt" in added and "vendor/lib/x.py" in added
    assert not any(f"/{meta}/" in p for p in added)
    run_dvx(["commit", "-m", "with a nested repository"], repo.root, check=True)


def test_a_checkout_refused_half_way_by_the_file_system_says_so(repo: Repo, run_dvx, write_files) -> None:
    """An immutable folder (chattr +i) refuses a rename after other files were placed: the one error line says
    the working tree was partly updated, that HEAD did not move, and how to put the tracked files back."""
    import shutil
    import subprocess

    write_files(repo.root, {"a/one": "1", "b/two": "2"})
    repo.commit("base")
    repo.create_branch("side")
    repo.checkout("side")
    write_files(repo.root, {"a/new1": "n1", "b/new2": "n2"})
    repo.commit("side")
    repo.checkout("main")
    chattr = shutil.which("chattr")
    if chattr is None or subprocess.run([chattr, "+i", str(repo.root / "b")], capture_output=True).returncode:
        pytest.skip("chattr +i is not available here (needs root on ext4 or similar)")
    try:
        r = run_dvx(["checkout", "side"], repo.root, check=False)
    finally:
        subprocess.run([chattr, "-i", str(repo.root / "b")], check=True)
    assert r.returncode != 0 and len(r.stderr.splitlines()) == 1, r.stderr
    assert "partly updated and HEAD did not move" in r.stderr and "checkout -f HEAD" in r.stderr
    assert repo.head()[0] == "main"
    run_dvx(["checkout", "-f", "HEAD"], repo.root, check=True)
    assert not repo.status().modified and not repo.status().deleted
