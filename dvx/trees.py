"""Reading and writing whole directory hierarchies through the object store.

``read_dir`` hides the bucket split of large directories; ``flatten`` turns a tree into ``{path: Entry}``;
``build`` writes the trees of a flat listing bottom-up, storing only the tree objects not already present, so
a commit that changes one file writes only the trees on that file's path.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from functools import lru_cache

from .errors import CorruptObject
from .model import DIR, Entry, TreeNode, decode_tree, encode_tree
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

    def flatten(self, tree_id: str | None) -> dict[str, Entry]:
        if tree_id is None:
            return {}
        return dict(self.walk(tree_id))

    def lookup(self, tree_id: str, path: str) -> Entry | None:
        """The entry at ``path`` (a file, link or directory), or None."""
        parts = [p for p in path.split("/") if p]
        current = tree_id
        entry: Entry | None = None
        for i, name in enumerate(parts):
            entry = next((e for e in self.read_dir(current) if e.name == name), None)
            if entry is None:
                return None
            if i < len(parts) - 1:
                if entry.kind != DIR:
                    return None
                current = entry.id
        return entry


def build(writer: StoreWriter, files: Mapping[str, Entry]) -> str:
    """Write the trees for a flat ``{path: Entry}`` listing (entries named by their last component).

    Returns the root tree id. Only tree objects missing from the store are written.
    """
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
