"""diff (working tree, one revision, two revisions, --stat, --json, renames) and ls (patterns, --json)."""

from __future__ import annotations

import json
import os
import re
import shutil

import blake3

from dvx.repo import Repo


def changes(doc: dict, kind: str) -> list[str]:  # type: ignore[type-arg]
    return sorted(c["path"] for c in doc[kind])


def test_diff_without_arguments_is_working_tree_against_head(repo: Repo, run_dvx, write_files) -> None:
    write_files(repo.root, {"a.txt": "one", "b.txt": "bee", "c.txt": "sea"})
    repo.commit("c1")
    write_files(repo.root, {"a.txt": "one, edited", "new.txt": "new"})
    (repo.root / "b.txt").unlink()
    doc = json.loads(run_dvx(["diff", "--json"], repo.root, check=True).stdout)
    assert changes(doc, "modified") == ["a.txt"]
    assert changes(doc, "added") == ["new.txt"]
    assert changes(doc, "deleted") == ["b.txt"]
    assert doc["renamed"] == []
    assert doc["stats"]["bytes_modified_old"] == 3 and doc["stats"]["bytes_modified_new"] == 11
    text = run_dvx(["diff"], repo.root, check=True).stdout
    assert re.search(r"^M  a\.txt", text, re.M) and re.search(r"^A  new\.txt", text, re.M)
    assert re.search(r"^D  b\.txt", text, re.M)
    assert "1 added" in text and "1 deleted" in text and "1 modified" in text
    stat = run_dvx(["diff", "--stat"], repo.root, check=True).stdout.splitlines()
    assert len(stat) == 1 and "1 added" in stat[0] and "0 renamed" in stat[0]


def test_diff_one_revision_compares_the_working_tree_to_it(repo: Repo, run_dvx, write_files) -> None:
    write_files(repo.root, {"a.txt": "1"})
    repo.commit("c1")
    write_files(repo.root, {"b.txt": "2"})
    repo.commit("c2")
    write_files(repo.root, {"c.txt": "3"})
    doc = json.loads(run_dvx(["diff", "HEAD~1", "--json"], repo.root, check=True).stdout)
    assert changes(doc, "added") == ["b.txt", "c.txt"]
    doc = json.loads(run_dvx(["diff", "HEAD", "--json"], repo.root, check=True).stdout)
    assert changes(doc, "added") == ["c.txt"]


def test_diff_two_revisions(repo: Repo, run_dvx, write_files) -> None:
    write_files(repo.root, {"a.txt": "1", "gone.txt": "g", "run.sh": "#!/bin/sh\n"})
    c1 = repo.commit("c1")
    write_files(repo.root, {"a.txt": "22", "b.txt": "2"})
    (repo.root / "gone.txt").unlink()
    (repo.root / "run.sh").chmod(0o755)
    c2 = repo.commit("c2")
    write_files(repo.root, {"uncommitted": "not part of either"})
    doc = json.loads(run_dvx(["diff", c1[:10], "main", "--json"], repo.root, check=True).stdout)
    assert changes(doc, "added") == ["b.txt"]
    assert changes(doc, "deleted") == ["gone.txt"]
    assert changes(doc, "modified") == ["a.txt", "run.sh"]
    reverse = json.loads(run_dvx(["diff", c2, c1, "--json"], repo.root, check=True).stdout)
    assert changes(reverse, "added") == ["gone.txt"] and changes(reverse, "deleted") == ["b.txt"]
    text = run_dvx(["diff", c1, c2], repo.root, check=True).stdout
    assert "mode +x" in text
    assert json.loads(run_dvx(["diff", c1, c1, "--json"], repo.root, check=True).stdout)["stats"]["added"] == 0


def test_diff_paths_without_dash_dash_and_its_mistakes(repo: Repo, run_dvx, write_files) -> None:
    write_files(repo.root, {"d/a.txt": "1", "e/b.txt": "2"})
    c1 = repo.commit("c1")
    write_files(repo.root, {"d/a.txt": "11", "e/b.txt": "22"})
    c2 = repo.commit("c2")
    for args in (["diff", c1, c2, "d"], ["diff", c1, "d"], ["diff", c1, c2, "--", "d"]):
        doc = json.loads(run_dvx(["diff", "--json", *args[1:]], repo.root, check=True).stdout)
        assert changes(doc, "modified") == ["d/a.txt"], args
    for args, needle in ((["diff", c1, "nowhere"], "ambiguous argument 'nowhere'"),
                         (["diff", c1, c2, "main", "--", "d"], "at most two revisions")):
        r = run_dvx(args, repo.root, check=False)
        assert r.stderr.startswith("dvx: error:") and needle in r.stderr and len(r.stderr.splitlines()) == 1, r.stderr
    (repo.root / "main").write_text("a file named like the branch")
    r = run_dvx(["diff", "main"], repo.root, check=False)
    assert "use 'dvx diff main --' or 'dvx diff -- main'" in r.stderr, r.stderr


