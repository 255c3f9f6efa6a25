"""Merging histories: merge bases, the three-way merge of trees, octopus merges and squash.

The merge works on trees, never on file contents. Two directories whose tree ids are equal are taken whole
without being read, so merging two large datasets that differ in a few folders reads only the trees on the
paths to those folders. A large directory split into buckets is merged bucket by bucket the same way (a
million-file folder with a few changed files costs a few buckets). No file object is ever read.

Rules, per path, against the merge base (``same`` means equal kind, content id and exec bit — a symlink's id
is the hash of its target, so a retargeted link or a ``chmod +x`` is a change):

* both sides the same (unchanged, both deleted, or the identical change) → that;
* changed on one side only (modified, deleted, added, replaced by a directory…) → that side;
* a file on both sides and in the base, with content and exec bit changed on different sides (or the same
  change on both) → each from the side that changed it, as git merges content and mode apart;
* both sides directories (with different ids) → merged entry by entry, recursively (a base that was a file
  there counts as an empty directory, so two sides that both replaced a file by a folder get their union);
* one side a directory, the other deleted → merged recursively against an empty directory on the deleting
  side (what the other side left untouched is deleted, what it changed is a modify/delete conflict);
* otherwise a conflict: ``both-modified``, ``both-added``, ``modified-deleted`` (HEAD's side modified, the
  merged side deleted), ``deleted-modified`` or ``file-directory``.

Merge base: the best common ancestors, as ``git merge-base --all`` defines them (common ancestors not
reachable from another common ancestor). When there are several (criss-cross histories), they are merged
into one *virtual* base first, as git's recursive strategy does: the bases are merged pairwise (oldest
first, each step against its own merge base); a path on which the bases themselves conflict gets a
placeholder entry that equals neither side, so that the real merge reports a conflict there unless both
sides agree — never a silent pick of one base's version. Virtual trees are never written to the store.

Octopus (several REVs): merged one after the other into the running result (HEAD with REV1, the result with
REV2, ...); the base of step *k* is the merge base of REVk with everything merged so far, as git's octopus
strategy does. Conflicts of every step are collected.

The core (:class:`TreeMerger`, :func:`merge_trees`, :func:`merge_bases`) reads through small interfaces and
writes nothing; :func:`merge` and :func:`squash` are the repository operations (``Repo.merge``/``Repo.squash``).
"""

from __future__ import annotations

import functools
import json
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from . import worktree
from .diff import diff_flat
from .errors import (
    CorruptObject,
    DirtyWorkingTree,
    DvxError,
    MergeConflict,
    RefExists,
    UnknownRevision,
    UsageError,
)
from .ids import hash_bytes
from .model import (
    DIR,
    FILE,
    LINK,
    MAX_LEAF_ENTRIES,
    TREE_VERSION,
    Commit,
    Entry,
    TreeNode,
    _bucket_of,
    _dumps,
    _encode_node,
    decode_tree,
    encode_tree,
)
from .refs import HEADS, TAGS, check_ref_name
from .store import BLOB, COMMIT, TREE, StoreWriter
from .trees import build
from .worktree import IGNORE_FILE

STRATEGIES = ("fail", "ours", "theirs")

BOTH_MODIFIED = "both-modified"
BOTH_ADDED = "both-added"
MODIFIED_DELETED = "modified-deleted"
DELETED_MODIFIED = "deleted-modified"
FILE_DIRECTORY = "file-directory"
CONFLICT_KINDS = (BOTH_MODIFIED, BOTH_ADDED, MODIFIED_DELETED, DELETED_MODIFIED, FILE_DIRECTORY)

# Conflicting paths recorded in a commit's metadata by the ours/theirs strategies (the count is always exact).
META_PATHS_LIMIT = 100
# Conflicts named in the one-line error (all of them are in ``MergeConflict.conflicts`` and ``--json``).
MESSAGE_PATHS_LIMIT = 20

_VIRTUAL = "virtual"  # internal resolution mode used to build a virtual merge base

F = TypeVar("F", bound=Callable[..., Any])


class UnrelatedHistories(DvxError):
    """Merging histories that share no commit without ``allow_unrelated``."""


class TreeSource(Protocol):
    """What the merge needs to read trees: :class:`dvx.trees.TreeReader` is one."""

    def node(self, tree_id: str) -> TreeNode: ...


# --- conflicts ---------------------------------------------------------------------------------------------

_KIND_NAMES = {FILE: "file", LINK: "symlink", DIR: "directory"}


def shown_path(path: str) -> str:
    """A path as printed in a one-line message: quoted and escaped if it holds a newline or another
    character that is not printable (a terminal escape in a file name must not reach the terminal)."""
    return path if path.isprintable() else repr(path)


def _same(a: Entry | None, b: Entry | None) -> bool:
    if a is None or b is None:
        return a is b
    return a.kind == b.kind and a.id == b.id and a.executable == b.executable


def describe_change(base: Entry | None, side: Entry | None) -> str:
    """What one side did to a path, in words: ``added``, ``deleted``, ``modified``, ``made executable``..."""
    if _same(base, side):
        return "unchanged" if side is not None else "absent"
    if side is None:
        return "deleted" if base is not None else "absent"
    what = _KIND_NAMES.get(side.kind, side.kind)
    if base is None:
        if side.kind == FILE:
            return "added executable" if side.executable else "added"
        return f"added {what}"
    if base.kind != side.kind:
        return f"replaced {_KIND_NAMES.get(base.kind, base.kind)} with {what}"
    if side.kind == FILE and base.id == side.id:
        return "made executable" if side.executable else "made non-executable"
    if side.kind == LINK:
        return "changed symlink target"
    return "modified"


