#!/usr/bin/env python3
"""A reference reader for dvx repository format 1, written from docs/format.md alone (it imports nothing
from dvx). It checks the format version, verifies every pack, index and object in the store, lists the commits
reachable from the refs, walks their trees (bucketed directories included) reading every file back (chunks that
are themselves manifests included, §8.4), and decodes the stat cache. With --remote it reads a folder remote
instead (§17): version marker, refs, HEAD, packs and indexes, every object, and the closure of every ref.
In a lazy clone (core.lazy_remote, §17.6), file contents not fetched yet are counted, not reported.

Usage: python read_repo.py [--ls] [REPO]             (REPO defaults to "."; needs blake3 and zstandard)
       python read_repo.py --remote [--ls] DIR       a folder remote (docs/format.md §17): its refs and packs

Exit status 0 when everything verifies, 1 when something is corrupt or missing, 2 on an unsupported format.
Section numbers (§) refer to docs/format.md.
"""

from __future__ import annotations

import json
import struct
import sys
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import blake3
import zstandard

MAX_OBJECT_SIZE = 256 << 20  # §5.3
MAX_LEAF_ENTRIES = 2048  # §9.4
BLOB, TREE, COMMIT, CHUNKED = 1, 2, 3, 4  # §5.1
TYPE_NAMES = {BLOB: "blob", TREE: "tree", COMMIT: "commit", CHUNKED: "chunked"}
RAW, ZSTD = 0, 1  # §5.2

LOOSE_HEADER = struct.Struct("<8sBBQ")  # §6
RECORD_HEADER = struct.Struct("<32sBBQQ")  # §7.1
PACK_TRAILER = struct.Struct("<8sQ32s")  # §7.1
INDEX_HEADER = struct.Struct("<8s32sQ")  # §7.2
INDEX_ENTRY = struct.Struct("<32sBBHQQQ")  # §7.2


class Corrupt(Exception):
    pass


class Missing(Corrupt):
    """An object that is not in the store (corruption, except for file contents in a lazy clone, §17.6)."""


class Unsupported(Exception):
    pass


def H(data: bytes) -> bytes:
    return blake3.blake3(data).digest()


def is_id(text: object) -> bool:  # §4
    return isinstance(text, str) and len(text) == 64 and all(c in "0123456789abcdef" for c in text)


def check_magic(found: bytes, expected: bytes, what: str) -> None:
    """§3: a known prefix with other version digits is unsupported, anything else is corrupt."""
    if found == expected:
        return
    if found[:6] == expected[:6]:
        raise Unsupported(f"{what} has format {found!r}, this reader knows {expected!r}")
    raise Corrupt(f"{what} is not a dvx file (magic {found!r})")


# --- objects: §5 ---------------------------------------------------------------------------------------


def decode_payload(oid: str, type_: int, codec: int, raw_size: int, payload: bytes) -> bytes:
    if type_ not in TYPE_NAMES:
        raise Unsupported(f"object {oid} has unknown type {type_}")
    if raw_size > MAX_OBJECT_SIZE:  # bomb rule step 1: before allocating anything
        raise Corrupt(f"object {oid} claims {raw_size} bytes, over {MAX_OBJECT_SIZE}")
    if codec == RAW:
        if len(payload) != raw_size:
            raise Corrupt(f"object {oid}: raw payload of {len(payload)} bytes, raw size says {raw_size}")
        return payload
    if codec != ZSTD:
        raise Unsupported(f"object {oid} has unknown codec {codec}")
    try:
        declared = zstandard.frame_content_size(payload)
    except zstandard.ZstdError as exc:
        raise Corrupt(f"object {oid}: not a zstd frame") from exc
    if declared != raw_size:  # -1 (no content size) is refused too
        raise Corrupt(f"object {oid}: zstd frame declares {declared} bytes, expected {raw_size}")
    try:
        out = zstandard.ZstdDecompressor().decompress(payload, max_output_size=raw_size)
    except zstandard.ZstdError as exc:
        raise Corrupt(f"object {oid} does not decompress: {exc}") from exc
    if len(out) != raw_size:
        raise Corrupt(f"object {oid} decompressed to {len(out)} bytes, expected {raw_size}")
    return out


