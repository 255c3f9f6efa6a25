"""The bad-input table: every user error is a non-zero exit, exactly one stderr line starting with
"dvx: error:", no traceback, and nothing changed on disk.

"Nothing changed" compares the whole folder (working tree and .dvx) before and after, except the stat cache
(.dvx/index, a hint that may be refreshed) and the repository lock file (it records the last holder's pid).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from dvx.repo import Repo
from dvx.transfer import add_remote, push

ALWAYS_VOLATILE = (".dvx/index", ".dvx/lock")


@dataclass
class Run:
    cwd: Path
    args: list[str]
    root: Path  # the folder that must not change
    message: str  # expected in the error line (case-insensitive)
    env: dict[str, str] = field(default_factory=dict)
    prefix: list[str] = field(default_factory=list)
    volatile: tuple[str, ...] = ()


Cleanup = list[Callable[[], object]]


def committed(tmp: Path, files: dict[str, str | bytes], message: str = "c1") -> Repo:
    repo = Repo.init(tmp / "repo")
    for rel, content in files.items():
        path = repo.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)
    if files:
        repo.commit(message)
    repo.close()
    return repo


def flip_object_byte(repo: Repo, object_id: str) -> None:
    info = repo.store.info(object_id)
    assert info is not None
    path = repo.store.pack_dir / f"{info.pack}.pack" if info.pack else repo.store.loose_path(object_id)
    data = bytearray(path.read_bytes())
    data[info.offset + info.stored_size // 2] ^= 0x01
    path.write_bytes(bytes(data))
    repo.close()


# --- the cases ----------------------------------------------------------------------------------------


def not_a_repo(tmp: Path, cleanup: Cleanup) -> Run:
    (tmp / "plain").mkdir()
    (tmp / "plain" / "file.txt").write_text("x")
    return Run(tmp / "plain", ["status"], tmp / "plain", "not a dvx repository")


def repo_exists(tmp: Path, cleanup: Cleanup) -> Run:
    repo = committed(tmp, {"a": "1"})
    return Run(repo.root, ["init", "."], repo.root, "already exists")


def init_on_a_file(tmp: Path, cleanup: Cleanup) -> Run:
    (tmp / "afile").write_text("not a folder")
    return Run(tmp, ["init", "afile"], tmp, "afile")


def init_with_a_bad_compression_level(tmp: Path, cleanup: Cleanup) -> Run:
    (tmp / "data").mkdir()
    return Run(tmp, ["init", "data", "--compression-level", "23"], tmp, "compression level must be 1..22")


def unknown_revision(tmp: Path, cleanup: Cleanup) -> Run:
    repo = committed(tmp, {"a": "1"})
    return Run(repo.root, ["checkout", "no-such-rev"], repo.root, "no-such-rev")


def unknown_revision_in_diff(tmp: Path, cleanup: Cleanup) -> Run:
    repo = committed(tmp, {"a": "1"})
    return Run(repo.root, ["diff", "HEAD", "deadbeef"], repo.root, "deadbeef")


def dirty_tree_checkout(tmp: Path, cleanup: Cleanup) -> Run:
    repo = committed(tmp, {"a.txt": "1"})
    (repo.root / "a.txt").write_text("2")
    repo.commit("c2")
    repo.close()
    (repo.root / "a.txt").write_text("uncommitted")
    return Run(repo.root, ["checkout", "HEAD~1"], repo.root, "a.txt")


def empty_message(tmp: Path, cleanup: Cleanup) -> Run:
    repo = committed(tmp, {"a": "1"})
    (repo.root / "b").write_text("new")
    return Run(repo.root, ["commit", "-m", ""], repo.root, "message")


def commit_nothing(tmp: Path, cleanup: Cleanup) -> Run:
    repo = committed(tmp, {"a": "1"})
    return Run(repo.root, ["commit", "-m", "nothing changed"], repo.root, "nothing to commit")


def bad_branch_name(tmp: Path, cleanup: Cleanup) -> Run:
    repo = committed(tmp, {"a": "1"})
    return Run(repo.root, ["branch", "bad..name"], repo.root, "invalid branch name")


def delete_current_branch(tmp: Path, cleanup: Cleanup) -> Run:
    repo = committed(tmp, {"a": "1"})
    return Run(repo.root, ["branch", "-d", "main"], repo.root, "checked out")


def existing_tag(tmp: Path, cleanup: Cleanup) -> Run:
    repo = committed(tmp, {"a": "1"})
    repo.create_tag("v1")
    return Run(repo.root, ["tag", "v1"], repo.root, "already exists")


def permission_denied(tmp: Path, cleanup: Cleanup) -> Run:
    repo = committed(tmp, {"a": "1"})
    secret = repo.root / "secret.txt"
    secret.write_text("not for you")
    secret.chmod(0)
    prefix: list[str] = []
    if os.geteuid() == 0:
        # Root reads mode-000 files; drop the two capabilities that bypass file permissions.
        setpriv = shutil.which("setpriv")
        probe = [setpriv or "setpriv", "--bounding-set=-dac_override,-dac_read_search", "cat", str(secret)]
        if setpriv is None or subprocess.run(probe, capture_output=True).returncode == 0:
            pytest.skip("running as root without a working setpriv: a mode-000 file cannot be made unreadable")
        prefix = probe[:2]
    return Run(repo.root, ["commit", "-m", "x"], repo.root, "permission denied", prefix=prefix)


def bad_config(tmp: Path, cleanup: Cleanup) -> Run:
    repo = committed(tmp, {"a": "1"})
    (repo.dvx / "config").write_text("{ this is not json")
    return Run(repo.root, ["status"], repo.root, "config")


def bad_config_value(tmp: Path, cleanup: Cleanup) -> Run:
    repo = committed(tmp, {"a": "1"})
    cfg = json.loads((repo.dvx / "config").read_text())
    cfg["core"]["compression_level"] = "fast"
    (repo.dvx / "config").write_text(json.dumps(cfg))
    return Run(repo.root, ["log"], repo.root, "config")


def unsupported_format(tmp: Path, cleanup: Cleanup) -> Run:
    repo = committed(tmp, {"a": "1"})
    cfg = json.loads((repo.dvx / "config").read_text())
    cfg["format"] = 99
    (repo.dvx / "config").write_text(json.dumps(cfg))
    return Run(repo.root, ["status"], repo.root, "format")


def corrupt_commit(tmp: Path, cleanup: Cleanup) -> Run:
    repo = committed(tmp, {"a": "1"})
    flip_object_byte(repo, repo.head()[1] or "")
    return Run(repo.root, ["log"], repo.root, repo.head()[1] or "")


def corrupt_ref(tmp: Path, cleanup: Cleanup) -> Run:
    repo = committed(tmp, {"a": "1"})
    (repo.dvx / "refs" / "heads" / "main").write_text("garbage\n")
    return Run(repo.root, ["log"], repo.root, "main")


def corrupt_file_content_on_checkout(tmp: Path, cleanup: Cleanup) -> Run:
    repo = committed(tmp, {"only.txt": "version one of the only changed file"})
    blob = repo.ls()[0][1].id
    (repo.root / "only.txt").write_text("version two")
    repo.commit("c2")
    flip_object_byte(repo, blob)
    return Run(repo.root, ["checkout", "HEAD~1"], repo.root, blob)


def corrupt_file_among_several_on_checkout(tmp: Path, cleanup: Cleanup) -> Run:
    """The corrupt file is one of several the checkout must write: none of them may be half-applied."""
    files = {f"f{i:02d}.txt": f"version one of file {i}" for i in range(10)}
    repo = committed(tmp, files)
    blob = dict(repo.ls())["f05.txt"].id
    for name in files:
        (repo.root / name).write_text("version two")
    repo.commit("c2")
    flip_object_byte(repo, blob)
    return Run(repo.root, ["checkout", "HEAD~1"], repo.root, blob)


def disk_full(tmp: Path, cleanup: Cleanup) -> Run:
    mnt = tmp / "small-disk"
    mnt.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mnt)], capture_output=True)
    env: dict[str, str] = {}
    if mounted.returncode == 0:
        cleanup.append(lambda: subprocess.run(["umount", "-l", str(mnt)], check=True))
        repo = Repo.init(mnt / "repo")
    else:  # no mount allowed here: inject the same error where the first object is written
        repo = Repo.init(tmp / "repo")
        env["DVX_FAULT"] = "loose.before-write:1:raise:ENOSPC"
    repo.close()
    (repo.root / "big.bin").write_bytes(os.urandom(5 << 20))
    # A failed commit removes the objects it had published (see the test below); .dvx/objects may still differ
    # in ways the snapshot does not care about here.
    return Run(repo.root, ["commit", "-m", "too big"], repo.root, "no space left", env=env, volatile=(".dvx/objects",))


def locked(tmp: Path, cleanup: Cleanup) -> Run:
    repo = committed(tmp, {"a": "1"})
    (repo.root / "b").write_text("change")
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import time
            from pathlib import Path
            from dvx.lock import RepoLock
            RepoLock(Path({str(repo.dvx / "lock")!r}), what="test holder").acquire()
            print("held", flush=True)
            time.sleep(120)
        """)],
        stdout=subprocess.PIPE,
        text=True,
    )
    cleanup.append(lambda: (holder.send_signal(signal.SIGKILL), holder.wait()))
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    return Run(repo.root, ["commit", "-m", "x"], repo.root, "locked", env={"DVX_LOCK_TIMEOUT": "0.3"})