@dataclass(frozen=True)
class Conflict:
    """One conflicting path. ``ours`` is HEAD's side (or the running result of an octopus merge), ``theirs``
    the side being merged in (named ``theirs_label``); ``base`` the merge base's entry."""

    path: str
    kind: str
    base: Entry | None
    ours: Entry | None
    theirs: Entry | None
    theirs_label: str = "theirs"

    @property
    def ours_did(self) -> str:
        return describe_change(self.base, self.ours)

    @property
    def theirs_did(self) -> str:
        return describe_change(self.base, self.theirs)

    @property
    def display_path(self) -> str:
        """The path (quoted if not printable), with a trailing ``/`` when it is a directory on some side."""
        if any(e is not None and e.kind == DIR for e in (self.ours, self.theirs)):
            return shown_path(self.path + "/")
        return shown_path(self.path)

    def summary(self) -> str:
        """``a.txt (both modified)``, ``c (modified here, deleted in feature)``, ``e (modified here, made
        executable in feature)``: what each side did."""
        label = self.theirs_label
        if self.kind in (BOTH_MODIFIED, BOTH_ADDED):
            ours, theirs = self.ours_did, self.theirs_did
            what = f"both {ours}" if ours == theirs else f"{ours} here, {theirs} in {label}"
        elif self.kind == MODIFIED_DELETED:
            what = f"{self.ours_did} here, deleted in {label}"
        elif self.kind == DELETED_MODIFIED:
            what = f"deleted here, {self.theirs_did} in {label}"
        else:
            here = _KIND_NAMES.get(self.ours.kind, "file") if self.ours is not None else "nothing"
            there = _KIND_NAMES.get(self.theirs.kind, "file") if self.theirs is not None else "nothing"
            what = f"file vs directory: {here} here, {there} in {label}"
        return f"{self.display_path} ({what})"

    def to_json(self) -> dict[str, Any]:
        def side(e: Entry | None) -> dict[str, Any] | None:
            if e is None:
                return None
            doc: dict[str, Any] = {"kind": _KIND_NAMES.get(e.kind, e.kind), "id": e.id, "size": e.size}
            if e.kind == FILE:
                doc["executable"] = e.executable
            if e.target is not None:
                doc["target"] = e.target
            return doc

        return {
            "path": self.path,
            "kind": self.kind,
            "ours": self.ours_did,
            "theirs": self.theirs_did,
            "theirs_label": self.theirs_label,
            "base_entry": side(self.base),
            "ours_entry": side(self.ours),
            "theirs_entry": side(self.theirs),
        }


def conflict_message(conflicts: Sequence[Conflict], limit: int = MESSAGE_PATHS_LIMIT, more: str = "") -> str:
    """The one-line error of a failed merge: each conflicting path and what each side did, up to ``limit`` of
    them (a line naming 100,000 paths is no use on a terminal), then how many more (``more`` says where they
    are listed)."""
    n = len(conflicts)
    listed = ", ".join(c.summary() for c in conflicts[:limit])
    if n > limit:
        listed += f", and {n - limit} more{f' ({more})' if more else ''}"
    return f"merge conflict in {n} path{'' if n == 1 else 's'}: {listed}; nothing was changed{CONFLICT_HINT}"


CONFLICT_HINT = " (--strategy ours or --strategy theirs resolves each toward one side)"


# --- the three-way merge of trees ----------------------------------------------------------------------------

# Encoded part of a directory: (node id, number of entries, total size) of a canonical (sub)node.
_Encoded = tuple[str, int, int]


