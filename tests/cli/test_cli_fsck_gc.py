"""fsck (clean repository, a flipped byte in a pack and in a loose object) and gc (unreachable objects go,
reachable ones stay)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from dvx.ids import hash_bytes
from dvx.repo import Repo
from dvx.store import LOOSE_THRESHOLD


def flip_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def populated(repo: Repo, write_files) -> dict[str, bytes]:
    files = {
        "small/random.bin": os.urandom(5000),
        "small/text.csv": b"".join(b"%d,value,%d\n" % (i, i * i) for i in range(3000)),
        "loose/one-mib.bin": os.urandom(1 << 20),  # >= 512 KiB: stored loose, not chunked
        "chunked/big.bin": os.urandom(5 << 20),
    }
    write_files(repo.root, files)
    repo.commit("c1")
    return files


def test_fsck_of_a_healthy_repository(repo: Repo, run_dvx, write_files) -> None:
    files = populated(repo, write_files)
    r = run_dvx(["fsck"], repo.root, check=True)
    assert r.stdout.splitlines()[-1] == "ok"
    assert "checked" in r.stdout and r.stderr == ""
    doc = json.loads(run_dvx(["fsck", "--json"], repo.root, check=True).stdout)
    assert doc["ok"] is True and doc["bad"] == {} and doc["missing"] == []
    assert doc["bytes"] == sum(len(v) for v in files.values())
    assert doc["objects"] >= 1 + 4 + len(files)  # commit, trees, files (+ chunks)


def test_fsck_finds_a_flipped_byte_in_a_pack(repo: Repo, run_dvx, write_files) -> None:
    files = populated(repo, write_files)
    blob = hash_bytes(files["small/random.bin"])
    info = repo.store.info(blob)
    assert info is not None and info.pack is not None
    repo.close()
    flip_byte(repo.store.pack_dir / f"{info.pack}.pack", info.offset + 100)
    r = run_dvx(["fsck"], repo.root, check=False)
    assert blob in r.stderr
    assert info.pack in r.stderr  # the pack's own checksum fails too
    assert r.stderr.splitlines()[-1].startswith("dvx: error: fsck found")
    assert "Traceback" not in r.stderr
    doc = json.loads(run_dvx(["fsck", "--json"], repo.root, check=False).stdout)
    assert doc["ok"] is False and blob in doc["bad"]


def test_fsck_finds_a_flipped_byte_in_a_loose_object(repo: Repo, run_dvx, write_files) -> None:
    files = populated(repo, write_files)
    blob = hash_bytes(files["loose/one-mib.bin"])
    path = repo.store.loose_path(blob)
    assert path.is_file()
    flip_byte(path, path.stat().st_size // 2)
    r = run_dvx(["fsck"], repo.root, check=False)
    assert r.returncode != 0 and blob in r.stderr and "Traceback" not in r.stderr


def test_fsck_finds_a_flipped_byte_in_a_chunk(repo: Repo, run_dvx, write_files) -> None:
    files = populated(repo, write_files)
    file_id = hash_bytes(files["chunked/big.bin"])
    # A chunk stored loose (>= 512 KiB; random data can also cut smaller chunks, which go into a pack).
    chunk_id = next(c for c, n in repo.store.file_chunks(file_id) if n >= LOOSE_THRESHOLD)
    path = repo.store.loose_path(chunk_id)
    flip_byte(path, path.stat().st_size - 10)
    r = run_dvx(["fsck"], repo.root, check=False)
    assert r.returncode != 0 and chunk_id in r.stderr


def test_fsck_finds_a_missing_object(repo: Repo, run_dvx, write_files) -> None:
    files = populated(repo, write_files)
    blob = hash_bytes(files["loose/one-mib.bin"])
    repo.store.loose_path(blob).unlink()
    r = run_dvx(["fsck"], repo.root, check=False)
    assert r.returncode != 0 and blob in r.stderr


def test_fsck_finds_a_damaged_pack_index(repo: Repo, run_dvx, write_files) -> None:
    populated(repo, write_files)
    idx = sorted(repo.store.pack_dir.glob("*.idx"))[0]  # a commit on several threads may write several packs
    flip_byte(idx, 100)
    r = run_dvx(["fsck"], repo.root, check=False)
    assert r.returncode != 0 and idx.stem in r.stderr and "Traceback" not in r.stderr


def test_fsck_finds_a_truncated_pack(repo: Repo, run_dvx, write_files) -> None:
    populated(repo, write_files)
    pack = sorted(repo.store.pack_dir.glob("*.pack"))[0]
    with open(pack, "r+b") as fh:
        fh.truncate(pack.stat().st_size - 8)
    r = run_dvx(["fsck"], repo.root, check=False)
    assert r.returncode != 0 and pack.stem in r.stderr and "Traceback" not in r.stderr


def object_files(repo: Repo) -> set[str]:
    return {p.relative_to(repo.dvx).as_posix() for p in (repo.dvx / "objects").rglob("*") if p.is_file()}


def test_gc_removes_what_a_deleted_branch_held_and_keeps_the_rest(repo: Repo, run_dvx, write_files) -> None:
    files = populated(repo, write_files)
    repo.create_branch("feature")
    run_dvx(["checkout", "feature"], repo.root, check=True)
    only_feature = os.urandom(1 << 20)
    write_files(repo.root, {"feature/only.bin": only_feature, "feature/small.txt": "small and unique"})
    run_dvx(["commit", "-m", "feature work"], repo.root, check=True)
    run_dvx(["checkout", "main"], repo.root, check=True)
    feature_loose = repo.store.loose_path(hash_bytes(only_feature))
    assert feature_loose.is_file()

    # Still referenced by a branch: gc with no grace removes nothing.
    r = json.loads(run_dvx(["gc", "--grace", "0", "--json"], repo.root, check=True).stdout)
    assert r["objects_removed"] == 0 and feature_loose.is_file()

    run_dvx(["branch", "-D", "feature"], repo.root, check=True)
    kept_young = json.loads(run_dvx(["gc", "--json"], repo.root, check=True).stdout)  # default grace: 1 hour
    assert kept_young["objects_removed"] == 0 and feature_loose.is_file()
    dry = json.loads(run_dvx(["gc", "--grace", "0", "--dry-run", "--json"], repo.root, check=True).stdout)
    assert dry["objects_removed"] >= 4 and feature_loose.is_file()

    before = object_files(repo)
    r = json.loads(run_dvx(["gc", "--grace", "0", "--json"], repo.root, check=True).stdout)
    # the 1 MiB file, the small file, the feature tree, the root tree and the commit
    assert r["objects_removed"] >= 5 and r["bytes_freed"] >= 1 << 20
    assert not feature_loose.exists()
    assert object_files(repo) != before
    assert run_dvx(["fsck"], repo.root, check=True).stdout.splitlines()[-1] == "ok"
    for path, content in files.items():
        assert b"".join(repo.store.iter_file(hash_bytes(content))) == content, path
    assert json.loads(run_dvx(["gc", "--grace", "0", "--json"], repo.root, check=True).stdout)["objects_removed"] == 0


def test_gc_keeps_objects_reachable_from_tags_and_detached_head(repo: Repo, run_dvx, write_files) -> None:
    write_files(repo.root, {"a.bin": os.urandom(1 << 20)})
    c1 = repo.commit("c1")
    tagged = os.urandom(1 << 20)
    write_files(repo.root, {"tagged.bin": tagged})
    c2 = repo.commit("c2")
    repo.create_tag("keep", c2)
    detached = os.urandom(1 << 20)
    run_dvx(["checkout", c1], repo.root, check=True)
    write_files(repo.root, {"detached.bin": detached})
    run_dvx(["commit", "-m", "on detached head"], repo.root, check=True)
    repo.refs.update("refs/heads/main", c1, c2)  # main no longer reaches c2; only the tag does
    run_dvx(["gc", "--grace", "0"], repo.root, check=True)
    for content in (tagged, detached):
        assert repo.store.loose_path(hash_bytes(content)).is_file()
    assert run_dvx(["fsck"], repo.root, check=True).stdout.splitlines()[-1] == "ok"
