"""The content-addressed object store in ``.dvx/objects`` (see docs/format.md "Objects").

Small objects live in pack files, large ones (chunks of big files) as loose files named by id. Every read
verifies: blobs, trees and commits must hash to their id; a chunked file's manifest is checked when its
chunks are streamed (the whole content must hash to the file id). Objects are immutable and written once.
"""

from __future__ import annotations

import json
import os
import struct
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from .. import codec, durable
from ..errors import CorruptObject, MissingObject, UnsupportedFormat, os_error
from ..ids import hash_bytes, hasher, is_id
from .pack import (
    IndexEntry,
    PackIndex,
    PackStreamWriter,
    encode_index,
    pack_paths,
    read_at,
)

BLOB = 1
TREE = 2
COMMIT = 3
CHUNKED = 4
TYPE_NAMES = {BLOB: "blob", TREE: "tree", COMMIT: "commit", CHUNKED: "chunked"}

LOOSE_MAGIC = b"DVXOBJ01"
LOOSE_HEADER = struct.Struct("<8sBBQ")  # magic, type, codec, raw size

# Objects at least this large (uncompressed) are stored loose; smaller ones go into packs.
LOOSE_THRESHOLD = 512 << 10
PACK_TARGET_SIZE = 64 << 20


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


class ObjectStore:
    """Read and write objects of one repository. Thread-safe for concurrent reads and one writer."""

    def __init__(self, objects_dir: Path, tmp_dir: Path, *, compression_level: int = 3) -> None:
        self.dir = objects_dir
        self.pack_dir = objects_dir / "pack"
        self.loose_dir = objects_dir / "loose"
        self.tmp_dir = tmp_dir
        self.level = compression_level
        self._lock = threading.RLock()
        self._packs: dict[str, PackIndex] = {}
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
                    data = idx.read_bytes()
                    size = pack.stat().st_size
                except FileNotFoundError:
                    continue  # removed by a concurrent gc between listing and reading
                except OSError as exc:
                    raise os_error(exc, f"cannot read pack index {name}") from exc
                index = PackIndex(data, name, size)
                if index.pack_hash.hex() != name:
                    raise CorruptObject(f"pack index {name} belongs to pack {index.pack_hash.hex()[:16]}")
                self._packs[name] = index
            self._loaded = True

    def refresh(self) -> None:
        """Pick up packs written by other processes since this store was opened."""
        self._load_packs()

    def packs(self) -> dict[str, PackIndex]:
        if not self._loaded:
            self._load_packs()
        return dict(self._packs)

    def _fd(self, pack: str) -> int:
        with self._lock:
            fd = self._fds.get(pack)
            if fd is None:
                try:
                    fd = os.open(self.pack_dir / f"{pack}.pack", os.O_RDONLY)
                except OSError as exc:
                    raise os_error(exc, f"cannot open pack {pack}") from exc
                self._fds[pack] = fd
            return fd

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
        raw = bytes.fromhex(object_id)
        for name, idx in self._packs.items():
            e = idx.get(raw)
            if e is not None:
                return ObjectInfo(object_id, e.type, e.codec, e.raw_size, e.stored_size, name, e.offset)
        if not loose:
            return None
        path = self.loose_path(object_id)
        try:
            with open(path, "rb") as fh:
                head = fh.read(LOOSE_HEADER.size)
            size = path.stat().st_size
        except FileNotFoundError:
            return None
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
            return read_at(self._fd(found.pack), found.offset, found.stored_size)
        try:
            with open(self.loose_path(found.id), "rb") as fh:
                fh.seek(LOOSE_HEADER.size)
                data = fh.read()
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
        """A chunk's bytes. The same content may have been stored as a chunked file (another file of exactly
        this content, or other chunking settings), so a manifest is accepted and assembled (one level deep)."""
        type_, data = self.get(chunk_id)
        if type_ == BLOB:
            return data
        if type_ == CHUNKED and size <= codec.MAX_OBJECT_SIZE:
            parts = parse_manifest(data, chunk_id)[1]
            if any(c == chunk_id for c, _ in parts):
                raise CorruptObject(f"chunk manifest {chunk_id} refers to itself", chunk_id)
            out = b"".join(self.get(c, BLOB)[1] for c, _ in parts)
            if hash_bytes(out) != chunk_id:
                raise CorruptObject(f"chunk {chunk_id} of file {file_id} is corrupt", chunk_id)
            return out
        raise CorruptObject(f"chunk {chunk_id} of file {file_id} is a {TYPE_NAMES.get(type_, type_)}", chunk_id)

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

    def writer(self) -> StoreWriter:
        return StoreWriter(self)


def encode_manifest(size: int, chunks: list[tuple[str, int]]) -> bytes:
    return json.dumps({"v": 1, "size": size, "chunks": [[c, s] for c, s in chunks]}, separators=(",", ":")).encode()


def parse_manifest(data: bytes, file_id: str) -> tuple[int, list[tuple[str, int]]]:
    try:
        doc = json.loads(data)
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


