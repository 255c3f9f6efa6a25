"""Reading and writing whole directory hierarchies through the object store.

``read_dir`` hides the bucket split of large directories; ``flatten`` turns a tree into ``{path: Entry}``;
``build`` writes the trees of a flat listing bottom-up, storing only the tree objects not already present, so
a commit that changes one file writes only the trees on that file's path.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from functools import lru_cache

import blake3

from .errors import CorruptObject, MissingObject
from .model import DIR, Entry, TreeNode, decode_tree, encode_tree, misplaced, patch_tree
from .store import TREE, ObjectStore, StoreWriter

EMPTY_TREE_ENTRIES: list[Entry] = []
DIGEST_BYTES = 32  # a bucket node splits on one byte of the 32-byte BLAKE3 of each name (docs/format.md §9.4)


class TreeReader:
    """Parses tree objects once per process (they are immutable, so caching by id is always right)."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store
        self._node = lru_cache(maxsize=65536)(self._load_node)

    def _load_node(self, tree_id: str) -> TreeNode:
        return decode_tree(self.store.get(tree_id, TREE)[1], tree_id)

    def node(self, tree_id: str) -> TreeNode:
        return self._node(tree_id)

    def read_dir(self, tree_id: str) -> list[Entry]:
        """All entries of one directory, sorted by name, buckets merged."""
        node = self.node(tree_id)
        if node.entries is not None:
            return node.entries
        if not 0 <= node.depth < DIGEST_BYTES:  # it splits on byte `depth` of a name's hash: this bounds the nesting
            raise CorruptObject(f"tree {tree_id} is a bucket node at depth {node.depth}", tree_id)
        out: list[Entry] = []
        for _bucket, sub_id, _, _ in node.buckets:
            sub = self.node(sub_id)
            if sub.depth != node.depth + 1 and not sub.is_leaf:
                raise CorruptObject(f"tree {tree_id} has a bucket at the wrong depth", tree_id)
            out.extend(self.read_dir(sub_id))
        out.sort(key=lambda e: e.name)
        for a, b in zip(out, out[1:]):
            if a.name == b.name:
                raise CorruptObject(f"tree {tree_id} lists {a.name!r} twice", tree_id)
        return out

    def walk(self, tree_id: str, prefix: str = "") -> Iterator[tuple[str, Entry]]:
        """Every non-directory entry under ``tree_id`` as ``(path, entry)``, depth first, sorted.

        Iterative (a stack of the directories being listed): a tree can be nested deeper than Python's
        recursion limit (a real one up to ~2048 levels, a crafted one without limit)."""
        read_dir = self.read_dir
        stack = [(iter(read_dir(tree_id)), prefix)]
        while stack:
            entries, prefix = stack[-1]
            for e in entries:
                if e.kind == DIR:
                    stack.append((iter(read_dir(e.id)), f"{prefix}{e.name}/"))
                    break
                yield prefix + e.name, e
            else:
                stack.pop()

    def differing(self, old: str | None, new: str | None) -> tuple[dict[str, Entry], dict[str, Entry]]:
        """The files of trees ``old`` and ``new``, each restricted to the paths where the two differ (kind,
        content or exec bit): what a diff of two commits needs, read at the cost of the changes. Equal
        subtrees and equal buckets of a big directory (same id) are skipped unread. Iterative, as :meth:`walk`.
        """
        a_out: dict[str, Entry] = {}
        b_out: dict[str, Entry] = {}
        # (old node, new node, path prefix, the depth their bucket nodes must have, or None at a directory's
        # top, and the bucket bytes taken to reach them: the names below must hash to them)
        stack: list[tuple[str | None, str | None, str, int | None, bytes]] = [(old, new, "", None, b"")]
        while stack:
            x, y, prefix, depth, route = stack.pop()
            if x == y:
                continue
            xn = self.node(x) if x is not None else None
            yn = self.node(y) if y is not None else None
            for n, nid in ((xn, x), (yn, y)):
                if n is not None and n.entries is None and depth is not None and n.depth != depth:
                    raise CorruptObject(f"tree {nid} has a bucket at the wrong depth", nid)
            if (xn is not None and yn is not None and xn.entries is None and yn.entries is None
                    and xn.depth == yn.depth and 0 <= xn.depth < DIGEST_BYTES - 1):
                xb = {b: sub for b, sub, _, _ in xn.buckets}
                yb = {b: sub for b, sub, _, _ in yn.buckets}
                for b in xb.keys() | yb.keys():
                    stack.append((xb.get(b), yb.get(b), prefix, xn.depth + 1, route + bytes([b])))
                continue
            xd = self._bucket_entries(x, route)
            yd = self._bucket_entries(y, route)
            for name in xd.keys() | yd.keys():
                ex, ey = xd.get(name), yd.get(name)
                if ex is not None and ey is not None and ex.kind == ey.kind and ex.id == ey.id \
                        and ex.executable == ey.executable:
                    continue
                path = prefix + name
                if ex is not None and ey is not None and ex.kind == DIR and ey.kind == DIR:
                    stack.append((ex.id, ey.id, path + "/", None, b""))
                    continue
                for e, out in ((ex, a_out), (ey, b_out)):
                    if e is None:
                        continue
                    if e.kind == DIR:
                        out.update(self.walk(e.id, path + "/"))
                    else:
                        out[path] = e
        return a_out, b_out

    def _bucket_entries(self, node_id: str | None, route: bytes) -> dict[str, Entry]:
        """The entries under a node by name; under a bucket (``route`` not empty), each checked to hash to it,
        which also rules out a name listed in two buckets (docs/format.md §9.4)."""
        if node_id is None:
            return {}
        entries = self.read_dir(node_id)
        wrong = misplaced(entries, route)
        if wrong is not None:
            raise CorruptObject(f"tree {node_id} holds {wrong!r} in the wrong bucket", node_id)
        return {e.name: e for e in entries}

    def flatten(self, tree_id: str | None) -> dict[str, Entry]:
        if tree_id is None:
            return {}
        return dict(self.walk(tree_id))

    def entry_in(self, tree_id: str, name: str) -> Entry | None:
        """The entry ``name`` of one directory, or None: through a bucket node, only down the one bucket the
        name's hash selects (docs/format.md §9.4), so a lookup in a million-entry folder reads a few nodes, not
        the folder."""
        node = self.node(tree_id)
        digest: bytes | None = None
        while node.entries is None:
            if not 0 <= node.depth < DIGEST_BYTES:
                raise CorruptObject(f"tree {tree_id} is a bucket node at depth {node.depth}", tree_id)
            if digest is None:
                digest = blake3.blake3(name.encode("utf-8", "surrogateescape")).digest()
            want = digest[node.depth]
            sub_id = next((sub for b, sub, _, _ in node.buckets if b == want), None)
            if sub_id is None:
                return None
            sub = self.node(sub_id)
            if sub.depth != node.depth + 1 and not sub.is_leaf:
                raise CorruptObject(f"tree {tree_id} has a bucket at the wrong depth", tree_id)
            node, tree_id = sub, sub_id
        return next((e for e in node.entries if e.name == name), None)

    def lookup(self, tree_id: str, path: str) -> Entry | None:
        """The entry at ``path`` (a file, link or directory), or None."""
        parts = [p for p in path.split("/") if p]
        current = tree_id
        entry: Entry | None = None
        for i, name in enumerate(parts):
            entry = self.entry_in(current, name)
            if entry is None:
                return None
            if i < len(parts) - 1:
                if entry.kind != DIR:
                    return None
                current = entry.id
        return entry