def store_bytes(repo: Repo) -> int:
    return sum(p.stat().st_size for p in (repo.dvx / "objects").rglob("*") if p.is_file())


def test_folder_rename_shows_as_renames_and_stores_almost_nothing(repo: Repo, run_dvx, write_files) -> None:
    write_files(repo.root, {f"imgs/{i:03d}.jpg": os.urandom(20_000) for i in range(40)})
    write_files(repo.root, {"imgs/big.bin": os.urandom(3 << 20)})  # chunked, stored loose
    repo.commit("images")
    before = store_bytes(repo)
    shutil.move(repo.root / "imgs", repo.root / "images")
    doc = json.loads(run_dvx(["diff", "--json"], repo.root, check=True).stdout)
    assert doc["added"] == [] and doc["deleted"] == [] and doc["modified"] == []
    assert sorted((c["from"], c["path"]) for c in doc["renamed"]) == sorted(
        [(f"imgs/{i:03d}.jpg", f"images/{i:03d}.jpg") for i in range(40)] + [("imgs/big.bin", "images/big.bin")]
    )
    assert doc["stats"]["renamed"] == 41
    text = run_dvx(["diff"], repo.root, check=True).stdout
    assert "R  imgs/000.jpg -> images/000.jpg" in text and "41 renamed" in text
    run_dvx(["commit", "-m", "rename folder"], repo.root, check=True)
    assert store_bytes(repo) - before < 16_000  # new trees and a commit, no file content
    doc = json.loads(run_dvx(["diff", "HEAD~1", "HEAD", "--json"], repo.root, check=True).stdout)
    assert doc["stats"]["renamed"] == 41 and doc["stats"]["added"] == 0


def test_ls_lists_paths_sizes_and_checkable_hashes(repo: Repo, run_dvx, write_files) -> None:
    big = os.urandom(3 << 20)
    write_files(repo.root, {"a.txt": "alpha", "data/x.csv": "1,2\n", "data/deep/y.csv": "3,4\n", "big.bin": big})
    os.symlink("a.txt", repo.root / "link")
    (repo.root / "data" / "run.sh").write_text("#!/bin/sh\n")
    (repo.root / "data" / "run.sh").chmod(0o755)
    repo.commit("c1")
    lines = run_dvx(["ls"], repo.root, check=True).stdout.splitlines()
    rows = {line.split()[3]: line.split() for line in lines}
    assert sorted(rows) == ["a.txt", "big.bin", "data/deep/y.csv", "data/run.sh", "data/x.csv", "link"]
    assert rows["a.txt"][:3] == ["-", "5", blake3.blake3(b"alpha").hexdigest()]
    assert rows["big.bin"][2] == blake3.blake3(big).hexdigest()  # whole-file hash, although chunked
    assert rows["data/run.sh"][0] == "x"
    assert rows["link"][0] == "l" and lines[[r.split()[3] for r in lines].index("link")].endswith("link -> a.txt")
    doc = json.loads(run_dvx(["ls", "--json"], repo.root, check=True).stdout)
    by_path = {e["path"]: e for e in doc}
    assert by_path["a.txt"] == {"path": "a.txt", "kind": "file", "size": 5, "id": blake3.blake3(b"alpha").hexdigest(),
                                "executable": False}
    assert by_path["link"]["kind"] == "symlink" and by_path["link"]["target"] == "a.txt"
    assert by_path["data/run.sh"]["executable"] is True


def test_ls_patterns_and_revisions(repo: Repo, run_dvx, write_files) -> None:
    write_files(repo.root, {"a.txt": "a", "data/x.csv": "x", "data/deep/y.csv": "y", "img/p.jpg": "p"})
    repo.commit("c1")
    write_files(repo.root, {"data/z.csv": "z"})
    repo.commit("c2")
    repo.create_tag("v2")

    def paths(*args: str) -> list[str]:
        return [e["path"] for e in json.loads(run_dvx(["ls", "--json", *args], repo.root, check=True).stdout)]

    assert paths("*.csv") == ["data/deep/y.csv", "data/x.csv", "data/z.csv"]
    assert paths("HEAD~1", "*.csv") == ["data/deep/y.csv", "data/x.csv"]
    assert paths("v2", "data/deep/*") == ["data/deep/y.csv"]
    assert paths("*.jpg", "a.txt") == ["a.txt", "img/p.jpg"]
    assert paths("*.nothing") == []
    assert paths("HEAD~1") == ["a.txt", "data/deep/y.csv", "data/x.csv", "img/p.jpg"]


def test_ls_without_commits_is_an_error(repo: Repo, run_dvx) -> None:
    r = run_dvx(["ls"], repo.root, check=False)
    assert r.stderr.startswith("dvx: error:") and len(r.stderr.splitlines()) == 1