def missing_argument(tmp: Path, cleanup: Cleanup) -> Run:
    repo = committed(tmp, {"a": "1"})
    return Run(repo.root, ["checkout"], repo.root, "missing argument")


def unknown_command(tmp: Path, cleanup: Cleanup) -> Run:
    repo = committed(tmp, {"a": "1"})
    return Run(repo.root, ["frobnicate"], repo.root, "frobnicate")


def bad_option_value(tmp: Path, cleanup: Cleanup) -> Run:
    repo = committed(tmp, {"a": "1"})
    return Run(repo.root, ["log", "-n", "-1"], repo.root, "-n")


def non_utf8_name(tmp: Path, cleanup: Cleanup) -> Run:
    repo = committed(tmp, {"a": "1"})
    os.close(os.open(os.fsencode(repo.root) + b"/na\xefve.txt", os.O_CREAT | os.O_WRONLY, 0o644))
    return Run(repo.root, ["commit", "-m", "x"], repo.root, "na\\xefve.txt")


def non_utf8_symlink_target(tmp: Path, cleanup: Cleanup) -> Run:
    repo = committed(tmp, {"a": "1"})
    os.symlink(b"caf\xe9", os.fsencode(repo.root) + b"/menu-link")
    return Run(repo.root, ["status"], repo.root, "menu-link")


