"""Checkouts into any folder from the shared cache, and reading one file of a revision.

``checkout_readonly(repo, "v2", "/data/v2")`` fills ``/data/v2`` with REV's files (or those matching
gitignore-style patterns) without touching the repository's working tree. As with git's pathspecs, a pattern
that matches no path of REV raises :class:`~dvx.errors.NoMatch` before anything is changed (so does a set of
patterns whose ``!`` ones leave nothing). File contents come from the shared
:class:`~dvx.cache.Cache` (extracted from the store only when missing there, in parallel), placed by:

- ``reflink``: an independent file sharing the cache's blocks (FICLONE: btrfs, XFS, bcachefs);
- ``hardlink``: the cache's own inode (same file system). The cache holds 0444 files, plus a 0555 ``.x``
  variant for executables, because a hard link cannot have a mode of its own;
- ``symlink``: a link to the cache name; works across file systems, but prune must then keep those objects,
  so such a checkout pins them (see :mod:`dvx.cache`);
- ``copy``: plain bytes;
- ``auto`` (default): reflink, else hardlink, else copy, probed once per checkout. A file that cannot be
  hard-linked (EMLINK: the inode has too many links) is copied. Empty files are always created, never linked.

Read-only checkouts have no write bits on files (0444, 0555); directories stay writable so that the folder can
be switched to another revision. ``readonly=False`` makes a writable copy (reflink or copy only: a writable
file must never share an inode with the cache).

``DEST/.dvx-checkout.json`` (the manifest) records the commit and, per path, kind, content id, mode, size, how it
was placed and its mtime. Switching DEST to another revision rewrites only the paths whose entry differs or
whose file is not on disk as recorded, deletes the paths no longer wanted and leaves other files alone. A DEST
that is not empty and has no manifest is refused unless ``force``. A tree that itself holds a root file named
``.dvx-checkout.json`` cannot be checked out this way.

Order, for crash safety and so that a bad object leaves DEST untouched: resolve and list; fill the cache (a
corrupt or missing object fails here, before DEST is modified); write the manifest marked incomplete; delete;
create directories (lstat each one, never through a symlink); place files in parallel; symlinks last; write
the final manifest. After a crash the manifest is incomplete and the next checkout rewrites every path.

Remote sources: ``fetch_missing`` is called once, before extraction, with the ids of the file contents the
cache lacks; it must make them (and their chunks) local, skipping what the store already has. A lazy clone
(config ``core.lazy_remote``) given none streams the contents its store lacks from its remote straight into the
cache, as ``dvx get`` does, and keeps no copy of them in the store. ``store.fetcher`` remains the per-object
fallback.
"""

from __future__ import annotations

import bisect
import contextlib
import errno
import fcntl
import io
import itertools
import json
import os
import re
import stat
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, Protocol, TypeVar

from . import durable, worktree
from .cache import UNSUPPORTED_ERRNOS, Cache, copy_fd, is_sealed, reflink_fd, unlink_quiet, write_all
from .errors import (
    BadPath,
    CorruptObject,
    DirtyWorkingTree,
    DvxError,
    LockedError,
    NoMatch,
    StorageError,
    UsageError,
    os_error,
)
from .ids import hasher
from .model import DIR, FILE, LINK, Commit, Entry, check_name
from .store import CHUNKED, ObjectStore
from .trees import TreeReader
from .worktree import match_paths, no_match_message, select_paths

LINK_MODES = ("auto", "reflink", "hardlink", "symlink", "copy")
MANIFEST_NAME = ".dvx-checkout.json"
MANIFEST_VERSION = 1
RO_FILE_MODE = 0o444
RO_EXEC_MODE = 0o555

Progress = Callable[[int, int], None]  # (done, total) in bytes
FetchMissing = Callable[[list[str]], None]
Item = tuple[str, int, bool]  # (content id, size, executable variant): one cache file to make
# Makes every item present in the cache (verified), using ``jobs`` threads and calling ``advance(bytes)`` as it
# goes; returns ``(bytes downloaded from a remote, requests sent)``.
Filler = Callable[["Cache", list[Item], int, Callable[[int], None]], tuple[int, int]]
ChunkReader = Callable[[str, int], bytes]  # (chunk id, size) -> the chunk's bytes, verified against its id
T = TypeVar("T")
R = TypeVar("R")


class Source(Protocol):
    """What a checkout reads from: a :class:`~dvx.repo.Repo`, or a remote-backed equivalent."""

    @property
    def store(self) -> ObjectStore: ...

    @property
    def trees(self) -> TreeReader: ...

    @property
    def config(self) -> dict[str, Any]: ...

    @property
    def root(self) -> Path: ...

    def resolve(self, rev: str) -> str: ...

    def read_commit(self, commit_id: str) -> Commit: ...


class ContentSource(Source, Protocol):
    """A source whose file contents are not in ``store`` (a remote): it fills the cache and reads files itself."""

    def fill_cache(self, cache: Cache, items: list[Item], jobs: int, advance: Callable[[int], None]) -> tuple[int, int]:
        ...

    def file_reader(self, file_id: str) -> tuple[list[tuple[str, int]], ChunkReader]:
        """The file's ``(chunk id, size)`` list and a function reading one chunk (verified)."""
        ...


class NotInRevision(DvxError, FileNotFoundError):
    """``open`` of a path that the revision does not have (also a ``FileNotFoundError``)."""


# --- the manifest -----------------------------------------------------------------------------------------


class Placed(NamedTuple):
    """One path as a checkout left it. ``target`` is what ``readlink`` must return for links and symlinks.

    A named tuple, not a dataclass: one is made per file, and a frozen dataclass costs several times more.
    """

    kind: str
    id: str
    executable: bool
    size: int
    how: str  # "reflink" | "hardlink" | "symlink" (to the cache) | "copy" | "link" (a symlink of the tree)
    mtime_ns: int
    target: str | None = None

    @property
    def shape(self) -> str:
        return "link" if self.how == "link" else "symlink" if self.how == "symlink" else "file"

    def to_json(self) -> list[Any]:
        row: list[Any] = [self.kind, self.id, int(self.executable), self.size, self.how, self.mtime_ns]
        if self.target is not None:
            row.append(self.target)
        return row

    @classmethod
    def from_json(cls, row: Any) -> Placed:
        kind, oid, exe, size, how, mtime = row[:6]
        target = row[6] if len(row) > 6 else None
        if kind not in (FILE, LINK) or how not in ("reflink", "hardlink", "symlink", "copy", "link"):
            raise ValueError(f"bad row {row!r}")
        return cls(str(kind), str(oid), bool(exe), int(size), str(how), int(mtime), None if target is None else str(target))