class Location:
    __slots__ = ("type", "codec", "raw_size", "stored_size", "path", "offset")

    def __init__(
        self, type_: int, codec: int, raw_size: int, stored_size: int, path: Path, offset: int
    ) -> None:
        self.type, self.codec, self.raw_size, self.stored_size = type_, codec, raw_size, stored_size
        self.path, self.offset = path, offset


class Store:
    """The objects of a repository (packs and loose), or of a remote (packs only, §17.2)."""

    def __init__(self, pack_dir: Path, loose_dir: Path | None) -> None:
        self.pack_dir, self.loose_dir = pack_dir, loose_dir
        self.packs: dict[str, dict[str, Location]] = {}
        self.problems: list[str] = []
        if self.pack_dir.is_dir():
            for idx in sorted(self.pack_dir.glob("*.idx")):
                name = idx.name[: -len(".idx")]
                pack = self.pack_dir / f"{name}.pack"
                if not is_id(name):
                    continue
                if not pack.exists():
                    if loose_dir is None:  # §17.5: nothing deletes a remote's packs
                        self.problems.append(f"index {name} has no pack")
                    continue  # §7.3 check 5: locally, an index without its pack is being removed by gc
                try:
                    self.packs[name] = self.load_index(idx.read_bytes(), name, pack)
                except Corrupt as exc:
                    self.problems.append(str(exc))

    # §7.2, §7.3
    def load_index(self, data: bytes, name: str, pack: Path) -> dict[str, Location]:
        what = f"index {name}"
        if len(data) < INDEX_HEADER.size + 32:
            raise Corrupt(f"{what} is too short")
        check_magic(data[:8], b"DVXIDX01", what)
        if H(data[:-32]) != data[-32:]:
            raise Corrupt(f"{what} fails its checksum")
        _, pack_hash, count = INDEX_HEADER.unpack_from(data, 0)
        if len(data) != INDEX_HEADER.size + count * INDEX_ENTRY.size + 32:
            raise Corrupt(f"{what} has the wrong length for {count} entries")
        if pack_hash.hex() != name:
            raise Corrupt(f"{what} belongs to pack {pack_hash.hex()}")
        pack_len = pack.stat().st_size
        out: dict[str, Location] = {}
        last = b""
        spans = []
        for i in range(count):
            oid, type_, codec, reserved, offset, stored, raw = INDEX_ENTRY.unpack_from(
                data, INDEX_HEADER.size + i * INDEX_ENTRY.size
            )
            if oid <= last:
                raise Corrupt(f"{what}: ids not strictly ascending at entry {i}")
            last = oid
            if reserved != 0:
                raise Corrupt(f"{what}: reserved field is {reserved}")
            if offset < 8 + RECORD_HEADER.size or offset + stored > pack_len - PACK_TRAILER.size:
                raise Corrupt(f"{what}: entry {oid.hex()} points outside the pack")
            spans.append((offset, stored))
            out[oid.hex()] = Location(type_, codec, raw, stored, pack, offset)
        spans.sort()
        for (o1, s1), (o2, _) in zip(spans, spans[1:]):
            if o1 + s1 + RECORD_HEADER.size > o2:
                raise Corrupt(f"{what}: records overlap")
        return out

    # §7.1 scan, compared with the index
    def verify_pack(self, name: str) -> None:
        data = (self.pack_dir / f"{name}.pack").read_bytes()
        what = f"pack {name}"
        if len(data) < 8 + PACK_TRAILER.size:
            raise Corrupt(f"{what} is too short")
        check_magic(data[:8], b"DVXPACK1", what)
        end, count, digest = PACK_TRAILER.unpack_from(data, len(data) - PACK_TRAILER.size)
        check_magic(end, b"DVXPEND1", f"{what} end marker")
        if H(data[:-32]) != digest or digest.hex() != name:
            raise Corrupt(f"{what} fails its checksum or is misnamed")
        records: dict[str, tuple[int, int, int, int, int]] = {}
        pos, limit = 8, len(data) - PACK_TRAILER.size
        while pos < limit:
            if pos + RECORD_HEADER.size > limit:
                raise Corrupt(f"{what}: record header runs into the trailer")
            oid, type_, codec, raw, stored = RECORD_HEADER.unpack_from(data, pos)
            pos += RECORD_HEADER.size
            if pos + stored > limit:
                raise Corrupt(f"{what}: record {oid.hex()} runs past the end")
            if oid.hex() in records:
                raise Corrupt(f"{what}: id {oid.hex()} appears twice")
            records[oid.hex()] = (type_, codec, raw, stored, pos)
            pos += stored
        if pos != limit or len(records) != count:
            raise Corrupt(f"{what}: {len(records)} records, trailer says {count}")
        index = {
            k: (v.type, v.codec, v.raw_size, v.stored_size, v.offset) for k, v in self.packs[name].items()
        }
        if index != records:
            raise Corrupt(f"{what}: its index does not match its records")

    def loose_path(self, oid: str) -> Path:
        assert self.loose_dir is not None
        return self.loose_dir / oid[:2] / oid[2:]

    def loose_location(self, path: Path, oid: str) -> Location:
        with open(path, "rb") as fh:
            head = fh.read(LOOSE_HEADER.size)
        if len(head) < LOOSE_HEADER.size:
            raise Corrupt(f"loose object {oid} is truncated")
        magic, type_, codec, raw = LOOSE_HEADER.unpack(head)
        check_magic(magic, b"DVXOBJ01", f"loose object {oid}")
        return Location(type_, codec, raw, path.stat().st_size - LOOSE_HEADER.size, path, LOOSE_HEADER.size)

    def locate(self, oid: str) -> Location | None:  # §15.4: packs first, then loose
        for entries in self.packs.values():
            if oid in entries:
                return entries[oid]
        if self.loose_dir is None:
            return None
        path = self.loose_path(oid)
        return self.loose_location(path, oid) if path.is_file() else None

    def iter_all(self) -> Iterator[tuple[str, Location]]:
        """Every stored copy of every object, packed and loose."""
        for entries in self.packs.values():
            yield from entries.items()
        if self.loose_dir is not None and self.loose_dir.is_dir():
            for sub in sorted(self.loose_dir.iterdir()):
                if len(sub.name) == 2 and sub.is_dir():
                    for f in sorted(sub.iterdir()):
                        if is_id(sub.name + f.name):
                            yield sub.name + f.name, self.loose_location(f, sub.name + f.name)

    def read(self, oid: str, loc: Location) -> bytes:
        with open(loc.path, "rb") as fh:
            fh.seek(loc.offset)
            payload = fh.read(loc.stored_size)
        if len(payload) != loc.stored_size:
            raise Corrupt(f"object {oid}: short read (truncated file)")
        data = decode_payload(oid, loc.type, loc.codec, loc.raw_size, payload)
        if loc.type != CHUNKED and H(data).hex() != oid:  # §5.1
            raise Corrupt(f"object {oid} does not hash to its id")
        return data

    def get(self, oid: str, want: int) -> bytes:
        loc = self.locate(oid)
        if loc is None:
            raise Missing(f"object {oid} is missing")
        if loc.type != want:
            raise Corrupt(
                f"object {oid} is a {TYPE_NAMES.get(loc.type, loc.type)}, expected a {TYPE_NAMES[want]}"
            )
        return self.read(oid, loc)

    # §8.3, §8.4
    def file_chunks(self, file_id: str) -> list[tuple[str, int]] | None:
        """The manifest's chunk list, or None when the file id names a blob."""
        loc = self.locate(file_id)
        if loc is None:
            raise Missing(f"file {file_id} is missing")
        if loc.type == BLOB:
            return None
        if loc.type != CHUNKED:
            raise Corrupt(f"file {file_id} is a {TYPE_NAMES.get(loc.type, loc.type)}")
        return parse_manifest(self.read(file_id, loc), file_id)

    def chunk(self, cid: str, size: int, file_id: str) -> bytes:
        """§8.4 "resolving a chunk id": a blob, or a manifest of exactly the chunk's content (assembled)."""
        loc = self.locate(cid)
        if loc is None:
            raise Missing(f"chunk {cid} of {file_id} is missing")
        if loc.type == BLOB:
            data = self.read(cid, loc)
        elif loc.type == CHUNKED and size <= MAX_OBJECT_SIZE:
            parts = parse_manifest(self.read(cid, loc), cid)
            # One level MUST be accepted; deeper nesting SHOULD be, with every part strictly shorter than the
            # chunk it makes up (this also refuses a manifest that lists itself, and ends the recursion).
            if sum(s for _, s in parts) != size or any(s >= size for _, s in parts):
                raise Corrupt(f"chunk {cid} of {file_id}: its manifest does not describe {size} bytes")
            data = b"".join(self.chunk(c, s, file_id) for c, s in parts)
        else:
            raise Corrupt(f"chunk {cid} of {file_id} is a {TYPE_NAMES.get(loc.type, loc.type)}")
        if len(data) != size or H(data).hex() != cid:
            raise Corrupt(f"chunk {cid} of {file_id} has the wrong size or content")
        return data

    def read_file(self, file_id: str, expected_size: int | None = None) -> int:
        """Stream a file's content, verifying every chunk and the whole; return its size."""
        chunks = self.file_chunks(file_id)
        if chunks is None:
            n = len(self.get(file_id, BLOB))
        else:
            whole = blake3.blake3()
            n = 0
            for cid, size in chunks:
                whole.update(self.chunk(cid, size, file_id))
                n += size
            if whole.hexdigest() != file_id:
                raise Corrupt(f"file {file_id}: chunks do not hash to the file id")
        if expected_size is not None and n != expected_size:
            raise Corrupt(f"file {file_id} has {n} bytes, expected {expected_size}")
        return n


