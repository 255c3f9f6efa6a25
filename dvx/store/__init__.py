"""The content-addressed object store in ``.dvx/objects`` (see docs/format.md "Objects").

Small objects live in pack files, large ones (chunks of big files) as loose files named by id. Every read
verifies: blobs, trees and commits must hash to their id; a chunked file's manifest is checked when its
chunks are streamed (the whole content must hash to the file id). Objects are immutable and written once.
"""

from __future__ import annotations

import json
import os
import stat
import struct
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from .. import codec, durable
from ..errors import CorruptObject, MissingObject, StorageError, UnsupportedFormat, os_error
from ..ids import hash_bytes, hasher, is_id
from .pack import (
    IndexEntry,
    PackIndex,
    PackStreamWriter,
    encode_index,
    open_pack,
    pack_paths,
    read_at,
    read_index_file,
)

BLOB = 1
TREE = 2
COMMIT = 3
CHUNKED = 4
TYPE_NAMES = {BLOB: "blob", TREE: "tree", COMMIT: "commit", CHUNKED: "chunked"}
#: The same, as a user reads them in a message ("it names a file, not a commit").
TYPE_WORDS = {BLOB: "file", TREE: "tree", COMMIT: "commit", CHUNKED: "chunked file"}

LOOSE_MAGIC = b"DVXOBJ01"
LOOSE_HEADER = struct.Struct("<8sBBQ")  # magic, type, codec, raw size

# Objects at least this large (uncompressed) are stored loose; smaller ones go into packs.
LOOSE_THRESHOLD = 512 << 10
PACK_TARGET_SIZE = 64 << 20

if TYPE_CHECKING:
    from concurrent.futures import Future, ThreadPoolExecutor


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    id: str
    type: int
    codec: int
    raw_size: int
    stored_size: int
    pack: str | None  # pack name, or None for a loose object
    offset: int


Fetcher = Callable[[list[str]], None]


def _map_pack(table: tuple[dict[bytes, int], list[PackIndex]], index: PackIndex) -> None:
    """Add a pack's ids to a lookup table; the first pack holding an id keeps it, as a scan of the packs would."""
    where, order = table
    k = len(order) << 32
    order.append(index)  # before its ids: a reader that finds one finds its pack
    setdefault = where.setdefault
    for i, oid in enumerate(index.ids()):
        setdefault(oid, k | i)


