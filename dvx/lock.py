"""The repository lock: one writing command at a time.

``flock`` on ``.dvx/lock``: the kernel drops it when the holder dies, so a ``kill -9`` never leaves a lock
that blocks forever. The holder writes its pid and command into the file so that a waiting process can say
who holds it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import math
import os
import stat
import sys
import time
from pathlib import Path
from types import TracebackType

from .errors import BadConfig, LockedError, StorageError, os_error

DEFAULT_TIMEOUT = 30.0


def env_timeout() -> float:
    """``$DVX_LOCK_TIMEOUT`` in seconds (default 30): a finite number >= 0, else :class:`BadConfig`."""
    text = os.environ.get("DVX_LOCK_TIMEOUT", "").strip()
    if not text:
        return DEFAULT_TIMEOUT
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise BadConfig(f"DVX_LOCK_TIMEOUT must be a number of seconds >= 0, not {text!r}")
    return value


class RepoLock:
    def __init__(self, path: Path, *, timeout: float | None = None, what: str = "") -> None:
        self.path = path
        # Read when first needed: a bad $DVX_LOCK_TIMEOUT fails the commands that wait for the lock, not
        # every command that opens a repository.
        self._timeout = timeout
        self.what = what or " ".join(os.path.basename(a) if i == 0 else a for i, a in enumerate(sys.argv[:2]))
        self._fd: int | None = None
        self._depth = 0

    @property
    def timeout(self) -> float:
        return self._timeout if self._timeout is not None else env_timeout()

    @timeout.setter
    def timeout(self, value: float | None) -> None:
        self._timeout = value

    def try_acquire(self) -> bool:
        if self._fd is not None:
            self._depth += 1
            return True
        not_a_file = f"{self.path} is not a regular file (a symlink, fifo or device there is never written through); remove it"
        try:
            # Never through a symlink (the holder's pid would overwrite whatever it names), never blocking on a fifo.
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENXIO):
                raise StorageError(not_a_file) from None
            raise os_error(exc, "cannot open the repository lock") from exc
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise StorageError(not_a_file)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return False
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()} {self.what}\n".encode(), 0)
        except BaseException as exc:
            with contextlib.suppress(OSError):
                os.close(fd)
            if isinstance(exc, OSError):
                raise os_error(exc, "cannot write the repository lock") from exc
            raise
        self._fd = fd
        self._depth = 1
        return True

    def acquire(self) -> None:
        deadline = time.monotonic() + self.timeout
        delay = 0.01
        while not self.try_acquire():
            if time.monotonic() >= deadline:
                raise LockedError(f"repository is locked by another dvx process ({self.holder()}); try again later")
            time.sleep(delay)
            delay = min(delay * 2, 0.2)

    def holder(self) -> str:
        try:
            text = self.path.read_text().strip()
        except OSError:
            return "unknown"
        pid, _, what = text.partition(" ")
        return f"pid {pid}, {what}" if what else f"pid {pid}"

    def release(self) -> None:
        if self._fd is None:
            return
        self._depth -= 1
        if self._depth > 0:
            return
        fd, self._fd = self._fd, None
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)

    def __enter__(self) -> RepoLock:
        self.acquire()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.release()