def parse_manifest(data: bytes, file_id: str) -> list[tuple[str, int]]:
    doc = json.loads(data)
    if not isinstance(doc, dict):
        raise Corrupt(f"manifest {file_id} is not an object")
    if doc.get("v") != 1:
        raise Unsupported(f"manifest {file_id} has version {doc.get('v')!r}")
    chunks = doc.get("chunks")
    size = doc.get("size")
    if not isinstance(chunks, list) or not isinstance(size, int) or isinstance(size, bool):
        raise Corrupt(f"manifest {file_id} is malformed")
    out = []
    for row in chunks:
        if not (
            isinstance(row, list) and len(row) == 2 and is_id(row[0]) and type(row[1]) is int and row[1] >= 0
        ):
            raise Corrupt(f"manifest {file_id} has a bad chunk row {row!r}")
        out.append((row[0], row[1]))
    if sum(s for _, s in out) != size:
        raise Corrupt(f"manifest {file_id}: chunk sizes do not add up to {size}")
    return out


# --- trees: §9 -----------------------------------------------------------------------------------------

INVISIBLE = dict.fromkeys([*range(0x200B, 0x2010), *range(0x202A, 0x202F), 0x2060, 0xFEFF])


def check_name(name: object) -> str:  # §9.3
    if not isinstance(name, str) or name in ("", ".", "..") or "/" in name or "\0" in name:
        raise Corrupt(f"unsafe name {name!r}")
    try:
        encoded = name.encode("utf-8")
    except UnicodeEncodeError:
        raise Corrupt(f"name {name!r} is not valid Unicode") from None
    if len(encoded) > 255:
        raise Corrupt(f"name longer than 255 bytes: {name[:40]!r}")
    folded = unicodedata.normalize("NFKC", name.translate(INVISIBLE)).casefold().rstrip(". ")
    if folded in (".dvx", ".git"):
        raise Corrupt(f"name {name!r} aliases a metadata directory ({folded})")
    return name