def branch_at_a_file_id(tmp: Path, cleanup: Cleanup) -> Run:
    repo = committed(tmp, {"a": "1"})
    file_id = repo.ls()[0][1].id
    return Run(repo.root, ["branch", "bb", file_id], repo.root, "is not a commit")


def tag_at_a_tree_id(tmp: Path, cleanup: Cleanup) -> Run:
    repo = committed(tmp, {"a": "1"})
    return Run(repo.root, ["tag", "t", repo.read_commit(repo.head()[1] or "").tree], repo.root, "is not a commit")


def ls_past_the_first_commit(tmp: Path, cleanup: Cleanup) -> Run:
    repo = committed(tmp, {"a": "1"})
    return Run(repo.root, ["ls", "HEAD~1000"], repo.root, "goes past the first commit")


def ls_unknown_revision(tmp: Path, cleanup: Cleanup) -> Run:
    repo = committed(tmp, {"a": "1"})
    return Run(repo.root, ["ls", "mian"], repo.root, "unknown revision or path 'mian'")


def ls_corrupt_tag(tmp: Path, cleanup: Cleanup) -> Run:
    repo = committed(tmp, {"a": "1"})
    repo.create_tag("v2")
    (repo.dvx / "refs" / "tags" / "v2").write_text("garbage\n")
    return Run(repo.root, ["ls", "v2"], repo.root, "refs/tags/v2")


