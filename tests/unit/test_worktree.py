"""The working tree: scanning (ignores, special files, odd names) and the stat cache that lets a no-op
status skip reading file contents."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dvx import worktree
from dvx.errors import BadPath, DvxError, StorageError
from dvx.model import FILE, LINK
from dvx.repo import Repo


def write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)


def test_scan_lists_files_and_links_never_following_them(tmp_path: Path) -> None:
    write(tmp_path, {"a.txt": "a", "d/e/f.bin": "f", ".dvx/config": "{}", ".git/HEAD": "x"})
    os.symlink("d", tmp_path / "link_to_dir")
    os.symlink("/nonexistent/target", tmp_path / "d" / "dangling")
    (tmp_path / "a.txt").chmod(0o755)
    res = worktree.scan(tmp_path)
    assert sorted(res.files) == ["a.txt", "d/dangling", "d/e/f.bin", "link_to_dir"]
    assert res.files["a.txt"].kind == FILE and res.files["a.txt"].executable
    assert res.files["link_to_dir"].kind == LINK and res.files["link_to_dir"].target == "d"
    assert res.files["d/dangling"].target == "/nonexistent/target"
    assert res.warnings == []


def test_scan_applies_dvxignore(tmp_path: Path) -> None:
    write(tmp_path, {".dvxignore": "*.log\ncache/\n!important.log\n", "a.log": "", "important.log": "",
                     "x/cache/y": "", "x/z": "", "cache": "a file named cache is not a dir"})
    assert sorted(worktree.scan(tmp_path).files) == [".dvxignore", "cache", "important.log", "x/z"]


def test_scan_warns_about_special_files(tmp_path: Path) -> None:
    write(tmp_path, {"a": "a"})
    os.mkfifo(tmp_path / "fifo")
    res = worktree.scan(tmp_path)
    assert list(res.files) == ["a"]
    assert len(res.warnings) == 1 and "fifo" in res.warnings[0]


def test_scan_refuses_non_utf8_names_naming_them(tmp_path: Path) -> None:
    os.close(os.open(os.fsencode(tmp_path) + b"/bad\xff", os.O_CREAT | os.O_WRONLY, 0o644))
    with pytest.raises(BadPath) as info:
        worktree.scan(tmp_path)
    assert "bad\\xff" in str(info.value) and "\n" not in str(info.value)


def test_scan_refuses_non_utf8_symlink_targets(tmp_path: Path) -> None:
    os.symlink(b"tar\xffget", os.fsencode(tmp_path) + b"/link")
    with pytest.raises(BadPath) as info:
        worktree.scan(tmp_path)
    assert "link" in str(info.value)


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
def test_no_op_status_reads_no_file_contents(repo: Repo, monkeypatch: pytest.MonkeyPatch) -> None:
    # Files written in the same clock tick as their hashing are "racy" and re-read, as in git; with the racy
    # window set to zero every file hashed by the commit is trusted from the cache afterwards.
    monkeypatch.setattr(worktree, "RACY_NS", 0)
    write(repo.root, {f"d{i % 7}/f{i}.txt": f"content {i}" for i in range(200)})
    repo.commit("c1")
    calls: list[str] = []  # the working-tree files read (the store's and the stat cache's reads are not counted)
    real = os.read

    def read(fd: int, n: int) -> bytes:
        path = os.readlink(f"/proc/self/fd/{fd}")
        if "/.dvx/" not in path:
            calls.append(path)
        return real(fd, n)

    monkeypatch.setattr(os, "read", read)
    real_hash = worktree.hash_file
    monkeypatch.setattr(worktree, "hash_file", lambda p: calls.append(str(p)) or real_hash(p))
    assert not repo.status()
    assert calls == []
    (repo.root / "d3" / "f3.txt").write_text("changed")
    assert repo.status().modified == ["d3/f3.txt"]
    assert [c.rpartition("/")[2] for c in calls] == ["f3.txt"]


def test_same_size_rewrite_with_restored_mtime_is_still_seen(repo: Repo, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(worktree, "RACY_NS", 0)
    write(repo.root, {"a": "aaaa"})
    repo.commit("c1")
    st = os.stat(repo.root / "a")
    (repo.root / "a").write_text("bbbb")
    os.utime(repo.root / "a", ns=(st.st_atime_ns, st.st_mtime_ns))  # same size, same mtime: only ctime moved
    assert repo.status().modified == ["a"]


def test_damaged_stat_cache_is_rebuilt_not_trusted(repo: Repo) -> None:
    write(repo.root, {"a": "1", "b": "2"})
    repo.commit("c1")
    (repo.dvx / "index").write_bytes(b"garbage that is not a zstd frame")
    (repo.root / "a").write_text("changed")
    assert repo.status().modified == ["a"]


def test_a_bit_flip_inside_the_stat_cache_is_caught_by_its_checksum(repo: Repo, monkeypatch: pytest.MonkeyPatch) -> None:
    """The index holds HEAD's listing, which commit trusts: a damaged one must be discarded, not believed."""
    monkeypatch.setattr(worktree, "RACY_NS", 0)
    write(repo.root, {"a": "1", "b": "2", "d/c": "3"})
    repo.commit("c1")
    raw = bytearray((repo.dvx / "index").read_bytes())
    cache = worktree.StatCache(repo.dvx / "index").load()
    assert cache.head_entries(repo.refs.head()[1]) is not None  # the listing was saved
    for pos in range(len(raw) - 4, 12, -7):  # every 7th byte of the frame body and its checksum
        damaged = bytearray(raw)
        damaged[pos] ^= 0x10
        (repo.dvx / "index").write_bytes(bytes(damaged))
        loaded = worktree.StatCache(repo.dvx / "index").load()
        listing = loaded.head_entries(loaded.head_commit)
        if listing is not None:  # only an undamaged copy may be believed
            assert listing == cache.head_entries(cache.head_commit), pos
    (repo.dvx / "index").write_bytes(bytes(raw[:-3] + bytes([raw[-3] ^ 1]) + raw[-2:]))
    (repo.root / "a").write_text("x")
    assert repo.status().modified == ["a"]