def is_int(v: object) -> bool:
    return type(v) is int


class Entry:
    __slots__ = ("name", "kind", "exec", "size", "id", "target")

    def __init__(self, row: object) -> None:
        if not isinstance(row, list) or len(row) < 5:
            raise Corrupt(f"bad entry {row!r}")
        name, kind, exe, size, oid = row[:5]
        self.name = check_name(name)
        if (
            kind not in ("f", "l", "d")
            or exe not in (0, 1)
            or not is_int(exe)
            or not is_int(size)
            or size < 0
        ):
            raise Corrupt(f"bad entry {row[:5]!r}")
        if not is_id(oid):
            raise Corrupt(f"bad id in entry {name!r}")
        if exe and kind != "f":
            raise Corrupt(f"executable bit on non-file {name!r}")
        self.kind, self.exec, self.size, self.id, self.target = kind, exe, size, oid, None
        if kind == "l":
            if len(row) != 6 or not isinstance(row[5], str) or not row[5] or "\0" in row[5]:
                raise Corrupt(f"bad symlink entry {name!r}")
            raw = row[5].encode("utf-8")
            if len(raw) > 4096:
                raise Corrupt(f"symlink target too long in {name!r}")
            if H(raw).hex() != oid or len(raw) != size:  # the strict-reader SHOULD of §9.3
                raise Corrupt(f"symlink {name!r}: id or size does not match its target")
            self.target = row[5]
        elif len(row) != 5:
            raise Corrupt(f"bad entry {name!r}")


