"""The shared cache of decompressed file contents, from which read-only checkouts are linked or copied.

Many repositories, users and jobs on one node share one cache: ``DVX_CACHE_DIR``, else the repository config
key ``cache.dir`` (relative to the repository root), else ``$XDG_CACHE_HOME/dvx`` (``~/.cache/dvx``).
Layout, version 1::

    <cache>/v1/objects/ab/<id>     the content of file <id> (BLAKE3 of its bytes), mode 0444
    <cache>/v1/objects/ab/<id>.x   the same content, mode 0555, made only for executables: a hard link shares
                                   its inode's mode, so equal bytes with and without +x need two inodes
    <cache>/v1/used/ab/<id>        empty; its mtime is the last use of <id>: LRU without atime, which
                                   noatime/relatime mounts do not keep. An object's own mtime is its creation
                                   (sealed, see below), so a use within :data:`FRESH_SECONDS` of it writes no
                                   stamp (one syscall per file saved on the checkout right after an extraction)
    <cache>/v1/used/log/<t>.*.ids  a usage log: the raw 32-byte ids a checkout used, at time <t> (ns, in the
                                   name): one file per checkout instead of a stamp per object
    <cache>/v1/used/log/<t>.*.last a summary of folded logs: records of (32-byte id, u64 last use in ns)
    <cache>/v1/pins/<key>.json     ids that prune must keep for a symlink-mode checkout (see "Pins")
    <cache>/v1/tmp/                temp files; a crash leaves only these, and prune removes them after a day
    <cache>/v1/prune.lock          flock: one pruner at a time

Invariants:

- An object file is published complete or not at all. Its bytes come from ``ObjectStore.iter_file`` (which
  verifies every chunk, and the whole, against the id) or from the other, trusted variant; the byte count must
  equal the size the tree records. They go to a temp file (an anonymous ``O_TMPFILE`` inode in the object's
  folder, else an ``O_EXCL`` file in ``tmp/``), which is chmod'ed, sealed (below) and made durable (fsync, or one
  ``syncfs`` per group), then ``link``ed to its name (create-only). Two processes extracting the same object
  both succeed; the second drops its temp. Directories are not fsynced: a name lost in a power cut costs a
  re-extraction, never wrong bytes.
- An object file is never written in place, and its mtime is a *seal*: before it is published, its mtime is set
  to a time whose nanoseconds are derived from its id (:func:`seal_ns`; up to a second before the insertion,
  so the mtime still tells its age). It is trusted when it is a regular file of the expected size with exactly
  the expected mode (no write bits) and a sealed mtime: one ``lstat``, which a lookup makes anyway. A write into
  it (as root, or after a chmod, through a hard link in any checkout) sets the mtime to the time of the write
  and so breaks the seal; ``link``, ``unlink``, ``rename``, ``chmod``, reflinking and copying it do not. An
  object whose seal is broken but whose size and mode are right is hashed before any use: good bytes are
  sealed again in place (keeping their age), bad ones are replaced atomically (``rename``) by a fresh
  extraction, like anything else that fails the check. On a file system that keeps no nanoseconds the seal is a
  whole, even number of seconds before 2002 derived from the id (:func:`coarse_seal`), which no write made since
  then can produce; where neither holds, or when another user owns the file, the object is hashed on every use.
  A write that puts the old mtime back (``touch -r``, ``cp -p`` over it) or damage that leaves the mtime alone
  (a bad disk) is what only :meth:`Cache.verify` finds; it breaks the seal of a bad file before removing it, so
  that every checkout hard-linking it sees the change and replaces the file at its next checkout. The rule is
  written down in docs/format.md, §18.
- Eviction only unlinks names. A hard-linked checkout keeps its inode, so its bytes stay (they are freed with
  the last link); a reflinked or copied checkout is independent. Only symlink-mode checkouts point at cache
  names, so they pin what they use.

Pins: a symlink-mode checkout writes ``pins/<key>.json`` = ``{"owner": <path of its manifest>, "ids": [...]}``.
Prune keeps those ids while the owner file exists and names the pin (``"pin": "<key>"``), or while the pin is
younger than :data:`PIN_GRACE` (a checkout still in progress). A pin whose owner is gone (the checkout folder
was deleted, or switched to another link mode) is deleted by the next prune, and its objects become evictable.

Sharing between users: directories are created with mode 0777 and files with 0444/0555, both minus the umask;
give the cache a group with the setgid bit and a umask of 002 to share it. Linux's ``protected_hardlinks``
forbids hard links to another user's file: ``auto`` then falls back to copying.
"""

from __future__ import annotations

import errno
import fcntl
import itertools
import json
import os
import secrets
import stat
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from . import durable
from .errors import BadConfig, CorruptObject, DvxError, UsageError, os_error
from .ids import hash_bytes, hasher, is_id
from .store import ObjectStore

CACHE_LAYOUT = "v1"
FILE_MODE = 0o444
EXEC_MODE = 0o555
EXEC_SUFFIX = ".x"
TEMP_MAX_AGE = 86400.0
FRESH_SECONDS = 600.0
VARIANT_COPY_FROM = 1 << 20  # from this size, the other (exec/non-exec) variant is copied rather than re-extracted
# Uses of at least this many objects at once are recorded in one usage log (``used/log/``), not as stamps.
USE_LOG_FROM = 64
USE_LOGS_FOLD = 64  # more usage logs than this are folded into one summary
USE_LOG_SUFFIX = ".ids"
USE_SUMMARY_SUFFIX = ".last"
PIN_GRACE = 86400.0
FICLONE = 0x40049409  # _IOW(0x94, 9, int): Linux clone-file ioctl (btrfs, XFS, bcachefs...)

# Errors meaning "this file system (pair) cannot do that", as opposed to a real I/O failure.
UNSUPPORTED_ERRNOS = frozenset(
    {errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOTTY, errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EPERM}
)

_NS = 1_000_000_000
COARSE_SEAL_BASE = 1_000_000_000  # seconds: 2001-09-09; coarse seals lie in the 194 days after it


def seal_ns(object_id: str) -> int:
    """The nanoseconds (1 to 2**28, never 0) of the mtime of a sealed cache file of ``object_id``: its first 7
    hex digits plus one (cheap: a warm checkout computes it for every file)."""
    return int(object_id[:7], 16) + 1