def build(
    writer: StoreWriter,
    files: Mapping[str, Entry],
    base: tuple[TreeReader, str, Mapping[str, Entry]] | None = None,
) -> str:
    """Write the trees for a flat ``{path: Entry}`` listing (entries named by their last component).

    Returns the root tree id. Only tree objects missing from the store are written. With ``base`` (a reader,
    a tree id and that tree's exact flat listing: HEAD's, from the stat cache), only the directories on the
    paths that differ from it are encoded, and in a bucketed directory only the buckets holding a change
    (:func:`~dvx.model.patch_tree`): a one-file commit in a million-file folder costs a few nodes, and the ids
    are the ones a full build gives.
    """
    if base is not None:
        try:
            return _build_on(writer, files, *base)
        except (CorruptObject, MissingObject):
            pass  # the base tree misplaces a name (a hostile writer), or is damaged: build without it
    children: dict[str, dict[str, Entry]] = {"": {}}
    for path in files:
        parent = path.rpartition("/")[0]
        while parent not in children:
            children[parent] = {}
            parent = parent.rpartition("/")[0]
    for path, entry in files.items():
        children[path.rpartition("/")[0]][entry.name] = entry
    # Deepest directories first, so each subtree id is known before its parent is encoded.
    root_id = ""
    for directory in sorted(children, key=lambda d: d.count("/") + (1 if d else 0), reverse=True):
        entries = list(children[directory].values())
        nodes = encode_tree(entries)
        for node_id, data in nodes:
            if not writer.has(node_id):
                writer.add(node_id, TREE, data)
        if directory:
            parent, _, name = directory.rpartition("/")
            children[parent][name] = Entry(name, DIR, nodes[-1][0], sum(e.size for e in entries))
        else:
            root_id = nodes[-1][0]
    return root_id


