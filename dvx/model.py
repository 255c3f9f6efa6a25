"""Trees and commits, and their canonical serialization (see docs/format.md "Trees" and "Commits").

Serialization is canonical JSON (sorted keys, no spaces, UTF-8), so the same content always has the same id.
A tree is one directory. A directory with more than :data:`MAX_LEAF_ENTRIES` entries is split into up to 256
buckets by a byte of the BLAKE3 of each name (the first byte at depth 0, the second at depth 1...), so that
changing one file of a million-file folder rewrites one small bucket and the small bucket list, not the folder.
The split is a function of the entry set alone, so equal directories still have equal ids.

Every tree read from the store is validated before use: names are checked against the hostile-name rules
(no ``/``, NUL, ``.``, ``..``, no alias of ``.dvx``), entries must be strictly sorted and unique.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Callable, Iterator, Mapping, Set
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import blake3

from . import durable
from .errors import BadPath, CorruptObject, UnsupportedFormat, UsageError
from .ids import hash_bytes, is_id

FILE = "f"
LINK = "l"
DIR = "d"
KINDS = (FILE, LINK, DIR)

MAX_LEAF_ENTRIES = 2048
MAX_NAME_BYTES = 255
MAX_PATH_BYTES = 4096
TREE_VERSION = 1
COMMIT_VERSION = 1


class Entry(NamedTuple):
    """One name in a directory: a file, a symlink or a subdirectory.

    ``id`` is the content id (file), the BLAKE3 of the link target (symlink) or the tree id (directory);
    ``size`` is the file size, the target's length in bytes, or the total file bytes under a directory.

    A named tuple rather than a frozen dataclass: trees of large datasets make hundreds of thousands of them,
    and a tuple is made several times faster (measured: 0.4 against 3 us).
    """

    name: str
    kind: str
    id: str
    size: int = 0
    executable: bool = False
    target: str | None = None

    def same_content(self, other: Entry) -> bool:
        return self.kind == other.kind and self.id == other.id and self.executable == other.executable

    def to_json(self) -> list[Any]:
        row: list[Any] = [self.name, self.kind, 1 if self.executable else 0, self.size, self.id]
        if self.kind == LINK:
            row.append(self.target)
        return row


def link_entry(name: str, target: str) -> Entry:
    raw = target.encode("utf-8", "surrogateescape")
    return Entry(name, LINK, hash_bytes(raw), len(raw), False, target)


def is_utf8(text: str) -> bool:
    """False for a str holding surrogate escapes (bytes that were not UTF-8, from a command line or a file name)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _dumps(doc: Any) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


# --- names -------------------------------------------------------------------------------------------

_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2060\ufeff"))


def is_metadata_alias(name: str) -> bool:
    """True for ``.dvx`` and anything a file system or a careless comparison could fold onto it."""
    folded = unicodedata.normalize("NFKC", name.translate(_INVISIBLE)).casefold().rstrip(". ")
    # .git too: a checkout inside a git work tree must never plant hooks or config there.
    return folded in (".dvx", ".git")


def check_name(name: str) -> None:
    """Raise :class:`BadPath` unless ``name`` is safe to create inside a checkout."""
    if name and name.isascii() and len(name) <= MAX_NAME_BYTES and name.isprintable() and "/" not in name:
        # Fast path for the common case (no Unicode folding can apply to plain ASCII).
        if name[0] != "." or (name not in (".", "..") and name.lower().rstrip(". ") not in (".dvx", ".git")):
            return
    if not name or name in (".", "..") or "/" in name or "\0" in name:
        raise BadPath(f"unsafe file name in tree: {name!r}")
    try:
        encoded = name.encode("utf-8")
    except UnicodeEncodeError:
        raise BadPath(f"file name is not valid UTF-8: {name!r}") from None
    if len(encoded) > MAX_NAME_BYTES:
        raise BadPath(f"file name longer than {MAX_NAME_BYTES} bytes: {name[:40]!r}...")
    if is_metadata_alias(name):
        raise BadPath(f"tree entry {name!r} would alias a metadata directory (.dvx or .git)")