def corrupt_tag_beside_a_branch(tmp: Path, cleanup: Cleanup) -> Run:
    """A damaged tag is reported, not skipped for the branch of the same name."""
    repo = committed(tmp, {"a": "1"})
    repo.create_tag("v2")
    repo.create_branch("v2")
    (repo.dvx / "refs" / "tags" / "v2").write_text("garbage\n")
    return Run(repo.root, ["show", "v2"], repo.root, "refs/tags/v2")


def log_with_an_unknown_path(tmp: Path, cleanup: Cleanup) -> Run:
    """git: "ambiguous argument": a second argument without -- that is neither a revision nor a file here."""
    repo = committed(tmp, {"a": "1"})
    (repo.root / "a").write_text("2")
    repo.commit("c2")
    return Run(repo.root, ["log", "HEAD", "no-such-file"], repo.root, "ambiguous argument 'no-such-file'")


def gc_grace_nan(tmp: Path, cleanup: Cleanup) -> Run:
    repo = committed(tmp, {"a": "1"})
    return Run(repo.root, ["gc", "--grace", "nan"], repo.root, "--grace")


def config_user_not_an_object(tmp: Path, cleanup: Cleanup) -> Run:
    repo = committed(tmp, {"a": "1"})
    cfg = json.loads((repo.dvx / "config").read_text())
    cfg["user"] = "bob"
    (repo.dvx / "config").write_text(json.dumps(cfg))
    (repo.root / "b").write_text("new")
    return Run(repo.root, ["commit", "-m", "x"], repo.root, "'user' section")


def _malformed_remotes(tmp: Path, value: object) -> Run:
    repo = committed(tmp, {"a": "1"})
    cfg = json.loads((repo.dvx / "config").read_text())
    cfg["remotes"] = value
    (repo.dvx / "config").write_text(json.dumps(cfg))
    return Run(repo.root, ["remote", "list"], repo.root, ".dvx/config must be an object")


def config_remotes_an_int(tmp: Path, cleanup: Cleanup) -> Run:
    return _malformed_remotes(tmp, 5)


def config_remote_an_int(tmp: Path, cleanup: Cleanup) -> Run:
    return _malformed_remotes(tmp, {"o": 5})


def config_level_a_bool(tmp: Path, cleanup: Cleanup) -> Run:
    repo = committed(tmp, {"a": "1"})
    cfg = json.loads((repo.dvx / "config").read_text())
    cfg["core"]["compression_level"] = True
    (repo.dvx / "config").write_text(json.dumps(cfg))
    return Run(repo.root, ["status"], repo.root, "must be an integer")


def config_format_a_float(tmp: Path, cleanup: Cleanup) -> Run:
    repo = committed(tmp, {"a": "1"})
    cfg = json.loads((repo.dvx / "config").read_text())
    cfg["format"] = 1.0
    (repo.dvx / "config").write_text(json.dumps(cfg))
    return Run(repo.root, ["status"], repo.root, "format 1.0")


def checkout_over_an_untracked_fifo(tmp: Path, cleanup: Cleanup) -> Run:
    repo = committed(tmp, {"a": "1"})
    (repo.root / "p").write_text("file in c2")
    (repo.root / "a").write_text("2")
    repo.commit("c2")
    repo.checkout("HEAD~1")
    repo.close()
    os.mkfifo(repo.root / "p")
    return Run(repo.root, ["checkout", "main"], repo.root, "untracked files are in the way: p")


def branch_name_not_utf8(tmp: Path, cleanup: Cleanup) -> Run:
    repo = committed(tmp, {"a": "1"})
    return Run(repo.root, ["branch", "b\udcff"], repo.root, "argument 'b\\xff' is not valid UTF-8")


def message_not_utf8(tmp: Path, cleanup: Cleanup) -> Run:
    repo = committed(tmp, {"a": "1"})
    return Run(repo.root, ["commit", "--allow-empty", "-m", "\udcff"], repo.root, "not valid UTF-8")


def init_branch_not_utf8(tmp: Path, cleanup: Cleanup) -> Run:
    (tmp / "here").mkdir()
    return Run(tmp / "here", ["init", "-b", "\udcff", "r"], tmp / "here", "not valid UTF-8")


