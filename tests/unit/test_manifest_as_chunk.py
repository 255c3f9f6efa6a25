"""A chunk may itself be stored as a chunk manifest: the same bytes were committed earlier as a whole chunked
file. Reads accept that (one level); gc and push must follow it down to the real chunks."""

from __future__ import annotations

import random
from pathlib import Path

from dvx import Repo
from dvx.ids import hash_bytes
from dvx.store import BLOB, CHUNKED, encode_manifest
from dvx.transfer import add_remote, clone, push


def _nested_history(root: Path) -> tuple[Repo, bytes]:
    """v1 holds X (3 MiB, chunked); v2 deletes X and holds Y = X + Z, whose manifest names X as one chunk."""
    rng = random.Random(7)
    x = rng.randbytes(3 << 20)
    z = rng.randbytes(300 << 10)
    y = x + z
    root.mkdir()
    (root / "x.bin").write_bytes(x)
    repo = Repo.init(root)
    repo.commit("v1")
    x_id = hash_bytes(x)
    assert repo.store.info(x_id) is not None and repo.store.info(x_id).type == CHUNKED  # type: ignore[union-attr]
    with repo.store.writer() as w:
        w.add(hash_bytes(z), BLOB, z)
        w.add(hash_bytes(y), CHUNKED, encode_manifest(len(y), [(x_id, len(x)), (hash_bytes(z), len(z))]))
    (root / "x.bin").unlink()
    (root / "y.bin").write_bytes(y)
    repo.commit("v2")
    return repo, y


def test_gc_keeps_the_chunks_under_a_manifest_used_as_a_chunk(tmp_path: Path) -> None:
    repo, y = _nested_history(tmp_path / "r")
    # Only a flat copy of v2 stays reachable: X is now referenced only as a chunk of Y.
    repo.squash("HEAD", "flat", branch="flat")
    repo.checkout("flat")
    repo.delete_branch("main", force=True)
    report = repo.gc(grace_seconds=0)
    assert report.objects_removed > 0  # v1 and v2's commits went
    assert repo.fsck().ok
    assert b"".join(repo.store.iter_file(hash_bytes(y))) == y
    repo.close()


def test_push_sends_the_chunks_under_a_manifest_used_as_a_chunk(tmp_path: Path) -> None:
    repo, y = _nested_history(tmp_path / "r")
    remote = tmp_path / "remote"
    add_remote(repo, "origin", str(remote), {}, check=False)
    # Only v2 reaches the remote as a squashed root, so nothing of v1's history carries X's chunks along.
    repo.squash("HEAD", "flat", branch="flat")
    push(repo, "origin", ["flat"])
    other = clone(str(remote), tmp_path / "c", branch="flat")
    assert (other.root / "y.bin").read_bytes() == y
    assert other.fsck().ok
    other.close()
    repo.close()