# --- trees ---------------------------------------------------------------------------------------------


def _bucket_of(name: str, depth: int) -> int:
    return blake3.blake3(name.encode("utf-8")).digest()[depth]


def misplaced(entries: list[Entry], route: bytes) -> str | None:
    """The first name of ``entries`` that does not belong under the bucket bytes ``route`` (one per level, from
    depth 0), or None; a node reached by no bucket (``route`` empty) holds any name."""
    if not route:
        return None
    n = len(route)
    return next((e.name for e in entries if blake3.blake3(e.name.encode("utf-8", "surrogateescape")).digest()[:n] != route), None)


def encode_tree(entries: list[Entry]) -> list[tuple[str, bytes]]:
    """Serialize one directory; return ``[(id, bytes), ...]`` for its node and any bucket nodes, root last."""
    ordered = sorted(entries, key=lambda e: e.name)
    out: list[tuple[str, bytes]] = []
    _encode_node(ordered, 0, out)
    return out


def patch_tree(
    read_node: Callable[[str], TreeNode],
    node_id: str,
    changes: Mapping[str, Entry | None],
    out: list[tuple[str, bytes]],
    depth: int = 0,
    route: bytes = b"",
    existed: Set[str] = frozenset(),
) -> tuple[str, int, int]:
    """Encode a directory given as an existing node plus ``changes`` (name → new entry, None: removed): the
    same ``(id, count, size)`` and nodes as :func:`encode_tree` of the changed listing, but only the buckets
    holding changed names are read and re-encoded. New nodes are appended to ``out``, the top one last; a
    directory with fewer than :data:`MAX_LEAF_ENTRIES` entries left becomes one leaf, as encode_tree makes it.

    Changes are routed by the hash of their names, so every name of a leaf read on the way is checked to be in
    its bucket (``route``: the bucket bytes so far), and each changed name to be there exactly if it is in
    ``existed`` (the names the caller's listing of the node has): a tree that misplaces one (only a hostile
    writer can) raises :class:`CorruptObject`, and the caller builds in full instead."""
    node = read_node(node_id)
    if node.entries is not None:
        wrong = misplaced(node.entries, route)
        if wrong is not None:
            raise CorruptObject(f"tree {node_id} holds {wrong!r} in the wrong bucket", node_id)
        current = {e.name: e for e in node.entries}
        for name, change in changes.items():
            if (name in current) != (name in existed):
                raise CorruptObject(f"tree {node_id} does not list {name!r} where its hash puts it", node_id)
            if change is None:
                current.pop(name, None)
            else:
                current[name] = change
        return _encode_node(sorted(current.values(), key=lambda e: e.name), depth, out)
    if node.depth != depth:
        raise CorruptObject(f"tree {node_id} is a bucket node at depth {node.depth}, not {depth}", node_id)
    groups: dict[int, dict[str, Entry | None]] = {}
    for name, change in changes.items():
        groups.setdefault(_bucket_of(name, depth), {})[name] = change
    rows = {b: (sub, count, size) for b, sub, count, size in node.buckets}
    for b, group in groups.items():
        if b in rows:
            row = patch_tree(read_node, rows[b][0], group, out, depth + 1, route + bytes([b]), existed)
        else:
            if any(name in existed for name in group):
                raise CorruptObject(f"tree {node_id} has no bucket {b} for names it lists", node_id)
            added = sorted((e for e in group.values() if e is not None), key=lambda e: e.name)
            if not added:
                continue
            row = _encode_node(added, depth + 1, out)
        if row[1]:
            rows[b] = row
        else:
            rows.pop(b, None)
    if sum(count for _, count, _ in rows.values()) <= MAX_LEAF_ENTRIES:
        entries: list[Entry] = []
        for b in sorted(rows):
            entries.extend(_node_entries(read_node, rows[b][0], out))
        if len({e.name for e in entries}) != len(entries):
            raise CorruptObject(f"tree {node_id} lists a name in two buckets", node_id)
        return _encode_node(sorted(entries, key=lambda e: e.name), depth, out)
    order = sorted(rows)
    data = _dumps({"v": TREE_VERSION, "depth": depth, "buckets": [[b, *rows[b]] for b in order]})
    node_id = hash_bytes(data)
    out.append((node_id, data))
    return node_id, sum(rows[b][1] for b in order), sum(rows[b][2] for b in order)