def author_not_utf8(tmp: Path, cleanup: Cleanup) -> Run:
    repo = committed(tmp, {"a": "1"})
    return Run(repo.root, ["commit", "--allow-empty", "-m", "m"], repo.root, "DVX_AUTHOR is not valid UTF-8",
               env={"DVX_AUTHOR": "\udcff"})


def remote_inside_a_repository_metadata(tmp: Path, cleanup: Cleanup) -> Run:
    other = committed(tmp / "o", {"a": "1"})
    repo = committed(tmp, {"a": "1"})
    return Run(repo.root, ["remote", "add", "o", str(other.root / ".dvx")], tmp, "inside the repository metadata")


def push_where_the_remote_folder_has_no_parent(tmp: Path, cleanup: Cleanup) -> Run:
    """A remote's folder is made on the first push, never the folders above it (an unmounted mount point)."""
    repo = committed(tmp, {"a": "1"})
    (tmp / "mnt").mkdir()
    r = Repo(repo.root)
    add_remote(r, "far", str(tmp / "mnt" / "r"), {})
    r.close()
    (tmp / "mnt").rmdir()
    return Run(repo.root, ["push", "far"], tmp, "does not exist")


def push_to_a_remote_that_lost_its_data(tmp: Path, cleanup: Cleanup) -> Run:
    repo = committed(tmp, {"a": "1"})
    remote = tmp / "remote"
    r = Repo(repo.root)
    add_remote(r, "origin", str(remote), {})
    push(r, "origin")
    r.close()
    shutil.rmtree(remote)
    remote.mkdir()  # an empty mount point where the remote was
    return Run(repo.root, ["push"], tmp, "holds no dvx data any more")


def lock_is_a_symlink(tmp: Path, cleanup: Cleanup) -> Run:
    """A symlink at .dvx/lock is never written through (the holder's pid would overwrite what it names)."""
    repo = committed(tmp, {"a": "1"})
    (tmp / "victim").write_text("precious\n")
    lock = repo.root / ".dvx" / "lock"
    lock.unlink(missing_ok=True)
    lock.symlink_to(tmp / "victim")
    return Run(repo.root, ["commit", "--allow-empty", "-m", "m"], tmp, "is not a regular file")


def damaged_repository_inside_another(tmp: Path, cleanup: Cleanup) -> Run:
    """A .dvx without its config stops the search for the repository: going on up would commit into the
    enclosing one."""
    committed(tmp, {"a": "1"})
    child = committed(tmp / "repo" / "child", {"c": "1"})
    (child.root / ".dvx" / "config").unlink()
    (child.root / "c").write_text("2")
    return Run(child.root, ["commit", "-m", "oops"], tmp, "damaged dvx repository")


def publishing_refused_by_the_pack_folder(tmp: Path, cleanup: Cleanup) -> Run:
    """The pack folder refuses the new name: the error names that folder (not the temp that was written
    fine), and no temp pack is left in .dvx/tmp."""
    repo = committed(tmp, {"a": "1"})
    (repo.root / "b").write_text("2")
    packs = repo.root / ".dvx" / "objects" / "pack"
    packs.chmod(0o555)
    cleanup.append(lambda: packs.chmod(0o755))
    prefix: list[str] = []
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        flags = "--bounding-set=-dac_override,-dac_read_search,-fowner"
        probe = [setpriv or "setpriv", flags, "touch", str(packs / "probe")]
        if setpriv is None or subprocess.run(probe, capture_output=True).returncode == 0:
            (packs / "probe").unlink(missing_ok=True)
            pytest.skip("running as root without a working setpriv: a mode-555 folder cannot be made read-only")
        prefix = probe[:2]
    return Run(repo.root, ["commit", "-m", "x"], repo.root, f"permission denied ({packs})", prefix=prefix)