class StoreWriter:
    """Adds objects to the store: small ones into a new pack, large ones as loose files.

    Nothing is visible to readers (or safe to reference from a ref) until :meth:`finish` returns: it fsyncs the
    pack, then publishes pack and index. Thread-safe: several hashing threads share one writer.
    """

    def __init__(self, store: ObjectStore) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._pending: set[str] = set()
        self._fh: BinaryIO | None = None
        self._tmp: Path | None = None
        self._pack: PackStreamWriter | None = None
        self.finished_packs: list[str] = []
        self.objects_written = 0
        self.bytes_written = 0

    def __enter__(self) -> StoreWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.finish()
        else:
            self.abort()

    def has(self, object_id: str, size: int | None = None) -> bool:
        with self._lock:
            if object_id in self._pending:
                return True
        if size is not None:
            return self.store.has_for_write(object_id, size)
        return self.store.has(object_id)

    def add(self, object_id: str, type_: int, data: bytes | memoryview, *, encoded: tuple[int, bytes | memoryview] | None = None) -> bool:
        """Store ``data`` under ``object_id`` unless present; True if this call added it.

        Callers computed ``object_id`` from ``data`` (or, for manifests, from the file); ``encoded`` may carry
        a payload already compressed by the caller's thread.
        """
        with self._lock:
            if object_id in self._pending:
                return False
            self._pending.add(object_id)
        if self.store.has_for_write(object_id, len(data)):
            return False
        codec_, payload = encoded if encoded is not None else codec.encode(data, self.store.level)
        if len(data) >= LOOSE_THRESHOLD:
            self._write_loose(object_id, type_, codec_, len(data), payload)
        else:
            self._append(object_id, type_, codec_, len(data), payload)
        return True

    def add_encoded(self, object_id: str, type_: int, codec_: int, raw_size: int, payload: bytes | memoryview) -> bool:
        """Store an object received already encoded (from a remote pack); the caller verified it."""
        with self._lock:
            if object_id in self._pending:
                return False
            self._pending.add(object_id)
        if self.store.has_for_write(object_id, raw_size):
            return False
        if raw_size >= LOOSE_THRESHOLD:
            self._write_loose(object_id, type_, codec_, raw_size, payload)
        else:
            self._append(object_id, type_, codec_, raw_size, payload)
        return True

    def _write_loose(self, object_id: str, type_: int, codec_: int, raw_size: int, payload: bytes | memoryview) -> None:
        final = self.store.loose_path(object_id)
        try:
            durable.make_dirs(final.parent)
            durable.make_dirs(self.store.tmp_dir)
            tmp = durable.write_temp(self.store.tmp_dir, LOOSE_HEADER.pack(LOOSE_MAGIC, type_, codec_, raw_size) + bytes(payload), site="loose")
            # The temp lives in .dvx/tmp (same file system) so a crash leaves nothing half-named in objects/.
            durable.publish_new(tmp, final, site="loose")
        except OSError as exc:
            raise os_error(exc, "cannot write object") from exc
        with self._lock:
            self.objects_written += 1
            self.bytes_written += len(payload) + LOOSE_HEADER.size

    def _append(self, object_id: str, type_: int, codec_: int, raw_size: int, payload: bytes | memoryview) -> None:
        with self._lock:
            try:
                if self._pack is None:
                    durable.make_dirs(self.store.tmp_dir)
                    self._tmp = durable.temp_name(self.store.tmp_dir, "pack")
                    self._fh = open(self._tmp, "xb")  # noqa: SIM115 - closed in _seal
                    self._pack = PackStreamWriter(self._fh)
                self._pack.add(bytes.fromhex(object_id), type_, codec_, raw_size, payload)
                self.objects_written += 1
                self.bytes_written += len(payload)
                if self._pack.size >= PACK_TARGET_SIZE:
                    self._seal()
            except OSError as exc:
                raise os_error(exc, "cannot write pack") from exc

    def _seal(self) -> None:
        """Finish the current pack: trailer, fsync, then publish the pack and, last, its index."""
        assert self._pack is not None and self._fh is not None and self._tmp is not None
        pack_hash = self._pack.finish()
        durable.fault("pack.before-fsync")
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()
        name = pack_hash.hex()
        durable.make_dirs(self.store.pack_dir)
        pack_final = self.store.pack_dir / f"{name}.pack"
        durable.publish_new(self._tmp, pack_final, site="pack")
        index = encode_index(pack_hash, self._pack.entries)
        durable.write_new_file(self.store.pack_dir / f"{name}.idx", index, site="index")
        self.finished_packs.append(name)
        self._pack = self._fh = self._tmp = None

    def flush(self) -> None:
        """Publish what was added so far (objects become readable), keeping the writer open."""
        with self._lock:
            if self._pack is not None:
                try:
                    self._seal()
                except OSError as exc:
                    raise os_error(exc, "cannot write pack") from exc
        self.store.refresh()

    def finish(self) -> None:
        self.flush()

    def abort(self) -> None:
        with self._lock:
            if self._fh is not None:
                self._fh.close()
            if self._tmp is not None:
                try:
                    os.unlink(self._tmp)
                except FileNotFoundError:
                    pass
            self._pack = self._fh = self._tmp = None


def add_pack_bytes(store: ObjectStore, data: bytes, name: str, entries: list[IndexEntry]) -> None:
    """Install a whole pack received from elsewhere (remote fetch); ``entries`` already verified."""
    durable.make_dirs(store.pack_dir)
    durable.write_new_file(store.pack_dir / f"{name}.pack", data, site="pack")
    durable.write_new_file(store.pack_dir / f"{name}.idx", encode_index(bytes.fromhex(name), entries), site="index")
    store.refresh()