def coarse_seal(object_id: str) -> int:
    """The mtime (in ns) of a cache file of ``object_id`` sealed on a file system that keeps no nanoseconds: a
    whole, even number of seconds (FAT keeps 2 s) in 2001 or 2002, long before any write that could break it."""
    return (COARSE_SEAL_BASE + 2 * (int(object_id[7:13], 16) % (1 << 23))) * _NS


def is_sealed(object_id: str, mtime_ns: int) -> bool:
    """True if ``mtime_ns`` is a seal of ``object_id``: nobody wrote into the file since it was sealed (one in a
    billion writes lands on the right nanosecond by chance)."""
    return mtime_ns % _NS == int(object_id[:7], 16) + 1 or mtime_ns == coarse_seal(object_id)


def _set_mtime(fd: int, atime_ns: int, mtime_ns: int) -> None:
    """``futimens``: one name for the one call that seals, so that tests can play a file system that keeps
    less than nanoseconds."""
    os.utime(fd, ns=(atime_ns, mtime_ns))


def _hash_fd(fd: int, size: int) -> str:
    """The content id of the ``size`` bytes of the open file ``fd`` (a file that is longer fails to match)."""
    if size >= (8 << 20):
        # Read, not mmap: a file truncated meanwhile must fail the hash, not kill the process with SIGBUS.
        h = hasher()
        pos = 0
        while True:
            data = os.pread(fd, 4 << 20, pos)
            if not data:
                return h.hexdigest()
            h.update(data)
            pos += len(data)
    parts: list[bytes] = []
    pos = 0
    while True:
        data = os.pread(fd, size + 1 - pos, pos)
        if not data:
            return hash_bytes(b"".join(parts))
        parts.append(data)
        pos += len(data)
        if pos > size:
            return hash_bytes(b"".join(parts))

_UNITS = {
    "": 1,
    "b": 1,
    "k": 1 << 10,
    "kib": 1 << 10,
    "kb": 10**3,
    "m": 1 << 20,
    "mib": 1 << 20,
    "mb": 10**6,
    "g": 1 << 30,
    "gib": 1 << 30,
    "gb": 10**9,
    "t": 1 << 40,
    "tib": 1 << 40,
    "tb": 10**12,
}


def parse_size(text: str | int) -> int:
    """``"20G"`` → 21474836480. K, M, G, T (and KiB...) are powers of 1024; KB, MB, GB, TB of 1000."""
    if isinstance(text, int) and not isinstance(text, bool):
        if text < 0:
            raise UsageError(f"a size cannot be negative: {text}")
        return text
    raw = str(text).strip().lower().replace(" ", "")
    digits = raw.rstrip("abcdefghijklmnopqrstuvwxyz")
    unit = raw[len(digits) :]
    try:
        value = float(digits)
    except ValueError:
        raise UsageError(f"not a size: {text!r} (examples: 500M, 20G, 1.5T, 1048576)") from None
    if unit not in _UNITS or value < 0 or value != value:
        raise UsageError(f"not a size: {text!r} (examples: 500M, 20G, 1.5T, 1048576)")
    return int(value * _UNITS[unit])


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "dvx"


def _cache_section(config: Mapping[str, Any] | None) -> Mapping[str, Any]:
    section = (config or {}).get("cache") or {}
    if not isinstance(section, Mapping):
        raise BadConfig("the 'cache' section of .dvx/config must be an object")
    return section


def resolve_cache_dir(config: Mapping[str, Any] | None = None, root: Path | None = None) -> Path:
    """``DVX_CACHE_DIR``, else config ``cache.dir`` (relative to ``root``), else ``~/.cache/dvx``."""
    env = os.environ.get("DVX_CACHE_DIR")
    if env:
        return Path(env).expanduser().absolute()
    value = _cache_section(config).get("dir")
    if value:
        path = Path(str(value)).expanduser()
        if not path.is_absolute() and root is not None:
            path = root / path
        return path.absolute()
    return default_cache_dir().absolute()


def resolve_size_limit(config: Mapping[str, Any] | None = None) -> int | None:
    """``DVX_CACHE_SIZE``, else config ``cache.size_limit``; None (no limit) when neither is set."""
    env = os.environ.get("DVX_CACHE_SIZE")
    value: Any = env if env else _cache_section(config).get("size_limit")
    if value is None or value == "" or str(value).lower() in ("none", "unlimited"):
        return None
    try:
        return parse_size(value)
    except UsageError as exc:
        source = "DVX_CACHE_SIZE" if env else "cache.size_limit"
        raise BadConfig(f"{source}: {exc}") from None


# Temp file names: unique per process (pid and a random token, drawn once) and per call (a counter).
_TEMP_PREFIX = f"{os.getpid()}.{secrets.token_hex(4)}"
_temp_counter = itertools.count()
_umask: int | None = None


def _new_temp_prefix() -> None:
    global _TEMP_PREFIX
    _TEMP_PREFIX = f"{os.getpid()}.{secrets.token_hex(4)}"


os.register_at_fork(after_in_child=_new_temp_prefix)


def _process_umask() -> int:
    global _umask
    if _umask is None:
        _umask = os.umask(0o022)
        os.umask(_umask)
    return _umask


# --- copying ------------------------------------------------------------------------------------------------


def reflink_fd(src_fd: int, dst_fd: int) -> None:
    """Make ``dst_fd`` share ``src_fd``'s blocks (copy-on-write); OSError if the file system cannot."""
    fcntl.ioctl(dst_fd, FICLONE, src_fd)


def copy_fd(src_fd: int, dst_fd: int) -> int:
    """Copy the rest of ``src_fd`` to ``dst_fd`` in the kernel where possible; returns the bytes copied."""
    total = 0
    if hasattr(os, "copy_file_range"):
        try:
            while True:
                n = os.copy_file_range(src_fd, dst_fd, 1 << 30)
                if n == 0:
                    return total
                total += n
        except OSError as exc:
            if total or exc.errno not in UNSUPPORTED_ERRNOS:
                raise
    while True:
        data = os.read(src_fd, 1 << 20)
        if not data:
            return total
        write_all(dst_fd, data)
        total += len(data)