class ObjectStore:
    """Read and write objects of one repository. Thread-safe for concurrent reads and one writer."""

    def __init__(self, objects_dir: Path, tmp_dir: Path, *, compression_level: int = 1) -> None:
        self.dir = objects_dir
        self.pack_dir = objects_dir / "pack"
        self.loose_dir = objects_dir / "loose"
        self.tmp_dir = tmp_dir
        self.level = compression_level
        self._lock = threading.RLock()
        self._packs: dict[str, PackIndex] = {}
        # Every packed id → (its pack's position in the list << 32 | entry number), built on the first lookup: one probe
        # per lookup, whatever the number of packs (a lookup that tried each pack's own map cost commits ×
        # packs once hundreds of small packs had piled up).
        # The map and its list of packs are replaced together, as one tuple (readers take it without the lock).
        self._table: tuple[dict[bytes, int], list[PackIndex]] | None = None
        self._fds: dict[str, int] = {}
        self._loaded = False
        self._dir_stamp: int | None = None
        # Set by the remote layer: called with ids missing locally, to fetch them before failing.
        self.fetcher: Fetcher | None = None
        self.reads = 0  # objects read (tests count them: merges must read no file content)

    # -- pack bookkeeping -------------------------------------------------------------------------

    def _load_packs(self) -> None:
        with self._lock:
            try:
                self._dir_stamp = self.pack_dir.stat().st_mtime_ns
            except FileNotFoundError:
                self._dir_stamp = None
            for pack, idx in pack_paths(self.pack_dir):
                name = idx.stem
                if name in self._packs:
                    continue
                try:
                    data = read_index_file(idx)  # a fifo there is refused, not waited on
                    st = pack.stat()
                except FileNotFoundError:
                    continue  # removed by a concurrent gc between listing and reading
                except OSError as exc:
                    raise os_error(exc, f"cannot read pack index {name}") from exc
                if not stat.S_ISREG(st.st_mode):
                    raise CorruptObject(f"pack {name} is {durable.file_kind(st.st_mode)}, not a regular file")
                size = st.st_size
                index = PackIndex(data, name, size)
                if index.pack_hash.hex() != name:
                    raise CorruptObject(f"pack index {name} belongs to pack {index.pack_hash.hex()[:16]}")
                self._packs[name] = index
                if self._table is not None:
                    _map_pack(self._table, index)
            self._loaded = True

    def _pack_table(self) -> tuple[dict[bytes, int], list[PackIndex]]:
        with self._lock:
            if self._table is None:
                table: tuple[dict[bytes, int], list[PackIndex]] = ({}, [])
                for index in self._packs.values():
                    _map_pack(table, index)
                self._table = table
            return self._table

    def reload_packs(self) -> None:
        """Forget every pack and list them again (after a gc or a merge of packs replaced some). Open
        descriptors stay open until :meth:`close`: another thread may be reading through one (closing it would
        let the number be reused for another file mid-read), and a replaced pack stays readable through it."""
        with self._lock:
            self._packs.clear()
            self._table = None
            self._load_packs()

    def refresh(self) -> None:
        """Pick up packs written by other processes since this store was opened."""
        self._load_packs()

    def forget_packs(self, names: Iterable[str]) -> None:
        """Drop packs from this store's view (a writer deleting the packs of an aborted operation)."""
        with self._lock:
            for name in names:
                self._packs.pop(name, None)
                fd = self._fds.pop(name, None)
                if fd is not None:
                    os.close(fd)
            self._table = None

    def packs(self) -> dict[str, PackIndex]:
        if not self._loaded:
            self._load_packs()
        return dict(self._packs)

    def _fd(self, pack: str) -> int | None:
        """An open descriptor of a pack; None if the pack is gone (replaced by a merge or a gc since it was
        listed)."""
        with self._lock:
            fd = self._fds.get(pack)
            if fd is None:
                try:
                    fd = open_pack(self.pack_dir / f"{pack}.pack")
                except FileNotFoundError:
                    return None
                except OSError as exc:
                    raise os_error(exc, f"cannot open pack {pack}") from exc
                self._fds[pack] = fd
            return fd

    def prefetch(self, pack: str, offset: int, length: int) -> None:
        """Ask the kernel to start reading a range of a pack into the page cache (a hint: reads that follow do
        not wait for the disk one object at a time)."""
        fd = self._fd(pack)
        advise = getattr(os, "posix_fadvise", None)
        if fd is not None and advise is not None:
            try:
                advise(fd, offset, length, os.POSIX_FADV_WILLNEED)
            except OSError:
                pass

    def close(self) -> None:
        with self._lock:
            for fd in self._fds.values():
                os.close(fd)
            self._fds.clear()

    def loose_path(self, object_id: str) -> Path:
        return self.loose_dir / object_id[:2] / object_id[2:]

    # -- lookups --------------------------------------------------------------------------------

    def _find(self, object_id: str, *, loose: bool = True) -> ObjectInfo | None:
        if not self._loaded:
            self._load_packs()
        where, order = self._table or self._pack_table()
        at = where.get(bytes.fromhex(object_id))
        if at is not None:
            idx = order[at >> 32]
            e = idx.entry(at & 0xFFFFFFFF)
            return ObjectInfo(object_id, e.type, e.codec, e.raw_size, e.stored_size, idx.name, e.offset)
        if not loose:
            return None
        path = self.loose_path(object_id)
        try:
            fd, st = durable.open_regular(path)  # a fifo there is refused, not waited on
            try:
                head = os.read(fd, LOOSE_HEADER.size)
            finally:
                os.close(fd)
            size = st.st_size
        except FileNotFoundError:
            return None
        except durable.NotRegularFile as exc:
            raise CorruptObject(f"object {object_id} is {exc.kind}, not a regular file", object_id) from None
        except OSError as exc:
            raise os_error(exc, f"cannot read object {object_id}") from exc
        if len(head) < LOOSE_HEADER.size:
            raise CorruptObject(f"object {object_id} is truncated", object_id)
        magic, type_, codec_, raw_size = LOOSE_HEADER.unpack(head)
        if magic != LOOSE_MAGIC:
            if magic[:6] == LOOSE_MAGIC[:6]:
                raise UnsupportedFormat(f"object {object_id} has format {magic[6:]!r}, this dvx reads 01")
            raise CorruptObject(f"object {object_id} is not a dvx object", object_id)
        return ObjectInfo(object_id, type_, codec_, raw_size, size - LOOSE_HEADER.size, None, LOOSE_HEADER.size)

    def info(self, object_id: str) -> ObjectInfo | None:
        """Where and how an object is stored, or None when it is not in this store."""
        found = self._find(object_id)
        if found is None and self._packs_changed():
            self._load_packs()
            found = self._find(object_id)
        return found

    def _packs_changed(self) -> bool:
        try:
            stamp: int | None = self.pack_dir.stat().st_mtime_ns
        except FileNotFoundError:
            stamp = None
        return stamp != self._dir_stamp

    def has(self, object_id: str) -> bool:
        return self.info(object_id) is not None

    def has_for_write(self, object_id: str, size: int) -> bool:
        """Cheap existence check for a writer holding the repo lock (no other writer can add packs).

        Objects smaller than :data:`LOOSE_THRESHOLD` are only ever written into packs, so their loose path
        is not probed; a miss costs at worst a duplicate copy, never a lost object.
        """
        return self._find(object_id, loose=size >= LOOSE_THRESHOLD) is not None

    def missing(self, ids: Iterable[str]) -> list[str]:
        return [i for i in ids if not self.has(i)]

    # -- reads -----------------------------------------------------------------------------------

    def _require(self, object_id: str) -> ObjectInfo:
        found = self.info(object_id)
        if found is None:
            self._load_packs()
            found = self._find(object_id)
        if found is None and self.fetcher is not None:
            self.fetcher([object_id])
            found = self.info(object_id)
        if found is None:
            raise MissingObject(f"object {object_id} is missing from the store", object_id)
        return found

    def read_payload(self, found: ObjectInfo) -> bytes:
        if found.pack is not None:
            fd = self._fd(found.pack)
            if fd is None:
                # The pack was replaced since it was listed (another process merged small packs, or ran gc):
                # list the packs again and read the object where it is now (docs/format.md §15.4). A repack
                # copies payloads unchanged, so ``found``'s codec and sizes still hold.
                self.reload_packs()
                again = self._find(found.id)
                if again is None:
                    raise MissingObject(f"object {found.id} is missing from the store", found.id)
                if again.pack is not None:
                    fd = self._fd(again.pack)
                    if fd is None:
                        raise StorageError(f"pack {again.pack} disappeared while being read; try again")
                    return read_at(fd, again.offset, again.stored_size)
                found = again
            else:
                return read_at(fd, found.offset, found.stored_size)
        try:
            fd, _ = durable.open_regular(self.loose_path(found.id))
            with os.fdopen(fd, "rb") as fh:
                fh.seek(LOOSE_HEADER.size)
                data = fh.read()
        except durable.NotRegularFile as exc:
            raise CorruptObject(f"object {found.id} is {exc.kind}, not a regular file", found.id) from None
        except OSError as exc:
            raise os_error(exc, f"cannot read object {found.id}") from exc
        if len(data) != found.stored_size:
            raise CorruptObject(f"object {found.id} changed size while being read", found.id)
        return data

    def get(self, object_id: str, expect_type: int | None = None) -> tuple[int, bytes]:
        """Return ``(type, bytes)`` of an object, verified against its id (manifests: parsed)."""
        found = self._require(object_id)
        if expect_type is not None and found.type != expect_type:
            raise CorruptObject(
                f"object {object_id} is a {TYPE_NAMES.get(found.type, found.type)}, "
                f"expected a {TYPE_NAMES[expect_type]}",
                object_id,
            )
        data = codec.decode(found.codec, self.read_payload(found), found.raw_size, object_id)
        self.reads += 1
        if found.type != CHUNKED and hash_bytes(data) != object_id:
            raise CorruptObject(f"object {object_id} is corrupt (its content does not match its id)", object_id)
        return found.type, data

    def get_verified_raw(self, object_id: str) -> bytes:
        return self.get(object_id)[1]

    # -- file contents ----------------------------------------------------------------------------

    def file_chunks(self, file_id: str) -> list[tuple[str, int]]:
        """The ``(chunk id, size)`` list of a file: one entry for a whole-blob file."""
        found = self._require(file_id)
        if found.type == BLOB:
            return [(file_id, found.raw_size)]
        if found.type != CHUNKED:
            raise CorruptObject(f"object {file_id} is a {TYPE_NAMES.get(found.type)}, not file content", file_id)
        return parse_manifest(self.get(file_id, CHUNKED)[1], file_id)[1]

    def iter_file(self, file_id: str) -> Iterator[bytes]:
        """Stream a file's content chunk by chunk, each chunk verified; the whole is verified at the end."""
        chunks = self.file_chunks(file_id)
        if len(chunks) == 1 and chunks[0][0] == file_id:
            yield self.get(file_id, BLOB)[1]
            return
        h = hasher()
        for chunk_id, size in chunks:
            data = self._chunk(chunk_id, size, file_id)
            if len(data) != size:
                raise CorruptObject(f"chunk {chunk_id} of file {file_id} has the wrong size", file_id)
            h.update(data)
            yield data
        if h.hexdigest() != file_id:
            raise CorruptObject(f"file {file_id} is corrupt (its chunks do not hash to its id)", file_id)

    def _chunk(self, chunk_id: str, size: int, file_id: str) -> bytes:
        """A chunk's bytes, ``size`` long. The same content may have been stored as a chunked file (another file
        of exactly this content, or other chunking settings), so a manifest is accepted and assembled, one level
        deep (docs/format.md §8.4). Every size is checked against the object's raw size before it is decoded,
        so a lying manifest is refused before anything larger than ``size`` is allocated."""
        found = self._require(chunk_id)
        if found.type == BLOB:
            if found.raw_size != size:
                raise CorruptObject(
                    f"chunk {chunk_id} of file {file_id} has {found.raw_size} bytes, its manifest lists {size}", chunk_id
                )
            return self.get(chunk_id, BLOB)[1]
        if found.type != CHUNKED:
            raise CorruptObject(
                f"chunk {chunk_id} of file {file_id} is a {TYPE_NAMES.get(found.type, found.type)}", chunk_id
            )
        if size > codec.MAX_OBJECT_SIZE:
            raise CorruptObject(
                f"chunk {chunk_id} of file {file_id} is a manifest of {size} bytes, over the object size limit", chunk_id
            )
        inner_size, parts = parse_manifest(self.get(chunk_id, CHUNKED)[1], chunk_id)
        if inner_size != size:
            raise CorruptObject(
                f"chunk manifest {chunk_id} of file {file_id} describes {inner_size} bytes, the file's manifest lists "
                f"{size}",
                chunk_id,
            )
        out: list[bytes] = []
        for part_id, part_size in parts:
            if part_id == chunk_id:
                raise CorruptObject(f"chunk manifest {chunk_id} refers to itself", chunk_id)
            part = self._require(part_id)
            if part.type != BLOB:
                raise CorruptObject(
                    f"chunk {part_id} of chunk manifest {chunk_id} is a {TYPE_NAMES.get(part.type, part.type)}, "
                    "expected a blob",
                    chunk_id,
                )
            if part.raw_size != part_size:
                raise CorruptObject(
                    f"chunk {part_id} of chunk manifest {chunk_id} has {part.raw_size} bytes, the manifest lists "
                    f"{part_size}",
                    chunk_id,
                )
            data = self.get(part_id, BLOB)[1]
            if len(data) != part_size:  # decode() returns exactly raw_size bytes; kept as a belt and braces
                raise CorruptObject(f"chunk {part_id} of chunk manifest {chunk_id} has the wrong size", chunk_id)
            out.append(data)
        joined = b"".join(out)
        if hash_bytes(joined) != chunk_id:
            raise CorruptObject(f"chunk {chunk_id} of file {file_id} is corrupt", chunk_id)
        return joined

    def read_chunk(self, chunk_id: str, size: int, file_id: str) -> bytes:
        """One chunk of a file, verified: a blob of ``size`` bytes, or a manifest of exactly that content
        (docs/format.md §8.4 "resolving a chunk id")."""
        return self._chunk(chunk_id, size, file_id)

    def write_file_to(self, file_id: str, fh: BinaryIO) -> int:
        n = 0
        for data in self.iter_file(file_id):
            fh.write(data)
            n += len(data)
        return n

    # -- enumeration -----------------------------------------------------------------------------

    def iter_loose(self) -> Iterator[tuple[str, Path]]:
        if not self.loose_dir.is_dir():
            return
        for sub in sorted(self.loose_dir.iterdir()):
            if len(sub.name) != 2 or not sub.is_dir():
                continue
            for f in sub.iterdir():
                oid = sub.name + f.name
                if is_id(oid):
                    yield oid, f

    def writer(self, *, discard_on_abort: bool = False) -> StoreWriter:
        return StoreWriter(self, discard_on_abort=discard_on_abort)