@dataclass
class Manifest:
    commit: str
    link: str
    readonly: bool
    cache: str
    patterns: list[str]
    complete: bool
    files: dict[str, Placed]
    pending: list[str] = field(default_factory=list)  # paths an incomplete checkout may have written
    pin: str | None = None

    def encode(self) -> bytes:
        doc = {
            "v": MANIFEST_VERSION,
            "commit": self.commit,
            "link": self.link,
            "readonly": self.readonly,
            "cache": self.cache,
            "patterns": self.patterns,
            "complete": self.complete,
            "pin": self.pin,
            "pending": self.pending,
            # Tuples built inline: this runs for every path of big checkouts (json writes tuples as arrays).
            "files": {
                p: (r.kind, r.id, 1 if r.executable else 0, r.size, r.how, r.mtime_ns)
                if r.target is None else (r.kind, r.id, 1 if r.executable else 0, r.size, r.how, r.mtime_ns, r.target)
                for p, r in sorted(self.files.items())
            },
        }
        return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


def read_manifest(dest: Path) -> Manifest | None:
    """The manifest of a checkout folder; None if it has none. Raises if it is there but unusable."""
    path = dest / MANIFEST_NAME
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise os_error(exc, f"cannot read {path}") from exc
    try:
        doc = durable.loads_json(raw)
        if doc.get("v") != MANIFEST_VERSION:
            raise ValueError(f"version {doc.get('v')!r}")
        # Paths are the checkout's own files: each is checked as a tree path is, since a checkout removes
        # and replaces what its manifest lists (a "../x" there must never reach a file outside the folder).
        for p in [*doc["files"], *doc.get("pending", [])]:
            if not isinstance(p, str):
                raise ValueError(f"path {p!r} is not a string")
            try:
                for name in p.split("/"):
                    check_name(name)
            except BadPath:
                raise ValueError(f"unsafe path {p!r}") from None
        return Manifest(
            commit=str(doc["commit"]),
            link=str(doc["link"]),
            readonly=bool(doc["readonly"]),
            cache=str(doc["cache"]),
            patterns=[str(p) for p in doc["patterns"]],
            complete=bool(doc["complete"]),
            files={str(p): Placed.from_json(r) for p, r in doc["files"].items()},
            pending=[str(p) for p in doc.get("pending", [])],
            pin=None if doc.get("pin") is None else str(doc["pin"]),
        )
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise DvxError(f"{path} is damaged ({exc}); check out again with --force") from None


# --- selection ------------------------------------------------------------------------------------------------


# --- report -----------------------------------------------------------------------------------------------------


@dataclass
class CheckoutReport:
    dest: Path
    commit: str
    link: str  # the method chosen (``auto`` resolved); some files may have fallen back to copy
    readonly: bool
    files: int = 0
    written: int = 0
    kept: int = 0
    removed: int = 0
    objects_extracted: int = 0  # new cache objects made from the store (what a cold cache costs)
    bytes_extracted: int = 0
    bytes_fetched: int = 0  # downloaded from a remote for this checkout (payloads, and what lay between them)
    requests: int = 0  # storage requests sent to the remote for file contents
    placed: dict[str, int] = field(default_factory=dict)  # how many files per method
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "dest": str(self.dest),
            "commit": self.commit,
            "link": self.link,
            "readonly": self.readonly,
            "files": self.files,
            "written": self.written,
            "kept": self.kept,
            "removed": self.removed,
            "objects_extracted": self.objects_extracted,
            "bytes_extracted": self.bytes_extracted,
            "bytes_fetched": self.bytes_fetched,
            "requests": self.requests,
            "placed": dict(self.placed),
            "warnings": list(self.warnings),
        }


# --- helpers ------------------------------------------------------------------------------------------------------