def write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def unlink_quiet(path: str | Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


_proc_fd_dir = -1  # an open /proc/self/fd, through which an anonymous temp file is linked to its name


def _reset_proc_fd() -> None:
    global _proc_fd_dir
    _proc_fd_dir = -1  # the child has its own descriptor table: open its own /proc/self/fd when needed


os.register_at_fork(after_in_child=_reset_proc_fd)


def _proc_fd() -> int:
    global _proc_fd_dir
    if _proc_fd_dir < 0:
        _proc_fd_dir = os.open("/proc/self/fd", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    return _proc_fd_dir


class CacheTemp:
    """A cache file being written, not yet visible under its name.

    Where the file system allows it (Linux ``O_TMPFILE``) it is an anonymous inode in the folder of its final
    name: publishing it is one ``linkat`` there, and a crash leaves nothing behind. Elsewhere it is a named temp
    file in the cache's ``tmp/``, linked to its name and then unlinked. The descriptor stays open until the
    file is published or discarded, so that it can be made durable first.
    """

    __slots__ = ("fd", "path", "final")

    def __init__(self, fd: int, path: str, final: str) -> None:
        self.fd = fd
        self.path = path  # "" for an anonymous inode
        self.final = final

    def link(self, name: str) -> None:
        """Give the file the (new) name ``name``; ``FileExistsError`` if taken."""
        if self.path:
            os.link(self.path, name)
        else:
            os.link(str(self.fd), name, src_dir_fd=_proc_fd(), follow_symlinks=True)

    def replace(self, name: str) -> None:
        """Put the file at ``name`` atomically, replacing what is there."""
        if self.path:
            os.replace(self.path, name)
            self.path = ""
            return
        beside = f"{os.path.dirname(name)}/.{_TEMP_PREFIX}.{next(_temp_counter)}.tmp"
        self.link(beside)
        try:
            os.replace(beside, name)
        except BaseException:
            unlink_quiet(beside)
            raise

    def discard(self) -> None:
        """Close the descriptor and drop the temp name (an anonymous inode just goes away)."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        if self.path:
            unlink_quiet(self.path)
            self.path = ""


# --- reports ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CacheInfo:
    dir: str
    objects: int  # distinct content ids
    files: int  # object files (an id cached for executables too counts twice)
    bytes: int  # sum of the object files' sizes (hard links into checkouts are counted here once)
    limit: int | None
    pins: int
    temp_files: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class PruneReport:
    objects_removed: int = 0
    bytes_freed: int = 0  # from the cache's count; hard-linked checkouts still hold their inodes
    bytes_before: int = 0
    bytes_after: int = 0
    kept_pinned: int = 0  # objects over the target spared because a checkout pins or is using them
    pins_removed: int = 0
    temp_removed: int = 0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class VerifyReport:
    files: int = 0
    bytes: int = 0
    bad: list[str] = field(default_factory=list)  # object file names (``<id>`` or ``<id>.x``)
    removed: int = 0
    sealed: int = 0  # good files whose seal was broken (an mtime changed, not the bytes), sealed again

    @property
    def ok(self) -> bool:
        return not self.bad

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


@dataclass
class _Cached:
    size: int = 0
    last_used: float = 0.0
    names: list[str] = field(default_factory=list)


# --- the cache ----------------------------------------------------------------------------------------------


class Cache:
    """A directory of decompressed file contents keyed by content id, safe to share between processes.

    Example::

        cache = Cache.open(repo.config, repo.root)
        path = cache.ensure(repo.store, entry.id, entry.size)   # extracted once, then reused
        cache.prune(cache.size_limit)
    """

    def __init__(self, root: str | os.PathLike[str], *, size_limit: int | None = None) -> None:
        self.root = Path(root).absolute()
        self.base = self.root / CACHE_LAYOUT
        self.objects_dir = self.base / "objects"
        self.used_dir = self.base / "used"
        self.pins_dir = self.base / "pins"
        self.tmp_dir = self.base / "tmp"
        self.size_limit = size_limit
        self._objects = str(self.objects_dir)
        self._tmp = str(self.tmp_dir)
        self._used = str(self.used_dir)
        self._logs = f"{self._used}/log"
        self._lock = threading.Lock()
        self._dirs: set[str] = set()
        self._ready = False
        self._anonymous = hasattr(os, "O_TMPFILE")  # temp files as anonymous inodes (see CacheTemp)
        # Counters of this process's work (tests and reports read them).
        self.extracted = 0
        self.extracted_bytes = 0
        self.hits = 0
        self.rechecked = 0  # cache files re-hashed because their seal was broken, and found good
        self.unsealed = 0  # cache files that could not be sealed (so they are re-hashed at each use)

    @classmethod
    def open(cls, config: Mapping[str, Any] | None = None, root: Path | None = None) -> Cache:
        """The cache that the environment and a repository's config (if any) select."""
        return cls(resolve_cache_dir(config, root), size_limit=resolve_size_limit(config))

    # -- names ------------------------------------------------------------------------------------------

    def path(self, object_id: str, executable: bool = False) -> Path:
        return Path(self.name(object_id, executable))

    def name(self, object_id: str, executable: bool = False) -> str:
        """The cached file's name as a string (``path`` without pathlib's cost, for per-file loops)."""
        return f"{self._objects}/{object_id[:2]}/{object_id[2:]}{EXEC_SUFFIX if executable else ''}"

    def _stamp(self, object_id: str) -> str:
        return f"{self._used}/{object_id[:2]}/{object_id[2:]}"

    def setup(self) -> None:
        if self._ready:
            return
        try:
            for d in (self.objects_dir, self.used_dir, self.pins_dir, self.tmp_dir):
                os.makedirs(d, mode=0o777, exist_ok=True)
        except OSError as exc:
            raise os_error(exc, f"cannot create the cache in {self.root}") from exc
        self._ready = True

    def _make_dir(self, path: str) -> None:
        if path in self._dirs:
            return
        os.makedirs(path, mode=0o777, exist_ok=True)
        with self._lock:
            self._dirs.add(path)

    # -- lookups and extraction ----------------------------------------------------------------------------

    def _stat(self, name: str) -> os.stat_result | None:
        try:
            return os.lstat(name)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise os_error(exc, "cannot read the cache") from exc

    @staticmethod
    def _intact(st: os.stat_result | None, size: int, executable: bool) -> bool:
        """A regular file of the right size with exactly the right mode (no write bits); the seal aside."""
        return (
            st is not None
            and stat.S_ISREG(st.st_mode)
            and st.st_size == size
            and stat.S_IMODE(st.st_mode) == (EXEC_MODE if executable else FILE_MODE)
        )

    @classmethod
    def _trusted(cls, st: os.stat_result | None, object_id: str, size: int, executable: bool) -> bool:
        """The cheap check: intact (:meth:`_intact`) and sealed (nobody wrote into it since it was made)."""
        return st is not None and cls._intact(st, size, executable) and is_sealed(object_id, st.st_mtime_ns)

    def _checked(self, st: os.stat_result | None, object_id: str, size: int, executable: bool) -> os.stat_result | None:
        """``st`` if the cache file passes the cheap check; its new stat if only the seal is broken and a re-hash
        finds its bytes good (see :meth:`recheck`); else None."""
        if not self._intact(st, size, executable):
            return None
        assert st is not None
        if is_sealed(object_id, st.st_mtime_ns):
            return st
        return self.recheck(object_id, size, executable)

    def recheck(self, object_id: str, size: int, executable: bool = False) -> os.stat_result | None:
        """Hash a cache file whose seal is broken: if its bytes are good, seal it again (keeping its age) and return
        its stat, else None (the caller extracts a fresh copy, which replaces it).

        The file is read through one descriptor, and its mtime must be the same after the hash as before: a write
        while it was being hashed makes it bad. Another user's file cannot be sealed by us: its stat is returned
        all the same (its bytes were just verified), and it is hashed again at its next use.
        """
        name = self.name(object_id, executable)
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ELOOP, errno.ENXIO):
                return None  # gone, or a link or a fifo: replaced by the caller
            raise os_error(exc, "cannot read the cache") from exc
        try:
            before = os.fstat(fd)
            if not self._intact(before, size, executable) or _hash_fd(fd, size) != object_id:
                return None
            after = os.fstat(fd)
            if after.st_mtime_ns != before.st_mtime_ns or after.st_size != size:
                return None  # written while it was hashed
            if self.seal(fd, object_id, before.st_mtime_ns):
                after = os.fstat(fd)
            with self._lock:
                self.rechecked += 1
            return after
        except OSError as exc:
            raise os_error(exc, "cannot read the cache") from exc
        finally:
            os.close(fd)

    def seal(self, fd: int, object_id: str, when_ns: int | None = None) -> bool:
        """Set the mtime of the cache file open as ``fd`` to a seal of ``object_id`` at most a second before
        ``when_ns`` (default: now); False if the file system does not keep it or we may not set it (another
        user's file), and then the file is hashed at each use. Nothing may write into the file afterwards."""
        now = time.time_ns()
        when = now if when_ns is None else when_ns
        fine = (when - seal_ns(object_id)) // _NS * _NS + seal_ns(object_id)
        for mtime in (fine, coarse_seal(object_id)):
            try:
                _set_mtime(fd, now, mtime)
                kept = os.fstat(fd).st_mtime_ns == mtime
            except OSError as exc:
                if exc.errno not in UNSUPPORTED_ERRNOS and exc.errno != errno.EACCES:
                    raise
                break
            if kept:
                if mtime != fine:
                    self.touch(object_id)  # a coarse seal tells nothing of its age: record a use instead
                return True
        with self._lock:
            self.unsealed += 1
        return False

    def _hit(self, object_id: str, st: os.stat_result) -> None:
        if time.time() - st.st_mtime > FRESH_SECONDS:
            self.touch(object_id)
        with self._lock:
            self.hits += 1

    def lookup_stat(self, object_id: str, size: int, executable: bool = False) -> os.stat_result | None:
        """The cached file's ``lstat`` if present and trusted (and mark it used), else None."""
        st = self._checked(self._stat(self.name(object_id, executable)), object_id, size, executable)
        if st is not None:
            self._hit(object_id, st)
        return st

    def lookup_many(self, keys: Sequence[tuple[str, int, bool]]) -> list[os.stat_result | None]:
        """:meth:`lookup_stat` of many ``(id, size, executable)`` at once (the loop of a warm checkout)."""
        out: list[os.stat_result | None] = []
        lstat, isreg, imode, objects = os.lstat, stat.S_ISREG, stat.S_IMODE, self._objects
        stale = time.time() - FRESH_SECONDS
        hits = 0
        used: list[str] = []
        unsealed: list[int] = []
        for oid, size, exe in keys:
            try:
                st: os.stat_result | None = lstat(f"{objects}/{oid[:2]}/{oid[2:]}{EXEC_SUFFIX if exe else ''}")
            except FileNotFoundError:
                st = None
            except OSError as exc:
                raise os_error(exc, "cannot read the cache") from exc
            if st is not None and isreg(st.st_mode) and st.st_size == size and imode(st.st_mode) == (
                EXEC_MODE if exe else FILE_MODE
            ):
                if st.st_mtime_ns % _NS != int(oid[:7], 16) + 1 and not is_sealed(oid, st.st_mtime_ns):  # inlined
                    unsealed.append(len(out))  # written into since it was made: re-hashed below
                    out.append(None)
                    continue
                hits += 1
                if st.st_mtime < stale:
                    used.append(oid)
                out.append(st)
            else:
                out.append(None)
        for i in unsealed:
            oid, size, exe = keys[i]
            st = out[i] = self.recheck(oid, size, exe)
            if st is not None:
                hits += 1
                if st.st_mtime < stale:
                    used.append(oid)
        self.record_uses(used)
        with self._lock:
            self.hits += hits
        return out

    def lookup(self, object_id: str, size: int, executable: bool = False) -> str | None:
        """The cached file's name if present and trusted (and mark it used), else None."""
        return self.name(object_id, executable) if self.lookup_stat(object_id, size, executable) is not None else None

    def ensure(self, store: ObjectStore, object_id: str, size: int, executable: bool = False) -> str:
        """The cached file's name, extracted from ``store`` (verified) if absent or untrusted.

        Safe against other processes doing the same: the first published copy wins, the others are dropped.
        """
        if not is_id(object_id):
            raise CorruptObject(f"not a content id: {object_id!r}", object_id)
        path = self.name(object_id, executable)
        st = self._stat(path)
        good = self._checked(st, object_id, size, executable)
        if good is not None:
            self._hit(object_id, good)
            return path
        self.setup()
        tmp = self._fill_temp(store, object_id, size, executable)
        self._install(tmp, object_id, size, executable, st is None)
        return path

    def _install(self, tmp: CacheTemp, object_id: str, size: int, executable: bool, absent: bool) -> None:
        """Publish the durable, sealed temp file ``tmp`` under its final name (create-only), then drop the temp.

        ``absent``: no file was at the name when last looked; else an untrusted leftover is replaced atomically.
        """
        path = tmp.final
        try:
            durable.fault("cache.before-link")
            if absent:
                try:
                    tmp.link(path)
                except FileExistsError:
                    # Another process published it first; keep theirs unless it is not trustworthy.
                    if not self._trusted(self._stat(path), object_id, size, executable):
                        tmp.replace(path)
            else:
                tmp.replace(path)  # an untrusted leftover: swap in good bytes atomically
        except OSError as exc:
            raise os_error(exc, "cannot add to the cache") from exc
        finally:
            tmp.discard()
        with self._lock:
            self.extracted += 1
            self.extracted_bytes += size

    def new_temp(self, *, readable: bool = False, mode: int = 0o600) -> tuple[Path, int]:
        """A new, empty temp file in ``tmp/``, open for writing (and reading if ``readable``), created with
        ``mode`` minus the umask (a file created read-only is still writable through this descriptor)."""
        access = os.O_RDWR if readable else os.O_WRONLY
        while True:
            tmp = f"{self._tmp}/{_TEMP_PREFIX}.{next(_temp_counter)}.tmp"
            try:
                fd = os.open(tmp, access | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
            except FileExistsError:
                continue
            except OSError as exc:
                raise os_error(exc, "cannot write to the cache") from exc
            return Path(tmp), fd

    def new_object_temp(self, object_id: str, executable: bool, *, readable: bool = False) -> tuple[CacheTemp, bool]:
        """An empty :class:`CacheTemp` for ``object_id``, open for writing (and reading if ``readable``), created
        with the object's final mode where the umask allows it; returns ``(temp, needs_chmod)``: ``needs_chmod``
        when an ``fchmod`` must still set the mode."""
        mode = EXEC_MODE if executable else FILE_MODE
        needs_chmod = (mode & ~_process_umask()) != mode
        final = self.name(object_id, executable)
        shard = os.path.dirname(final)
        try:
            self._make_dir(shard)
        except OSError as exc:
            raise os_error(exc, "cannot write to the cache") from exc
        if self._anonymous:
            access = os.O_RDWR if readable else os.O_WRONLY
            try:
                return CacheTemp(os.open(shard, os.O_TMPFILE | access | os.O_CLOEXEC, mode), "", final), needs_chmod
            except OSError as exc:
                if exc.errno not in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL, errno.ENOENT):
                    raise os_error(exc, "cannot write to the cache") from exc
                self._anonymous = False  # not supported here: named temp files from now on
        tmp, fd = self.new_temp(readable=readable, mode=mode)
        return CacheTemp(fd, str(tmp), final), needs_chmod

    def _fill_temp(
        self, store: ObjectStore | None, object_id: str, size: int, executable: bool, *, sync: bool = True
    ) -> CacheTemp:
        """A complete temp file holding the object's bytes with its final mode; fsynced unless ``sync`` is False
        (then a :class:`Publisher` makes it durable, together with others, before it is published). With no
        ``store``, the bytes are copied from the other (exec/non-exec) variant, which the caller found cached."""
        tmp, _ = self.new_object_temp(object_id, executable)
        fd = tmp.fd
        try:
            other = self.name(object_id, not executable)
            # Only worth a lookup for big contents: a small one is decompressed as fast as it is copied.
            if store is None or (
                size >= VARIANT_COPY_FROM and self._trusted(self._stat(other), object_id, size, not executable)
            ):
                # The other variant is trusted: copy it (or share its blocks) instead of decompressing again.
                with open(other, "rb") as src:
                    try:
                        reflink_fd(src.fileno(), fd)
                        n = os.fstat(fd).st_size
                    except OSError as exc:
                        if exc.errno not in UNSUPPORTED_ERRNOS:
                            raise
                        n = copy_fd(src.fileno(), fd)
            else:
                n = 0
                for data in store.iter_file(object_id):  # every chunk and the whole verified by the store
                    write_all(fd, data)
                    n += len(data)
            if n != size:
                raise CorruptObject(f"content {object_id} has {n} bytes, the tree says {size}", object_id)
            os.fchmod(fd, EXEC_MODE if executable else FILE_MODE)
            self.seal(fd, object_id)
            if sync:
                os.fsync(fd)
        except OSError as exc:
            tmp.discard()
            raise os_error(exc, "cannot write to the cache") from exc
        except BaseException:
            tmp.discard()
            raise
        return tmp

    def extract_temp(
        self, store: ObjectStore, object_id: str, size: int, executable: bool, *, looked: bool = False
    ) -> CacheTemp | None:
        """For :class:`Publisher`: a not yet durable temp file of the object (verified), or None if the cache
        already holds a trusted copy. ``looked``: the caller has just found it absent (no second lookup; each
        costs a lookup in a folder other threads are adding to)."""
        if not is_id(object_id):
            raise CorruptObject(f"not a content id: {object_id!r}", object_id)
        if not looked and self._trusted(self._stat(self.name(object_id, executable)), object_id, size, executable):
            return None
        self.setup()
        return self._fill_temp(store, object_id, size, executable, sync=False)

    def variant_temp(self, object_id: str, size: int, executable: bool) -> CacheTemp | None:
        """For :class:`Publisher`: a not yet durable temp copy of the other (trusted) variant of the object, or
        None when that variant is not cached either."""
        if not self._trusted(self._stat(self.name(object_id, not executable)), object_id, size, not executable):
            return None
        self.setup()
        return self._fill_temp(None, object_id, size, executable, sync=False)

    @staticmethod
    def mode(executable: bool) -> int:
        """The mode of a cache file (0444, or 0555 for the executable variant)."""
        return EXEC_MODE if executable else FILE_MODE

    def publisher(self) -> Publisher:
        return Publisher(self)

    def record_uses(self, object_ids: Sequence[str]) -> None:
        """Record a use of many objects at once (a checkout's) for LRU eviction: one usage log file, instead of
        a stamp per object (measured: 20,000 stamps cost a warm checkout 0.1 s; a log costs a millisecond).

        A hint, as stamps are: errors are not raised. Logs are folded into one summary by the next writer
        that finds more than :data:`USE_LOGS_FOLD` of them.
        """
        if not object_ids:
            return
        if len(object_ids) < USE_LOG_FROM:
            for oid in object_ids:
                self.touch(oid)
            return
        try:
            self.setup()
            os.makedirs(self._logs, exist_ok=True)
            self._write_log(b"".join(bytes.fromhex(oid) for oid in object_ids), USE_LOG_SUFFIX)
        except OSError:
            return
        try:
            if sum(1 for n in os.listdir(self._logs) if n.endswith(USE_LOG_SUFFIX)) > USE_LOGS_FOLD:
                self._fold_use_logs()
        except OSError:
            return

    def _write_log(self, body: bytes, suffix: str) -> None:
        """Publish a usage log or summary named by the time: whole or absent (rename), not fsynced, since losing
        a hint costs nothing."""
        name = f"{time.time_ns():020d}.{_TEMP_PREFIX}.{next(_temp_counter)}{suffix}"
        tmp, fd = self.new_temp(mode=0o644)
        try:
            try:
                write_all(fd, body)
            finally:
                os.close(fd)
            os.replace(tmp, f"{self._logs}/{name}")
        except BaseException:
            unlink_quiet(tmp)
            raise

    def _read_use_logs(self) -> tuple[dict[str, float], list[str]]:
        """Last use per id recorded in the usage logs and summaries, and the files read."""
        last: dict[str, float] = {}
        files: list[str] = []
        try:
            names = sorted(os.listdir(self._logs))
        except FileNotFoundError:
            return last, files
        for name in names:
            path = f"{self._logs}/{name}"
            try:
                with open(path, "rb") as fh:
                    data = fh.read()
            except FileNotFoundError:
                continue  # folded meanwhile
            if name.endswith(USE_LOG_SUFFIX) and len(data) % 32 == 0:
                when = int(name.split(".", 1)[0]) / 1e9 if name.split(".", 1)[0].isdigit() else 0.0
                for i in range(0, len(data), 32):
                    oid = data[i : i + 32].hex()
                    if last.get(oid, 0.0) < when:
                        last[oid] = when
            elif name.endswith(USE_SUMMARY_SUFFIX) and len(data) % 40 == 0:
                for i in range(0, len(data), 40):
                    oid = data[i : i + 32].hex()
                    when = int.from_bytes(data[i + 32 : i + 40], "little") / 1e9
                    if last.get(oid, 0.0) < when:
                        last[oid] = when
            else:
                continue  # not ours, or torn: ignored (a hint)
            files.append(path)
        return last, files

    def _fold_use_logs(self, present: set[str] | None = None) -> None:
        """Replace the usage logs by one summary (id, last use) of the objects still cached; under the prune
        lock, so that two folders never drop each other's work. Skipped when the lock is busy."""
        fd = self._prune_lock(False)
        if fd is None:
            return
        try:
            self._fold_locked(present)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def _fold_locked(self, present: set[str] | None) -> None:
        last, files = self._read_use_logs()
        if not files:
            return
        if present is not None:
            last = {oid: t for oid, t in last.items() if oid in present}
        body = b"".join(bytes.fromhex(oid) + int(t * 1e9).to_bytes(8, "little") for oid, t in sorted(last.items()))
        self._write_log(body, USE_SUMMARY_SUFFIX)  # the summary first, then the files it replaces
        for path in files:
            unlink_quiet(path)

    def touch(self, object_id: str) -> None:
        """Record a use of ``object_id`` for LRU eviction.

        The stamp is a hint: failing to write it (a read-only cache, another user's stamp) only makes the
        object look older to prune, so errors are deliberately not raised here.
        """
        stamp = self._stamp(object_id)
        try:
            os.utime(stamp)
            return
        except FileNotFoundError:
            pass
        except PermissionError:
            unlink_quiet(stamp)  # another user's stamp: replace it with ours (needs only directory access)
        except OSError:
            return
        try:
            self._make_dir(os.path.dirname(stamp))
            os.close(os.open(stamp, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666))
            os.utime(stamp)
        except OSError:
            return

    # -- enumeration -----------------------------------------------------------------------------------------

    def _shards(self, top: Path) -> Iterator[os.DirEntry[str]]:
        try:
            shards = list(os.scandir(top))
        except FileNotFoundError:
            return
        for shard in shards:
            if len(shard.name) != 2 or not shard.is_dir(follow_symlinks=False):
                continue
            try:
                yield from os.scandir(shard.path)
            except FileNotFoundError:
                continue

    def _scan(self) -> dict[str, _Cached]:
        """Every cached id with its total size and last use (the later of its files' mtimes and its stamp)."""
        found: dict[str, _Cached] = {}
        for de in self._shards(self.objects_dir):
            base = de.name[: -len(EXEC_SUFFIX)] if de.name.endswith(EXEC_SUFFIX) else de.name
            oid = os.path.basename(os.path.dirname(de.path)) + base
            if not is_id(oid):
                continue
            try:
                st = de.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            c = found.setdefault(oid, _Cached())
            c.size += st.st_size
            c.last_used = max(c.last_used, st.st_mtime)
            c.names.append(de.path)
        for de in self._shards(self.used_dir):
            oid = os.path.basename(os.path.dirname(de.path)) + de.name
            c2 = found.get(oid)
            if c2 is None:
                continue
            try:
                c2.last_used = max(c2.last_used, de.stat(follow_symlinks=False).st_mtime)
            except FileNotFoundError:
                continue
        logged, _ = self._read_use_logs()
        for oid, when in logged.items():
            c3 = found.get(oid)
            if c3 is not None and c3.last_used < when:
                c3.last_used = when
        return found

    def _count_temps(self) -> int:
        try:
            return sum(1 for _ in os.scandir(self.tmp_dir))
        except FileNotFoundError:
            return 0

    def info(self) -> CacheInfo:
        found = self._scan()
        try:
            pins = sum(1 for p in os.scandir(self.pins_dir) if p.name.endswith(".json"))
        except FileNotFoundError:
            pins = 0
        return CacheInfo(
            dir=str(self.root),
            objects=len(found),
            files=sum(len(c.names) for c in found.values()),
            bytes=sum(c.size for c in found.values()),
            limit=self.size_limit,
            pins=pins,
            temp_files=self._count_temps(),
        )

    # -- pins ------------------------------------------------------------------------------------------------

    @staticmethod
    def pin_key(owner: Path) -> str:
        return hash_bytes(os.fsencode(str(Path(owner).absolute())))[:32]

    def pin(self, owner: Path, ids: Iterable[str]) -> str:
        """Keep ``ids`` through prune while ``owner`` (a JSON file) exists and says ``"pin": <returned key>``."""
        self.setup()
        key = self.pin_key(owner)
        doc = {"v": 1, "owner": str(Path(owner).absolute()), "ids": sorted(set(ids))}
        tmp, fd = self.new_temp()
        try:
            write_all(fd, json.dumps(doc, separators=(",", ":")).encode())
            os.fchmod(fd, 0o644)
            os.fsync(fd)
            os.close(fd)
            fd = -1
            os.replace(tmp, self.pins_dir / f"{key}.json")
        except OSError as exc:
            raise os_error(exc, "cannot write a cache pin") from exc
        finally:
            if fd >= 0:
                os.close(fd)
            unlink_quiet(tmp)
        return key

    def unpin(self, key: str) -> None:
        unlink_quiet(self.pins_dir / f"{key}.json")

    def _live_pins(self, report: PruneReport, now: float) -> set[str]:
        """Ids pinned by live owners; stale pins are deleted. Fails closed on a pin it cannot read."""
        keep: set[str] = set()
        try:
            pins = [p for p in os.scandir(self.pins_dir) if p.name.endswith(".json")]
        except FileNotFoundError:
            return keep
        for p in pins:
            key = p.name[: -len(".json")]
            try:
                age = now - p.stat(follow_symlinks=False).st_mtime
                doc = durable.loads_json(Path(p.path).read_bytes())
                owner = Path(doc["owner"])
                ids = [str(i) for i in doc["ids"]]
            except FileNotFoundError:
                continue
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise DvxError(
                    f"cache pin {p.path} is unreadable ({exc}); nothing was pruned (delete the pin if its "
                    "checkout is gone)"
                ) from None
            if self._owner_names(owner, key) or age < PIN_GRACE:
                keep.update(ids)
            else:
                unlink_quiet(p.path)
                report.pins_removed += 1
        return keep

    @staticmethod
    def _owner_names(owner: Path, key: str) -> bool:
        try:
            doc = durable.loads_json(owner.read_bytes())
        except FileNotFoundError:
            return False
        except (OSError, ValueError):
            return True  # cannot tell: keep (fail closed)
        return isinstance(doc, dict) and doc.get("pin") == key

    # -- prune and verify --------------------------------------------------------------------------------

    def _prune_lock(self, wait: bool) -> int | None:
        self.setup()
        fd = os.open(self.base / "prune.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            os.close(fd)
            return None
        return fd

    def prune_barrier(self) -> None:
        """Return once no prune that started before this call is still running."""
        fd = self._prune_lock(True)
        assert fd is not None
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)

    def prune(self, target: int | None = None, *, keep: Iterable[str] = (), wait: bool = True) -> PruneReport | None:
        """Evict least-recently-used objects until the cache holds at most ``target`` bytes.

        ``target`` defaults to the configured size limit (None: only clean temp files and stale pins). Objects
        in ``keep`` and pinned ones are never evicted. With ``wait=False``, returns None at once if another
        process is pruning.
        """
        target = self.size_limit if target is None else target
        fd = self._prune_lock(wait)
        if fd is None:
            return None
        try:
            report = PruneReport()
            now = time.time()
            report.temp_removed = self._clean_temps(now)
            protected = set(keep) | self._live_pins(report, now)
            found = self._scan()
            total = sum(c.size for c in found.values())
            report.bytes_before = total
            if target is not None and total > target:
                for oid, c in sorted(found.items(), key=lambda kv: (kv[1].last_used, kv[0])):
                    if total <= target:
                        break
                    if oid in protected:
                        report.kept_pinned += 1
                        continue
                    for name in c.names:
                        unlink_quiet(name)
                    unlink_quiet(self._stamp(oid))
                    total -= c.size
                    report.objects_removed += 1
                    report.bytes_freed += c.size
            report.bytes_after = total
            try:
                self._fold_locked({oid for oid in found if any(os.path.lexists(n) for n in found[oid].names)})
            except OSError:
                pass  # usage records are hints: pruning succeeded
            return report
        except OSError as exc:
            raise os_error(exc, "cannot prune the cache") from exc
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def _clean_temps(self, now: float) -> int:
        removed = 0
        try:
            entries = list(os.scandir(self.tmp_dir))
        except FileNotFoundError:
            return 0
        for de in entries:
            try:
                if now - de.stat(follow_symlinks=False).st_mtime > TEMP_MAX_AGE:
                    os.unlink(de.path)
                    removed += 1
            except FileNotFoundError:
                continue
        return removed

    def verify(self, *, remove_bad: bool = True) -> VerifyReport:
        """Re-hash every cached file; bad ones (wrong bytes, size or mode) are removed unless told not to. Good ones
        whose seal was broken (an mtime changed without their bytes) are sealed again.

        A checkout that hard-links a bad file holds the same bad bytes. So the seal of a bad file is broken (its
        mtime set to now) before it is removed: the checkouts sharing its inode see the change and replace the
        file at their next checkout, even when the damage had left the mtime alone.
        """
        report = VerifyReport()
        for de in self._shards(self.objects_dir):
            executable = de.name.endswith(EXEC_SUFFIX)
            oid = os.path.basename(os.path.dirname(de.path)) + (de.name[: -len(EXEC_SUFFIX)] if executable else de.name)
            if not is_id(oid):
                continue
            try:
                size, ok, sealed = self._verify_one(de.path, oid, executable, remove_bad)
            except FileNotFoundError:
                continue  # evicted meanwhile
            except OSError as exc:
                raise os_error(exc, f"cannot read {de.path}") from exc
            report.files += 1
            report.bytes += size
            report.sealed += sealed
            if not ok:
                report.bad.append(oid + (EXEC_SUFFIX if executable else ""))
                if remove_bad:
                    unlink_quiet(de.path)
                    report.removed += 1
        return report

    def _verify_one(self, path: str, oid: str, executable: bool, unseal_bad: bool) -> tuple[int, bool, bool]:
        """``(size, bytes and mode good, sealed again)`` of one cache file."""
        st = os.lstat(path)
        if not stat.S_ISREG(st.st_mode):
            return st.st_size, False, False
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            st = os.fstat(fd)
            ok = (
                stat.S_ISREG(st.st_mode)
                and stat.S_IMODE(st.st_mode) == (EXEC_MODE if executable else FILE_MODE)
                and _hash_fd(fd, st.st_size) == oid
                and os.fstat(fd).st_mtime_ns == st.st_mtime_ns  # not written while it was hashed
            )
            if ok:
                return st.st_size, True, not is_sealed(oid, st.st_mtime_ns) and self.seal(fd, oid, st.st_mtime_ns)
            if unseal_bad:
                now = time.time_ns()
                try:
                    os.utime(fd, ns=(now, now + 1 if is_sealed(oid, now) else now))
                except OSError:
                    pass  # another user's file: removed all the same; its hard links keep their mtime
            return st.st_size, False, False
        finally:
            os.close(fd)


class Publisher:
    """Adds many objects to the cache with one durability barrier per group instead of one fsync per file.

    Producers (any thread) write complete :class:`CacheTemp` files without fsyncing them and :meth:`add` them.
    A background thread takes them in groups of about :data:`GROUP_BYTES`, makes each group durable at once
    (``syncfs`` of the cache's file system, or an fsync of each file where that is unavailable) and only then
    links them to their names. So the invariant "a name is published only for complete, durable bytes" holds
    as with :meth:`Cache.ensure`, at the cost of one flush per group, and producers never wait for the disk.
    :meth:`finish` waits for everything to be published and raises the first error; :meth:`abort` drops what
    is not published yet. A crash leaves nothing (anonymous temps) or named temp files, which prune removes.

    Every queued temp holds an open descriptor: groups are also cut at a number of files that stays well within
    the process's descriptor limit (raised to its hard limit, up to 65,536, when lower).

    Example::

        pub = cache.publisher()
        try:
            for oid, size, exe in wanted:
                tmp = cache.extract_temp(store, oid, size, exe)
                if tmp is not None:
                    pub.add(tmp, oid, size, exe)
            pub.finish()
        except BaseException:
            pub.abort()
            raise
    """

    GROUP_BYTES = 128 << 20
    GROUP_FILES = 4096

    def __init__(self, cache: Cache) -> None:
        self.cache = cache
        self._cond = threading.Condition()
        self._queue: list[tuple[CacheTemp, str, int, bool]] = []
        self._bytes = 0
        self._closing = False
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._group_files = min(self.GROUP_FILES, max(16, _descriptor_limit() // 4))

    def add(self, tmp: CacheTemp, object_id: str, size: int, executable: bool) -> None:
        """Queue a complete temp file (final mode set, size checked) for publication as ``object_id``."""
        with self._cond:
            if self._error is not None:
                tmp.discard()
                raise self._error
            self._queue.append((tmp, object_id, size, executable))
            self._bytes += size
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="dvx-cache-publish", daemon=True)
                self._thread.start()
            if self._bytes >= self.GROUP_BYTES or len(self._queue) >= self._group_files:
                self._cond.notify()
            # Back-pressure: producers wait while a full second group is queued, so open descriptors stay bounded.
            while len(self._queue) >= 2 * self._group_files and self._error is None and not self._closing:
                self._cond.wait()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._closing and self._bytes < self.GROUP_BYTES and len(self._queue) < self._group_files:
                    self._cond.wait()
                group, self._queue, self._bytes = self._queue, [], 0
                last = self._closing
                self._cond.notify_all()  # producers waiting for room
            if group:
                try:
                    self._publish(group)
                except BaseException as exc:  # handed to the producers and to finish()
                    with self._cond:
                        self._error = exc
                        group, self._queue = self._queue, []
                        self._cond.notify_all()
                    for tmp, *_ in group:
                        tmp.discard()
                    return
            if last:
                return

    def _publish(self, group: list[tuple[CacheTemp, str, int, bool]]) -> None:
        done = 0
        try:
            durable.fault("cache.before-barrier")
            _make_durable(self.cache.tmp_dir, [g[0].fd for g in group])
            for tmp, oid, size, exe in group:
                # Create-only, as ensure(): a copy another process published first is kept, so a checkout that
                # hard-linked it keeps sharing the cache's inode.
                self.cache._install(tmp, oid, size, exe, absent=True)
                done += 1
        finally:
            for tmp, *_ in group[done:]:
                tmp.discard()

    def finish(self) -> None:
        """Publish everything queued; raise the first error the publishing met."""
        self._stop()
        if self._error is not None:
            raise self._error

    def abort(self) -> None:
        """Drop every temp file not published yet."""
        with self._cond:
            group, self._queue = self._queue, []
            self._cond.notify_all()
        for tmp, *_ in group:
            tmp.discard()
        self._stop()

    def _stop(self) -> None:
        with self._cond:
            self._closing = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join()


_nofile: int | None = None


def _descriptor_limit() -> int:
    """The soft limit on open files, raised first to the hard limit (at most 65,536) when below it."""
    global _nofile
    if _nofile is None:
        try:
            import resource

            soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
            want = 65536 if hard == resource.RLIM_INFINITY else min(hard, 65536)
            if soft != resource.RLIM_INFINITY and soft < want:
                try:
                    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
                    soft = want
                except (ValueError, OSError):
                    pass
            _nofile = 65536 if soft == resource.RLIM_INFINITY else int(soft)
        except ImportError:  # not POSIX
            _nofile = 512
    return _nofile


_libc: Any = None


def _c_library() -> Any:
    """libc through ctypes (Linux), or False; loaded on first use (ctypes costs a few ms to import)."""
    global _libc
    if _libc is None:
        _libc = False
        if hasattr(os, "sched_getaffinity"):  # Linux
            try:
                import ctypes

                _libc = ctypes.CDLL(None, use_errno=True)
                _libc.syncfs.argtypes = [ctypes.c_int]
            except (OSError, AttributeError):
                _libc = False
    return _libc


def _make_durable(directory: Path, fds: list[int]) -> None:
    """Flush the bytes of the open files ``fds`` to stable storage: one ``syncfs`` (Linux) of the file system
    holding ``directory``, else an fsync of each file. An error is fatal (see docs: a retried fsync can lie)."""
    libc = _c_library()
    if libc:
        import ctypes

        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            ok = libc.syncfs(fd) == 0
            code = 0 if ok else ctypes.get_errno()
        finally:
            os.close(fd)
        if ok:
            return
        if code != errno.ENOSYS:
            raise os_error(OSError(code, os.strerror(code)), "cannot flush the cache to disk")
    try:
        for fd in fds:
            os.fsync(fd)
    except OSError as exc:
        raise os_error(exc, "cannot flush the cache to disk") from exc


__all__ = [
    "Cache",
    "CacheTemp",
    "Publisher",
    "CacheInfo",
    "PruneReport",
    "VerifyReport",
    "parse_size",
    "resolve_cache_dir",
    "resolve_size_limit",
    "reflink_fd",
    "copy_fd",
]
