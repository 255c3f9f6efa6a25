"""The working tree: scanning with ``.dvxignore``, the stat cache, reading files in, writing files out.

Scanning never follows symlinks and never leaves the tree. The stat cache (``.dvx/index``) remembers the
content id of each file with the stat fields that identify a version of it (size, mtime, ctime, inode); a file
whose fields all match is not re-read. A file modified within :data:`RACY_NS` of when it was hashed is not
trusted from the cache (a second write in the same timestamp tick would be invisible), as in git's index.
"""

from __future__ import annotations

import json
import mmap
import os
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pathspec
import zstandard

from . import durable
from .errors import BadPath, CorruptObject, StorageError, os_error
from .ids import hash_bytes, hasher
from .model import FILE, LINK, Entry, check_name, link_entry
from .store import BLOB, CHUNKED, ObjectStore, StoreWriter, encode_manifest

ALWAYS_IGNORED = {".dvx", ".git"}
IGNORE_FILE = ".dvxignore"
RACY_NS = 1_000_000_000
INDEX_VERSION = 1


@dataclass(frozen=True, slots=True)
class Chunking:
    """Content-defined chunking parameters (recorded in the repo config: they decide dedup, not format)."""

    avg: int = 768 << 10
    min: int = 256 << 10
    max: int = 4 << 20
    threshold: int = 2 << 20  # files at least this large are chunked


@dataclass(slots=True)
class Found:
    """A file or symlink seen by a scan."""

    kind: str
    executable: bool
    size: int
    mtime_ns: int
    ctime_ns: int
    ino: int
    target: str | None = None

    def stat_key(self) -> tuple[int, int, int, int]:
        return (self.size, self.mtime_ns, self.ctime_ns, self.ino)


@dataclass
class ScanResult:
    files: dict[str, Found]
    warnings: list[str]


def load_ignore(root: Path) -> pathspec.GitIgnoreSpec | None:
    path = root / IGNORE_FILE
    try:
        lines = path.read_text("utf-8").splitlines()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise BadPath(f"cannot read {IGNORE_FILE}: {exc}") from exc
    return pathspec.GitIgnoreSpec.from_lines(lines)


def _utf8_path(rel: str) -> str:
    try:
        rel.encode("utf-8")
    except UnicodeEncodeError:
        raw = os.fsencode(rel)
        raise BadPath(f"file name is not valid UTF-8: {raw!r} (rename it or add it to {IGNORE_FILE})") from None
    return rel