class TreeMerger:
    """Three-way merges of trees read from ``source``; new tree nodes are kept in memory until :meth:`write`.

    A directory whose three versions are all split into buckets (see :mod:`dvx.model`) is merged bucket by
    bucket: a bucket with equal ids on two sides is taken whole, so changing a few files of a million-file
    folder reads only their buckets. The result is always encoded exactly as :func:`dvx.trees.build` would
    encode the same files (same tree ids).

    One merger can run several merges in a row (an octopus, a virtual base): the trees made by one are
    readable by the next. ``reads`` counts tree nodes read from ``source``.
    """

    def __init__(self, source: TreeSource) -> None:
        self.source = source
        self.new: dict[str, bytes] = {}
        self._decoded: dict[str, TreeNode] = {}
        self.reads = 0

    # -- reading (new nodes first, then the source) ----------------------------------------------------

    def node(self, tree_id: str) -> TreeNode:
        data = self.new.get(tree_id)
        if data is None:
            self.reads += 1
            return self.source.node(tree_id)
        node = self._decoded.get(tree_id)
        if node is None:
            node = self._decoded[tree_id] = decode_tree(data, tree_id)
        return node

    def read_dir(self, tree_id: str) -> list[Entry]:
        """All entries of one directory (or of one bucket of it), sorted by name."""
        node = self.node(tree_id)
        if node.entries is not None:
            return node.entries
        out: list[Entry] = []
        for _, sub, _, _ in node.buckets:
            out.extend(self.read_dir(sub))
        out.sort(key=lambda e: e.name)
        for a, b in zip(out, out[1:]):
            if a.name == b.name:
                raise CorruptObject(f"tree {tree_id} lists {a.name!r} twice", tree_id)
        return out

    def _bucketed(self, tree_id: str | None, depth: int) -> dict[int, tuple[str, int, int]] | None:
        """The buckets of a node split at ``depth`` ({} for an absent side), or None for any other node."""
        if tree_id is None:
            return {}
        node = self.node(tree_id)
        if node.entries is not None or node.depth != depth:
            return None
        return {b: (i, c, s) for b, i, c, s in node.buckets}

    def _add_nodes(self, nodes: list[tuple[str, bytes]]) -> None:
        for node_id, data in nodes:
            self.new.setdefault(node_id, data)

    # -- merging -----------------------------------------------------------------------------------------

    def merge(
        self,
        base: str | None,
        ours: str | None,
        theirs: str | None,
        *,
        resolve: str = "fail",
        theirs_label: str = "theirs",
    ) -> tuple[str, list[Conflict]]:
        """Merge three root trees (``None``: empty); return the result's root tree id and the conflicts.

        ``resolve`` says what the result holds at a conflicting path: ``ours``/``theirs`` that side's entry;
        ``fail`` HEAD's entry too (the caller is expected to refuse the result when there are conflicts).
        """
        if resolve not in (*STRATEGIES, _VIRTUAL):
            raise UsageError(f"unknown merge strategy {resolve!r} (use one of: {', '.join(STRATEGIES)})")
        conflicts: list[Conflict] = []
        b = None if base is None else Entry("", DIR, base)
        o = None if ours is None else Entry("", DIR, ours)
        t = None if theirs is None else Entry("", DIR, theirs)
        result = self._merge_entry("", b, o, t, resolve, theirs_label, conflicts)
        if result is None:  # everything deleted: the empty tree
            nodes = encode_tree([])
            self._add_nodes(nodes)
            return nodes[-1][0], conflicts
        return result.id, conflicts

    def _merge_entry(
        self,
        path: str,
        b: Entry | None,
        o: Entry | None,
        t: Entry | None,
        resolve: str,
        label: str,
        conflicts: list[Conflict],
    ) -> Entry | None:
        if _same(o, t):
            return o
        if _same(b, o):
            return t
        if _same(b, t):
            return o
        o_dir = o is not None and o.kind == DIR
        t_dir = t is not None and t.kind == DIR
        b_dir = b is not None and b.kind == DIR
        if o_dir and t_dir:
            return self._merge_dirs(path, b, o, t, resolve, label, conflicts)
        if (o_dir and t is not None) or (t_dir and o is not None):
            # A directory on one side, a file (or link) on the other. If the directory was there before and the
            # file's side removed it, the directory side's own changes may all have been deletions of what the
            # file's side removed as well: then the directory merges to nothing and the file takes its place.
            if b_dir:
                scratch: list[Conflict] = []
                left = (
                    self._merge_dirs(path, b, o, None, "fail", label, scratch)
                    if o_dir
                    else self._merge_dirs(path, b, None, t, "fail", label, scratch)
                )
                if left is None and not scratch:
                    return t if o_dir else o
            return self._conflict(path, FILE_DIRECTORY, b, o, t, resolve, label, conflicts)
        if o_dir:  # theirs deleted the path
            # A directory deleted on their side: what we left untouched goes, what we changed conflicts.
            # A file they deleted and we replaced with a directory: both removed the file; keep our directory.
            return self._merge_dirs(path, b, o, None, resolve, label, conflicts) if b_dir else o
        if t_dir:  # we deleted the path
            return self._merge_dirs(path, b, None, t, resolve, label, conflicts) if b_dir else t
        # Neither side is a directory now.
        if o is None:
            if b_dir:
                return t  # they replaced a directory with a file, we deleted the directory: no clash
            return self._conflict(path, DELETED_MODIFIED, b, o, t, resolve, label, conflicts)
        if t is None:
            if b_dir:
                return o
            return self._conflict(path, MODIFIED_DELETED, b, o, t, resolve, label, conflicts)
        if b is not None and b.kind == o.kind == t.kind == FILE:
            # As git: the content and the exec bit merge apart, so a chmod on one side and an edit on the other
            # give the edited content with the new mode. A clash is only two different contents.
            content = t if o.id == b.id else o if t.id == b.id or t.id == o.id else None
            if content is not None:
                executable = t.executable if o.executable == b.executable else o.executable
                return content._replace(executable=executable)
        kind = BOTH_ADDED if b is None or b_dir else BOTH_MODIFIED
        return self._conflict(path, kind, b, o, t, resolve, label, conflicts)

    def _merge_dirs(
        self,
        path: str,
        b: Entry | None,
        o: Entry | None,
        t: Entry | None,
        resolve: str,
        label: str,
        conflicts: list[Conflict],
    ) -> Entry | None:
        """Merge a directory present (as a directory) on at least one side; a side that is absent or not a
        directory there counts as an empty directory. Empty results vanish (except the root)."""
        ids = [x.id if x is not None and x.kind == DIR else None for x in (b, o, t)]
        entries, encoded = self._merge_node(path, ids[0], ids[1], ids[2], 0, resolve, label, conflicts)
        name = path.rpartition("/")[2]
        if encoded is None:
            assert entries is not None
            if not entries and path:
                return None
            nodes = encode_tree(entries)
            self._add_nodes(nodes)
            return Entry(name, DIR, nodes[-1][0], sum(e.size for e in entries))
        return Entry(name, DIR, encoded[0], encoded[2])

    def _merge_node(
        self,
        path: str,
        bid: str | None,
        oid: str | None,
        tid: str | None,
        depth: int,
        resolve: str,
        label: str,
        conflicts: list[Conflict],
    ) -> tuple[list[Entry] | None, _Encoded | None]:
        """Merge one directory node (the whole directory at depth 0, or one bucket of it below).

        Returns either the merged entries (sorted; the caller encodes them) or an already encoded node.
        """
        bb = self._bucketed(bid, depth)
        ob = self._bucketed(oid, depth) if oid is not None else None
        tb = self._bucketed(tid, depth) if tid is not None else None
        if bb is not None and ob is not None and tb is not None and depth < 31:
            return self._merge_buckets(path, bb, ob, tb, depth, resolve, label, conflicts)
        bd = {e.name: e for e in self.read_dir(bid)} if bid is not None else {}
        od = {e.name: e for e in self.read_dir(oid)} if oid is not None else {}
        td = {e.name: e for e in self.read_dir(tid)} if tid is not None else {}
        out: list[Entry] = []
        prefix = f"{path}/" if path else ""
        for child in sorted(bd.keys() | od.keys() | td.keys()):
            merged = self._merge_entry(
                prefix + child, bd.get(child), od.get(child), td.get(child), resolve, label, conflicts
            )
            if merged is not None:
                out.append(merged)
        return out, None

    def _merge_buckets(
        self,
        path: str,
        bb: dict[int, tuple[str, int, int]],
        ob: dict[int, tuple[str, int, int]],
        tb: dict[int, tuple[str, int, int]],
        depth: int,
        resolve: str,
        label: str,
        conflicts: list[Conflict],
    ) -> tuple[list[Entry] | None, _Encoded | None]:
        parts: list[tuple[int, list[Entry] | _Encoded]] = []
        for k in sorted(bb.keys() | ob.keys() | tb.keys()):
            x, y, z = bb.get(k), ob.get(k), tb.get(k)
            xi, yi, zi = (None if v is None else v[0] for v in (x, y, z))
            pick: _Encoded | None
            if yi == zi:
                pick = y
            elif xi == yi:
                pick = z
            elif xi == zi:
                pick = y
            else:
                entries, encoded = self._merge_node(path, xi, yi, zi, depth + 1, resolve, label, conflicts)
                if encoded is not None:
                    parts.append((k, encoded))
                elif entries:
                    parts.append((k, entries))
                continue
            if pick is not None:
                parts.append((k, pick))
        total = sum(len(p) if isinstance(p, list) else p[1] for _, p in parts)
        if total <= MAX_LEAF_ENTRIES:
            # Small enough to be one leaf again: gather every entry (rare: the directory shrank).
            everything: list[Entry] = []
            for _, p in parts:
                everything.extend(p if isinstance(p, list) else self.read_dir(p[0]))
            everything.sort(key=lambda e: e.name)
            return everything, None
        out: list[tuple[str, bytes]] = []
        rows: list[list[Any]] = []
        for k, p in parts:
            if isinstance(p, list):
                sub_id, count, size = _encode_node(sorted(p, key=lambda e: e.name), depth + 1, out)
            else:
                sub_id, count, size = p
            rows.append([k, sub_id, count, size])
        data = _dumps({"v": TREE_VERSION, "depth": depth, "buckets": rows})
        node_id = hash_bytes(data)
        out.append((node_id, data))
        self._add_nodes(out)
        return None, (node_id, total, sum(r[3] for r in rows))

    def _conflict(
        self,
        path: str,
        kind: str,
        b: Entry | None,
        o: Entry | None,
        t: Entry | None,
        resolve: str,
        label: str,
        conflicts: list[Conflict],
    ) -> Entry | None:
        conflicts.append(Conflict(path, kind, b, o, t, label))
        if resolve == "theirs":
            return t
        if resolve == _VIRTUAL:
            # A placeholder equal to neither side: the real merge then conflicts here unless both agree.
            name = path.rpartition("/")[2]
            seed = "\0".join(["dvx virtual merge base", path, *(e.id if e else "-" for e in (b, o, t))])
            return Entry(name, FILE, hash_bytes(seed.encode("utf-8", "surrogateescape")), 0)
        return o

    # -- comparing -----------------------------------------------------------------------------------------

    def changed(self, old: str | None, new: str | None, prefix: str = "", depth: int = 0) -> Iterator[tuple[str, Entry | None, Entry | None]]:
        """``(path, old entry, new entry)`` for every name that differs between two directory nodes,
        skipping equal buckets (not recursing into subdirectories)."""
        if old == new:
            return
        ab = self._bucketed(old, depth)
        bb = self._bucketed(new, depth)
        if ab is not None and bb is not None and (ab or bb) and depth < 31:
            for k in sorted(ab.keys() | bb.keys()):
                xb, yb = ab.get(k), bb.get(k)
                if xb != yb:
                    yield from self.changed(xb and xb[0], yb and yb[0], prefix, depth + 1)
            return
        ad = {e.name: e for e in self.read_dir(old)} if old is not None else {}
        bd = {e.name: e for e in self.read_dir(new)} if new is not None else {}
        for name in sorted(ad.keys() | bd.keys()):
            x, y = ad.get(name), bd.get(name)
            if not _same(x, y):
                yield prefix + name, x, y

    def changes(self, old: str | None, new: str | None) -> tuple[int, int, int]:
        """``(added, modified, deleted)`` file counts from tree ``old`` to ``new``, skipping equal subtrees."""
        counts = [0, 0, 0]

        def files(tree_id: str) -> int:
            return sum(files(e.id) if e.kind == DIR else 1 for e in self.read_dir(tree_id))

        def walk(a: str | None, b: str | None) -> None:
            for _, x, y in self.changed(a, b):
                x_dir = x is not None and x.kind == DIR
                y_dir = y is not None and y.kind == DIR
                if x is not None and y is not None and not x_dir and not y_dir:
                    counts[1] += 1
                    continue
                if x is not None and not x_dir:
                    counts[2] += 1
                if y is not None and not y_dir:
                    counts[0] += 1
                if x_dir and y_dir:
                    walk(x.id if x else None, y.id if y else None)
                elif x_dir and x is not None:
                    counts[2] += files(x.id)
                elif y_dir and y is not None:
                    counts[0] += files(y.id)

        walk(old, new)
        return counts[0], counts[1], counts[2]

    # -- writing ---------------------------------------------------------------------------------------

    def pending(self, root: str) -> Iterator[tuple[str, bytes]]:
        """The encoded tree nodes made by this merger that ``root`` needs (each once)."""
        seen: set[str] = set()
        stack = [root]
        while stack:
            tree_id = stack.pop()
            data = self.new.get(tree_id)
            if data is None or tree_id in seen:
                continue  # already in the store (taken whole from a side)
            seen.add(tree_id)
            yield tree_id, data
            node = self.node(tree_id)
            if node.entries is None:
                stack.extend(sub for _, sub, _, _ in node.buckets)
            else:
                stack.extend(e.id for e in node.entries if e.kind == DIR)

    def arrived(self, old: str | None, new: str) -> dict[str, Entry]:
        """The files and symlinks of tree ``new`` that ``old`` lacks or holds differently, reading only the
        subtrees and buckets that differ."""
        out: dict[str, Entry] = {}
        stack: list[tuple[str | None, str, str]] = [(old, new, "")]
        while stack:
            a, b, prefix = stack.pop()
            for path, x, y in self.changed(a, b, prefix):
                if y is None:
                    continue
                if y.kind == DIR:
                    stack.append((x.id if x is not None and x.kind == DIR else None, y.id, path + "/"))
                else:
                    out[path] = y
        return out

    def entry_named(self, tree_id: str, name: str) -> Entry | None:
        """The entry ``name`` of one directory, descending only the bucket nodes its hash selects."""
        node = self.node(tree_id)
        while node.entries is None:
            bucket = _bucket_of(name, node.depth)
            sub = next((i for b, i, _, _ in node.buckets if b == bucket), None)
            if sub is None:
                return None
            node = self.node(sub)
        return next((e for e in node.entries if e.name == name), None)

    def rules_for(self, root: str, paths: Iterable[str]) -> dict[str, Entry]:
        """The ``.dvxignore`` entries of the folders holding ``paths`` and of all their parents, by path."""
        out: dict[str, Entry] = {}
        folders: dict[str, str | None] = {}  # folder path -> tree id (None: not a folder there)

        def visit(folder: str, tree_id: str | None) -> None:
            folders[folder] = tree_id
            rule = self.entry_named(tree_id, IGNORE_FILE) if tree_id is not None else None
            if rule is not None and rule.kind == FILE:
                out[f"{folder}/{IGNORE_FILE}" if folder else IGNORE_FILE] = rule

        visit("", root)
        for path in paths:
            parts = path.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                folder = "/".join(parts[:i])
                if folder not in folders:
                    parent = folders["/".join(parts[: i - 1])]
                    e = self.entry_named(parent, parts[i - 1]) if parent is not None else None
                    visit(folder, e.id if e is not None and e.kind == DIR else None)
        return out

    def flatten(self, root: str) -> dict[str, Entry]:
        """Every file and symlink under ``root`` (new nodes included) as ``{path: Entry}``."""
        out: dict[str, Entry] = {}
        stack = [("", root)]
        while stack:
            prefix, tree_id = stack.pop()
            for e in self.read_dir(tree_id):
                if e.kind == DIR:
                    stack.append((f"{prefix}{e.name}/", e.id))
                else:
                    out[prefix + e.name] = e
        return out

    def write(self, writer: StoreWriter, root: str) -> int:
        """Store the new trees under ``root``; return how many objects were added."""
        added = 0
        for node_id, data in self.pending(root):
            if not writer.has(node_id):
                writer.add(node_id, TREE, data)
                added += 1
        return added