def parse_node(data: bytes, tree_id: str) -> dict[str, Any]:
    doc = json.loads(data.decode("utf-8"))
    if not isinstance(doc, dict):
        raise Corrupt(f"tree {tree_id} is not an object")
    if doc.get("v") != 1:
        raise Unsupported(f"tree {tree_id} has version {doc.get('v')!r}")
    return doc


class Trees:
    def __init__(self, store: Store) -> None:
        self.store = store

    def read_dir(self, tree_id: str) -> list[Entry]:
        """All entries of a directory, bucket nodes merged, with every check of §9.3 and §9.4."""
        entries, _, _ = self._node(tree_id, None, [])
        names = [e.name.encode("utf-8") for e in entries]
        if any(a >= b for a, b in zip(names, names[1:])):
            raise Corrupt(f"directory {tree_id} lists a name twice")
        return entries

    def _node(
        self, tree_id: str, depth: int | None, path: list[tuple[int, int]]
    ) -> tuple[list[Entry], int, int]:
        doc = parse_node(self.store.get(tree_id, TREE), tree_id)
        if "buckets" in doc:
            d = doc.get("depth")
            expected = 0 if depth is None else depth  # a directory's top node splits on byte 0
            if not isinstance(d, int) or isinstance(d, bool) or d != expected:
                raise Corrupt(f"tree {tree_id}: bucket node at depth {d!r}, expected {expected}")
            out: list[Entry] = []
            last = -1
            for row in doc["buckets"]:
                if not (isinstance(row, list) and len(row) == 4 and is_int(row[0]) and is_id(row[1])):
                    raise Corrupt(f"tree {tree_id}: bad bucket row {row!r}")
                b, sub, count, size = row
                if not last < b <= 255:
                    raise Corrupt(f"tree {tree_id}: bucket bytes not strictly ascending in 0..255")
                last = b
                sub_entries, n, total = self._node(sub, d + 1, [*path, (d, b)])
                if (n, total) != (count, size):
                    raise Corrupt(
                        f"tree {tree_id}: bucket {b} says {count} entries/{size} bytes, holds {n}/{total}"
                    )
                out.extend(sub_entries)
            out.sort(key=lambda e: e.name.encode("utf-8"))
            return out, len(out), sum(e.size for e in out)
        rows = doc.get("entries")
        if not isinstance(rows, list):
            raise Corrupt(f"tree {tree_id} has neither entries nor buckets")
        entries = [Entry(r) for r in rows]
        names = [e.name.encode("utf-8") for e in entries]
        if any(a >= b for a, b in zip(names, names[1:])):
            raise Corrupt(f"tree {tree_id}: names not strictly ascending")
        for e in entries:  # every bucket level this leaf sits under must match the name's hash
            digest = H(e.name.encode("utf-8"))
            if any(digest[d] != b for d, b in path):
                raise Corrupt(f"tree {tree_id}: {e.name!r} is in the wrong bucket")
        return entries, len(entries), sum(e.size for e in entries)

    def walk(self, tree_id: str, prefix: str = "") -> Iterator[tuple[str, Entry]]:
        for e in self.read_dir(tree_id):
            if e.kind == "d":
                yield from self.walk(e.id, f"{prefix}{e.name}/")
            else:
                yield prefix + e.name, e


