"""Remotes in a local (or network-mounted) folder: a plain path or a ``file://`` URL.

Writes are durable and atomic: a temp file in the target's directory, fsync, then ``rename`` (replace) or
``link`` (create-only), then an fsync of the directory; all through :mod:`dvx.durable`, so fault-injection
tests can crash at the named points (``remote.write.before-fsync``...). Compare-and-swap takes a lock file
``<key>.lock`` (``O_CREAT|O_EXCL``) around check-then-replace; a lock older than
:data:`STALE_LOCK_SECONDS` is left over from a crashed writer and is broken. The version token is a hash
of the content.
"""

from __future__ import annotations

import errno
import os
import random
import re
import shutil
import socket
import stat
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from .. import durable
from ..errors import RemoteError, UsageError
from .backend import (
    Backend,
    BackendError,
    RemoteAccessDenied,
    RemoteNotFound,
    RemoteUnavailable,
    content_token,
    one_line,
    run_threaded,
    validate_key,
    validate_prefix,
)

#: A CAS lock file older than this was left by a crashed process (a swap holds it for milliseconds).
STALE_LOCK_SECONDS = 60.0
#: How long compare_and_swap waits for another process's lock before giving up (past the stale limit).
LOCK_WAIT_SECONDS = STALE_LOCK_SECONDS + 15.0
_SITE = "remote.write"
_TEMP_STEM = "dvx-remote"
# The temps that durable.temp_name makes with that stem: ``.dvx-remote.<pid>.<tid>.<n>.tmp``.
_TEMP_NAME = re.compile(r"\.dvx-remote\.\d+\.\d+\.\d+\.tmp")
_NO_LINK = {errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK, errno.ENOSYS, errno.EXDEV}
_REASONS = {
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EFBIG: "file too large for this file system",
    errno.EIO: "input/output error",
    errno.ENOTDIR: "a parent is not a directory",
    errno.EISDIR: "is a directory",
    errno.ENAMETOOLONG: "file name too long",
}


def _is_internal(name: str) -> bool:
    """Temp files (``.<stem>...tmp``) and lock files are never keys."""
    return (name.startswith(".") and name.endswith(".tmp")) or name.endswith(".lock")


def _holder_gone(lock: Path) -> bool:
    """The lock names a process of this host that no longer runs (killed): it is stale whatever its age. A lock
    of another host (a shared mount) is judged by its age alone."""
    try:
        pid_text, _, host = lock.read_text().strip().partition(" ")
        pid = int(pid_text)
    except (OSError, ValueError, UnicodeDecodeError):
        return False  # being written, or not ours to read: wait for the age limit
    if host != socket.gethostname() or pid <= 0 or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False  # alive, another user's
    return False