def merge_trees(
    source: TreeSource,
    base: str | None,
    ours: str | None,
    theirs: str | None,
    strategy: str = "fail",
    *,
    theirs_label: str = "theirs",
) -> tuple[str, list[Conflict], TreeMerger]:
    """Pure three-way merge of root trees: ``(result tree id, conflicts, merger holding the new trees)``."""
    merger = TreeMerger(source)
    tree, conflicts = merger.merge(base, ours, theirs, resolve=strategy, theirs_label=theirs_label)
    return tree, conflicts, merger


def tree_changes(source: TreeSource, old: str | None, new: str | None) -> tuple[int, int, int]:
    """``(added, modified, deleted)`` file counts from tree ``old`` to ``new``, skipping equal subtrees."""
    return TreeMerger(source).changes(old, new)


# --- merge bases ------------------------------------------------------------------------------------------


def ancestors(parents: Callable[[str], Sequence[str]], starts: Iterable[str]) -> set[str]:
    """Every commit reachable from ``starts``, themselves included."""
    seen: set[str] = set()
    stack = list(starts)
    while stack:
        c = stack.pop()
        if c not in seen:
            seen.add(c)
            stack.extend(parents(c))
    return seen


def merge_bases(
    parents: Callable[[str], Sequence[str]],
    ones: Sequence[str],
    other: str,
    *,
    order: Callable[[str], Any] | None = None,
) -> list[str]:
    """Best common ancestors of ``other`` and (any of) ``ones``: common ancestors that are not ancestors of
    another common ancestor. Empty for unrelated histories. Sorted by ``order`` (default: id)."""
    mine = ancestors(parents, ones)
    candidates: set[str] = set()
    seen: set[str] = set()
    stack = [other]
    while stack:
        c = stack.pop()
        if c in seen:
            continue
        seen.add(c)
        if c in mine:
            candidates.add(c)  # a common ancestor: its own ancestors cannot be better
            continue
        stack.extend(parents(c))
    if len(candidates) > 1:
        below = ancestors(parents, [p for c in candidates for p in parents(c)])
        candidates -= below
    return sorted(candidates, key=order or (lambda c: c))