def encode_manifest(size: int, chunks: list[tuple[str, int]]) -> bytes:
    return json.dumps({"v": 1, "size": size, "chunks": [[c, s] for c, s in chunks]}, separators=(",", ":")).encode()


def parse_manifest(data: bytes, file_id: str) -> tuple[int, list[tuple[str, int]]]:
    try:
        doc = durable.loads_json(data)
        if doc.get("v") != 1:
            raise UnsupportedFormat(f"chunk manifest {file_id} has version {doc.get('v')}, this dvx reads 1")
        chunks = [(str(c), int(s)) for c, s in doc["chunks"]]
        size = int(doc["size"])
    except UnsupportedFormat:
        raise
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise CorruptObject(f"chunk manifest {file_id} does not parse", file_id) from exc
    if any(not is_id(c) or s < 0 for c, s in chunks) or sum(s for _, s in chunks) != size:
        raise CorruptObject(f"chunk manifest {file_id} is inconsistent", file_id)
    return size, chunks


# Writeback of what a writer has written is started every this many bytes (see start_writeback).
_WRITEBACK_EVERY = 8 << 20
# Threads that fsync and publish loose objects in the background (fsync waits on the disk, not the CPU).
_SYNC_THREADS = 4


def start_writeback(fd: int, offset: int = 0, length: int = 0) -> None:
    """Ask the kernel to start writing a file's dirty pages to disk now, without waiting for it, and to drop
    the pages of the range that are already on disk.

    Linux starts writeback for ``POSIX_FADV_DONTNEED`` and drops the range's clean pages (pages still dirty stay
    cached), as PostgreSQL's ``pg_flush_data`` relies on. The disk then works while the CPU hashes and
    compresses, and the fsync that makes the data durable finds little left to write. Dropping what is on disk
    keeps a big commit from growing the page cache by the size of the store it writes: the pages are recycled
    for the next writes, which is cheaper than filling new ones (writing 900 MiB here cost 1.0 CPU-s into new
    pages, 0.3 when the pages written back were dropped on the way). Objects just written are read from disk
    when read again, like any object of an older commit. Only a hint: where unsupported, the fsync does it all.
    """
    advise = getattr(os, "posix_fadvise", None)
    if advise is not None:
        try:
            advise(fd, offset, length, os.POSIX_FADV_DONTNEED)
        except OSError:
            pass