def _unlink_quiet(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


class LocalBackend(Backend):
    """A folder on a mounted file system; created on first write."""

    def __init__(self, root: Path, connections: int) -> None:
        super().__init__(str(root), connections)
        self.root = root
        self._written_dirs: set[Path] = set()  # folders this backend wrote into (sweep_temps looks there)

    @classmethod
    def from_url(cls, url: str, connections: int, options: dict[str, Any]) -> LocalBackend:
        if options:
            name = next(iter(options))
            raise UsageError(f"option {name!r} does not apply to local remotes (only 'connections' does)")
        if url.lower().startswith("file://"):
            parsed = urlparse(url)
            if parsed.netloc not in ("", "localhost"):
                raise RemoteError(
                    f"invalid remote URL {url!r}: file:// URLs need an absolute path (file:///path)"
                )
            path = unquote(parsed.path)
            if not path.startswith("/"):
                raise RemoteError(
                    f"invalid remote URL {url!r}: file:// URLs need an absolute path (file:///path)"
                )
        else:
            path = os.path.expanduser(url)
        return cls(Path(os.path.abspath(path)), connections)

    # -- helpers --------------------------------------------------------------------------------------
    def _p(self, key: str) -> Path:
        return self.root.joinpath(*validate_key(key).split("/"))

    def _error(self, exc: BaseException, what: str, *, writing: bool = False) -> RemoteError:
        if isinstance(exc, RemoteError):
            return exc
        cls: type[BackendError] = BackendError
        if isinstance(exc, (FileNotFoundError, NotADirectoryError)) and not writing:
            cls, reason = RemoteNotFound, "not found"
        elif isinstance(exc, (NotADirectoryError, FileExistsError)):
            reason = "a file is in the way of a folder the key needs"
        elif isinstance(exc, PermissionError):
            cls, reason = RemoteAccessDenied, "permission denied"
        elif isinstance(exc, OSError):
            reason = _REASONS.get(exc.errno or 0, exc.strerror or type(exc).__name__)
        else:
            reason = f"{type(exc).__name__}: {exc}"
        if isinstance(exc, OSError) and exc.filename and cls is not RemoteNotFound:
            reason = f"{reason} ({exc.filename})"
        reason = one_line(reason)
        return cls(f"{what}: {reason}", reason)

    def _make_parent(self, final: Path) -> None:
        if not self.root.is_dir():
            # The remote's own folder is made on the first write, but never the folders above it: a path
            # whose parent is missing (a network mount that is not mounted) is refused, not recreated locally.
            try:
                self.root.mkdir()
            except FileExistsError:
                pass
            except FileNotFoundError:
                raise BackendError(f"cannot write to {self.root}: {self.root.parent} does not exist",
                                     "parent folder missing") from None
            else:
                durable.fsync_dir(self.root.parent)
        durable.make_dirs(final.parent)
        self._written_dirs.add(final.parent)

    def sweep_temps(self, max_age: float) -> int:
        """Remove the temps of writers killed at least ``max_age`` seconds ago from the folders this backend
        wrote to (a push writes to the same few every time, so the next push clears what a killed one left).

        By age, not by process: the folder may be shared by several hosts, whose pids mean nothing here. A
        temp is written, fsynced and published within one request, so one a day old is nobody's any more.
        """
        cutoff = time.time() - max_age
        removed = 0
        for folder in sorted(self._written_dirs):
            for name in durable.names_matching(folder, _TEMP_NAME):
                path = folder / name
                try:
                    st = os.lstat(path)
                    if stat.S_ISREG(st.st_mode) and st.st_mtime < cutoff:
                        os.unlink(path)
                        removed += 1
                except OSError:
                    continue
        return removed

    # -- reading --------------------------------------------------------------------------------------
    def read(self, key: str) -> bytes:
        path = self._p(key)
        self._count()
        try:
            with open(path, "rb") as f:
                return f.read()
        except IsADirectoryError:
            raise RemoteNotFound(f"cannot read {self._where(key)}: not found", "not found") from None
        except OSError as exc:
            raise self._error(exc, f"cannot read {self._where(key)}") from exc

    def read_range(self, key: str, start: int, end: int) -> bytes:
        path = self._p(key)
        where = f"cannot read bytes [{start}, {end}) of {self._where(key)}"
        if start < 0 or end < 0:
            raise RemoteError(f"{where}: negative range")
        if end <= start:
            return b""
        self._count()
        try:
            with open(path, "rb") as f:
                if start >= os.fstat(f.fileno()).st_size:
                    reason = "requested range is beyond the end of the object"
                    raise BackendError(f"{where}: {reason}", reason)
                f.seek(start)
                return f.read(end - start)
        except IsADirectoryError:
            raise RemoteNotFound(f"{where}: not found", "not found") from None
        except OSError as exc:
            raise self._error(exc, where) from exc

    def read_many(self, keys: list[str]) -> dict[str, bytes]:
        unique = list(dict.fromkeys(validate_key(k) for k in keys))
        results = run_threaded(self.connections, self.read, unique)
        out: dict[str, bytes] = {}
        for key, res in zip(unique, results):
            if isinstance(res, BaseException):
                raise res
            out[key] = res
        return out

    def read_ref(self, key: str) -> tuple[bytes, str] | None:
        try:
            data = self.read(key)
        except RemoteNotFound:
            return None
        return data, content_token(data)

    def list(self, prefix: str) -> list[str]:
        prefix = validate_prefix(prefix)
        base = self.root.joinpath(*prefix.split("/")) if prefix else self.root
        self._count()
        if not base.is_dir():
            return []

        def fail(exc: OSError) -> None:
            # A listing that silently skips an unreadable folder would let gc delete live objects.
            raise exc

        keys: list[str] = []
        try:
            for dirpath, _dirs, files in os.walk(base, onerror=fail):
                rel_dir = os.path.relpath(dirpath, self.root)
                for name in files:
                    if _is_internal(name):
                        continue
                    rel = name if rel_dir == "." else f"{rel_dir}/{name}"
                    keys.append(rel.replace(os.sep, "/"))
        except OSError as exc:
            raise self._error(exc, f"cannot list {self._where(prefix)}") from exc
        return sorted(keys)

    def exists(self, key: str) -> bool:
        path = self._p(key)
        self._count()
        return path.is_file()

    def size(self, key: str) -> int:
        path = self._p(key)
        self._count()
        try:
            st = os.stat(path)
        except OSError as exc:
            raise self._error(exc, f"cannot look up {self._where(key)}") from exc
        if not path.is_file():
            raise RemoteNotFound(f"cannot look up {self._where(key)}: not found", "not found")
        return st.st_size

    # -- writing --------------------------------------------------------------------------------------
    def write(self, key: str, data: bytes) -> None:
        final = self._p(key)
        self._count()
        try:
            self._make_parent(final)
            tmp = durable.write_temp(final.parent, data, stem=_TEMP_STEM, site=_SITE)
            try:
                durable.publish_replace(tmp, final, site=_SITE)
            except BaseException:
                _unlink_quiet(tmp)
                raise
        except OSError as exc:
            raise self._error(exc, f"cannot write {self._where(key)}", writing=True) from exc

    def write_if_absent(self, key: str, data: bytes) -> bool:
        final = self._p(key)
        self._count()
        try:
            if final.is_file():
                return False  # content-addressed: same key, same bytes; skip the temp file
            self._make_parent(final)
            tmp = durable.write_temp(final.parent, data, stem=_TEMP_STEM, site=_SITE)
            try:
                durable.fault(f"{_SITE}.before-link")
                try:
                    os.link(tmp, final)  # atomic create-only publish
                    created = True
                except FileExistsError:
                    created = False
                except OSError as exc:
                    if exc.errno not in _NO_LINK:
                        raise
                    # A file system without hard links (some network/FUSE mounts): check, then rename. Two
                    # racing writers of one content-addressed key write the same bytes, so the race is benign.
                    created = not final.exists()
                    if created:
                        os.replace(tmp, final)
            finally:
                _unlink_quiet(tmp)
            if created:
                durable.fault(f"{_SITE}.before-dirsync")
                durable.fsync_dir(final.parent)
            return created
        except OSError as exc:
            raise self._error(exc, f"cannot write {self._where(key)}", writing=True) from exc

    def write_many(self, items: dict[str, bytes]) -> None:
        for key in items:
            validate_key(key)
        keys = list(items)
        results = run_threaded(self.connections, lambda k: self.write(k, items[k]), keys)
        for res in results:
            if isinstance(res, BaseException):
                raise res

    def upload_file(self, key: str, local_path: str) -> None:
        final = self._p(key)
        what = f"cannot upload {local_path} to {self._where(key)}"
        self._count()
        try:
            self._make_parent(final)
            tmp = durable.temp_name(final.parent, _TEMP_STEM)
            try:
                with open(local_path, "rb") as src, open(tmp, "xb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
                    dst.flush()
                    durable.fault(f"{_SITE}.before-fsync")
                    os.fsync(dst.fileno())
                durable.publish_replace(tmp, final, site=_SITE)
            except BaseException:
                _unlink_quiet(tmp)
                raise
        except OSError as exc:
            raise self._error(exc, what, writing=True) from exc

    def delete(self, key: str) -> None:
        path = self._p(key)
        self._count()
        try:
            os.unlink(path)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            pass
        except OSError as exc:
            raise self._error(exc, f"cannot delete {self._where(key)}") from exc

    def compare_and_swap(self, key: str, expected_token: str | None, data: bytes) -> bool:
        final = self._p(key)
        what = f"cannot update {self._where(key)}"
        lock = final.with_name(final.name + ".lock")
        try:
            self._make_parent(final)
            lock_id = self._acquire(lock, what)
            try:
                self._count()  # the read of the current content
                try:
                    current: bytes | None = final.read_bytes()
                except (FileNotFoundError, IsADirectoryError):
                    current = None
                token = None if current is None else content_token(current)
                if token != expected_token:
                    return False
                self._count()
                tmp = durable.write_temp(final.parent, data, stem=_TEMP_STEM, site=_SITE)
                try:
                    durable.publish_replace(tmp, final, site=_SITE)
                except BaseException:
                    _unlink_quiet(tmp)
                    raise
                return True
            finally:
                self._release(lock, lock_id)
        except OSError as exc:
            raise self._error(exc, what, writing=True) from exc

    # -- the CAS lock ---------------------------------------------------------------------------------
    def _acquire(self, lock: Path, what: str) -> tuple[int, int]:
        """Create ``lock`` exclusively, waiting for (or breaking a stale) holder; returns its identity."""
        deadline = time.monotonic() + LOCK_WAIT_SECONDS
        delay = 0.002
        while True:
            try:
                fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                self._break_if_stale(lock)
                if time.monotonic() > deadline:
                    raise RemoteUnavailable(
                        f"{what}: {lock} is held by another process (delete it if no dvx is running)",
                        f"{lock} is held by another process",
                    ) from None
                time.sleep(delay * random.uniform(0.5, 1.5))
                delay = min(delay * 2, 0.05)
                continue
            try:
                os.write(fd, f"{os.getpid()} {socket.gethostname()}\n".encode())
                st = os.fstat(fd)
            finally:
                os.close(fd)
            return st.st_ino, st.st_mtime_ns

    def _break_if_stale(self, lock: Path) -> None:
        try:
            st = os.stat(lock)
        except FileNotFoundError:
            return
        if time.time() - st.st_mtime < STALE_LOCK_SECONDS and not _holder_gone(lock):
            return
        # Rename, not unlink: of several processes breaking the same stale lock only one wins the rename,
        # and the winner can tell whether what it moved is still the stale lock it looked at.
        grave = lock.with_name(f".{lock.name}.{uuid.uuid4().hex}.tmp")
        try:
            os.rename(lock, grave)
        except FileNotFoundError:
            return
        try:
            moved = os.stat(grave)
            if (moved.st_ino, moved.st_mtime_ns) != (st.st_ino, st.st_mtime_ns):
                # A fresh lock replaced the stale one after our stat: give it back to its holder.
                try:
                    os.link(grave, lock)
                except FileExistsError:
                    pass
        finally:
            _unlink_quiet(grave)

    def _release(self, lock: Path, lock_id: tuple[int, int]) -> None:
        try:
            st = os.stat(lock)
        except FileNotFoundError:
            return
        if (st.st_ino, st.st_mtime_ns) == lock_id:  # still ours (not broken as stale and re-taken)
            _unlink_quiet(lock)