# --- the repository operations ------------------------------------------------------------------------------


@dataclass
class MergeResult:
    """What :func:`merge` did. ``commit`` is the new tip (the merge commit, the fast-forward target, or the
    unchanged HEAD when already up to date)."""

    commit: str
    previous: str | None
    branch: str | None
    tree: str
    parents: tuple[str, ...] = ()
    fast_forward: bool = False
    up_to_date: bool = False
    strategy: str = "fail"
    conflicts: list[Conflict] = field(default_factory=list)  # resolved by ours/theirs
    bases: list[list[str]] = field(default_factory=list)  # merge base(s) of each step
    merged: list[str] = field(default_factory=list)  # revisions merged, as given
    skipped: list[str] = field(default_factory=list)  # revisions already contained in HEAD or another REV
    ignored: list[str] = field(default_factory=list)  # left out: excluded by the merged .dvxignore files
    added: int = 0
    modified: int = 0
    deleted: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "commit": self.commit,
            "previous": self.previous,
            "branch": self.branch,
            "tree": self.tree,
            "parents": list(self.parents),
            "fast_forward": self.fast_forward,
            "up_to_date": self.up_to_date,
            "strategy": self.strategy,
            "merged": self.merged,
            "skipped": self.skipped,
            "ignored": self.ignored,
            "bases": self.bases,
            "conflicts": [c.to_json() for c in self.conflicts],
            "added": self.added,
            "modified": self.modified,
            "deleted": self.deleted,
        }


