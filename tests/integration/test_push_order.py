"""Push publishes metadata bottom-up, the remote's default branch is one that was pushed, and fetch ignores
remote ref names no dvx writes."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from dvx import Repo, durable, transfer
from dvx.errors import DvxError
from dvx.transfer import add_remote, clone, fetch, push, view_for


def _history(root: Path, commits: int = 3) -> Repo:
    root.mkdir()
    repo = Repo.init(root)
    for c in range(commits):
        for d in range(12):
            sub = root / f"d{d}" / f"e{d % 3}"
            sub.mkdir(parents=True, exist_ok=True)
            (sub / f"f{c}.txt").write_text(f"commit {c} dir {d}\n" * 20)
        repo.commit(f"c{c}")
    return repo


def _snapshot(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and ".dvx" not in p.relative_to(root).parts
    }


def _inject(site: str, nth: int) -> None:
    durable._fault_plan = {site: (nth, "raise:EIO")}
    durable._fault_counts.clear()


@pytest.fixture(autouse=True)
def _no_faults():
    yield
    durable._fault_plan = None
    durable._fault_counts.clear()


def test_every_interruption_point_of_a_many_pack_push_resumes_to_a_valid_remote(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(transfer, "PUSH_PACK_SIZE", 1500)  # metadata spread over many small packs
    repo = _history(tmp_path / "src")
    want = _snapshot(repo.root)
    remote = tmp_path / "remote"
    add_remote(repo, "origin", str(remote), {}, check=False)
    _, meta = transfer.objects_to_send(repo, [repo.resolve("HEAD")], view_for(repo, "origin"))
    assert len(meta) > 40
    # Post-order: every commit comes after its tree and its parents.
    pos = {oid: i for i, oid in enumerate(meta)}
    for oid in meta:
        try:
            c = repo.read_commit(oid)
        except DvxError:
            continue
        assert pos[c.tree] < pos[oid]
        assert all(pos[p] < pos[oid] for p in c.parents)
    # Interrupt before the 1st, 2nd, ... pack upload; then push again, clone and compare.
    for nth in range(1, 200, 7):
        _inject("push.before-pack", nth)
        try:
            push(repo, "origin")
        except DvxError as exc:
            assert "input/output error" in str(exc)
        else:
            break  # nth is past the last pack: the push went through
        finally:
            durable._fault_plan = {}
        push(repo, "origin")
        other = clone(str(remote), tmp_path / f"c{nth}")
        assert _snapshot(other.root) == want
        assert other.fsck().ok
        other.close()
        # Start over from an empty remote for the next interruption point.
        shutil.rmtree(remote)
        shutil.rmtree(repo.dvx / "remotes", ignore_errors=True)
        repo.refs.update("refs/remotes/origin/main", None, repo.refs.get("refs/remotes/origin/main"))
    repo.close()


def test_remote_head_names_a_pushed_branch(tmp_path: Path) -> None:
    repo = _history(tmp_path / "src", commits=1)
    repo.create_branch("other")
    repo.create_tag("v1")
    remote = tmp_path / "remote"
    add_remote(repo, "origin", str(remote), {}, check=False)
    push(repo, "origin", ["v1"])  # a tag only: no default branch yet
    assert not (remote / "HEAD").exists()
    push(repo, "origin", ["other"])  # the current branch (main) was not pushed: HEAD names "other"
    assert (remote / "HEAD").read_text() == "ref: refs/heads/other\n"
    other = clone(str(remote), tmp_path / "c")
    assert other.head()[0] == "other"
    other.close()
    repo.close()


def test_fetch_ignores_remote_ref_names_no_dvx_writes(tmp_path: Path) -> None:
    repo = _history(tmp_path / "src", commits=1)
    remote = tmp_path / "remote"
    add_remote(repo, "origin", str(remote), {}, check=False)
    push(repo, "origin")
    head = repo.resolve("HEAD")
    (remote / "refs" / "heads" / ".hidden").write_text(head + "\n")
    (remote / "refs" / "heads" / "bad..name").write_text(head + "\n")
    (remote / "refs" / "notes").mkdir(parents=True)
    (remote / "refs" / "notes" / "x").write_text(head + "\n")
    dst = clone(str(remote), tmp_path / "c", checkout=False)
    stats = fetch(dst, "origin")
    assert len(stats.warnings) == 3, stats.warnings
    assert set(dst.refs.list("refs/remotes/origin/")) == {"main"}
    dst.close()
    repo.close()