# --- commits, refs, HEAD: §10, §11 -------------------------------------------------------------------------


def parse_commit(data: bytes, cid: str) -> dict[str, Any]:
    doc = json.loads(data.decode("utf-8"))
    if not isinstance(doc, dict):
        raise Corrupt(f"commit {cid} is not an object")
    if doc.get("v") != 1:
        raise Unsupported(f"commit {cid} has version {doc.get('v')!r}")
    ok = (
        is_id(doc.get("tree"))
        and isinstance(doc.get("parents"), list)
        and all(is_id(p) for p in doc["parents"])
        and all(isinstance(doc.get(k), str) for k in ("message", "author", "time"))
        and len(doc["time"]) == 27
        and doc["time"].endswith("Z")
        and isinstance(doc.get("meta"), dict)
        and all(isinstance(v, str) for v in doc["meta"].values())
    )
    if not ok:
        raise Corrupt(f"commit {cid} is malformed")
    return doc


def check_ref_name(name: str) -> None:  # §11.2
    bad = (
        not name
        or name in ("@", "HEAD")
        or name[0] in "-./"
        or name[-1] in "/."
        or any(ord(c) <= 0x20 or ord(c) == 0x7F or c in "~^:?*[\\" for c in name)
        or any(s in name for s in ("..", "@{", "//", "/."))
        or any(part.endswith(".lock") for part in name.split("/"))
    )
    if bad:
        raise Corrupt(f"invalid ref name {name!r}")


def read_id_file(path: Path, what: str) -> str:
    value = path.read_text("utf-8").strip()
    if not is_id(value):
        raise Corrupt(f"{what} does not hold a commit id")
    return value


