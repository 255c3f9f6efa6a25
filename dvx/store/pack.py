"""Pack files and their indexes (format v1, see docs/format.md "Packs").

A pack is written as one stream and never modified: a header, records (each with its own small header, so a
pack can be re-indexed from itself), then a trailer holding the BLAKE3 of everything before it. The pack's
name is that hash. Its index lists the records sorted by id, fixed-size, so a reader can look one up without
reading the pack; the index also ends with the BLAKE3 of its preceding bytes.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import blake3

from .. import durable
from ..errors import CorruptObject, UnsupportedFormat

PACK_MAGIC = b"DVXPACK1"
PACK_END = b"DVXPEND1"
INDEX_MAGIC = b"DVXIDX01"

# Record header: id (32), type (1), codec (1), raw size (u64), stored size (u64).
RECORD_HEADER = struct.Struct("<32sBBQQ")
# Index entry: id (32), type (1), codec (1), reserved (2), payload offset (u64), stored size (u64), raw size (u64).
INDEX_ENTRY = struct.Struct("<32sBBHQQQ")
# Pack trailer: end magic (8), record count (u64), BLAKE3 of all preceding bytes (32).
PACK_TRAILER = struct.Struct("<8sQ32s")
INDEX_HEADER = struct.Struct("<8s32sQ")  # magic, pack hash, count


@dataclass(frozen=True, slots=True)
class IndexEntry:
    object_id: bytes
    type: int
    codec: int
    offset: int
    stored_size: int
    raw_size: int


class PackStreamWriter:
    """Writes one pack to an open binary file, computing its hash on the way; call :meth:`finish` once."""

    def __init__(self, fh: BinaryIO) -> None:
        self._fh = fh
        self._hash = blake3.blake3()
        self._pos = 0
        self.entries: list[IndexEntry] = []
        self._write(PACK_MAGIC)

    def _write(self, data: bytes | memoryview) -> None:
        self._fh.write(data)
        self._hash.update(data)
        self._pos += len(data)

    @property
    def size(self) -> int:
        return self._pos

    def add(self, object_id: bytes, type_: int, codec: int, raw_size: int, payload: bytes | memoryview) -> None:
        self.add_many([(object_id, type_, codec, raw_size, payload)])

    def add_many(self, records: list[tuple[bytes, int, int, int, bytes | memoryview]]) -> None:
        """Append ``(id, type, codec, raw size, payload)`` records with one write and one hash update: the
        per-object cost of a commit of many small files is mostly Python calls, so they are batched."""
        parts: list[bytes | memoryview] = []
        pos = self._pos
        entries = self.entries
        header = RECORD_HEADER.pack
        for object_id, type_, codec, raw_size, payload in records:
            n = len(payload)
            parts.append(header(object_id, type_, codec, raw_size, n))
            pos += RECORD_HEADER.size
            entries.append(IndexEntry(object_id, type_, codec, pos, n, raw_size))
            parts.append(payload)
            pos += n
        if len(parts) == 2:
            for part in parts:  # one record (perhaps a big one): not worth a copy
                self._write(part)
        else:
            self._write(b"".join(parts))

    def finish(self) -> bytes:
        """Write the trailer; return the pack hash (its name)."""
        head = PACK_END + struct.pack("<Q", len(self.entries))
        self._fh.write(head)
        self._hash.update(head)
        digest = self._hash.digest()
        self._fh.write(digest)
        return digest


def encode_index(pack_hash: bytes, entries: list[IndexEntry]) -> bytes:
    """Serialize an index: entries sorted by id, then the BLAKE3 of the whole."""
    ordered = sorted(entries, key=lambda e: e.object_id)
    parts = [INDEX_HEADER.pack(INDEX_MAGIC, pack_hash, len(ordered))]
    parts.extend(
        INDEX_ENTRY.pack(e.object_id, e.type, e.codec, 0, e.offset, e.stored_size, e.raw_size) for e in ordered
    )
    body = b"".join(parts)
    return body + blake3.blake3(body).digest()


class PackIndex:
    """A parsed, validated index of one pack. Lookups by raw 32-byte id."""

    __slots__ = ("pack_hash", "name", "_data", "_count", "_map", "pack_size")

    def __init__(self, data: bytes, name: str, pack_size: int | None = None) -> None:
        self.name = name
        if data[:6] == INDEX_MAGIC[:6] and data[:8] != INDEX_MAGIC:
            raise UnsupportedFormat(f"pack index {name} has format {data[6:8]!r}, this dvx reads 01")
        if data[:8] != INDEX_MAGIC:
            raise CorruptObject(f"pack index {name} is not a dvx index")
        if len(data) < INDEX_HEADER.size + 32:
            raise CorruptObject(f"pack index {name} is truncated ({len(data)} bytes)")
        if blake3.blake3(data[:-32]).digest() != data[-32:]:
            raise CorruptObject(f"pack index {name} fails its checksum (truncated or damaged)")
        _, self.pack_hash, self._count = INDEX_HEADER.unpack_from(data, 0)
        if len(data) != INDEX_HEADER.size + self._count * INDEX_ENTRY.size + 32:
            raise CorruptObject(f"pack index {name} has the wrong length")
        self._data = data
        self._map: dict[bytes, int] | None = None
        # Full validation (sorted, in bounds, no overlaps) is fsck's job; lookups check bounds per entry.
        self.pack_size = pack_size

    def validate(self, pack_size: int) -> None:
        """Check ids sorted and unique, and records inside the pack and not overlapping."""
        last = b""
        spans = []
        limit = pack_size - PACK_TRAILER.size
        for e in self:
            if e.object_id <= last:
                raise CorruptObject(f"pack index {self.name} is not sorted or has duplicates")
            last = e.object_id
            if e.offset < len(PACK_MAGIC) + RECORD_HEADER.size or e.offset + e.stored_size > limit:
                raise CorruptObject(f"pack index {self.name} points outside its pack")
            spans.append((e.offset, e.stored_size))
        spans.sort()
        for (o1, s1), (o2, _) in zip(spans, spans[1:]):
            if o1 + s1 + RECORD_HEADER.size > o2:
                raise CorruptObject(f"pack index {self.name} has overlapping records")

    def __len__(self) -> int:
        return int(self._count)

    def _entry_at(self, i: int) -> IndexEntry:
        oid, t, c, _, off, stored, raw = INDEX_ENTRY.unpack_from(self._data, INDEX_HEADER.size + i * INDEX_ENTRY.size)
        return IndexEntry(oid, t, c, off, stored, raw)

    def __iter__(self) -> Iterator[IndexEntry]:
        for i in range(self._count):
            yield self._entry_at(i)

    def ids(self) -> Iterator[bytes]:
        base, step = INDEX_HEADER.size, INDEX_ENTRY.size
        data = self._data
        for i in range(self._count):
            p = base + i * step
            yield data[p : p + 32]

    def _lookup_map(self) -> dict[bytes, int]:
        if self._map is None:
            base, step, data = INDEX_HEADER.size, INDEX_ENTRY.size, self._data
            self._map = {data[base + i * step : base + i * step + 32]: i for i in range(self._count)}
        return self._map

    def get(self, object_id: bytes) -> IndexEntry | None:
        i = self._lookup_map().get(object_id)
        return None if i is None else self.entry(i)

    def entry(self, i: int) -> IndexEntry:
        """The ``i``-th entry, checked to lie inside the pack."""
        e = self._entry_at(i)
        if self.pack_size is not None and e.offset + e.stored_size > self.pack_size - PACK_TRAILER.size:
            raise CorruptObject(f"pack index {self.name} points outside its pack (object {e.object_id.hex()})")
        return e

    def __contains__(self, object_id: bytes) -> bool:
        return object_id in self._lookup_map()

    def raw(self) -> bytes:
        return self._data


def scan_pack(data: bytes, name: str) -> list[IndexEntry]:
    """Re-derive the index entries of a whole pack from its bytes, verifying its trailer hash."""
    if len(data) < len(PACK_MAGIC) + PACK_TRAILER.size or data[:8] != PACK_MAGIC:
        raise CorruptObject(f"pack {name} is not a dvx pack")
    end, count, digest = PACK_TRAILER.unpack_from(data, len(data) - PACK_TRAILER.size)
    if end != PACK_END or blake3.blake3(data[:-32]).digest() != digest:
        raise CorruptObject(f"pack {name} fails its checksum (truncated or damaged)")
    entries = []
    pos, limit = len(PACK_MAGIC), len(data) - PACK_TRAILER.size
    while pos < limit:
        oid, t, c, raw, stored = RECORD_HEADER.unpack_from(data, pos)
        pos += RECORD_HEADER.size
        if pos + stored > limit:
            raise CorruptObject(f"pack {name} has a record running past its end")
        entries.append(IndexEntry(oid, t, c, pos, stored, raw))
        pos += stored
    if len(entries) != count:
        raise CorruptObject(f"pack {name} holds {len(entries)} records, its trailer says {count}")
    return entries


def pack_hash_of(data: bytes) -> bytes:
    return bytes(data[-32:])


def read_at(fd: int, offset: int, size: int) -> bytes:
    data = os.pread(fd, size, offset)
    if len(data) != size:
        raise CorruptObject("pack is shorter than its index says (truncated)")
    return data


def open_pack(path: Path) -> int:
    """A read-only descriptor of the pack ``path``. Never blocks: a fifo, folder or device named like a pack
    is :class:`CorruptObject` (other OS errors are the caller's)."""
    try:
        fd, _ = durable.open_regular(path)
    except durable.NotRegularFile as exc:
        raise CorruptObject(f"pack {path.stem} is {exc.kind}, not a regular file") from None
    return fd


def read_index_file(path: Path) -> bytes:
    """The bytes of the pack index ``path``; as :func:`open_pack`, anything but a regular file is corrupt."""
    try:
        return durable.read_regular_file(path)
    except durable.NotRegularFile as exc:
        raise CorruptObject(f"pack index {path.stem} is {exc.kind}, not a regular file") from None


def pack_paths(directory: Path) -> list[tuple[Path, Path]]:
    """(pack, index) pairs present in ``directory``; an index is what makes a pack visible."""
    out = []
    for idx in sorted(directory.glob("*.idx")):
        out.append((idx.with_suffix(".pack"), idx))
    return out