class _History:
    """Commit reads cached for one operation, and merge bases (with virtual bases) on top of them."""

    def __init__(self, repo: Any, merger: TreeMerger) -> None:
        self.repo = repo
        self.merger = merger
        self._commits: dict[str, Commit] = {}

    def commit(self, cid: str) -> Commit:
        c = self._commits.get(cid)
        if c is None:
            c = self._commits[cid] = self.repo.read_commit(cid)
        return c

    def parents(self, cid: str) -> tuple[str, ...]:
        return self.commit(cid).parents

    def order(self, cid: str) -> tuple[str, str]:
        return (self.commit(cid).time, cid)  # oldest first, then by id: deterministic

    def bases(self, ones: Sequence[str], other: str) -> list[str]:
        return merge_bases(self.parents, ones, other, order=self.order)

    def base_tree(self, bases: Sequence[str], depth: int = 0) -> str | None:
        """The tree to merge against: the single base's, or a virtual merge of several (recursively)."""
        if not bases:
            return None
        tree = self.commit(bases[0]).tree
        if len(bases) == 1 or depth > 32:
            return tree
        done = [bases[0]]
        for nxt in bases[1:]:
            sub = self.base_tree(self.bases(done, nxt), depth + 1)
            tree, _ = self.merger.merge(sub, tree, self.commit(nxt).tree, resolve=_VIRTUAL)
            done.append(nxt)
        return tree


def _dirty_paths(head_flat: dict[str, Entry], work: dict[str, Entry]) -> list[str]:
    d = diff_flat(head_flat, work, renames=False)
    return sorted(c.path for c in d.added + d.modified + d.deleted)


def _refuse_dirty(paths: list[str]) -> None:
    if paths:
        dirty = [shown_path(p) for p in paths]
        shown = ", ".join(dirty[:10]) + (f" and {len(dirty) - 10} more" if len(dirty) > 10 else "")
        raise DirtyWorkingTree(
            f"cannot merge with uncommitted changes: {shown} (commit them first; if an interrupted merge left them, "
            "'dvx checkout -f HEAD' restores the tracked files, and the added ones can be deleted)"
        )


