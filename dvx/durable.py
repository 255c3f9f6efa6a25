"""Durable local writes, in one place so that faults can be injected at named points.

Every file dvx publishes inside ``.dvx`` goes through here: written to a temp file in the same directory,
fsynced, then published by ``link`` (create-only, for content-addressed files) or ``replace`` (for files
that change, under a lock), then the directory is fsynced. A crash leaves either the old state or the new
one, plus at worst an orphan temp file that ``gc`` removes.

Fault injection: ``DVX_FAULT="site:nth:action[,site:nth:action...]"`` makes the nth arrival (1-based) at
``site`` either ``kill`` the process with SIGKILL, ``raise:ENOSPC`` (any errno name) or ``sleep:SECONDS``
(print ``DVX_FAULT <site> reached`` on stderr and hold still there, so that a test can act while the
process waits at a known point, or kill it there). Sites are named
where :func:`fault` is called; tests use them to crash at exact points.
"""

from __future__ import annotations

import errno
import json
import os
import re
import signal
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import os_error

_fault_lock = threading.Lock()
_fault_counts: dict[str, int] = {}
_fault_plan: dict[str, tuple[int, str]] | None = None


def _load_fault_plan() -> dict[str, tuple[int, str]]:
    plan: dict[str, tuple[int, str]] = {}
    spec = os.environ.get("DVX_FAULT", "")
    for item in filter(None, (s.strip() for s in spec.split(","))):
        site, nth, action = item.split(":", 2)
        plan[site] = (int(nth), action)
    return plan


def fault(site: str) -> None:
    """A named point where tests may inject a crash or an I/O error (no-op unless ``DVX_FAULT`` names it)."""
    global _fault_plan
    if _fault_plan is None:
        _fault_plan = _load_fault_plan()
    if not _fault_plan or site not in _fault_plan:
        return
    nth, action = _fault_plan[site]
    with _fault_lock:
        _fault_counts[site] = _fault_counts.get(site, 0) + 1
        hit = _fault_counts[site] == nth
    if not hit:
        return
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if action.startswith("raise:"):
        code = getattr(errno, action.split(":", 1)[1])
        raise OSError(code, os.strerror(code))
    if action.startswith("sleep:"):
        os.write(2, f"DVX_FAULT {site} reached\n".encode())  # so that a test knows when to act
        time.sleep(float(action.split(":", 1)[1]))
        return
    raise ValueError(f"unknown DVX_FAULT action {action!r}")


class NotRegularFile(OSError):
    """What should be a plain file is a folder, a fifo, a socket, a device or (not followed) a symbolic link.

    An ``OSError``, so a caller that turns OS errors into one line (:func:`dvx.errors.os_error`) says
    "cannot read X: a fifo, not a regular file (path)"; ``kind`` is "a fifo", "a folder"...
    """

    def __init__(self, path: str | Path, kind: str) -> None:
        super().__init__(errno.EINVAL, f"{kind}, not a regular file", os.fspath(path))
        self.kind = kind


def file_kind(mode: int) -> str:
    """"a folder", "a fifo"... for an ``st_mode`` (for messages)."""
    for test, kind in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a fifo"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a device"), (stat.S_ISBLK, "a device"), (stat.S_ISLNK, "a symbolic link")):
        if test(mode):
            return kind
    return "a regular file" if stat.S_ISREG(mode) else "a special file"


def open_regular(path: str | Path, *, follow: bool = True) -> tuple[int, os.stat_result]:
    """Open ``path`` read-only without blocking and return ``(fd, fstat)``, or raise :class:`NotRegularFile`.

    ``O_NONBLOCK`` makes opening a fifo return at once (a plain ``open`` would wait forever for a writer);
    ``fstat`` on the open descriptor then refuses anything but a regular file, with no race between the check
    and the read. ``follow=False`` adds ``O_NOFOLLOW``: a symbolic link is refused too. Other OS errors
    (``FileNotFoundError``...) are the caller's to handle. The caller closes the descriptor.
    """
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | (0 if follow else os.O_NOFOLLOW)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if not follow and exc.errno == errno.ELOOP:
            raise NotRegularFile(path, "a symbolic link") from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotRegularFile(path, file_kind(st.st_mode))
    except BaseException:
        os.close(fd)
        raise
    return fd, st


def loads_json(data: bytes | str) -> Any:
    """``json.loads`` for bytes from disk or a remote: hostile nesting (``[[[[...``) is a ValueError like any
    other malformed JSON, not a RecursionError that escapes every handler meant for bad input."""
    try:
        return json.loads(data)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


def read_regular_file(path: str | Path, *, follow: bool = True, limit: int | None = None) -> bytes:
    """The bytes of the regular file ``path``, never blocking on a fifo (see :func:`open_regular`).

    With ``limit``, at most ``limit + 1`` bytes are read, so a caller can tell a file that is too big (and
    need not hold a huge one in memory).
    """
    fd, st = open_regular(path, follow=follow)
    try:
        parts: list[bytes] = []
        left = None if limit is None else limit + 1
        while left is None or left > 0:
            chunk = os.read(fd, max(st.st_size, 1 << 16) if left is None else left)
            if not chunk:
                break
            parts.append(chunk)
            if left is not None:
                left -= len(chunk)
        return b"".join(parts)
    finally:
        os.close(fd)