class _OpenPack:
    """A pack being streamed into ``.dvx/tmp``; one thread at a time appends to it."""

    __slots__ = ("tmp", "fh", "stream", "flushed", "dropped", "broken")

    def __init__(self, tmp_dir: Path) -> None:
        self.tmp = durable.temp_name(tmp_dir, "pack")
        self.fh: BinaryIO = open(self.tmp, "xb", buffering=1 << 20)  # noqa: SIM115 - closed when sealed
        self.stream = PackStreamWriter(self.fh)
        self.flushed = 0  # bytes already handed to writeback
        self.dropped = 0  # bytes before this were handed to writeback twice (their clean pages were dropped)
        self.broken = False  # a write failed part way: never seal this pack

    def add_many(self, records: list[tuple[bytes, int, int, int, bytes | memoryview]]) -> None:
        try:
            self.stream.add_many(records)
        except BaseException:
            self.broken = True
            raise
        if self.stream.size - self.flushed >= _WRITEBACK_EVERY:
            self.fh.flush()
            # From the bytes handed to writeback last time (on disk by now, mostly: their pages are dropped)
            # to the end (writeback starts).
            start_writeback(self.fh.fileno(), self.dropped, self.stream.size - self.dropped)
            self.dropped, self.flushed = self.flushed, self.stream.size

    def discard(self) -> None:
        try:
            self.fh.close()
        except OSError:
            pass
        durable._unlink_quiet(self.tmp)  # noqa: SLF001 - same package