CASES = [
    lock_is_a_symlink, damaged_repository_inside_another, publishing_refused_by_the_pack_folder,
    branch_name_not_utf8, message_not_utf8, init_branch_not_utf8, author_not_utf8,
    remote_inside_a_repository_metadata, push_where_the_remote_folder_has_no_parent, push_to_a_remote_that_lost_its_data,
    init_with_a_bad_compression_level,
    branch_at_a_file_id, tag_at_a_tree_id, ls_past_the_first_commit, ls_unknown_revision, ls_corrupt_tag,
    corrupt_tag_beside_a_branch, log_with_an_unknown_path, gc_grace_nan, config_user_not_an_object,
    config_remotes_an_int, config_remote_an_int, config_level_a_bool, config_format_a_float,
    checkout_over_an_untracked_fifo,
    not_a_repo, repo_exists, init_on_a_file, unknown_revision, unknown_revision_in_diff, dirty_tree_checkout,
    empty_message, commit_nothing, bad_branch_name, delete_current_branch, existing_tag, permission_denied,
    bad_config, bad_config_value, unsupported_format, corrupt_commit, corrupt_ref, corrupt_file_content_on_checkout,
    corrupt_file_among_several_on_checkout,
    disk_full, locked, missing_argument, unknown_command, bad_option_value, non_utf8_name,
    non_utf8_symlink_target,
]


@pytest.fixture
def cleanup() -> Cleanup:
    actions: Cleanup = []
    yield actions
    for action in reversed(actions):
        action()


@pytest.mark.parametrize("case", CASES, ids=[getattr(c, "__name__", None) or c.values[0].__name__ for c in CASES])
def test_bad_input(case: Callable[[Path, Cleanup], Run], tmp_path: Path, cleanup: Cleanup, run_dvx, snapshot) -> None:
    run = case(tmp_path, cleanup)
    skip = tuple(os.path.relpath(run.root / v, run.root) for v in ALWAYS_VOLATILE + run.volatile)
    before = snapshot(run.root, skip=skip)
    r = run_dvx(run.args, run.cwd, env=run.env, prefix=run.prefix, check=False)
    lines = r.stderr.splitlines()
    assert r.returncode not in (0, -signal.SIGKILL), r
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("dvx: error:"), r.stderr
    assert run.message.lower() in lines[0].lower(), lines[0]
    assert "Traceback" not in r.stderr + r.stdout
    assert snapshot(run.root, skip=skip) == before
    tmp_dir = run.root / ".dvx" / "tmp"
    assert not tmp_dir.is_dir() or list(tmp_dir.iterdir()) == []  # no temp files left behind


def test_disk_full_commit_leaves_no_objects_behind(tmp_path: Path, cleanup: Cleanup, run_dvx, snapshot) -> None:
    run = disk_full(tmp_path, cleanup)
    before = snapshot(run.root / ".dvx" / "objects")
    r = run_dvx(run.args, run.cwd, env=run.env, check=False)
    assert "no space left" in r.stderr
    assert snapshot(run.root / ".dvx" / "objects") == before


@pytest.mark.parametrize("args,line", [
    (["checkout"], "dvx: error: missing argument 'rev' (see 'dvx checkout --help')"),
    (["status", "--bogus"], "dvx: error: no such option: --bogus (see 'dvx status --help')"),
    (["log", "-n", "many"], "dvx: error: invalid value for '-n' / '--max-count': 'many' is not a valid int (see 'dvx log --help')"),
    (["show", "a", "b"], "dvx: error: got unexpected extra argument(s) (b) (see 'dvx show --help')"),
    # diff takes paths after its revisions now, as git does: a word that is neither is named.
    (["diff", "a", "b", "c"], "dvx: error: ambiguous argument 'b': unknown revision or path not in the working "
                              "tree (use '--' to separate paths from revisions)"),
    (["frobnicate"], "dvx: error: no such command 'frobnicate' (see 'dvx --help')"),
    (["remote", "add"], "dvx: error: missing argument 'name' (see 'dvx remote add --help')"),
])
def test_parser_errors_read_like_dvx_errors(args: list[str], line: str, tmp_path: Path, run_dvx) -> None:
    """The command-line parser's errors follow dvx's own style (lower case, no final period) and name the help
    of the command that was mistyped, under the name dvx, however the CLI was started."""
    repo = committed(tmp_path, {"a": "1"})
    r = run_dvx(args, repo.root, check=False)
    assert r.returncode == 2, r
    assert r.stderr.splitlines() == [line]