def read_refs(dvx: Path, kinds: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for kind in kinds:
        base = dvx / "refs" / kind
        if not base.is_dir():
            continue
        for path in sorted(base.rglob("*")):
            if path.is_file() and not path.name.endswith(".lock") and not path.name.startswith("."):
                name = path.relative_to(base).as_posix()
                check_ref_name(name)
                out[f"refs/{kind}/{name}"] = read_id_file(path, f"ref refs/{kind}/{name}")
    return out


def read_head(dvx: Path, refs: dict[str, str]) -> tuple[str | None, str | None]:
    """(branch ref or None when detached, commit id or None when unborn)."""
    path = dvx / "HEAD"
    text = path.read_text("utf-8").strip() if path.exists() else "ref: refs/heads/main"
    if text.startswith("ref: "):
        ref = text[5:]
        if not ref.startswith("refs/heads/"):
            raise Corrupt(f"HEAD points outside refs/heads/: {ref!r}")
        check_ref_name(ref[len("refs/heads/") :])
        return ref, refs.get(ref)
    if not is_id(text):
        raise Corrupt("HEAD holds neither a ref nor a commit id")
    return None, text


# --- stat cache: §13 -----------------------------------------------------------------------------------------


def read_stat_cache(path: Path) -> str:
    if not path.exists():
        return "absent"
    raw = path.read_bytes()
    size = zstandard.frame_content_size(raw)
    if size < 0 or size > MAX_OBJECT_SIZE:
        return "unusable (no content size in its zstd frame): ignored"
    doc = json.loads(zstandard.ZstdDecompressor().decompress(raw, max_output_size=size))
    if doc.get("v") != 1:
        return f"version {doc.get('v')!r}: ignored"
    rows = doc["entries"]
    settled = sum(1 for r in rows if len(r) == 7 and r[6] == 1)
    return f"{len(rows)} paths ({settled} settled)"


# --- main ------------------------------------------------------------------------------------------------------


def verify_store(store: Store, problems: list[str], lazy: bool = False) -> dict[str, int]:
    """Every pack scans and matches its index (§7); every stored copy of every object decodes and verifies (§5);
    chunked files stream to their id (§8.4). Returns the object counts by type."""
    problems += store.problems
    for name in sorted(store.packs):
        try:
            store.verify_pack(name)
        except Corrupt as exc:
            problems.append(str(exc))
    counts: dict[str, int] = {}
    for oid, loc in store.iter_all():
        try:
            data = store.read(oid, loc)
            if loc.type == CHUNKED:
                try:
                    store.read_file(oid, sum(s for _, s in parse_manifest(data, oid)))
                except Missing:
                    if not lazy:  # §17.6: a lazy clone has manifests whose chunks are not fetched yet
                        raise
            counts[TYPE_NAMES[loc.type]] = counts.get(TYPE_NAMES[loc.type], 0) + 1
        except (Corrupt, Unsupported, ValueError) as exc:
            problems.append(f"{oid}: {exc}")
    return counts


def walk_history(
    store: Store,
    refs: dict[str, str],
    head: str | None,
    show_files: bool,
    problems: list[str],
    lazy: bool = False,
) -> None:
    """Print the commits reachable from the refs and HEAD; read back every file of every one of them."""
    commits: dict[str, dict[str, Any]] = {}
    todo = sorted(set(refs.values()) | ({head} if head else set()))
    while todo:
        cid = todo.pop()
        if cid in commits:
            continue
        try:
            commits[cid] = parse_commit(store.get(cid, COMMIT), cid)
        except (Corrupt, Unsupported, ValueError) as exc:
            problems.append(f"commit {cid}: {exc}")
            continue
        todo.extend(commits[cid]["parents"])

    names: dict[str, list[str]] = {}
    for ref, value in refs.items():
        names.setdefault(value, []).append(
            ref.split("/", 2)[2] if not ref.startswith("refs/tags/") else "tag: " + ref[10:]
        )
    print()
    for cid, c in sorted(commits.items(), key=lambda kv: (kv[1]["time"], kv[0]), reverse=True):
        deco = f" ({', '.join(names[cid])})" if cid in names else ""
        first = c["message"].splitlines()[0] if c["message"] else ""
        print(f"{cid[:12]} {c['time']} {c['author']}: {first}{deco}")

    trees = Trees(store)
    seen_files: set[str] = set()
    not_fetched = 0
    for cid, c in commits.items():
        try:
            n = 0
            for path, e in trees.walk(c["tree"]):
                n += 1
                if e.kind == "f" and e.id not in seen_files:
                    seen_files.add(e.id)
                    try:
                        store.read_file(e.id, e.size)
                    except Missing:
                        if not lazy:
                            raise
                        not_fetched += 1  # §17.6: a lazy clone lacks contents by design
                if cid == head and show_files:
                    flag = "x" if e.exec else ("l" if e.kind == "l" else "-")
                    suffix = f" -> {e.target}" if e.kind == "l" else ""
                    print(f"{flag} {e.size:>12}  {e.id}  {path}{suffix}")
            if cid == head:
                print(f"\nHEAD tree {c['tree'][:12]}: {n} files and symlinks")
        except (Corrupt, Unsupported, ValueError) as exc:
            problems.append(f"tree of commit {cid}: {exc}")
    print(
        f"{len(commits)} commits; {len(seen_files) - not_fetched} distinct file contents read back and verified",
        end="",
    )
    print(f", {not_fetched} not fetched yet (lazy clone)" if lazy else "")


def read_remote(root: Path, show_files: bool, problems: list[str]) -> None:
    """A folder remote (§17): version marker, refs, HEAD, packs; every object, and the closure of every ref."""
    marker = json.loads((root / "dvx-remote.json").read_text("utf-8"))  # §17.3: first, and it must exist
    if not isinstance(marker, dict) or marker.get("format") != 1:
        raise Unsupported(f"remote format {marker.get('format') if isinstance(marker, dict) else marker!r}")
    refs = read_refs(root, ("heads", "tags"))  # §17.6: the refs before the listing of packs/
    store = Store(root / "packs", None)  # §17.2: packs only, no loose objects
    counts = verify_store(store, problems)
    unindexed = [p.name for p in sorted((root / "packs").glob("*.pack")) if p.stem not in store.packs]
    head_branch = None
    if (root / "HEAD").exists():  # §17.2: "ref: refs/heads/<branch>", a hint for clone
        text = (root / "HEAD").read_text("utf-8").strip()
        if not text.startswith("ref: refs/heads/"):
            raise Corrupt(f"remote HEAD is not a branch: {text!r}")
        check_ref_name(text[len("ref: refs/heads/") :])
        head_branch = text[5:]
    print(f"remote {root.resolve()}: format 1, {len(store.packs)} packs, objects {counts}")
    print(f"{len(unindexed)} pack(s) without an index (interrupted uploads, ignored)")
    for ref, value in sorted(refs.items()):
        print(f"{value}  {ref}")
    note = "" if head_branch is None or head_branch in refs else " (not a branch of this remote)"
    print(f"HEAD -> {head_branch or '(none)'}{note}")
    # §17.5 invariant 3: every ref's whole history and every file's content are on the remote.
    walk_history(store, refs, refs.get(head_branch or ""), show_files, problems)


def main(argv: list[str]) -> int:
    show_files = "--ls" in argv
    remote = "--remote" in argv
    args = [a for a in argv if a not in ("--ls", "--remote")]
    root = Path(args[0] if args else ".")
    problems: list[str] = []
    if remote:
        read_remote(root, show_files, problems)
    else:
        dvx = root / ".dvx"
        # §14: the format version, before anything else
        config = json.loads((dvx / "config").read_text("utf-8"))
        if not isinstance(config, dict) or config.get("format") != 1:
            raise Unsupported(f"repository format {config.get('format')!r} (this reader knows 1)")
        if not isinstance(config.get("core"), dict):
            raise Corrupt("config has no core section")
        lazy = bool(config["core"].get("lazy_remote"))
        store = Store(dvx / "objects" / "pack", dvx / "objects" / "loose")
        counts = verify_store(store, problems, lazy)
        refs = read_refs(dvx, ("heads", "tags", "remotes"))
        branch, head = read_head(dvx, refs)
        print(f"repository {root.resolve()}: format 1, {len(store.packs)} packs, objects {counts}")
        print(f"HEAD -> {branch or '(detached)'} at {head or '(unborn)'}")
        print(f"stat cache: {read_stat_cache(dvx / 'index')}")
        walk_history(store, refs, head, show_files, problems, lazy)

    for p in problems:
        print(f"PROBLEM: {p}", file=sys.stderr)
    print("ok" if not problems else f"{len(problems)} problem(s)")
    return 0 if not problems else 1


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except Unsupported as exc:
        print(f"unsupported format: {exc}", file=sys.stderr)
        sys.exit(2)
    except (Corrupt, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
