"""ASCII drawing of a commit graph for ``dvx log --graph`` (pure: commits in, lines out).

Lanes work as in git: each column holds the commit id it expects next; a commit takes its column, marks it
``*``, and hands the column to its first parent; further parents open new columns (a merge) and a column
whose parent is already expected elsewhere closes into it.
"""

from __future__ import annotations


def render_graph(nodes: list[tuple[str, list[str]]], texts: dict[str, str]) -> list[str]:
    """``nodes``: ``(id, parents)`` newest first, as ``log`` lists them. Returns printable lines."""
    lanes: list[str | None] = []
    lines: list[str] = []
    for cid, parents in nodes:
        if cid not in lanes:
            if None in lanes:
                lanes[lanes.index(None)] = cid
            else:
                lanes.append(cid)
        col = lanes.index(cid)
        # Other lanes waiting for this same commit converge here.
        dupes = [i for i, x in enumerate(lanes) if x == cid and i != col]
        row = "".join(("* " if i == col else ("| " if x is not None else "  ")) for i, x in enumerate(lanes))
        lines.append(row.rstrip() + " " + texts.get(cid, cid[:12]))
        if dupes:
            merge_row = "".join(("|/" if i in dupes else ("| " if x is not None else "  ")) for i, x in enumerate(lanes))
            for i in dupes:
                lanes[i] = None
            lines.append(merge_row.rstrip())
        if not parents:
            lanes[col] = None
        else:
            lanes[col] = parents[0]
            extra = []
            for p in parents[1:]:
                if p in lanes:
                    continue
                if None in lanes:
                    slot = lanes.index(None)
                    lanes[slot] = p
                else:
                    lanes.append(p)
                    slot = len(lanes) - 1
                extra.append(slot)
            if extra:
                bridge = "".join(
                    ("|\\" if i == col else ("  " if x is None else "| ")) for i, x in enumerate(lanes)
                )
                lines.append(bridge.rstrip())
        while lanes and lanes[-1] is None:
            lanes.pop()
    return lines