def parallel(fn: Callable[[T], R], items: Sequence[T], jobs: int, *, batch: int | None = None) -> list[R]:
    """``[fn(x) for x in items]`` on ``jobs`` threads; the first error cancels what has not started and is raised.

    Items go to the threads in batches (default: about 8 per thread), so that cheap per-file calls do not pay
    a future each; pass ``batch=1`` for few, expensive items.
    """
    if len(items) <= 1 or jobs <= 1:
        return [fn(x) for x in items]
    size = batch or max(1, len(items) // (jobs * 8))
    batches = [items[i : i + size] for i in range(0, len(items), size)]

    def run(part: Sequence[T]) -> list[R]:
        return [fn(x) for x in part]

    with ThreadPoolExecutor(max_workers=min(jobs, len(batches))) as pool:
        futures: list[Future[list[R]]] = [pool.submit(run, b) for b in batches]
        done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        failed = next((f for f in futures if f in done and f.exception() is not None), None)
        if failed is not None:
            for f in futures:
                f.cancel()
            wait(futures)
            exc = failed.exception()
            assert exc is not None
            raise exc
        return [r for f in futures for r in f.result()]


def drain(fn: Callable[[T], None], items: Iterable[T], jobs: int) -> None:
    """``fn(x)`` for every item, on ``jobs`` threads that take the items one by one in order (so big items
    put first keep every thread busy to the end); the first error stops the others and is raised."""
    it = iter(items)
    lock = threading.Lock()
    errors: list[BaseException] = []

    def worker() -> None:
        while not errors:
            with lock:
                x = next(it, _END)
            if x is _END:
                return
            try:
                fn(x)  # type: ignore[arg-type]
            except BaseException as exc:  # handed to the caller below
                errors.append(exc)
                return

    if jobs <= 1:
        for x in it:
            fn(x)
        return
    threads = [threading.Thread(target=worker, name=f"dvx-fill-{i}", daemon=True) for i in range(jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


_END = object()


def store_filler(store: ObjectStore, fetch_missing: FetchMissing | None = None) -> Filler:
    """Fill the cache from a local object store (after ``fetch_missing`` made absent contents local)."""

    def fill(cache: Cache, items: list[Item], jobs: int, advance: Callable[[int], None]) -> tuple[int, int]:
        if fetch_missing is not None:
            # One batch for the remote; it skips what the local store already has (chunks included).
            fetch_missing(sorted({oid for oid, _, _ in items}))
        pub = cache.publisher()

        def one(item: Item) -> None:
            tmp = cache.extract_temp(store, *item, looked=True)  # the checkout's lookup found it absent
            if tmp is not None:
                pub.add(tmp, *item)
            advance(item[1])

        try:
            drain(one, items, jobs)
            pub.finish()
        except BaseException:
            pub.abort()
            raise
        return 0, 0

    return fill


_umask_value: int | None = None


def _umask() -> int:
    global _umask_value
    if _umask_value is None:
        mask = os.umask(0o022)
        os.umask(mask)
        _umask_value = mask
    return _umask_value


def _lock_dir(path: Path, timeout: float = 30.0) -> int:
    """An fd on directory ``path`` holding an exclusive flock (closing it releases the lock)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise os_error(exc, f"cannot open {path}") from exc
    deadline = time.monotonic() + timeout
    delay = 0.01
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if time.monotonic() >= deadline:
                os.close(fd)
                raise LockedError(f"{path} is being checked out by another dvx process; try again later") from None
            time.sleep(delay)
            delay = min(delay * 2, 0.2)


_temp_counter = itertools.count()


def _temp_beside(final: str) -> str:
    """A temp name in ``final``'s folder, unique in this process (the folder's flock excludes other ones)."""
    return f"{final.rpartition('/')[0]}/.dvx.{os.getpid()}.{next(_temp_counter)}.tmp"


def _replace(tmp: str, final: str) -> None:
    """Rename ``tmp`` over ``final`` (an empty directory there is removed first), as a checkout does."""
    try:
        durable.fault("readonly.before-replace")
        worktree._replace(Path(tmp), Path(final))  # noqa: SLF001 - same package, one rule for both checkouts
    finally:
        # rename() of two links to one inode succeeds and does nothing: the temp name must still go.
        unlink_quiet(tmp)


class _NoReflink(Exception):
    pass


@dataclass
class _Plan:
    keep: dict[str, Placed] = field(default_factory=dict)
    writes: dict[str, Entry] = field(default_factory=dict)
    deletes: list[str] = field(default_factory=list)
    dirs: set[str] = field(default_factory=set)  # folders the writes need


# --- checkout -------------------------------------------------------------------------------------------------------


class _Checkout:
    def __init__(
        self,
        source: Source,
        cache: Cache,
        dest: Path,
        *,
        link: str,
        readonly: bool,
        force: bool,
        jobs: int,
        filler: Filler,
        progress: Progress | None,
    ) -> None:
        self.source = source
        self.filler = filler
        self.cache = cache
        self.dest = dest
        self._dest = str(dest)
        self.link = link
        self.readonly = readonly
        self.force = force
        self.jobs = jobs
        self.progress = progress
        self.method = "copy"
        self.cached_mtime: dict[tuple[str, bool], int] = {}
        self._lock = threading.Lock()
        self._done = 0
        self._total = 0
        self.placed: dict[str, int] = {}

    def full(self, path: str) -> str:
        # Strings, not pathlib, in per-file code: Path building costs more than the syscalls it names.
        return f"{self._dest}/{path}"

    # -- modes --------------------------------------------------------------------------------------------

    def file_mode(self, executable: bool) -> int:
        if self.readonly:
            return RO_EXEC_MODE if executable else RO_FILE_MODE
        return (0o777 if executable else 0o666) & ~_umask()

    def variant(self, e: Entry) -> bool:
        """Which cache variant a file comes from: the 0555 one only when the inode itself is shared."""
        return e.executable and self.method in ("hardlink", "symlink")

    def shape(self, e: Entry) -> str:
        if e.kind == LINK:
            return "link"
        return "symlink" if self.method == "symlink" and e.size > 0 else "file"

    def probe(self) -> str:
        """The placement method: the requested one, checked to work here, or the best ``auto`` finds."""
        if self.link in ("copy", "symlink"):
            return self.link
        wanted = [self.link] if self.link != "auto" else ["reflink", "hardlink"] if self.readonly else ["reflink"]
        try:
            self.cache.setup()
            src, fd = self.cache.new_temp()
        except StorageError:
            if self.link != "auto":
                raise
            return "copy"  # a cache we cannot write to (another user's): its files can only be copied
        try:
            try:
                write_all(fd, b"dvx")
            finally:
                os.close(fd)
            for method in wanted:
                if self._try(method, src):
                    return method
        finally:
            unlink_quiet(src)
        if self.link == "auto":
            return "copy"
        if self.link == "reflink":
            raise StorageError(
                f"--link reflink: {self.dest} cannot share blocks with the cache {self.cache.root} (the file system "
                "has no reflinks, or they are on different file systems); use --link hardlink or copy"
            )
        raise StorageError(
            f"--link hardlink: cannot hard-link from the cache {self.cache.root} into {self.dest} (different file "
            "systems, or the cache belongs to another user); use --link copy or symlink, or set DVX_CACHE_DIR to a "
            "folder on the same file system"
        )

    def _try(self, method: str, src: Path) -> bool:
        probe = durable.temp_name(self.dest, "dvx-probe")
        try:
            if method == "hardlink":
                os.link(src, probe)
                return True
            fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            try:
                with open(src, "rb") as fh:
                    reflink_fd(fh.fileno(), fd)
                return True
            finally:
                os.close(fd)
        except OSError as exc:
            if exc.errno in UNSUPPORTED_ERRNOS or exc.errno == errno.EMLINK:
                return False
            raise os_error(exc, f"cannot write in {self.dest}") from exc
        finally:
            unlink_quiet(probe)

    # -- plan ------------------------------------------------------------------------------------------------

    def _lstat(self, path: str) -> os.stat_result | None:
        try:
            return os.lstat(self.full(path))
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            raise os_error(exc, f"cannot read {self.full(path)}") from exc

    def _as_recorded(self, path: str, rec: Placed) -> os.stat_result | None:
        """The file's stat if it is still what ``rec`` says was put there, else None."""
        st = self._lstat(path)
        if st is None or st.st_mtime_ns != rec.mtime_ns:
            return None
        if rec.shape == "file":
            return st if stat.S_ISREG(st.st_mode) and st.st_size == rec.size else None
        if not stat.S_ISLNK(st.st_mode):
            return None
        try:
            return st if os.readlink(self.full(path)) == rec.target else None
        except OSError:
            return None

    def keeps(self, path: str, e: Entry, rec: Placed) -> bool:
        """True when ``path`` already holds ``e`` the way this checkout would put it there."""
        shape = self.shape(e)
        if (rec.kind, rec.id, rec.executable, rec.size, rec.shape) != (e.kind, e.id, e.executable, e.size, shape):
            return False
        if shape == "link" and rec.target != e.target:
            return False
        if shape == "symlink" and rec.target != self.cache.name(e.id, self.variant(e)):
            return False
        if rec.how == "hardlink" and not is_sealed(rec.id, rec.mtime_ns):
            # The cache's inode, written into (through any of its links) before it was recorded, or never sealed:
            # link it again from the cache, which re-hashes it and replaces it when bad.
            return False
        st = self._as_recorded(path, rec)
        if st is None:
            return False
        if shape == "file":
            return stat.S_IMODE(st.st_mode) == self.file_mode(e.executable)
        if shape == "symlink":
            return self.cache.lookup(e.id, e.size, self.variant(e)) is not None
        return True

    # -- phases -----------------------------------------------------------------------------------------------

    def fill(self, writes: dict[str, Entry]) -> tuple[int, int]:
        """Make every content the checkout needs present in the cache (extracting in parallel); returns
        ``(bytes downloaded, requests)`` when the contents came from a remote."""
        need: dict[tuple[str, bool], int] = {}
        for e in writes.values():
            if e.kind == FILE and e.size > 0:
                need[(e.id, self.variant(e))] = e.size
        keys = list(need)
        # One thread: an lstat costs ~3 us, less than handing it to another thread (measured: 2 and 4 threads slower).
        found = self.cache.lookup_many([(oid, need[(oid, exe)], exe) for oid, exe in keys])
        missing = []
        for k, st in zip(keys, found):
            if st is None:
                missing.append(k)
            else:
                self.cached_mtime[k] = st.st_mtime_ns  # a hard link to it will show this mtime
        if not missing:
            return (0, 0)
        self._total += sum(need[k] for k in missing)
        # Big objects first, so that the threads stay busy to the end.
        items = [(oid, need[(oid, exe)], exe) for oid, exe in sorted(missing, key=lambda k: -need[k])]
        return self.filler(self.cache, items, self.jobs, self._advance)

    def refill(self, e: Entry, variant: bool) -> None:
        """Put one content back into the cache (a concurrent prune evicted it since the fill)."""
        self.filler(self.cache, [(e.id, e.size, variant)], 1, lambda n: None)

    def _advance(self, n: int) -> None:
        with self._lock:
            self._done += n
            done, total = self._done, self._total
        if self.progress is not None:
            self.progress(done, total)

    def remove(self, deletes: list[str], needed_dirs: set[str]) -> None:
        """Delete paths a previous checkout put here, never through a symlink; then the emptied folders."""
        parents: set[str] = set()
        for path in deletes:
            parts = path.split("/")
            ok = True
            for i in range(1, len(parts)):
                st = self._lstat("/".join(parts[:i]))
                if st is None or not stat.S_ISDIR(st.st_mode):
                    ok = False  # the folder is gone or replaced by something else: not ours to touch
                    break
            if not ok:
                continue
            try:
                os.unlink(self.full(path))
            except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
                continue
            except OSError as exc:
                raise os_error(exc, f"cannot delete {self.full(path)}") from exc
            parent = path.rpartition("/")[0]
            while parent and parent not in parents:
                parents.add(parent)
                parent = parent.rpartition("/")[0]
        for d in sorted(parents - needed_dirs, key=lambda d: -d.count("/")):
            try:
                os.rmdir(self.full(d))
            except OSError:
                continue  # not empty (kept files, or someone else's): leave it

    def make_dirs(self, dirs: set[str]) -> None:
        # Shallow first: each parent was just checked to be a real directory, so lstat never follows a link.
        for d in sorted(dirs, key=lambda d: (d.count("/"), d)):
            st = self._lstat(d)
            if st is None:
                try:
                    os.mkdir(self.full(d), 0o777)
                except OSError as exc:
                    raise os_error(exc, f"cannot create directory {self.full(d)}") from exc
            elif not stat.S_ISDIR(st.st_mode):
                raise BadPath(
                    f"cannot check out into {self.full(d)}: a file or symlink that dvx did not put there is in the way"
                )

    def place(self, item: tuple[str, Entry]) -> tuple[str, Placed]:
        path, e = item
        final = self.full(path)
        try:
            if e.kind == LINK:
                assert e.target is not None
                self._symlink(e.target, final)
                how, target = "link", e.target
            elif e.size == 0:
                self._write_copy(None, final, e)
                how, target = "copy", None
            else:
                how, target = self._place_content(final, e)
            mtime = os.lstat(final).st_mtime_ns
        except OSError as exc:
            raise os_error(exc, f"cannot write {final}") from exc
        with self._lock:
            self.placed[how] = self.placed.get(how, 0) + 1
        self._advance(e.size if e.kind == FILE else 0)
        return path, Placed(e.kind, e.id, e.executable, e.size, how, mtime, target)

    def _place_content(self, final: str, e: Entry) -> tuple[str, str | None]:
        variant = self.variant(e)
        src = self.cache.name(e.id, variant)
        for attempt in range(5):
            try:
                return self._place_from(src, final, e)
            except FileNotFoundError as exc:
                # Evicted by a concurrent prune since the fill: extract it again.
                if attempt == 4 or exc.filename != src:
                    raise
                self.refill(e, variant)
        raise AssertionError("unreachable")

    def _place_from(self, src: str, final: str, e: Entry) -> tuple[str, str | None]:
        if self.method == "symlink":
            self._symlink(src, final)
            return "symlink", src
        if self.method == "hardlink":
            try:
                self._hardlink(src, final)
                return "hardlink", None
            except OSError as exc:
                # EMLINK: this inode has too many links (ext4: 65000); another file system under DEST: copy.
                if exc.errno != errno.EMLINK and not (self.link == "auto" and exc.errno in UNSUPPORTED_ERRNOS):
                    raise
        elif self.method == "reflink":
            try:
                self._write_copy(src, final, e, reflink=True)
                return "reflink", None
            except _NoReflink:
                if self.link != "auto":
                    raise StorageError(f"--link reflink: cannot share blocks with the cache for {final}") from None
        self._write_copy(src, final, e)
        return "copy", None

    @staticmethod
    def _create(make: Callable[[str], None], final: str) -> None:
        """``make(final)``; if something is there already, ``make`` a temp beside it and rename it over."""
        try:
            make(final)
            return
        except FileExistsError:
            pass
        tmp = _temp_beside(final)
        make(tmp)
        _replace(tmp, final)

    def _hardlink(self, src: str, final: str) -> None:
        self._create(lambda name: os.link(src, name), final)

    def _symlink(self, target: str, final: str) -> None:
        self._create(lambda name: os.symlink(target, name), final)

    def _write_copy(self, src: str | None, final: str, e: Entry, *, reflink: bool = False) -> None:
        tmp = _temp_beside(final)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            try:
                if src is not None:
                    sfd = os.open(src, os.O_RDONLY | os.O_CLOEXEC)
                    try:
                        if reflink:
                            try:
                                reflink_fd(sfd, fd)
                            except OSError as exc:
                                if exc.errno in UNSUPPORTED_ERRNOS:
                                    raise _NoReflink() from exc
                                raise
                        else:
                            copy_fd(sfd, fd)
                    finally:
                        os.close(sfd)
                n = os.fstat(fd).st_size
                if n != e.size:
                    raise CorruptObject(f"cached content {e.id} has {n} bytes, the tree says {e.size}", e.id)
                os.fchmod(fd, self.file_mode(e.executable))
            finally:
                os.close(fd)
            _replace(tmp, final)
        except BaseException:
            unlink_quiet(tmp)
            raise

    def ensure_symlink_targets(self, want: dict[str, Entry]) -> None:
        """Called once the pin is written: wait out a prune that listed pins before ours existed, then put back
        whatever it evicted. Any later prune sees the pin, so the targets stay."""
        self.cache.prune_barrier()
        for e in want.values():
            if self.shape(e) == "symlink" and self.cache.lookup(e.id, e.size, self.variant(e)) is None:
                self.refill(e, self.variant(e))

    def write_manifest(self, manifest: Manifest) -> None:
        """Replace the manifest atomically; the final one durably (fsync), the "incomplete" marker without: it
        only saves work after a power cut, since every kept path is checked against the disk anyway (an fsync
        there costs up to a fifth of a second on a busy disk)."""
        path = self.dest / MANIFEST_NAME
        if manifest.complete:
            durable.write_replace_file(path, manifest.encode(), site="checkout-manifest")
            return
        tmp = _temp_beside(str(path))
        try:
            with open(tmp, "xb") as fh:
                fh.write(manifest.encode())
            os.replace(tmp, path)
        except OSError as exc:
            unlink_quiet(tmp)
            raise os_error(exc, f"cannot write {path}") from exc

    # -- the whole ----------------------------------------------------------------------------------------

    def plan(self, old: Manifest | None, want: dict[str, Entry]) -> _Plan:
        """What stays, what is written, what goes; refuses to clobber edits in a writable checkout."""
        plan = _Plan()
        trusted = old.files if old is not None and old.complete else {}
        for path, e in want.items():
            rec = trusted.get(path)
            if rec is not None and self.keeps(path, e, rec):
                plan.keep[path] = rec
            else:
                plan.writes[path] = e
        previous = set(old.files) | set(old.pending) if old is not None else set()
        plan.deletes = sorted((p for p in previous if p not in want), key=lambda p: (-p.count("/"), p))
        if old is not None and old.complete and not old.readonly and not self.force:
            dirty = [
                p for p in sorted(set(plan.writes) | set(plan.deletes))
                if p in old.files and self._lstat(p) is not None and self._as_recorded(p, old.files[p]) is None
            ]
            if dirty:
                shown = ", ".join(dirty[:10]) + (f" and {len(dirty) - 10} more" if len(dirty) > 10 else "")
                raise DirtyWorkingTree(f"files changed in {self.dest} would be overwritten: {shown} (use --force)")
        for p in plan.writes:
            parent = p.rpartition("/")[0]
            while parent and parent not in plan.dirs:
                plan.dirs.add(parent)
                parent = parent.rpartition("/")[0]
        return plan

    def apply(self, plan: _Plan, want: dict[str, Entry]) -> dict[str, Placed]:
        """Delete, make folders, place files in parallel, then symlinks (no file is written through one)."""
        self.remove(plan.deletes, plan.dirs)
        self.make_dirs(plan.dirs)
        ordered = sorted(plan.writes.items())
        files = [(p, e) for p, e in ordered if e.kind == FILE]
        links = [(p, e) for p, e in ordered if e.kind == LINK]
        place = self.link_batch if self.method == "hardlink" else self.place_batch
        # Contiguous batches: one thread works through one folder at a time (a folder's entries are added under
        # its lock, so threads in different folders do not wait for each other).
        batches = [files[i : i + 256] for i in range(0, len(files), 256)]
        # Hard links are pure metadata syscalls: one thread per core (measured on 2 cores, 20,000 links: 0.21 s
        # with 1 thread, 0.12 s with 2, 0.20 s with 4, as more threads only contend in the kernel).
        jobs = min(self.jobs, os.cpu_count() or 2) if self.method == "hardlink" else self.jobs
        placed = {p: r for part in parallel(place, batches, jobs, batch=1) for p, r in part}
        placed.update(self.place(item) for item in links)
        return placed

    def place_batch(self, items: list[tuple[str, Entry]]) -> list[tuple[str, Placed]]:
        return [self.place(item) for item in items]

    def link_batch(self, items: list[tuple[str, Entry]]) -> list[tuple[str, Placed]]:
        """:meth:`place` for hard links, with the common case inlined: a plain ``link`` into an empty place,
        whose mtime is the cache file's, known from the fill (no ``lstat`` afterwards)."""
        out: list[tuple[str, Placed]] = []
        names, mtimes, dest = self.cache.name, self.cached_mtime, self._dest
        done = linked = 0
        for path, e in items:
            mtime = mtimes.get((e.id, e.executable)) if e.size > 0 else None
            if mtime is not None:
                try:
                    os.link(names(e.id, e.executable), f"{dest}/{path}")
                    out.append((path, Placed(FILE, e.id, e.executable, e.size, "hardlink", mtime)))
                    done += e.size
                    linked += 1
                    continue
                except OSError:
                    pass  # something in the way, the object evicted meanwhile, EMLINK...: the general path
            out.append(self.place((path, e)))
        with self._lock:
            self.placed["hardlink"] = self.placed.get("hardlink", 0) + linked
        self._advance(done)
        return out

    def run(self, commit_id: str, want: dict[str, Entry], patterns: list[str]) -> CheckoutReport:
        _remove_leftovers(self.dest)  # of a checkout killed here: its probe, its manifest's temp
        old = read_manifest(self.dest) if not self.force else _read_manifest_quiet(self.dest)
        if old is not None and not old.complete:
            # Killed while placing files: its file temps are beside the paths it was writing (the manifest it
            # left lists them), and nowhere else, since it places nothing before that manifest is on disk.
            for folder in sorted({p.rpartition("/")[0] for p in old.pending} - {""}):
                sub = _own_subfolder(self.dest, folder)
                if sub is not None:
                    _remove_leftovers(sub)
        if old is None and not self.force and _non_empty(self.dest):
            raise UsageError(f"{self.dest} is not empty and is not a dvx checkout; choose an empty folder or use --force")
        self.method = self.probe()
        report = CheckoutReport(self.dest, commit_id, self.method, self.readonly, files=len(want))
        plan = self.plan(old, want)
        self._total = sum(e.size for e in plan.writes.values() if e.kind == FILE)

        # Every content into the cache first: a corrupt or missing object stops here, DEST untouched.
        before = (self.cache.extracted, self.cache.extracted_bytes, self.cache.unsealed)
        report.bytes_fetched, report.requests = self.fill(plan.writes)
        report.objects_extracted = self.cache.extracted - before[0]
        report.bytes_extracted = self.cache.extracted_bytes - before[1]
        if self.cache.unsealed > before[2]:
            report.warnings.append(
                f"{self.cache.unsealed - before[2]} cache file(s) could not be sealed (another user's, or a file "
                "system that does not keep the mtimes dvx sets): they are re-hashed at every use"
            )

        manifest = Manifest(
            commit=commit_id, link=self.method, readonly=self.readonly, cache=str(self.cache.root), patterns=patterns,
            complete=False, files=dict(old.files) if old is not None else {},
            pending=sorted(set(plan.writes) | (set(old.pending) if old is not None else set())),
        )
        pinned = {e.id for e in want.values() if self.shape(e) == "symlink"}
        if self.method == "symlink":
            old_pinned = {r.id for r in old.files.values() if r.how == "symlink"} if old is not None else set()
            manifest.pin = self.cache.pin(self.dest / MANIFEST_NAME, pinned | old_pinned)
        self.write_manifest(manifest)  # marked incomplete: a crash from here on makes the next run rewrite all
        if self.method == "symlink":
            self.ensure_symlink_targets(want)

        placed = self.apply(plan, want)

        manifest.files, manifest.complete, manifest.pending = {**plan.keep, **placed}, True, []
        if self.method == "symlink":
            self.cache.pin(self.dest / MANIFEST_NAME, pinned)
        self.write_manifest(manifest)
        if old is not None and old.pin is not None and manifest.pin is None:
            self.cache.unpin(old.pin)

        report.written, report.kept, report.removed = len(placed), len(plan.keep), len(plan.deletes)
        report.placed = dict(self.placed)
        if self.cache.size_limit is not None and report.objects_extracted:
            try:
                self.cache.prune(keep={e.id for e in want.values() if e.kind == FILE}, wait=False)
            except DvxError as exc:
                report.warnings.append(f"cache not pruned: {exc}")
        return report


def _non_empty(path: Path) -> bool:
    with os.scandir(path) as it:
        return any(True for _ in it)


# The temp names a checkout makes in the folder it writes: the link-method probe, a manifest or file temp.
_LEFTOVER = re.compile(r"\.dvx(?:-probe)?\.(\d+)\.[\d.]+\.tmp")


def _own_subfolder(dest: Path, rel: str) -> Path | None:
    """``dest/rel`` if every component of ``rel`` is a real folder (no symbolic link leads out of ``dest``)."""
    path = dest
    for name in rel.split("/"):
        path = path / name
        try:
            if not stat.S_ISDIR(os.lstat(path).st_mode):
                return None
        except OSError:
            return None
    return path


def _remove_leftovers(dest: Path) -> None:
    """Remove from the folder ``dest`` the temps of checkouts whose process is gone (killed there), so that
    a folder holding nothing else counts as empty again and nothing dvx made is left among the data. Called for
    the top of a checkout, and for the folders a killed checkout was writing into."""
    for name in durable.names_matching(dest, _LEFTOVER):
        pid = int(_LEFTOVER.fullmatch(name).group(1))  # type: ignore[union-attr]
        if pid == os.getpid():
            continue
        try:
            os.kill(pid, 0)
            continue  # its process still runs (or the pid was reused): leave it
        except ProcessLookupError:
            pass
        except OSError:
            continue
        with contextlib.suppress(OSError):
            os.unlink(dest / name)


def _read_manifest_quiet(dest: Path) -> Manifest | None:
    try:
        return read_manifest(dest)
    except DvxError:
        return None  # --force: a damaged manifest is ignored, every path is rewritten


def _lazy_filler(source: Source) -> Filler | None:
    """For a lazy clone, a filler that takes what the local store holds from it and streams the rest from the
    clone's remote straight into the cache, as ``dvx get`` does: no copy of those contents lands in the store
    (a training node would otherwise keep every file twice, compressed in the store and whole in the cache)."""
    from .repo import Repo

    if not isinstance(source, Repo):
        return None
    name = source.config.get("core", {}).get("lazy_remote")
    if not name or name not in source.config.get("remotes", {}):
        return None
    repo = source
    local = store_filler(repo.store)

    def fill(cache: Cache, items: list[Item], jobs: int, advance: Callable[[int], None]) -> tuple[int, int]:
        here: list[Item] = []
        away: list[Item] = []
        for it in items:
            (here if _held(repo.store, it[0]) else away).append(it)
        if here:
            local(cache, here, jobs, advance)
        if not away:
            return 0, 0
        from .source import RemoteContent
        from .transfer import view_for

        view = view_for(repo, name)
        view.require_format()
        view.load_indexes()
        where = view.where()
        manifests = [oid for oid, _, _ in away
                     if (hit := where.get(bytes.fromhex(oid))) is not None and hit[1].type == CHUNKED
                     and not repo.store.has(oid)]
        if manifests:  # metadata: into the store, in one batch (the chunks they list go to the cache)
            with repo.lock:
                view.fetch_objects(manifests)
            repo.store.refresh()
        return RemoteContent(view.backend, where, repo.store).fill(cache, away, jobs, advance)

    return fill


def _held(store: ObjectStore, file_id: str) -> bool:
    """True if the store holds all of a file's content (a blob, or a manifest and every chunk it lists)."""
    info = store.info(file_id)
    if info is None:
        return False
    if info.type != CHUNKED:
        return True
    return all(store.has(c) for c, _ in store.file_chunks(file_id))


def _default_jobs() -> int:
    # Placement is syscall-bound and extraction CPU-bound (zstd, BLAKE3 release the GIL): past two threads
    # per core they only contend for the GIL (measured: 8 threads on 2 cores slower than 4).
    return min(16, 2 * (os.cpu_count() or 2))


def checkout_to(
    source: Source,
    rev: str,
    dest: str | os.PathLike[str],
    *,
    patterns: Sequence[str] | None = None,
    link: str = "auto",
    readonly: bool = True,
    force: bool = False,
    cache: Cache | None = None,
    jobs: int | None = None,
    fetch_missing: FetchMissing | None = None,
    progress: Progress | None = None,
) -> CheckoutReport:
    """Materialize ``rev`` (or the paths matching ``patterns``) into the folder ``dest``; see the module doc.

    A pattern that matches no path of ``rev`` (any one of several, as git checks pathspecs) raises
    :class:`~dvx.errors.NoMatch` and leaves ``dest`` as it was.

    Example::

        report = checkout_to(repo, "v2", "/scratch/ds-v2", patterns=["images/**"], link="auto")
        report.written, report.kept, report.link
    """
    if link not in LINK_MODES:
        raise UsageError(f"unknown link mode {link!r} (choose from {', '.join(LINK_MODES)})")
    if not readonly and link in ("hardlink", "symlink"):
        raise UsageError(f"--link {link} needs --readonly: a writable file must not share the cache's bytes")
    jobs = jobs if jobs is not None else _default_jobs()
    if jobs < 1:
        raise UsageError("jobs must be >= 1")
    if cache is None:
        own = getattr(source, "cache", None)  # a remote source keeps its metadata in the cache it names
        cache = own if isinstance(own, Cache) else Cache.open(source.config, source.root)
    filler: Filler
    if hasattr(source, "fill_cache"):
        filler = source.fill_cache
    else:
        lazy = _lazy_filler(source) if fetch_missing is None else None
        filler = lazy if lazy is not None else store_filler(source.store, fetch_missing)
    with worktree.gc_paused():
        commit_id = source.resolve(rev)
        tree = source.read_commit(commit_id).tree
        pats = list(patterns or [])
        want, unmatched = match_paths(source.trees.walk(tree), pats)
        if unmatched or (pats and not want):
            raise NoMatch(no_match_message(commit_id, pats, unmatched))
        if MANIFEST_NAME in want:
            raise BadPath(
                f"the revision has a file named {MANIFEST_NAME} at its root, which checkouts to a folder reserve"
            )
        return _checkout_into(source, cache, filler, commit_id, want, pats, Path(dest), link=link, readonly=readonly,
                              force=force, jobs=jobs, progress=progress)


def _checkout_into(
    source: Source, cache: Cache, filler: Filler, commit_id: str, want: dict[str, Entry], pats: list[str],
    dest: Path, *, link: str, readonly: bool, force: bool, jobs: int, progress: Progress | None,
) -> CheckoutReport:
    target = dest.absolute()
    created = not os.path.lexists(target)
    try:
        target.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise BadPath(f"{target} exists and is not a directory") from None
    except OSError as exc:
        raise os_error(exc, f"cannot create {target}") from exc
    target = target.resolve()  # one name per folder: the manifest's pin is keyed by it
    fd = _lock_dir(target)
    try:
        job = _Checkout(
            source, cache, target, link=link, readonly=readonly, force=force, jobs=jobs,
            filler=filler, progress=progress,
        )
        return job.run(commit_id, want, pats)
    except BaseException:
        if created:
            try:
                os.rmdir(target)  # a failure before anything was written leaves no folder behind
            except OSError:
                pass
        raise
    finally:
        os.close(fd)


def checkout_readonly(
    repo: Source,
    rev: str,
    dest: str | os.PathLike[str],
    patterns: Sequence[str] | None = None,
    link: str = "auto",
    *,
    force: bool = False,
    cache: Cache | None = None,
) -> Path:
    """Read-only checkout of ``rev`` into ``dest``; returns the folder. See :func:`checkout_to`."""
    return checkout_to(repo, rev, dest, patterns=patterns, link=link, force=force, cache=cache).dest


# --- the job API: dvx.checkout and dvx.open ---------------------------------------------------------------------


def _open_source(url_or_repo: Any, cache: Cache | None = None) -> tuple[Source, Callable[[], None]]:
    """A source and the function that releases it (a no-op for a Repo the caller owns).

    A string is a repository path when ``PATH/.dvx`` exists, else a remote URL (any remote URL or folder path;
    see :mod:`dvx.source`), whose metadata is brought up to date now.
    """
    if isinstance(url_or_repo, (str, os.PathLike)):
        text = os.fspath(url_or_repo)
        from .source import is_repository, open_remote_source

        if is_repository(text):
            from .repo import Repo

            repo = Repo(text)
            return repo, repo.close
        remote = open_remote_source(text, cache=cache)
        return remote, remote.close
    if hasattr(url_or_repo, "store") and hasattr(url_or_repo, "resolve"):
        return url_or_repo, _nothing
    raise UsageError(f"expected a Repo, a repository path or a URL, not {type(url_or_repo).__name__}")


def _nothing() -> None:
    pass


def checkout(
    url_or_repo: Any,
    rev: str,
    dest: str | os.PathLike[str],
    readonly: bool = True,
    patterns: Sequence[str] | None = None,
    *,
    link: str = "auto",
    force: bool = False,
) -> Path:
    """Materialize ``rev`` of a repository (a :class:`~dvx.Repo` or its path) into ``dest``; returns ``dest``.

    Example (a training job)::

        root = dvx.checkout("/repos/imagenet", "v3", "/scratch/imagenet-v3", patterns=["train/**"])
    """
    source, release = _open_source(url_or_repo)
    try:
        return checkout_to(source, rev, dest, patterns=patterns, link=link, readonly=readonly, force=force).dest
    finally:
        release()


class VerifiedFile(io.RawIOBase):
    """One file of a revision, read chunk by chunk from the store; every chunk is verified against its id.

    Reading sequentially from the start to the end also verifies the whole content against the file id (the
    last read raises :class:`~dvx.errors.CorruptObject` if the chunk list was tampered with); a read after a
    seek is verified chunk by chunk only. At most one chunk (<= 4 MiB by default) is held in memory.
    """

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"at {self._pos}"
        return f"<dvx file {self.name!r} ({self.size} bytes, {self.id[:12]}, {state})>"

    def __init__(
        self, file_id: str, size: int, name: str, chunks: list[tuple[str, int]], read_chunk: ChunkReader,
        on_close: Callable[[], None],
    ) -> None:
        super().__init__()
        self._read_chunk = read_chunk
        self.id = file_id
        self.name = name
        self.size = size
        self._on_close = on_close
        self._current: tuple[int, bytes] | None = None
        self._pos = 0
        self._hash = hasher()
        self._hashed = 0  # the hash covers [0, _hashed): only reads that continue it are hashed
        self._starts: list[int] = []
        try:
            self._chunks = chunks
            pos = 0
            for _, n in self._chunks:
                self._starts.append(pos)
                pos += n
            if pos != size:
                raise CorruptObject(f"file {file_id} ({name}) has {pos} bytes, its tree entry says {size}", file_id)
        except BaseException:
            self.close()
            raise
        self._single = len(self._chunks) == 1 and self._chunks[0][0] == file_id

    @property
    def mode(self) -> str:
        return "rb"

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        self._check_open()
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self._check_open()
        if whence == io.SEEK_SET:
            pos = offset
        elif whence == io.SEEK_CUR:
            pos = self._pos + offset
        elif whence == io.SEEK_END:
            pos = self.size + offset
        else:
            raise ValueError(f"invalid whence ({whence})")
        if pos < 0:
            raise OSError(errno.EINVAL, "negative seek position")
        self._pos = pos
        return pos

    def _check_open(self) -> None:
        if self.closed:
            raise ValueError("I/O operation on closed file")

    def _chunk(self, index: int) -> bytes:
        if self._current is not None and self._current[0] == index:
            return self._current[1]
        chunk_id, n = self._chunks[index]
        data = self._read_chunk(chunk_id, n)  # verified against chunk_id
        if len(data) != n:
            raise CorruptObject(f"chunk {chunk_id} of file {self.id} has the wrong size", self.id)
        self._current = (index, data)
        return data

    def readinto(self, buffer: Any) -> int:
        """Fill ``buffer`` as far as the file goes (across chunks: a short read means end of file)."""
        self._check_open()
        view = memoryview(buffer).cast("B")
        filled = 0
        while filled < len(view) and self._pos < self.size:
            index = bisect.bisect_right(self._starts, self._pos) - 1
            data = self._chunk(index)
            offset = self._pos - self._starts[index]
            n = min(len(view) - filled, len(data) - offset)
            piece = memoryview(data)[offset : offset + n]
            view[filled : filled + n] = piece
            if not self._single and self._hashed == self._pos:
                self._hash.update(piece)
                self._hashed += n
                if self._hashed == self.size and self._hash.hexdigest() != self.id:
                    raise CorruptObject(f"file {self.id} ({self.name}) is corrupt: its chunks do not hash to its id", self.id)
            self._pos += n
            filled += n
        return filled

    def readall(self) -> bytes:
        parts: list[bytes] = []
        while True:
            chunk = self.read(4 << 20)
            if not chunk:
                return b"".join(parts)
            parts.append(chunk)

    def close(self) -> None:
        if not self.closed:
            self._current = None
            try:
                self._on_close()
            finally:
                super().close()


def open_file(url_or_repo: Any, rev: str, path: str) -> VerifiedFile:
    """A binary, seekable file object on ``path`` as of ``rev``, read (verified) without materializing anything.

    Example::

        with dvx.open("/repos/imagenet", "v3", "labels.csv") as fh:
            header = fh.readline()
    """
    source, release = _open_source(url_or_repo)
    try:
        tree = source.read_commit(source.resolve(rev)).tree
        clean = "/".join(p for p in path.replace("\\", "/").split("/") if p not in ("", "."))
        entry = source.trees.lookup(tree, clean) if clean else None
        if entry is None:
            raise NotInRevision(f"{path!r} is not in revision {rev!r}")
        if entry.kind == DIR:
            raise UsageError(f"{path!r} is a directory in revision {rev!r}")
        if entry.kind == LINK:
            raise UsageError(f"{path!r} is a symbolic link (to {entry.target!r}) in revision {rev!r}; open its target")
        if hasattr(source, "file_reader"):
            chunks, read_chunk = source.file_reader(entry.id)
        else:
            store, file_id = source.store, entry.id
            chunks = store.file_chunks(file_id)

            def read_chunk(chunk_id: str, size: int) -> bytes:
                return store.read_chunk(chunk_id, size, file_id)  # verified against chunk_id and size

    except BaseException:
        release()
        raise
    return VerifiedFile(entry.id, entry.size, clean, chunks, read_chunk, release)


__all__ = [
    "LINK_MODES",
    "MANIFEST_NAME",
    "CheckoutReport",
    "Manifest",
    "NotInRevision",
    "Placed",
    "Source",
    "VerifiedFile",
    "checkout",
    "checkout_readonly",
    "checkout_to",
    "open_file",
    "read_manifest",
    "select_paths",
]