def empty_tree(writer: StoreWriter) -> str:
    nodes = encode_tree([])
    for node_id, data in nodes:
        writer.add(node_id, TREE, data)
    return nodes[-1][0]


def _build_on(writer: StoreWriter, files: Mapping[str, Entry], reader: TreeReader, base_tree: str,
              base_files: Mapping[str, Entry]) -> str:
    # Each directory holding a change → its changed names (None: gone), and every folder above it (empty).
    changes: dict[str, dict[str, Entry | None]] = {}

    def mark(path: str, entry: Entry | None) -> None:
        folder, _, name = path.rpartition("/")
        names = changes.get(folder)
        if names is None:
            names = changes[folder] = {}
            above = folder
            while above:
                above = above.rpartition("/")[0]
                if above in changes:
                    break
                changes[above] = {}
        names[name] = entry

    base_dirs: set[str] = set()  # every folder of the base listing
    for path in base_files:
        if path not in files:
            mark(path, None)
        folder = path.rpartition("/")[0]
        while folder and folder not in base_dirs:
            base_dirs.add(folder)
            folder = folder.rpartition("/")[0]
    for path, entry in files.items():
        if base_files.get(path) != entry:
            mark(path, entry)
    if not changes:
        return base_tree
    # The base's id of each changed directory, top down (None: not a directory there before).
    base_ids: dict[str, str | None] = {"": base_tree}
    for folder in sorted(changes, key=lambda d: d.count("/") + (1 if d else 0)):
        if folder:
            parent, _, name = folder.rpartition("/")
            parent_id = base_ids.get(parent)
            e = reader.entry_in(parent_id, name) if parent_id is not None else None
            base_ids[folder] = e.id if e is not None and e.kind == DIR else None
            if (base_ids[folder] is not None) != (folder in base_dirs):  # the tree and its listing disagree:
                raise CorruptObject(f"tree {base_tree} does not hold {folder!r} where its hash puts it", base_tree)
    root_id = ""
    for folder in sorted(changes, key=lambda d: d.count("/") + (1 if d else 0), reverse=True):
        names = changes[folder]
        nodes: list[tuple[str, bytes]] = []
        base_id = base_ids[folder]
        if base_id is None:  # new here: everything in it is a change
            entries = [e for e in names.values() if e is not None]
            nodes = encode_tree(entries)
            count, size = len(entries), sum(e.size for e in entries)
            node_id = nodes[-1][0]
        else:
            prefix = f"{folder}/" if folder else ""
            existed = {n for n in names if prefix + n in base_files or prefix + n in base_dirs}
            node_id, count, size = patch_tree(reader.node, base_id, names, nodes, existed=existed)
        for nid, data in nodes:
            if not writer.has(nid):
                writer.add(nid, TREE, data)
        if folder:
            parent, _, name = folder.rpartition("/")
            siblings = changes[parent]
            if count:
                siblings[name] = Entry(name, DIR, node_id, size)
            elif siblings.get(name) is None:
                siblings[name] = None  # emptied: gone, unless a file took its name
        else:
            root_id = node_id
    return root_id