def _deep_stack(fn: F) -> F:
    """The three-way tree merge recurses, about three calls per folder level, so past ~300 levels Python's
    recursion limit stops it, while trees are still being compared (before the working tree or any ref is
    touched). Such a merge is run again on a thread with a deep stack and a recursion limit to match, enough for
    any tree a file system can hold (PATH_MAX allows ~2048 levels); deeper (crafted) trees are refused in one
    line. The common case pays nothing."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except RecursionError:
            pass
        outcome: list[Any] = []

        def run() -> None:
            try:
                outcome.append((True, fn(*args, **kwargs)))
            except BaseException as exc:  # handed to the calling thread
                outcome.append((False, exc))

        with _DEEP_LOCK:
            old_limit, old_size = sys.getrecursionlimit(), threading.stack_size()
            sys.setrecursionlimit(max(old_limit, _DEEP_LIMIT))
            try:
                threading.stack_size(_DEEP_STACK)
                worker = threading.Thread(target=run, name="dvx-deep-merge")
                worker.start()
            finally:
                threading.stack_size(old_size)
            try:
                worker.join()
            finally:
                sys.setrecursionlimit(old_limit)
        ok, value = outcome[0]
        if ok:
            return value
        if isinstance(value, RecursionError):
            raise UsageError("the trees are nested too deeply to merge (more than ~8,000 folder levels)") from None
        raise value

    return wrapper  # type: ignore[return-value]


_DEEP_LOCK = threading.Lock()
_DEEP_LIMIT = 25_000  # frames: ~3 per folder level
_DEEP_STACK = 512 << 20  # bytes of (virtual) stack for that many frames, also on Python 3.10


@_deep_stack
def merge(
    repo: Any,
    revs: Sequence[str],
    message: str | None = None,
    strategy: str = "fail",
    allow_unrelated: bool = False,
    ff: bool = False,
    update_worktree: bool | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> MergeResult:
    """Merge ``revs`` into HEAD (its branch, or HEAD itself when detached); see the module docstring.

    Creates one commit with parents ``[HEAD, *revs]`` (lineage is recorded even when a fast-forward would do;
    ``ff=True`` fast-forwards instead when merging one REV that HEAD is an ancestor of). REVs already
    contained in HEAD (or in another REV) are skipped; if all are, nothing happens (``up_to_date``).

    ``strategy``: ``fail`` raises :class:`MergeConflict` listing every conflict and changes nothing;
    ``ours``/``theirs`` resolve each conflicting path toward HEAD's side or the merged REV's side and record
    ``merge.strategy``, ``merge.conflicts`` (the count) and, if any, ``merge.conflict_paths`` (a JSON list
    of the first :data:`META_PATHS_LIMIT` paths) in the commit's metadata.

    With ``update_worktree`` the merge refuses to start over uncommitted changes, and then rewrites only the
    files that the merge changes. A change that is already what the merge writes at that path does not count:
    so a merge killed while it placed its files (HEAD not moved yet) completes when run again.
    ``update_worktree=False`` writes objects and moves the ref only: the working
    tree is neither checked nor touched. The default (None) is False in a repository whose files were never
    checked out (``clone --no-checkout``, ``Repo.has_worktree``): a service merges datasets there without
    materializing a file; else True.
    """
    from .repo import plan_checkout, utc_now

    if update_worktree is None:
        update_worktree = bool(getattr(repo, "has_worktree", True))

    if isinstance(revs, str):
        revs = [revs]
    if strategy not in STRATEGIES:
        raise UsageError(f"unknown merge strategy {strategy!r} (use one of: {', '.join(STRATEGIES)})")
    if not revs:
        raise UsageError("nothing to merge: give at least one revision")
    if message is not None and not message.strip():
        raise UsageError("empty merge message")
    with repo.lock:
        branch_ref, head_id = repo.refs.head()
        branch = branch_ref[len(HEADS) :] if branch_ref and branch_ref.startswith(HEADS) else branch_ref
        merger = TreeMerger(repo.trees)
        hist = _History(repo, merger)
        resolved: list[tuple[str, str]] = [(rev, repo.resolve(rev)) for rev in revs]

        head_flat: dict[str, Entry] = {}
        work: dict[str, Entry] = {}
        dirty: list[str] = []
        cache: Any = None

        def check_worktree() -> None:
            """Read the working tree and note its uncommitted changes (once we know there is something to do);
            :func:`finish` refuses them unless each is already what the merge writes there."""
            nonlocal head_flat, work, cache, dirty
            if update_worktree:
                head_flat = repo.trees.flatten(hist.commit(head_id).tree) if head_id else {}
                work, cache, _ = repo._work_entries()
                dirty = _dirty_paths(head_flat, work)

        def finish(new_id: str, tree: str, result: MergeResult) -> MergeResult:
            """Working tree first (only changed paths), then the ref (compare-and-swap)."""
            result.added, result.modified, result.deleted = merger.changes(
                hist.commit(head_id).tree if head_id else None, tree
            )
            if update_worktree:
                target = repo.trees.flatten(tree)
                # A change that is already the merge's result (a merge of the same revisions killed while it
                # placed its files, run again) is not a local change to protect; any other one is refused.
                _refuse_dirty([p for p in dirty if not _same(work.get(p), target.get(p))])
                writes, deletes, clashes = plan_checkout(head_flat, target, work, force=False)
                kept = set(result.ignored)  # left out of the merge by the merged .dvxignore: stays on disk, untracked
                deletes = [p for p in deletes if p not in kept]
                if clashes:  # cannot happen on a clean tree; never overwrite anything if it does
                    raise DirtyWorkingTree(
                        f"merge would overwrite uncommitted changes: {', '.join(map(shown_path, clashes[:10]))}"
                    )
                repo._apply(writes, deletes, work, cache, progress)
                cache.set_head(new_id, tree, target)  # as checkout does: the next status reads no tree
            if branch_ref is not None:
                repo.refs.update(branch_ref, new_id, head_id)
            else:
                repo.refs.set_head_detached(new_id)
            if cache is not None:
                try:
                    cache.save()
                except DvxError:
                    pass  # the stat cache is only a hint
            repo.tidy_packs()
            return result

        if head_id is None:
            # An unborn branch: the only sensible merge of one REV is to start the branch there.
            if len(resolved) != 1:
                raise UnknownRevision("HEAD has no commits yet: merge a single revision into it first")
            rev, target = resolved[0]
            tree = hist.commit(target).tree
            check_worktree()
            res = MergeResult(target, None, branch, tree, (), fast_forward=True, strategy=strategy, merged=[rev])
            return finish(target, tree, res)

        # Drop REVs already contained in HEAD, duplicates, and REVs contained in another REV (git's reduce).
        head_anc = ancestors(hist.parents, [head_id])
        todo: list[tuple[str, str]] = []
        skipped: list[str] = []
        for rev, cid in resolved:
            if cid in head_anc or any(cid == c for _, c in todo):
                skipped.append(rev)
            else:
                todo.append((rev, cid))
        if len(todo) > 1:
            keep = []
            for rev, cid in todo:
                others = [c for _, c in todo if c != cid]
                if cid in ancestors(hist.parents, others):
                    skipped.append(rev)
                else:
                    keep.append((rev, cid))
            todo = keep
        head_tree = hist.commit(head_id).tree
        if not todo:
            return MergeResult(head_id, head_id, branch, head_tree, up_to_date=True, strategy=strategy, skipped=skipped)
        check_worktree()

        if ff and len(todo) == 1 and head_id in ancestors(hist.parents, [todo[0][1]]):
            rev, target = todo[0]
            tree = hist.commit(target).tree
            res = MergeResult(
                target, head_id, branch, tree, (), fast_forward=True, strategy=strategy, merged=[rev],
                skipped=skipped, bases=[[head_id]],
            )
            return finish(target, tree, res)

        tree = head_tree
        merged_so_far = [head_id]
        all_conflicts: list[Conflict] = []
        all_bases: list[list[str]] = []
        for rev, cid in todo:
            bases = hist.bases(merged_so_far, cid)
            if not bases and not allow_unrelated:
                raise UnrelatedHistories(
                    f"refusing to merge unrelated histories: {rev} shares no commit with "
                    f"{branch or 'HEAD'} (use --allow-unrelated to merge them as a union)"
                )
            base_tree = hist.base_tree(bases)
            tree, conflicts = merger.merge(
                base_tree, tree, hist.commit(cid).tree, resolve=strategy, theirs_label=rev
            )
            all_conflicts.extend(conflicts)
            all_bases.append(bases)
            merged_so_far.append(cid)
        if all_conflicts and strategy == "fail":
            _refuse_dirty(dirty)  # uncommitted changes are named first, as before the merge is attempted
            raise MergeConflict(conflict_message(all_conflicts, more="see MergeConflict.conflicts"), list(all_conflicts))
        if dirty:  # refused before anything is written to the store, as uncommitted changes always were
            merged_flat = merger.flatten(tree)
            _refuse_dirty([p for p in dirty if not _same(work.get(p), merged_flat.get(p))])
        # A path the merged .dvxignore files exclude (one side added the file, the other the rule) is left out,
        # as a commit of the merged folder would: else status would call it deleted at once, and the next
        # commit drop it unannounced. It stays in its side's history, and on disk, untracked.
        # Only what arrived from the other sides can be newly excluded, unless the rules themselves changed:
        # the cost follows the changed paths (a merge of a few files into a million reads a few nodes).
        arrived = merger.arrived(head_tree, tree)
        rules_changed = any(p.rpartition("/")[2] == IGNORE_FILE for p in arrived)
        candidates = merger.flatten(tree) if rules_changed else {**arrived, **merger.rules_for(tree, arrived)}
        dropped = worktree.ignored_in_tree(candidates, lambda oid: repo.store.get(oid, BLOB)[1])
        if dropped:
            gone = set(dropped)
            flat = candidates if rules_changed else merger.flatten(tree)
            with repo.store.writer() as writer:
                tree = build(writer, {p: e for p, e in flat.items() if p not in gone})

        meta: dict[str, str] = {}
        if strategy != "fail":
            meta["merge.strategy"] = strategy
            meta["merge.conflicts"] = str(len(all_conflicts))
            if all_conflicts:
                paths = [c.path for c in all_conflicts[:META_PATHS_LIMIT]]
                meta["merge.conflict_paths"] = json.dumps(paths, ensure_ascii=False)
        parents = (head_id, *(cid for _, cid in todo))
        text = message or f"Merge {', '.join(rev for rev, _ in todo)} into {branch or 'HEAD'}"
        commit = Commit(tree, parents, text, repo.author(), utc_now(), meta)
        new_id = commit.id
        with repo.store.writer() as writer:
            merger.write(writer, tree)
            writer.add(new_id, COMMIT, commit.encode())
        res = MergeResult(
            new_id, head_id, branch, tree, parents, strategy=strategy, conflicts=all_conflicts, bases=all_bases,
            merged=[rev for rev, _ in todo], skipped=skipped, ignored=dropped,
        )
        return finish(new_id, tree, res)


@_deep_stack
def squash(
    repo: Any,
    rev: str,
    message: str,
    *,
    branch: str | None = None,
    tag: str | None = None,
    default_tag: bool = False,
) -> str:
    """Write a new root commit (no parents) holding ``rev``'s tree; return its id.

    A flat copy of one version without its history (ClearML's squash). It never moves HEAD, the current
    branch or the working tree: rewriting the current branch would silently drop its history, and checking
    out would touch files. Instead the copy gets a new name: ``branch`` creates a new branch and/or ``tag`` a
    new tag pointing at it (both refuse a name already taken). With neither, only the commit is written;
    nothing refers to it, so ``gc`` deletes it after its grace period unless a ref is made; ``default_tag``
    (what the CLI does without ``--branch`` and ``--tag``) tags it ``squash-<first 12 hex digits of its id>``.
    The source is recorded as ``meta["squash.of"]``.
    """
    from .repo import utc_now

    if not message or not message.strip():
        raise UsageError("empty squash message (give one with -m)")
    refs: list[str] = []
    if branch is not None:
        check_ref_name(branch, "branch")
        refs.append(HEADS + branch)
    if tag is not None:
        check_ref_name(tag, "tag")
        refs.append(TAGS + tag)
    with repo.lock:
        source = repo.resolve(rev)
        for ref in refs:
            if repo.refs.get(ref) is not None:
                what = "branch" if ref.startswith(HEADS) else "tag"
                raise RefExists(f"a {what} named {ref.split('/', 2)[2]!r} already exists")
        tree = repo.read_commit(source).tree
        commit = Commit(tree, (), message, repo.author(), utc_now(), {"squash.of": source})
        with repo.store.writer() as writer:
            writer.add(commit.id, COMMIT, commit.encode())
        if default_tag and not refs:
            refs.append(f"{TAGS}squash-{commit.id[:12]}")
        for ref in refs:
            repo.refs.update(ref, commit.id, None)
        return commit.id


__all__ = [
    "Conflict",
    "MergeResult",
    "TreeMerger",
    "TreeSource",
    "UnrelatedHistories",
    "STRATEGIES",
    "ancestors",
    "conflict_message",
    "describe_change",
    "shown_path",
    "merge",
    "merge_bases",
    "merge_trees",
    "squash",
    "tree_changes",
]