def scan(root: Path, *, on_dir: Callable[[str], None] | None = None) -> ScanResult:
    """Every file and symlink under ``root`` that is not ignored, keyed by ``/``-separated relative path."""
    spec = load_ignore(root)
    files: dict[str, Found] = {}
    warnings: list[str] = []
    stack = [("", str(root))]
    while stack:
        rel_dir, abs_dir = stack.pop()
        try:
            it = os.scandir(abs_dir)
        except PermissionError as exc:
            raise os_error(exc, f"cannot read directory {rel_dir or '.'}") from exc
        with it:
            for de in it:
                name = de.name
                if not rel_dir and (name in ALWAYS_IGNORED or name.startswith(".dvx-init-")):
                    continue
                if name.startswith(".dvx.") and name.endswith(".tmp"):
                    continue  # a checkout's temp file (left only by a crash)
                rel = _utf8_path(rel_dir + name)
                try:
                    st = de.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue  # removed while we scanned
                mode = st.st_mode
                if stat.S_ISDIR(mode):
                    if spec is not None and spec.match_file(rel + "/"):
                        continue
                    stack.append((rel + "/", de.path))
                    continue
                if spec is not None and spec.match_file(rel):
                    continue
                if stat.S_ISREG(mode):
                    files[rel] = Found(FILE, bool(mode & 0o100), st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
                elif stat.S_ISLNK(mode):
                    target = os.readlink(de.path)
                    try:
                        target.encode("utf-8")
                    except UnicodeEncodeError:
                        raise BadPath(f"symlink target of {rel} is not valid UTF-8") from None
                    raw_len = len(target.encode("utf-8"))
                    files[rel] = Found(LINK, False, raw_len, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, target)
                else:
                    warnings.append(f"skipping special file {rel} (not a regular file, directory or symlink)")
        if on_dir is not None:
            on_dir(rel_dir)
    for rel in files:
        for part in rel.split("/"):
            check_name(part)
    return ScanResult(files, warnings)


# --- stat cache ------------------------------------------------------------------------------------------


@dataclass(slots=True)
class Cached:
    key: tuple[int, int, int, int]
    id: str
    settled: bool


class StatCache:
    """``.dvx/index``: path → (stat key, content id). A hint only: a wrong entry costs a re-hash, never data."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.entries: dict[str, Cached] = {}
        self.dirty = False

    def load(self) -> StatCache:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return self
        except OSError as exc:
            raise os_error(exc, "cannot read .dvx/index") from exc
        try:
            doc = json.loads(zstandard.ZstdDecompressor().decompress(raw))
            if doc.get("v") != INDEX_VERSION:
                return self  # an index of another version is only a cache: rebuild it
            self.entries = {p: Cached((s, m, c, i), oid, bool(ok)) for p, s, m, c, i, oid, ok in doc["entries"]}
        except (ValueError, KeyError, TypeError, zstandard.ZstdError):
            self.entries = {}  # a damaged cache is rebuilt, not trusted
        return self

    def lookup(self, path: str, found: Found) -> str | None:
        c = self.entries.get(path)
        if c is None or not c.settled or c.key != found.stat_key():
            return None
        return c.id

    def record(self, path: str, found: Found, content_id: str, hashed_at_ns: int) -> None:
        settled = max(found.mtime_ns, found.ctime_ns) < hashed_at_ns - RACY_NS
        old = self.entries.get(path)
        new = Cached(found.stat_key(), content_id, settled)
        if old != new:
            self.entries[path] = new
            self.dirty = True

    def retain(self, paths: set[str] | dict[str, Found]) -> None:
        for p in [p for p in self.entries if p not in paths]:
            del self.entries[p]
            self.dirty = True

    def save(self) -> None:
        rows = [[p, *c.key, c.id, 1 if c.settled else 0] for p, c in sorted(self.entries.items())]
        data = zstandard.ZstdCompressor(level=1).compress(
            json.dumps({"v": INDEX_VERSION, "entries": rows}, separators=(",", ":")).encode()
        )
        durable.write_replace_file(self.path, data, site="index")
        self.dirty = False


# --- reading files in ------------------------------------------------------------------------------------


def entry_for(name: str, found: Found, content_id: str) -> Entry:
    if found.kind == LINK:
        assert found.target is not None
        return link_entry(name, found.target)
    return Entry(name, FILE, content_id, found.size, found.executable)


def hash_file(path: Path) -> str:
    """Content id of a file, read once (BLAKE3 with threads for big files)."""
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size == 0:
                return hash_bytes(b"")
            if size < (8 << 20):
                return hash_bytes(fh.read())
            with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
                h = hasher()
                h.update(mm)
                return h.hexdigest()
    except OSError as exc:
        raise os_error(exc, f"cannot read {path}") from exc


def ingest_file(path: Path, writer: StoreWriter, chunking: Chunking, level: int, on_bytes: Callable[[int], None] | None = None) -> tuple[str, int]:
    """Read a file once: hash it, chunk it if large, compress and store what the store lacks.

    Returns ``(content id, size)``. The content id is the BLAKE3 of the whole file, also for chunked files.
    """
    from . import codec

    try:
        with open(path, "rb", buffering=0) as fh:
            before = os.fstat(fh.fileno())
            size = before.st_size
            if size < chunking.threshold:
                data = fh.read()
                if len(data) != size:
                    raise StorageError(f"{path} changed while being read; commit again")
                oid = hash_bytes(data)
                if not writer.has(oid, size):
                    writer.add(oid, BLOB, data, encoded=codec.encode(data, level))
                if on_bytes:
                    on_bytes(size)
                return oid, size
            from pyfastcdc import FastCDC

            cdc = FastCDC(chunking.avg, min_size=chunking.min, max_size=chunking.max)
            whole = hasher()
            chunks: list[tuple[str, int]] = []
            # cut_stream reads the file once; each chunk's view is valid until the next one is produced,
            # so hashing, compression and storing all happen on it before moving on.
            for ch in cdc.cut_stream(fh):
                piece = ch.data
                whole.update(piece)
                cid = hash_bytes(piece)
                chunks.append((cid, ch.length))
                if not writer.has(cid, ch.length):
                    writer.add(cid, BLOB, piece)
                if on_bytes:
                    on_bytes(ch.length)
            after = os.fstat(fh.fileno())
            if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns):
                raise StorageError(f"{path} changed while being read; commit again")
            oid = whole.hexdigest()
            if not writer.has(oid):
                writer.add(oid, CHUNKED, encode_manifest(size, chunks))
            return oid, size
    except OSError as exc:
        raise os_error(exc, f"cannot read {path}") from exc


# --- writing files out -----------------------------------------------------------------------------------


def safe_parent(root: Path, rel: str) -> Path:
    """Create the parent directories of ``rel`` under ``root`` without following any symlink.

    A component that exists as a symlink or a file is refused: writing through it could escape the tree.
    """
    parts = rel.split("/")
    current = root
    for part in parts[:-1]:
        check_name(part)
        current = current / part
        try:
            st = os.lstat(current)
        except FileNotFoundError:
            try:
                os.mkdir(current)
                continue
            except FileExistsError:
                st = os.lstat(current)  # created by a parallel writer: check what it is below
            except OSError as exc:
                raise os_error(exc, f"cannot create directory {current}") from exc
        if not stat.S_ISDIR(st.st_mode):
            raise BadPath(f"cannot write {rel}: {current.relative_to(root)} is not a directory (a file or symlink is in the way)")
    check_name(parts[-1])
    return current


def materialize(root: Path, rel: str, entry: Entry, store: ObjectStore, *, umask: int) -> None:
    """Write one file or symlink atomically: a temp file beside it, then rename over the old one."""
    parent = safe_parent(root, rel)
    final = parent / entry.name
    tmp = durable.temp_name(parent, "dvx")
    try:
        if entry.kind == LINK:
            assert entry.target is not None
            os.symlink(entry.target, tmp)
        else:
            mode = (0o777 if entry.executable else 0o666) & ~umask
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
            with os.fdopen(fd, "wb") as fh:
                n = store.write_file_to(entry.id, fh)
            if n != entry.size:
                raise CorruptObject(f"{rel}: content {entry.id} has {n} bytes, the tree says {entry.size}", entry.id)
            os.chmod(tmp, mode)
        _replace(tmp, final)
    except OSError as exc:
        _unlink_quiet(tmp)
        raise os_error(exc, f"cannot write {rel}") from exc
    except BaseException:
        _unlink_quiet(tmp)
        raise


def _replace(tmp: Path, final: Path) -> None:
    try:
        st = os.lstat(final)
    except FileNotFoundError:
        st = None
    if st is not None and stat.S_ISDIR(st.st_mode):
        try:
            os.rmdir(final)
        except OSError:
            raise BadPath(f"cannot replace directory {final} with a file: it is not empty") from None
    os.replace(tmp, final)


def set_executable(root: Path, rel: str, executable: bool, umask: int) -> None:
    """Change only the mode of a regular file (never through a symlink)."""
    path = safe_parent(root, rel) / rel.rpartition("/")[2]
    if not stat.S_ISREG(os.lstat(path).st_mode):
        raise BadPath(f"cannot change mode of {rel}: not a regular file")
    os.chmod(path, (0o777 if executable else 0o666) & ~umask)


def remove_path(root: Path, rel: str) -> None:
    """Delete a tracked file or symlink and any directories that become empty above it."""
    path = root / rel
    try:
        st = os.lstat(path)
        if stat.S_ISDIR(st.st_mode):
            return
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise os_error(exc, f"cannot delete {rel}") from exc
    parent = path.parent
    while parent != root:
        try:
            os.rmdir(parent)
        except OSError:
            break
        parent = parent.parent


def _unlink_quiet(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def now_ns() -> int:
    return time.time_ns()