def test_a_non_utf8_name_is_refused_naming_it_unless_dvxignore_excludes_it(tmp_path: Path) -> None:
    bad_file = os.fsdecode(b"bad\xff.txt")
    bad_dir = os.fsdecode(b"d\xfe")
    (tmp_path / bad_file).write_text("x")
    (tmp_path / bad_dir).mkdir()
    (tmp_path / bad_dir / "inside.txt").write_text("y")
    (tmp_path / "good.txt").write_text("z")
    with pytest.raises(BadPath, match=r"not valid UTF-8: b'(bad\\xff.txt|d\\xfe/inside.txt)'.*dvxignore"):
        worktree.scan(tmp_path)
    (tmp_path / ".dvxignore").write_text("bad*\nd*/\n")
    assert sorted(worktree.scan(tmp_path).files) == [".dvxignore", "good.txt"]


def test_a_folder_swapped_for_a_symlink_during_the_scan_is_never_followed(tmp_path: Path) -> None:
    # The scan lists a folder, then opens each subfolder later: if one became a symlink in between (here: the
    # queued folder is handed over as one), it must not be read through, wherever the link points.
    root = tmp_path / "w"
    root.mkdir()
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret").write_text("not part of the tree")
    (root / "sub").symlink_to(tmp_path / "outside")
    keys: dict = {}
    with pytest.raises(StorageError, match="sub changed while being scanned"):
        worktree._scan_folder(("sub/", str(root / "sub"), (), ()), keys, [], [])
    assert keys == {}


def test_the_root_may_be_reached_through_a_symlink(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "f").write_text("x")
    (tmp_path / "link").symlink_to(tmp_path / "real")
    assert list(worktree.scan(tmp_path / "link").keys) == ["f"]


def test_an_unreadable_entry_is_named_by_its_path_in_the_tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Entries are stat'ed relative to their folder, so the OS error alone names only "c.bin".
    write(tmp_path, {"sub/c.bin": "c"})
    real = os.stat

    def refuse(path: object, *args: object, dir_fd: int | None = None, **kwargs: object) -> os.stat_result:
        if dir_fd is not None and path == "c.bin":
            raise PermissionError(13, "Permission denied", path)
        return real(path, *args, dir_fd=dir_fd, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "stat", refuse)
    with pytest.raises(DvxError, match="cannot read sub/c.bin: permission denied"):
        worktree.scan(tmp_path)