def _node_entries(read_node: Callable[[str], TreeNode], node_id: str, new: list[tuple[str, bytes]]) -> list[Entry]:
    """All entries under a (bucket) node, which may be one just encoded into ``new`` and not stored yet."""
    data = next((d for i, d in new if i == node_id), None)
    node = decode_tree(data, node_id) if data is not None else read_node(node_id)
    if node.entries is not None:
        return list(node.entries)
    return [e for _, sub, _, _ in node.buckets for e in _node_entries(read_node, sub, new)]


def _encode_node(ordered: list[Entry], depth: int, out: list[tuple[str, bytes]]) -> tuple[str, int, int]:
    if len(ordered) <= MAX_LEAF_ENTRIES or depth >= 31:
        data = _dumps({"v": TREE_VERSION, "entries": [e.to_json() for e in ordered]})
    else:
        groups: dict[int, list[Entry]] = {}
        for e in ordered:
            groups.setdefault(_bucket_of(e.name, depth), []).append(e)
        buckets = []
        for b in sorted(groups):
            sub_id, count, size = _encode_node(groups[b], depth + 1, out)
            buckets.append([b, sub_id, count, size])
        data = _dumps({"v": TREE_VERSION, "depth": depth, "buckets": buckets})
    node_id = hash_bytes(data)
    out.append((node_id, data))
    return node_id, len(ordered), sum(e.size for e in ordered)


@dataclass(slots=True)
class TreeNode:
    """A parsed tree object: either a leaf (``entries``) or a bucket list (``buckets``)."""

    entries: list[Entry] | None = None
    depth: int = 0
    buckets: list[tuple[int, str, int, int]] = field(default_factory=list)

    @property
    def is_leaf(self) -> bool:
        return self.entries is not None


