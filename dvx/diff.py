"""Differences between two flat trees ``{path: Entry}`` (pure: no I/O, so hypothesis can test it).

A rename is a path that disappeared while another appeared with the same kind and content id: moving a folder
stores nothing new and shows as renames. Pairing is deterministic: a source with the same file name first, then
the first in path order (as git's exact rename detection).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .model import Entry


@dataclass(frozen=True, slots=True)
class Change:
    status: str  # "added", "deleted", "modified", "renamed"
    path: str
    old: Entry | None
    new: Entry | None
    old_path: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"path": self.path}
        if self.old_path is not None:
            out["from"] = self.old_path
        if self.old is not None:
            out["old"] = _side(self.old)
        if self.new is not None:
            out["new"] = _side(self.new)
        return out


_KIND_WORDS = {"f": "file", "l": "symlink", "d": "directory"}


def _side(e: Entry) -> dict[str, Any]:
    """One side of a change in ``--json``: the words ``ls --json`` uses, and a symlink's target."""
    doc: dict[str, Any] = {"kind": _KIND_WORDS.get(e.kind, e.kind), "id": e.id, "size": e.size,
                           "executable": e.executable}
    if e.target is not None:
        doc["target"] = e.target
    return doc


@dataclass
class Diff:
    added: list[Change] = field(default_factory=list)
    deleted: list[Change] = field(default_factory=list)
    modified: list[Change] = field(default_factory=list)
    renamed: list[Change] = field(default_factory=list)

    def all(self) -> list[Change]:
        return sorted(self.added + self.deleted + self.modified + self.renamed, key=lambda c: c.path)

    def __bool__(self) -> bool:
        return bool(self.added or self.deleted or self.modified or self.renamed)

    def stats(self) -> dict[str, int]:
        return {
            "added": len(self.added),
            "deleted": len(self.deleted),
            "modified": len(self.modified),
            "renamed": len(self.renamed),
            "bytes_added": sum(c.new.size for c in self.added if c.new),
            "bytes_deleted": sum(c.old.size for c in self.deleted if c.old),
            "bytes_modified_old": sum(c.old.size for c in self.modified if c.old),
            "bytes_modified_new": sum(c.new.size for c in self.modified if c.new),
            "bytes_renamed": sum(c.new.size for c in self.renamed if c.new),
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "added": [c.to_json() for c in self.added],
            "deleted": [c.to_json() for c in self.deleted],
            "modified": [c.to_json() for c in self.modified],
            "renamed": [c.to_json() for c in self.renamed],
            "stats": self.stats(),
        }


def differs(a: Entry, b: Entry) -> bool:
    """A path changed: other kind, content, exec bit or symlink target."""
    return a.kind != b.kind or a.id != b.id or a.executable != b.executable


def diff_flat(old: Mapping[str, Entry], new: Mapping[str, Entry], *, renames: bool = True) -> Diff:
    d = Diff()
    added: list[str] = []
    deleted: list[str] = []
    for path, entry in old.items():
        other = new.get(path)
        if other is None:
            deleted.append(path)
        elif differs(entry, other):
            d.modified.append(Change("modified", path, entry, other))
    for path in new:
        if path not in old:
            added.append(path)
    added.sort()
    deleted.sort()
    if renames and added and deleted:
        by_content: dict[tuple[str, str], list[str]] = {}
        for path in deleted:
            e = old[path]
            by_content.setdefault((e.kind, e.id), []).append(path)
        # As git's exact rename detection: a source with the same file name first (old/a.png -> new/a.png
        # rather than -> new/b.png when both had the same bytes), then the first source left, in path order.
        by_name: dict[tuple[str, str, str], list[str]] = {}
        for path in deleted:
            e = old[path]
            by_name.setdefault((e.kind, e.id, path.rpartition("/")[2]), []).append(path)
        for group in by_name.values():
            group.reverse()  # pop() from the end takes them in path order, in O(1)
        taken: set[str] = set()
        pending = []
        for path in added:
            e = new[path]
            same = by_name.get((e.kind, e.id, path.rpartition("/")[2]))
            if same:
                src = same.pop()
                taken.add(src)
                d.renamed.append(Change("renamed", path, old[src], e, src))
            else:
                pending.append(path)
        still_added: list[str] = []
        cursor: dict[tuple[str, str], int] = {}  # per content, the first source that may be untaken (amortized O(1))
        for path in pending:
            e = new[path]
            key = (e.kind, e.id)
            sources = by_content.get(key, [])
            i = cursor.get(key, 0)
            while i < len(sources) and sources[i] in taken:
                i += 1
            found = sources[i] if i < len(sources) else None
            cursor[key] = i + 1 if found is not None else i
            if found is not None:
                taken.add(found)
                d.renamed.append(Change("renamed", path, old[found], e, found))
            else:
                still_added.append(path)
        moved = {c.old_path for c in d.renamed}
        deleted = [p for p in deleted if p not in moved]
        added = still_added
    d.added = [Change("added", p, None, new[p]) for p in added]
    d.deleted = [Change("deleted", p, old[p], None) for p in deleted]
    d.modified.sort(key=lambda c: c.path)
    d.renamed.sort(key=lambda c: c.path)
    return d
