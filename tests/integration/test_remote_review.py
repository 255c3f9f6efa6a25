"""Review of the remotes feature against its issue: each test is a bug that was found by using the CLI as a new
user would, written before its fix. Through real ``dvx`` processes where the CLI matters, against a local
folder and the real S3 / GCS emulators (fixtures in tests/remote_servers.py)."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from dvx import Repo
from dvx.store import BLOB, TREE
from dvx.store.pack import IndexEntry, PackIndex, encode_index
from dvx.transfer import add_remote, push, view_for

DVX = [sys.executable, "-m", "dvx"]


def dvx(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*DVX, *args], cwd=cwd, capture_output=True, text=True, timeout=180, env={**os.environ, **(env or {})}
    )


def one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    """The run failed with exactly one line on stderr and no traceback; returns that line."""
    assert proc.returncode != 0, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("dvx: error: "), lines[0]
    return lines[0]


def ok(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.stdout


def make_repo(root: Path, seed: int = 1, files: int = 12) -> Repo:
    rng = random.Random(seed)
    root.mkdir()
    for i in range(files):
        d = root / f"d{i % 3}"
        d.mkdir(exist_ok=True)
        (d / f"f{i}.bin").write_bytes(rng.randbytes(rng.randint(50, 5000)))
    (root / "big.bin").write_bytes(rng.randbytes(3 << 20))  # chunked
    repo = Repo.init(root)
    repo.commit("v1")
    return repo


def pushed_repo(tmp_path: Path) -> tuple[Path, Repo]:
    """``make_repo`` in ``tmp_path/src``, pushed to the folder remote ``tmp_path/remote`` (named origin)."""
    remote = tmp_path / "remote"
    src = make_repo(tmp_path / "src")
    add_remote(src, "origin", str(remote), {})
    push(src)
    return remote, src


def files_of(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and ".dvx" not in p.relative_to(root).parts
    }


# --- pull into a repository that is not a lazy clone ------------------------------------------------------


def test_pull_in_the_original_repository_fetches_the_new_contents(tmp_path: Path, shared_remote_url: str) -> None:
    """`dvx pull` in a repository made by `init` (no core.lazy_remote) must download the changed files from the
    remote it pulls from; it failed with "missing from the store and no remote is configured to fetch it"."""
    src = make_repo(tmp_path / "src")
    ok(dvx(src.root, "remote", "add", "origin", shared_remote_url))
    ok(dvx(src.root, "push"))
    ok(dvx(tmp_path, "clone", shared_remote_url, "other"))
    other = tmp_path / "other"
    (other / "d0" / "f0.bin").write_bytes(b"changed by the other clone")
    (other / "new.txt").write_text("a new file\n")
    ok(dvx(other, "commit", "-m", "from other"))
    ok(dvx(other, "push"))

    out = ok(dvx(src.root, "pull"))
    assert "Fast-forwarded" in out
    assert files_of(src.root) == files_of(other)
    ok(dvx(src.root, "fsck"))


def test_pull_into_a_fresh_repository_with_a_remote_added(tmp_path: Path) -> None:
    """git init; git remote add origin URL; git pull: the same with dvx gives a full checkout."""
    remote, src = pushed_repo(tmp_path)
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    ok(dvx(fresh, "init"))
    ok(dvx(fresh, "remote", "add", "origin", str(remote)))
    ok(dvx(fresh, "pull"))
    assert files_of(fresh) == files_of(src.root)
    ok(dvx(fresh, "fsck"))


# --- a clone killed while it writes its files ------------------------------------------------------------


def test_a_clone_killed_while_writing_its_files_never_passes_for_a_checkout_with_deletions(tmp_path: Path) -> None:
    """Killed half-way through placing the files, the clone is marked as one with no files checked out:
    status and commit refuse (a commit would have recorded the missing files as deleted, and a push published
    that); a re-run of clone says what the folder is; `checkout BRANCH` writes every file."""
    remote, src = pushed_repo(tmp_path)
    killed = dvx(tmp_path, "clone", str(remote), "c1", env={"DVX_FAULT": "checkout.before-place:2:kill"})
    assert killed.returncode == -9, killed
    c1 = tmp_path / "c1"
    assert "no files are checked out here" in one_error_line(dvx(c1, "status"))
    assert "no files are checked out here" in one_error_line(dvx(c1, "commit", "-m", "oops"))
    assert "interrupted clone" in one_error_line(dvx(tmp_path, "clone", str(remote), "c1"))
    ok(dvx(c1, "checkout", "main"))
    assert files_of(c1) == files_of(src.root)
    assert "nothing to commit" in ok(dvx(c1, "status"))
    ok(dvx(c1, "fsck"))


# --- a failed clone leaves nothing behind ------------------------------------------------------------------


@pytest.mark.parametrize(
    "case",
    ["not-a-remote", "no-such-branch", "disk-full-packs", "disk-full-loose", "future-format"],
)
def test_a_failed_clone_leaves_nothing_that_looks_like_a_repository(tmp_path: Path, case: str) -> None:
    """A clone that fails must not leave a valid-looking (empty or partial) repository behind, as git does not:
    it looked like an empty clone ("On branch main, No commits yet") and blocked the retry ("not empty")."""
    remote, src = pushed_repo(tmp_path)
    url, args, env = str(remote), [], {}
    if case == "not-a-remote":
        url = str(tmp_path / "nothing-here")
    elif case == "no-such-branch":
        args = ["--branch", "nosuch"]
    elif case == "disk-full-packs":
        env = {"DVX_FAULT": "pack.before-fsync:1:raise:ENOSPC"}
    elif case == "disk-full-loose":
        env = {"DVX_FAULT": "loose.before-write:1:raise:ENOSPC"}
    elif case == "future-format":
        (remote / "dvx-remote.json").write_text('{"format": 2}\n')
    one_error_line(dvx(tmp_path, "clone", url, "dest", *args, env=env))
    assert not (tmp_path / "dest").exists()

    # Into an existing empty folder (allowed, as with git): on failure the folder stays, empty.
    (tmp_path / "empty").mkdir()
    one_error_line(dvx(tmp_path, "clone", url, "empty", *args, env=env))
    assert list((tmp_path / "empty").iterdir()) == []

    if case in ("not-a-remote", "future-format"):
        return
    ok(dvx(tmp_path, "clone", url, "dest"))  # the retry works
    assert files_of(tmp_path / "dest") == files_of(src.root)


def test_clone_into_a_file_is_refused_with_one_clear_line(tmp_path: Path) -> None:
    remote, src = pushed_repo(tmp_path)
    (tmp_path / "afile").write_text("mine")
    line = one_error_line(dvx(tmp_path, "clone", str(remote), "afile"))
    assert "afile" in line and "not a folder" in line
    assert (tmp_path / "afile").read_text() == "mine"


# --- relative paths of folder remotes ----------------------------------------------------------------------


def test_clone_of_a_relative_path_keeps_working_from_inside_the_clone(tmp_path: Path) -> None:
    """`dvx clone ../remote c` stored the URL as given, so from inside the clone it named c/../remote relative to
    wherever the next command ran: fetch said "not a dvx remote" and the lazy checkout found no objects."""
    src = make_repo(tmp_path / "src")
    ok(dvx(src.root, "remote", "add", "origin", "../remote"))  # relative to the current folder, like git
    ok(dvx(src.root / "d0", "push"))  # from a subfolder: the same remote
    assert (tmp_path / "remote" / "dvx-remote.json").is_file()
    assert not (src.root / "remote").exists() and not (src.root / "d0" / "remote").exists()

    ok(dvx(tmp_path, "clone", "--no-checkout", "remote", "lazy"))
    lazy = tmp_path / "lazy"
    ok(dvx(lazy, "checkout", "--force", "main"))
    assert files_of(lazy) == files_of(src.root)
    ok(dvx(lazy, "fetch"))
    (src.root / "d1" / "f1.bin").write_bytes(b"v2")
    ok(dvx(src.root, "commit", "-m", "v2"))
    ok(dvx(src.root, "push"))
    ok(dvx(lazy / "d1", "pull"))
    assert (lazy / "d1" / "f1.bin").read_bytes() == b"v2"


# --- fetch of refs that name what the remote does not hold -------------------------------------------------


@pytest.mark.parametrize("kind", ["branch", "tag", "not-a-commit"])
def test_fetch_refuses_a_remote_ref_whose_commit_is_not_on_the_remote(tmp_path: Path, kind: str) -> None:
    """A remote ref naming a commit no remote pack holds became a local ref to nothing: afterwards the local
    `fsck` reported the repository broken and `gc` refused to run. Fetch must refuse it, naming the ref."""
    remote, src = pushed_repo(tmp_path)
    ok(dvx(tmp_path, "clone", str(remote), "c"))
    c = tmp_path / "c"
    if kind == "branch":
        (remote / "refs" / "heads" / "ghost").write_text("a" * 64 + "\n")
    elif kind == "tag":
        (remote / "refs" / "tags").mkdir(parents=True, exist_ok=True)
        (remote / "refs" / "tags" / "ghost").write_text("b" * 64 + "\n")
    else:  # a ref naming an object that is there, but is a tree
        tree = src.read_commit(src.resolve("HEAD")).tree
        (remote / "refs" / "heads" / "ghost").write_text(tree + "\n")
    line = one_error_line(dvx(c, "fetch"))
    assert "ghost" in line and "fsck --remote" in line, line
    assert not (c / ".dvx" / "refs" / "remotes" / "origin" / "ghost").exists()
    assert not (c / ".dvx" / "refs" / "tags" / "ghost").exists()
    ok(dvx(c, "fsck"))
    ok(dvx(c, "gc"))
    one_error_line(dvx(tmp_path, "clone", str(remote), "c2"))
    assert not (tmp_path / "c2").exists()


# --- the remote's format marker is read, and checked strictly, before anything else -----------------------


@pytest.mark.parametrize("marker", ['{"format": 2}\n', "[1]\n", '{"format": true}\n', '"1"\n', "\xff\n"])
def test_every_reader_refuses_a_remote_of_another_format(tmp_path: Path, marker: str) -> None:
    """`[1]` crashed with a traceback, `{"format": true}` was read as format 1 (True == 1 in Python), and
    `fsck --remote` and the lazy fetch of a checkout read a format-2 remote without looking at its marker."""
    remote, src = pushed_repo(tmp_path)
    ok(dvx(tmp_path, "clone", "--no-checkout", str(remote), "lazy"))
    (remote / "dvx-remote.json").write_bytes(marker.encode("latin-1"))
    lazy = tmp_path / "lazy"
    for cwd, args in [
        (src.root, ["fetch"]),
        (src.root, ["push", "--force"]),
        (src.root, ["fsck", "--remote", "origin"]),
        (lazy, ["checkout", "--force", "main"]),
        (tmp_path, ["clone", str(remote), "again"]),
    ]:
        line = one_error_line(dvx(cwd, *args))
        assert "dvx-remote.json" in line or "format" in line, (args, line)
    assert files_of(lazy) == {}, "nothing was read from the remote of an unknown format"


# --- a push whose refs landed reports success ---------------------------------------------------------------


def test_a_push_whose_ref_landed_does_not_report_failure_when_the_head_hint_cannot_be_written(
    tmp_path: Path,
) -> None:
    """The remote's HEAD is only a hint for clone, written after the refs. When that write failed, `dvx push`
    exited 1 although the branch had moved on the remote, so the user believed the push lost."""
    remote = tmp_path / "remote"
    src = make_repo(tmp_path / "src")
    ok(dvx(src.root, "remote", "add", "origin", str(remote)))
    # Create-only writes on a fresh folder remote: 1 = dvx-remote.json, 2 = HEAD.
    proc = dvx(src.root, "push", env={"DVX_FAULT": "remote.write.before-link:2:raise:EACCES"})
    assert proc.returncode == 0, proc.stderr
    assert "warning" in proc.stderr and "HEAD" in proc.stderr and "Traceback" not in proc.stderr
    assert (remote / "refs" / "heads" / "main").read_text().strip() == src.resolve("HEAD")
    assert not (remote / "HEAD").exists()
    ok(dvx(tmp_path, "clone", str(remote), "c"))  # HEAD is a hint: clone falls back to main


# --- lazy clones push to another remote -----------------------------------------------------------------------


def test_a_lazy_clone_pushes_to_a_second_remote_fetching_what_it_lacks(tmp_path: Path, make_remote_url: object) -> None:
    """`clone --no-checkout` then `push other` failed ("content of f1.bin is not in the local store") although the
    lazy remote holds every content: like any other reader, push must fetch what a lazy clone has not yet."""
    remote, src = pushed_repo(tmp_path)
    ok(dvx(tmp_path, "clone", "--no-checkout", str(remote), "lazy"))
    lazy = tmp_path / "lazy"
    other = make_remote_url("s3")  # type: ignore[operator]
    ok(dvx(lazy, "remote", "add", "other", other))
    out = json.loads(ok(dvx(lazy, "push", "other", "--json")))
    assert out["refs_updated"] == ["refs/heads/main"]
    ok(dvx(tmp_path, "clone", other, "from-other"))
    assert files_of(tmp_path / "from-other") == files_of(src.root)
    ok(dvx(tmp_path / "from-other", "fsck", "--remote", "origin"))


# --- objects relabelled by a remote index ----------------------------------------------------------------


def _relabel(remote: Path, object_id: str, new_type: int) -> None:
    """Rewrite the remote index that lists ``object_id`` so that it claims another type (checksum redone)."""
    for idx_path in (remote / "packs").glob("*.idx"):
        idx = PackIndex(idx_path.read_bytes(), idx_path.stem)
        entries = list(idx)
        if not any(e.object_id.hex() == object_id for e in entries):
            continue
        entries = [
            IndexEntry(e.object_id, new_type, e.codec, e.offset, e.stored_size, e.raw_size)
            if e.object_id.hex() == object_id
            else e
            for e in entries
        ]
        idx_path.write_bytes(encode_index(idx.pack_hash, entries))
        return
    raise AssertionError(f"{object_id} is in no remote index")


def test_a_blob_relabelled_as_a_tree_by_the_remote_never_enters_the_store(tmp_path: Path) -> None:
    """Types come from the remote's index; a blob relabelled as a tree hashes right, so fetch stored it as a tree
    (a wrong object under a right id, kept forever) and `fsck --remote` compared only ids and offsets."""
    remote, src = pushed_repo(tmp_path)
    blob = src.ls(None, ["d0/f0.bin"])[0][1].id
    assert src.store.info(blob).type == BLOB  # type: ignore[union-attr]
    _relabel(remote, blob, TREE)
    line = one_error_line(dvx(tmp_path, "clone", "--no-checkout", str(remote), "c"))
    assert blob[:16] in line, line
    proc = dvx(src.root, "fsck", "--remote", "origin")
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert f"bad {blob}: remote pack" in proc.stderr, proc.stderr
    assert "missing on the remote" not in proc.stderr, "only the relabelled object is bad"

    fresh = tmp_path / "fresh"
    fresh.mkdir()
    ok(dvx(fresh, "init"))
    ok(dvx(fresh, "remote", "add", "origin", str(remote)))
    one_error_line(dvx(fresh, "fetch"))
    assert Repo(fresh).store.info(blob) is None, "the relabelled object must not be stored"


# --- an interrupted pull resumes ----------------------------------------------------------------------------


def test_a_pull_killed_before_it_moves_the_branch_is_completed_by_the_next_pull(
    tmp_path: Path, shared_remote_url: str
) -> None:
    """pull checked out the new commit with a *detached* HEAD and only then moved the branch and re-attached
    HEAD: killed in between, the repository was left on a detached HEAD, and the next `dvx pull` refused
    ("cannot pull with a detached HEAD")."""
    src = make_repo(tmp_path / "src")
    ok(dvx(src.root, "remote", "add", "origin", shared_remote_url))
    ok(dvx(src.root, "push"))
    ok(dvx(tmp_path, "clone", shared_remote_url, "c"))
    c = tmp_path / "c"
    (src.root / "d0" / "f0.bin").write_bytes(b"new content")
    (src.root / "added.txt").write_text("added\n")
    (src.root / "d1" / "f1.bin").unlink()
    v2 = src.commit("v2")
    ok(dvx(src.root, "push"))

    # Ref updates of a pull: 1 = refs/remotes/origin/main (fetch), 2 = the branch.
    killed = dvx(c, "pull", env={"DVX_FAULT": "ref.before-update:2:kill"})
    assert killed.returncode == -9, killed.stderr
    ok(dvx(c, "fsck"))
    status = ok(dvx(c, "status"))
    assert "On branch main" in status, status

    out = ok(dvx(c, "pull"))
    assert "Fast-forwarded" in out, out
    assert Repo(c).head() == ("main", v2)
    assert files_of(c) == files_of(src.root)
    assert "nothing to commit" in ok(dvx(c, "status"))


def test_pull_over_uncommitted_changes_gives_advice_that_applies_to_pull(tmp_path: Path) -> None:
    """The refusal said "use --force to discard them", but `dvx pull` has no --force."""
    remote, src = pushed_repo(tmp_path)
    ok(dvx(tmp_path, "clone", str(remote), "c"))
    c = tmp_path / "c"
    (src.root / "d0" / "f0.bin").write_bytes(b"theirs")
    src.commit("v2")
    push(src)
    (c / "d0" / "f0.bin").write_bytes(b"mine, not committed")
    line = one_error_line(dvx(c, "pull"))
    assert "d0/f0.bin" in line and "commit" in line and "--force" not in line, line
    assert (c / "d0" / "f0.bin").read_bytes() == b"mine, not committed"
    assert Repo(c).head()[1] != src.head()[1]


# --- odd bytes in the remote's HEAD hint and stray keys under packs/ --------------------------------------


@pytest.mark.parametrize(
    "head", [b"ref: refs/heads/\xff\n", b"ref: refs/heads/../../x\n", b"ref: refs/heads/gone\n", b"\x00\x01"]
)
def test_clone_treats_a_bad_remote_head_as_absent(tmp_path: Path, head: bytes) -> None:
    """HEAD is only a hint (docs/format.md §17.5): invalid UTF-8 in it crashed clone with a traceback, and a HEAD
    naming a branch the remote does not have made clone fail instead of falling back to main."""
    remote, src = pushed_repo(tmp_path)
    (remote / "HEAD").write_bytes(head)
    out = ok(dvx(tmp_path, "clone", str(remote), "c"))
    assert "branch main" in out
    assert files_of(tmp_path / "c") == files_of(src.root)


def test_a_stray_index_in_a_subfolder_of_packs_is_not_read_as_a_pack_of_the_remote(tmp_path: Path) -> None:
    """Only ``packs/<id>.idx`` keys are indexes (docs/format.md §17.2): a copy in ``packs/old/`` was taken for
    ``packs/<id>.idx`` by its last component, and reading that (absent) key failed every fetch and push."""
    remote, src = pushed_repo(tmp_path)
    (remote / "packs" / "old").mkdir()
    (remote / "packs" / "old" / ("c" * 64 + ".idx")).write_bytes(b"not an index")
    ok(dvx(tmp_path, "clone", str(remote), "c"))
    (src.root / "more.txt").write_text("more")
    ok(dvx(src.root, "commit", "-m", "more"))
    ok(dvx(src.root, "push"))
    ok(dvx(tmp_path / "c", "pull"))


# --- no secret in .dvx/config, even from a URL ----------------------------------------------------------------


def test_credentials_inside_urls_are_never_stored(tmp_path: Path, s3_server: str) -> None:
    """Option names were screened for secrets, but not values: `-o endpoint_url=http://KEY:SECRET@host` (or a
    `gs://user:pw@bucket` remote URL) went into .dvx/config as is with --no-check."""
    src = make_repo(tmp_path / "src")
    port = s3_server.rsplit(":", 1)[1]
    for args in (
        ["remote", "add", "a", "s3://bkt/x", "-o", f"endpoint_url=http://AKIA:supersecret@127.0.0.1:{port}"],
        ["remote", "add", "b", "s3://bkt/x", "--no-check", "-o", "endpoint_url=http://AKIA:supersecret@h:1"],
        ["remote", "add", "c", "gs://user:supersecret@bkt/x", "--no-check"],
    ):
        line = one_error_line(dvx(src.root, *args))
        assert "credentials" in line and "supersecret" not in line, line
    line = one_error_line(dvx(tmp_path, "clone", "gs://user:supersecret@bkt/x", "c"))
    assert "supersecret" not in line
    assert "supersecret" not in (src.dvx / "config").read_text()
    assert not (tmp_path / "c").exists()


# --- the progress bar shows bytes and objects -------------------------------------------------------------------


def _run_on_a_terminal(cwd: Path, *args: str) -> tuple[int, str]:
    """Run dvx with stderr on a pseudo-terminal (the bar shows only there); returns (exit code, what it drew)."""
    import pty

    primary, secondary = pty.openpty()
    proc = subprocess.Popen([*DVX, *args], cwd=cwd, stdout=subprocess.DEVNULL, stderr=secondary)
    os.close(secondary)
    chunks = []
    while True:
        try:
            chunk = os.read(primary, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(primary)
    return proc.wait(timeout=120), b"".join(chunks).decode(errors="replace")


def test_the_progress_bar_counts_objects_as_well_as_bytes(tmp_path: Path) -> None:
    """The issue asks for "a progress bar with bytes and objects"; push, clone, fetch and pull showed bytes only."""
    remote = tmp_path / "remote"
    src = make_repo(tmp_path / "src", files=40)
    add_remote(src, "origin", str(remote), {})
    rc, drawn = _run_on_a_terminal(src.root, "push")
    assert rc == 0, drawn
    assert "pushing" in drawn and "objects" in drawn and "MB" in drawn, drawn
    rc, drawn = _run_on_a_terminal(tmp_path, "clone", str(remote), "c")
    assert rc == 0, drawn
    assert "cloning" in drawn and "objects" in drawn, drawn


def test_naming_a_ref_twice_pushes_it_once(tmp_path: Path) -> None:
    """`dvx push origin main main` swapped main, then tried again from the token read before the first swap and
    reported "someone else updated it on the remote just now" for a push that had succeeded."""
    remote = tmp_path / "remote"
    src = make_repo(tmp_path / "src")
    ok(dvx(src.root, "remote", "add", "origin", str(remote)))
    ok(dvx(src.root, "push"))
    (src.root / "v2.txt").write_text("v2")
    v2 = src.commit("v2")
    ok(dvx(src.root, "tag", "v2"))
    out = json.loads(ok(dvx(src.root, "push", "origin", "main", "v2", "main", "v2", "--json")))
    assert out["refs_updated"] == ["refs/heads/main", "refs/tags/v2"], out
    assert (remote / "refs" / "heads" / "main").read_text().strip() == v2


# --- a missing bucket is named as such ---------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["s3", "gs"])
def test_clone_and_fetch_of_a_missing_bucket_say_the_bucket_does_not_exist(
    tmp_path: Path, scheme: str, s3_server: str, gcs_server: str
) -> None:
    """A missing bucket was reported as "not a dvx remote (nothing was pushed there yet)", sending the user to
    push into a bucket that does not exist; a reader that finds no marker now tells the two apart."""
    url = f"{scheme}://dvx-no-such-bucket-{os.getpid()}/data"
    line = one_error_line(dvx(tmp_path, "clone", url, "c"))
    assert "does not exist" in line and "nothing was pushed" not in line, line
    assert not (tmp_path / "c").exists()
    src = make_repo(tmp_path / "src")
    ok(dvx(src.root, "remote", "add", "ghost", url, "--no-check"))
    for args in (["fetch", "ghost"], ["fsck", "--remote", "ghost"]):
        line = one_error_line(dvx(src.root, *args))
        assert "does not exist" in line, line


# --- verified behaviour (no bug found): a push killed between packs resumes without re-sending --------------


def test_a_push_killed_between_packs_resumes_sending_only_what_did_not_arrive(
    tmp_path: Path, shared_remote_url: str
) -> None:
    src = make_repo(tmp_path / "src")
    ok(dvx(src.root, "remote", "add", "origin", shared_remote_url, "-o", "connections=1"))
    # Packs of this push: 1 = the data pack, 2 = the metadata pack. SIGKILL before the second is sent.
    killed = dvx(src.root, "push", env={"DVX_FAULT": "push.before-pack:2:kill"})
    assert killed.returncode == -9, killed.stderr
    assert "refs/heads/main" not in view_for(Repo(src.root), "origin").refs()
    ok(dvx(src.root, "fsck", "--remote", "origin"))  # nothing reachable yet, and every pack there is sound
    ok(dvx(src.root, "fsck"))
    again = json.loads(ok(dvx(src.root, "push", "--json")))
    assert again["packs"] == 1 and again["bytes"] < 100_000, again  # only the small metadata pack
    assert again["refs_updated"] == ["refs/heads/main"]
    ok(dvx(tmp_path, "clone", shared_remote_url, "c"))
    assert files_of(tmp_path / "c") == files_of(src.root)


def test_a_resumed_push_does_not_resend_what_arrived_when_the_local_packs_were_merged_meanwhile(
    tmp_path: Path, shared_remote_url: str
) -> None:
    """The objects to send are chosen against every index on the remote, not by pack name: after local commits
    merge the small packs (so that the data of v1 now lies in a pack of another name), the resumed push still
    sends only what the remote lacks."""
    from dvx.store.gc import MAX_SMALL_PACKS

    src = make_repo(tmp_path / "src")
    ok(dvx(src.root, "remote", "add", "origin", shared_remote_url, "-o", "connections=1"))
    killed = dvx(src.root, "push", env={"DVX_FAULT": "push.before-pack:2:kill"})  # v1's data is up, nothing else
    assert killed.returncode == -9, killed.stderr
    repo = Repo(src.root)
    v1_packs = set(repo.store.packs())
    for i in range(MAX_SMALL_PACKS + 2):  # a pack per commit, then the commit that merges them
        (src.root / f"note{i}.txt").write_text(f"note {i}\n")
        repo.commit(f"note {i}")
    repo.store.reload_packs()
    assert not v1_packs & set(repo.store.packs()), "the packs holding v1 were not merged away"
    repo.close()
    again = json.loads(ok(dvx(src.root, "push", "--json")))
    assert again["refs_updated"] == ["refs/heads/main"]
    assert again["bytes"] < 200_000, again  # v1's 3 MiB of data is not sent again; notes and metadata are
    view = view_for(Repo(src.root), "origin")
    view.load_indexes()
    sent = [e.object_id for idx in view.indexes.values() for e in idx]
    assert len(sent) == len(set(sent)), "an object went to the remote twice"
    ok(dvx(tmp_path, "clone", shared_remote_url, "c"))
    assert files_of(tmp_path / "c") == files_of(src.root)


def test_a_push_finding_the_remote_at_its_commit_mirrors_it_in_the_tracking_ref(tmp_path: Path) -> None:
    """A push killed after its ref swap, before it wrote origin/main: the next push finds nothing to send, and
    sets origin/main to what the remote holds (it used to stay behind until a fetch)."""
    remote, src = pushed_repo(tmp_path)
    (src.root / "more.txt").write_text("more")
    src.commit("two")
    head = src.resolve("HEAD")
    behind = src.resolve("origin/main")
    ok(dvx(src.root, "push"))
    src.refs.update("refs/remotes/origin/main", behind, head)  # as if killed right after the swap
    assert "up to date" in ok(dvx(src.root, "push")).lower()
    assert src.resolve("origin/main") == head