def decode_tree(data: bytes, tree_id: str) -> TreeNode:
    """Parse and validate a tree object; hostile or malformed content raises, nothing is trusted."""
    try:
        doc = durable.loads_json(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise CorruptObject(f"tree {tree_id} does not parse", tree_id) from exc
    if not isinstance(doc, dict):
        raise CorruptObject(f"tree {tree_id} is malformed", tree_id)
    if doc.get("v") != TREE_VERSION:
        raise UnsupportedFormat(f"tree {tree_id} has format version {doc.get('v')!r}, this dvx reads {TREE_VERSION}")
    try:
        if "buckets" in doc:
            depth = int(doc["depth"])
            buckets = [(int(b), str(i), int(c), int(s)) for b, i, c, s in doc["buckets"]]
            if any(not is_id(i) or not 0 <= b < 256 for b, i, _, _ in buckets):
                raise ValueError("bad bucket")
            if [b for b, *_ in buckets] != sorted({b for b, *_ in buckets}):
                raise ValueError("buckets not sorted")
            return TreeNode(None, depth, buckets)
        entries = _decode_entries(doc["entries"])
    except BadPath as exc:
        raise BadPath(f"tree {tree_id}: {exc}") from None
    except (KeyError, TypeError, ValueError) as exc:
        raise CorruptObject(f"tree {tree_id} is malformed ({exc})", tree_id) from exc
    for a, b in zip(entries, entries[1:]):
        if not a.name < b.name:
            raise CorruptObject(f"tree {tree_id} has unsorted or duplicate names ({b.name!r})", tree_id)
    return TreeNode(entries)


_HEX = "0123456789abcdef"


def _decode_entries(rows: list[Any]) -> list[Entry]:
    """The entries of a leaf node, validated as :func:`_decode_entry` does, with a fast path for the rows of
    plain files and directories (the bulk of any dataset): their ids are checked for hex all at once."""
    entries: list[Entry] = []
    append = entries.append
    plain_ids: list[str] = []
    keep_id = plain_ids.append
    for row in rows:
        if type(row) is list and len(row) == 5:
            name, kind, exe, size, oid = row
            if (
                (kind == FILE or (kind == DIR and exe == 0))
                and (exe == 0 or exe == 1)
                and type(size) is int
                and size >= 0
                and type(oid) is str
                and len(oid) == 64
                and type(name) is str
            ):
                check_name(name)
                keep_id(oid)
                append(Entry(name, kind, oid, size, exe == 1))
                continue
        append(_decode_entry(row))
    if "".join(plain_ids).strip(_HEX):
        bad = next(i for i in plain_ids if i.strip(_HEX))
        raise ValueError(f"bad id {bad!r}")
    return entries


def _decode_entry(row: list[Any]) -> Entry:
    name, kind, exe, size, oid = row[:5]
    if not isinstance(name, str) or kind not in KINDS or exe not in (0, 1) or not isinstance(size, int) or size < 0:
        raise ValueError(f"bad entry {row[:5]!r}")
    if not isinstance(oid, str) or not is_id(oid):
        raise ValueError(f"bad id in entry {name!r}")
    check_name(name)
    target = None
    if kind == LINK:
        if len(row) != 6 or not isinstance(row[5], str) or not row[5] or "\0" in row[5]:
            raise ValueError(f"bad symlink entry {name!r}")
        target = row[5]
        raw = target.encode("utf-8", "surrogateescape")
        if len(raw) > MAX_PATH_BYTES:
            raise ValueError(f"symlink target too long in {name!r}")
        if len(raw) != size or hash_bytes(raw) != oid:
            raise ValueError(f"symlink entry {name!r} has an id or size that is not its target's")
    elif len(row) != 5:
        raise ValueError(f"bad entry {name!r}")
    if exe and kind != FILE:
        raise ValueError(f"executable bit on non-file {name!r}")
    return Entry(name, kind, oid, size, bool(exe), target)


# --- commits ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Commit:
    tree: str
    parents: tuple[str, ...]
    message: str
    author: str
    time: str  # RFC 3339 UTC with microseconds, e.g. "2026-11-25T08:44:09.123456Z"
    meta: dict[str, str] = field(default_factory=dict)

    def encode(self) -> bytes:
        try:
            return self._encode()
        except UnicodeEncodeError:
            # A str carrying surrogate escapes: bytes that were not UTF-8 (a command line, an environment).
            fields = {"message": self.message, "author": self.author, **{f"meta {k!r}": k + v for k, v in self.meta.items()}}
            bad = next((name for name, text in fields.items() if not is_utf8(text)), "a field")
            raise UsageError(f"the commit's {bad} is not valid UTF-8") from None

    def _encode(self) -> bytes:
        return _dumps(
            {
                "v": COMMIT_VERSION,
                "tree": self.tree,
                "parents": list(self.parents),
                "message": self.message,
                "author": self.author,
                "time": self.time,
                "meta": dict(self.meta),
            }
        )

    @property
    def id(self) -> str:
        return hash_bytes(self.encode())


def decode_commit(data: bytes, commit_id: str) -> Commit:
    try:
        doc = durable.loads_json(data)
        if not isinstance(doc, dict):
            raise ValueError("not an object")
        if doc.get("v") != COMMIT_VERSION:
            raise UnsupportedFormat(
                f"commit {commit_id} has format version {doc.get('v')!r}, this dvx reads {COMMIT_VERSION}"
            )
        c = Commit(
            tree=str(doc["tree"]),
            parents=tuple(str(p) for p in doc["parents"]),
            message=str(doc["message"]),
            author=str(doc["author"]),
            time=str(doc["time"]),
            meta={str(k): str(v) for k, v in doc.get("meta", {}).items()},
        )
    except UnsupportedFormat:
        raise
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise CorruptObject(f"commit {commit_id} is malformed", commit_id) from exc
    if not is_id(c.tree) or not all(is_id(p) for p in c.parents):
        raise CorruptObject(f"commit {commit_id} has malformed ids", commit_id)
    return c


def iter_paths(prefix: str, entries: list[Entry]) -> Iterator[tuple[str, Entry]]:
    for e in entries:
        yield (f"{prefix}{e.name}", e)
