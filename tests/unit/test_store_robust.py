"""Special files where the store expects packs, pack indexes or loose objects are refused, not waited on.

Opening a fifo for reading blocks until a writer comes; a fifo named like a pack index made every command that
lists packs (log, fsck, gc) hang forever. Each case must be one error line, and gc must delete nothing.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from dvx.repo import Repo

TIMEOUT = 30


def committed(repo: Repo, write_files) -> str:
    write_files(repo.root, {"a.txt": "hello\n", "big.bin": os.urandom(600 << 10)})  # a pack and a loose object
    return repo.commit("c1")


def one_error_line(proc: subprocess.CompletedProcess[str], needle: str) -> None:
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("dvx: error:"), proc.stderr
    assert needle in lines[0], lines[0]


def files_under(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*")}


def test_fifo_named_like_a_pack_index_is_refused(repo: Repo, write_files, run_dvx) -> None:
    committed(repo, write_files)
    name = "ab" * 32
    os.mkfifo(repo.dvx / "objects" / "pack" / f"{name}.idx")
    before = files_under(repo.dvx / "objects")
    for args in (["log"], ["fsck"], ["gc", "--grace", "0"]):
        one_error_line(run_dvx(args, repo.root, timeout=TIMEOUT), f"pack index {name} is a fifo, not a regular file")
    assert files_under(repo.dvx / "objects") == before


def test_fifo_in_place_of_a_pack_is_refused(repo: Repo, write_files, run_dvx) -> None:
    committed(repo, write_files)
    pack = next((repo.dvx / "objects" / "pack").glob("*.pack"))
    pack.rename(pack.with_suffix(".moved"))
    os.mkfifo(pack)
    for args in (["log"], ["fsck"], ["gc", "--grace", "0"]):
        one_error_line(run_dvx(args, repo.root, timeout=TIMEOUT), f"pack {pack.stem} is a fifo, not a regular file")


def test_fifo_in_place_of_a_loose_object_is_refused(repo: Repo, write_files, run_dvx) -> None:
    committed(repo, write_files)
    loose = next(p for p in (repo.dvx / "objects" / "loose").rglob("*") if p.is_file())
    oid = loose.parent.name + loose.name
    loose.unlink()
    os.mkfifo(loose)
    r = run_dvx(["gc", "--grace", "0"], repo.root, timeout=TIMEOUT)
    one_error_line(r, f"object {oid} is a fifo, not a regular file")
    r = run_dvx(["fsck"], repo.root, timeout=TIMEOUT)
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert "is a fifo, not a regular file" in r.stdout + r.stderr


@pytest.mark.parametrize("what", ["idx", "pack"])
def test_folder_named_like_a_pack_file_is_refused(repo: Repo, write_files, run_dvx, what: str) -> None:
    committed(repo, write_files)
    pack = next((repo.dvx / "objects" / "pack").glob("*.pack"))
    target = pack.with_suffix(f".{what}")
    target.rename(pack.with_suffix(".moved"))
    target.mkdir()
    one_error_line(run_dvx(["log"], repo.root, timeout=TIMEOUT), "is a folder, not a regular file")