class StoreWriter:
    """Adds objects to the store: small ones into packs, large ones as loose files.

    Nothing is visible to readers (or safe to reference from a ref) until :meth:`finish` returns: it fsyncs the
    packs, then publishes each pack and, after it, its index; and it waits until every loose object is fsynced,
    linked into ``objects/loose`` and its directory fsynced. Thread-safe: several ingesting threads share one
    writer. Each appends to a pack no other thread is using at that moment (a new one if all are busy), so
    threads never wait for each other's writes and a single-threaded writer makes one pack (up to
    :data:`PACK_TARGET_SIZE`). Loose objects are written by the calling thread and made durable by a few
    background threads, so that their fsyncs overlap with the work of the callers.

    :meth:`claim` then :meth:`put` is the fast path for callers that hash first and compress only what the
    store lacks; :meth:`add` does both. With ``discard_on_abort``, :meth:`abort` also deletes the objects this
    writer published (safe only under the repository lock: nothing else can have started to use them).
    """

    def __init__(self, store: ObjectStore, *, discard_on_abort: bool = False) -> None:
        self.store = store
        self.discard_on_abort = discard_on_abort
        self._lock = threading.Lock()
        self._pending: set[str] = set()
        self._idle: list[_OpenPack] = []  # packs no thread is appending to
        self._open: list[_OpenPack] = []  # every pack not sealed yet
        self._published: list[str] = []  # packs this writer linked into objects/pack
        self._syncs: list[Future[Path | None]] = []
        self._sync_pool: ThreadPoolExecutor | None = None
        self._created: list[Path] = []  # loose objects this writer linked into objects/loose
        self._new_dirs: list[Path] = []  # fan-out directories this writer made for them
        self._tmp_ready = False
        self.finished_packs: list[str] = []
        self.objects_written = 0
        self.bytes_written = 0

    def __enter__(self) -> StoreWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            try:
                self.finish()
            except BaseException:
                self.abort()  # a failed publication leaves no temp pack behind either
                raise
        else:
            self.abort()

    def has(self, object_id: str, size: int | None = None) -> bool:
        with self._lock:
            if object_id in self._pending:
                return True
        if size is not None:
            return self.store.has_for_write(object_id, size)
        return self.store.has(object_id)

    def claim(self, object_id: str, raw_size: int) -> bool:
        """True if the caller must store ``object_id`` (with :meth:`put`): neither in the store nor claimed.

        A claimed object counts as present for every later :meth:`has` and :meth:`claim`, so each object is
        compressed and written once even when several threads meet the same content.
        """
        with self._lock:
            if object_id in self._pending:
                return False
            self._pending.add(object_id)
        return not self.store.has_for_write(object_id, raw_size)

    def add_blobs(self, blobs: list[tuple[str, bytes]], level: int) -> None:
        """Store many whole-file blobs ``(id, data)`` (ids computed by the caller) unless present: one claim
        under the lock for all of them, one write into a pack for the small ones. The batched form of
        :meth:`claim` + :meth:`put`, for a commit's small files."""
        fresh: list[tuple[str, bytes]] = []
        with self._lock:
            pending = self._pending
            for blob in blobs:
                if blob[0] not in pending:
                    pending.add(blob[0])
                    fresh.append(blob)
        has = self.store.has_for_write
        todo = [(oid, data) for oid, data in fresh if not has(oid, len(data))]
        records: list[tuple[bytes, int, int, int, bytes | memoryview]] = []
        for (oid, data), (codec_, payload) in zip(todo, codec.encode_many([d for _, d in todo], level)):
            size = len(data)
            if size >= LOOSE_THRESHOLD:
                self._write_loose(oid, BLOB, codec_, size, payload)
            else:
                records.append((bytes.fromhex(oid), BLOB, codec_, size, payload))
        if records:
            self._append_many(records)

    def put(self, object_id: str, type_: int, raw_size: int, codec_: int, payload: bytes | memoryview) -> None:
        """Write a claimed object: loose from :data:`LOOSE_THRESHOLD` raw bytes, else into a pack."""
        if raw_size >= LOOSE_THRESHOLD:
            self._write_loose(object_id, type_, codec_, raw_size, payload)
        else:
            self._append(object_id, type_, codec_, raw_size, payload)

    def add(self, object_id: str, type_: int, data: bytes | memoryview, *, encoded: tuple[int, bytes | memoryview] | None = None) -> bool:
        """Store ``data`` under ``object_id`` unless present; True if this call added it.

        Callers computed ``object_id`` from ``data`` (or, for manifests, from the file); ``encoded`` may carry
        a payload already compressed by the caller's thread.
        """
        if not self.claim(object_id, len(data)):
            return False
        codec_, payload = encoded if encoded is not None else codec.encode(data, self.store.level)
        self.put(object_id, type_, len(data), codec_, payload)
        return True

    def add_encoded(self, object_id: str, type_: int, codec_: int, raw_size: int, payload: bytes | memoryview) -> bool:
        """Store an object received already encoded (from a remote pack); the caller verified it."""
        if not self.claim(object_id, raw_size):
            return False
        self.put(object_id, type_, raw_size, codec_, payload)
        return True

    # -- loose objects: written by the caller, made durable in the background -------------------------

    def _write_loose(self, object_id: str, type_: int, codec_: int, raw_size: int, payload: bytes | memoryview) -> None:
        final = self.store.loose_path(object_id)
        try:
            if not self._tmp_ready:
                durable.make_dirs(self.store.tmp_dir)
                self._tmp_ready = True
            # The temp lives in .dvx/tmp (same file system) so a crash leaves nothing half-named in objects/.
            tmp = durable.temp_name(self.store.tmp_dir, "tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise os_error(exc, "cannot write object") from exc
        try:
            durable.fault("loose.before-write")
            _write_all(fd, LOOSE_HEADER.pack(LOOSE_MAGIC, type_, codec_, raw_size))
            _write_all(fd, payload)
            start_writeback(fd)
        except BaseException as exc:
            os.close(fd)
            durable._unlink_quiet(tmp)  # noqa: SLF001 - same package
            if isinstance(exc, OSError):
                raise os_error(exc, "cannot write object") from exc
            raise
        with self._lock:
            self.objects_written += 1
            self.bytes_written += len(payload) + LOOSE_HEADER.size
        self._in_background(self._publish_loose, fd, tmp, final)

    def _in_background(self, fn: Callable[..., Path | None], *args: object) -> None:
        """Run ``fn(*args)`` on the fsync threads; :meth:`_wait_loose` waits for it and raises its failure."""
        with self._lock:
            if self._sync_pool is None:
                from concurrent.futures import ThreadPoolExecutor  # noqa: F811 - imported when first needed

                self._sync_pool = ThreadPoolExecutor(max_workers=_SYNC_THREADS, thread_name_prefix="dvx-fsync")
            self._syncs.append(self._sync_pool.submit(fn, *args))

    def _seal_one(self, pack: _OpenPack) -> None:
        try:
            self._seal([pack])
        except OSError as exc:
            raise os_error(exc, "cannot write pack") from exc

    def _publish_loose(self, fd: int, tmp: Path, final: Path) -> Path | None:
        """fsync the temp, link it to its final name (create-only); the directory is fsynced by :meth:`flush`.

        Returns the directory that gained a name, or None when the object was already there.
        """
        try:
            try:
                durable.fault("loose.before-fsync")
                os.fsync(fd)
                start_writeback(fd)  # all on disk now: drops the pages
            finally:
                os.close(fd)
            if not final.parent.is_dir():
                durable.make_dirs(final.parent)
                with self._lock:
                    self._new_dirs.append(final.parent)
            durable.fault("loose.before-link")
            try:
                os.link(tmp, final)
            except FileExistsError:
                return None  # same name, same content
        finally:
            durable._unlink_quiet(tmp)  # noqa: SLF001 - same package
        with self._lock:
            self._created.append(final)
        return final.parent

    def _wait_loose(self) -> set[Path]:
        """Wait for every background publication; raise the first failure. Returns the directories to fsync."""
        with self._lock:
            syncs, self._syncs = self._syncs, []
        dirs: set[Path] = set()
        failure: BaseException | None = None
        for f in syncs:
            try:
                d = f.result()
            except BaseException as exc:  # noqa: BLE001 - collected, the first one is raised below
                failure = failure or exc
                continue
            if d is not None:
                dirs.add(d)
        if failure is not None:
            if isinstance(failure, OSError):
                raise os_error(failure, "cannot write object") from failure
            raise failure
        return dirs

    # -- packs ------------------------------------------------------------------------------------------

    def _append(self, object_id: str, type_: int, codec_: int, raw_size: int, payload: bytes | memoryview) -> None:
        self._append_many([(bytes.fromhex(object_id), type_, codec_, raw_size, payload)])

    def _append_many(self, records: list[tuple[bytes, int, int, int, bytes | memoryview]]) -> None:
        try:
            with self._lock:
                pack = self._idle.pop() if self._idle else None
            if pack is None:
                if not self._tmp_ready:
                    durable.make_dirs(self.store.tmp_dir)
                    self._tmp_ready = True
                pack = _OpenPack(self.store.tmp_dir)
                with self._lock:
                    self._open.append(pack)
            pack.add_many(records)
            with self._lock:
                self.objects_written += len(records)
                self.bytes_written += sum(len(r[4]) for r in records)
            if pack.stream.size >= PACK_TARGET_SIZE:
                # Sealed by a background thread: its fsync waits on the disk, 50-300 ms for 64 MiB here, which
                # would leave this core idle meanwhile.
                self._in_background(self._seal_one, pack)
            else:
                with self._lock:
                    self._idle.append(pack)
        except OSError as exc:
            raise os_error(exc, "cannot write pack") from exc

    def _seal(self, packs: list[_OpenPack]) -> None:
        """Finish packs: trailers, fsync each, publish them all, fsync the directory once; then the same for
        their indexes (an index is what makes a pack visible, so it is published only after its pack)."""
        named: list[tuple[_OpenPack, bytes]] = []
        for pack in packs:
            digest = pack.stream.finish()
            durable.fault("pack.before-fsync")
            pack.fh.flush()
            os.fsync(pack.fh.fileno())
            start_writeback(pack.fh.fileno(), pack.dropped)  # all on disk now: drops the pages
            pack.fh.close()
            named.append((pack, digest))
        pack_dir = self.store.pack_dir
        durable.make_dirs(pack_dir)
        for pack, digest in named:
            durable.fault("pack.before-link")
            try:
                os.link(pack.tmp, pack_dir / f"{digest.hex()}.pack")
                with self._lock:
                    self._published.append(digest.hex())
            except FileExistsError:
                pass  # the same objects in the same order: that pack is already here
            except OSError as exc:  # the folder refused the new name: name it, not the temp that was written
                raise OSError(exc.errno, exc.strerror, os.fspath(pack_dir)) from exc
            durable._unlink_quiet(pack.tmp)  # noqa: SLF001 - same package
            with self._lock:
                self._open.remove(pack)
        durable.fault("pack.before-dirsync")
        durable.fsync_dir(pack_dir)
        temps = [(durable.write_temp(pack_dir, encode_index(digest, pack.stream.entries), site="index"), digest)
                 for pack, digest in named]
        for tmp, digest in temps:
            durable.fault("index.before-link")
            try:
                os.link(tmp, pack_dir / f"{digest.hex()}.idx")
            except FileExistsError:
                pass
            finally:
                durable._unlink_quiet(tmp)  # noqa: SLF001 - same package
        durable.fault("index.before-dirsync")
        durable.fsync_dir(pack_dir)
        with self._lock:
            self.finished_packs.extend(digest.hex() for _, digest in named)

    # -- publishing -------------------------------------------------------------------------------------

    def flush(self) -> None:
        """Publish what was added so far (objects become readable and durable), keeping the writer open."""
        with self._lock:
            if any(p.broken for p in self._open):
                raise StorageError("a pack write failed earlier; nothing more can be published by this writer")
            idle, self._idle = self._idle, []
        try:
            if idle:
                self._seal(idle)
            for d in sorted(self._wait_loose()):
                durable.fault("loose.before-dirsync")
                durable.fsync_dir(d)
        except OSError as exc:
            raise os_error(exc, "cannot write pack") from exc
        self.store.refresh()

    def finish(self) -> None:
        self.flush()
        self._stop_sync_pool()

    def _stop_sync_pool(self) -> None:
        with self._lock:
            pool, self._sync_pool = self._sync_pool, None
        if pool is not None:
            pool.shutdown(wait=True)

    def abort(self) -> None:
        """Drop everything not yet published; with ``discard_on_abort``, also what this writer published."""
        try:
            self._wait_loose()
        except BaseException:  # noqa: BLE001 - aborting already: the temps are removed either way
            pass
        self._stop_sync_pool()
        with self._lock:
            packs, self._open, self._idle = self._open, [], []
            created, published, new_dirs = list(self._created), list(self._published), list(self._new_dirs)
        for pack in packs:
            pack.discard()
        if not self.discard_on_abort:
            return
        for path in created:
            durable._unlink_quiet(path)  # noqa: SLF001 - same package
        for d in new_dirs:
            try:
                os.rmdir(d)
            except OSError:
                pass  # another object of the store lives there too
        self.store.forget_packs(published)
        for name in published:
            durable._unlink_quiet(self.store.pack_dir / f"{name}.idx")  # noqa: SLF001 - same package
            durable._unlink_quiet(self.store.pack_dir / f"{name}.pack")  # noqa: SLF001 - same package


def _write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def add_pack_bytes(store: ObjectStore, data: bytes, name: str, entries: list[IndexEntry]) -> None:
    """Install a whole pack received from elsewhere (remote fetch); ``entries`` already verified."""
    durable.make_dirs(store.pack_dir)
    durable.write_new_file(store.pack_dir / f"{name}.pack", data, site="pack")
    durable.write_new_file(store.pack_dir / f"{name}.idx", encode_index(bytes.fromhex(name), entries), site="index")
    store.refresh()