def fsync_dir(path: str | Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_dirs(path: Path) -> None:
    """Create ``path`` and missing parents, fsyncing each parent so the new entries survive a crash."""
    if path.is_dir():
        return
    make_dirs(path.parent)
    try:
        path.mkdir()
    except FileExistsError:
        return
    fsync_dir(path.parent)


_tmp_counter = 0
_tmp_lock = threading.Lock()


def temp_name(directory: Path, stem: str = "tmp") -> Path:
    """A temp file name unique to this process and call, in ``directory`` (so rename stays on one fs)."""
    global _tmp_counter
    with _tmp_lock:
        _tmp_counter += 1
        n = _tmp_counter
    return directory / f".{stem}.{os.getpid()}.{threading.get_ident() % 100000}.{n}.tmp"


def write_temp(directory: Path, data: bytes | memoryview, *, stem: str = "tmp", site: str = "write") -> Path:
    """Write ``data`` to a new fsynced temp file in ``directory`` and return its path."""
    tmp = temp_name(directory, stem)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        fault(f"{site}.before-write")
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]
        fault(f"{site}.before-fsync")
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        _unlink_quiet(tmp)
        raise
    os.close(fd)
    return tmp


def publish_new(tmp: Path, final: Path, *, site: str = "write") -> bool:
    """Publish ``tmp`` as ``final`` only if ``final`` does not exist (content-addressed files).

    Returns False when it already existed (the temp file is dropped: same name means same content).
    """
    try:
        fault(f"{site}.before-link")
        os.link(tmp, final)
        created = True
    except FileExistsError:
        created = False
    finally:
        _unlink_quiet(tmp)
    if created:
        fault(f"{site}.before-dirsync")
        fsync_dir(final.parent)
    return created


def publish_replace(tmp: Path, final: Path, *, site: str = "write") -> None:
    """Atomically replace ``final`` with ``tmp`` (callers hold the lock that makes this their write)."""
    fault(f"{site}.before-rename")
    os.replace(tmp, final)
    fault(f"{site}.before-dirsync")
    fsync_dir(final.parent)


def write_new_file(final: Path, data: bytes | memoryview, *, site: str = "write") -> bool:
    """Durably create ``final`` with ``data`` unless it exists; True if this call created it."""
    try:
        tmp = write_temp(final.parent, data, site=site)
        return publish_new(tmp, final, site=site)
    except OSError as exc:
        raise os_error(exc, f"cannot write {final.name}") from exc


def write_replace_file(final: Path, data: bytes | memoryview, *, site: str = "write") -> None:
    """Durably replace ``final`` with ``data`` (atomic: readers see the old or the new content)."""
    try:
        tmp = write_temp(final.parent, data, site=site)
        try:
            publish_replace(tmp, final, site=site)
        except BaseException:
            _unlink_quiet(tmp)
            raise
    except OSError as exc:
        raise os_error(exc, f"cannot write {final.name}") from exc


def _unlink_quiet(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


def names_matching(folder: str | Path, pattern: re.Pattern[str]) -> list[str]:
    """The names in ``folder`` that ``pattern`` matches whole; none if the folder cannot be listed."""
    try:
        with os.scandir(folder) as it:
            return [e.name for e in it if pattern.fullmatch(e.name)]
    except OSError:
        return []


def walk_no_follow(path: str | Path) -> Iterator[tuple[str, list[tuple[str, os.stat_result]], list[str]]]:
    """``os.walk`` top-down at any depth, never through a symlink: ``(folder, [(name, lstat)], subfolders)``
    for ``path`` (folder ``""``) and each folder below it (``a/b``). Edit ``subfolders`` in place to prune.

    Python 3.11's ``os.walk`` recurses once per level and builds full paths, which fail past ~1000 levels or
    PATH_MAX; this one keeps one directory descriptor open and names everything relative to it."""
    fd = os.open(path, _DIR_FLAGS)
    todo: list[list[str]] = []  # per level on the way down, the subfolders not visited yet
    names: list[str] = []  # the folders descended into
    try:
        while True:
            entries = []
            with os.scandir(fd) as it:
                for e in it:
                    entries.append((e.name, os.lstat(e.name, dir_fd=fd)))
            subs = sorted((n for n, st in entries if stat.S_ISDIR(st.st_mode)), reverse=True)
            yield "/".join(names), entries, subs
            todo.append(subs)
            while not todo[-1]:
                todo.pop()
                if not names:
                    return
                parent = os.open("..", _DIR_FLAGS, dir_fd=fd)
                os.close(fd)
                fd = parent
                names.pop()
            sub = todo[-1].pop()
            inner = os.open(sub, _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = inner
            names.append(sub)
    finally:
        os.close(fd)


def remove_tree(path: str | Path) -> None:
    """``rm -r path`` without following symlinks, at any depth: shutil.rmtree (Python 3.11) recurses once per
    level and fails past ~1000, which a real tree reaches. One directory descriptor is open at a time, and every
    name is resolved from it, so no path grows longer than one name and no symlink is followed. Raises
    :class:`OSError`; a path that is not there is fine."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(st.st_mode):
        os.unlink(path)
        return
    fd = os.open(path, _DIR_FLAGS)
    names: list[str] = []  # the folders descended into, below ``path``
    try:
        while True:
            sub = None
            with os.scandir(fd) as it:
                for e in it:
                    if e.is_dir(follow_symlinks=False):
                        sub = e.name
                        break
                    os.unlink(e.name, dir_fd=fd)
            if sub is not None:
                inner = os.open(sub, _DIR_FLAGS, dir_fd=fd)
                os.close(fd)
                fd = inner
                names.append(sub)
                continue
            if not names:
                break
            parent = os.open("..", _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = parent
            os.rmdir(names.pop(), dir_fd=fd)
    finally:
        os.close(fd)
    os.rmdir(path)


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
