"""ASCII drawing of a commit graph for ``dvx log --graph`` (pure: commits in, lines out).

Lanes work as in git: each column holds the commit id it expects next. A commit takes its column and marks it
``*``. The columns after it are git's: the commit's column is replaced by its parents, and an id already
expected by a column to the left is not repeated (that column is joined instead). Every edge, from a column to
its place in the next row of columns, is then drawn, one column per line: moves to the right first (``|\\``,
a merge opening columns), then moves to the left (``|/``, columns converging or closing), so that each parent
link is visible and no line is drawn into a column it does not belong to. An octopus merge is drawn as git
draws it, ``*-.`` / ``*---.``, the columns to its right moved out of the way first.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence


def _row(cells: dict[int, str]) -> str:
    if not cells:
        return ""
    grid = [" "] * (max(cells) + 1)
    for pos, ch in cells.items():
        grid[pos] = ch
    return "".join(grid).rstrip()


def _moves(lines: list[str], tracks: list[tuple[int, int]]) -> None:
    """Draw ``(from column, to column)`` edges: right-moving ones first, then left-moving ones, one column
    per line; an edge that is not moving (yet, or any more) is drawn ``|`` where it is."""
    cur = [start for start, _ in tracks]
    for step, mark in ((1, "\\"), (-1, "/")):
        while True:
            moving = [k for k, (_, end) in enumerate(tracks) if (end - cur[k]) * step > 0]
            if not moving:
                break
            cells: dict[int, str] = {}
            for k in range(len(tracks)):
                if k in moving:
                    cells[2 * cur[k] + step] = mark
                    cur[k] += step
                else:
                    cells.setdefault(2 * cur[k], "|")
            lines.append(_row(cells))


def render_graph(nodes: list[tuple[str, list[str]]], texts: dict[str, str]) -> list[str]:
    """``nodes``: ``(id, parents)`` newest first, as ``log`` lists them. Returns printable lines."""
    lanes: list[str] = []
    lines: list[str] = []
    for cid, parents in nodes:
        if cid not in lanes:
            lanes.append(cid)
        col = lanes.index(cid)
        after: list[str] = []
        edges: list[tuple[int, int]] = []  # (column in this row, column in the next)
        for i, lane in enumerate(lanes):
            for p in dict.fromkeys(parents) if i == col else (lane,):
                if p not in after:
                    after.append(p)
                edges.append((i, after.index(p)))
        # An octopus: the parents opening the columns right after the commit's leave from a line "*---.".
        targets = {end for start, end in edges if start == col}
        fan = 0
        while col + fan + 1 in targets:
            fan += 1
        shift = fan - 1 if fan > 1 else 0
        place = [i + shift if i > col else i for i in range(len(lanes))]
        if shift and len(lanes) > col + 1:
            _moves(lines, list(enumerate(place)))  # make room for the "*---." line
        cells = {2 * p: "|" for p in place}
        cells[2 * col] = "*"
        if shift:
            for x in range(2 * col + 1, 2 * col + 2 * fan - 2):
                cells[x] = "-"
            cells[2 * col + 2 * fan - 2] = "."
        lines.append(_row(cells) + " " + texts.get(cid, cid[:12]))
        tracks = []
        for start, end in edges:
            if start == col and shift and col < end <= col + fan:
                tracks.append((end - 1, end))
            else:
                tracks.append((place[start], end))
        _moves(lines, tracks)
        lanes = after
    return lines


def rewrite_parents(
    nodes: list[tuple[str, list[str]]], parents_of: Callable[[str], Sequence[str]]
) -> list[tuple[str, list[str]]]:
    """Parent rewriting for a graph of some commits only (``log --graph -- PATH``), as git does: each parent
    that is not shown is replaced by the nearest shown commits it descends from, so the drawing keeps the
    lineage instead of leaving columns open for commits that never come."""
    shown = {cid for cid, _ in nodes}
    nearest: dict[str, list[str]] = {}  # hidden commit -> the nearest shown commits below it

    def resolve(start: str) -> list[str]:
        stack = [start]
        while stack:
            c = stack[-1]
            if c in nearest:
                stack.pop()
                continue
            todo = [p for p in parents_of(c) if p not in shown and p not in nearest]
            if todo:
                stack.extend(todo)
                continue
            stack.pop()
            found: list[str] = []
            for p in parents_of(c):
                found.extend([p] if p in shown else nearest[p])
            nearest[c] = list(dict.fromkeys(found))
        return nearest[start]

    out: list[tuple[str, list[str]]] = []
    for cid, parents in nodes:
        rewritten: list[str] = []
        for p in parents:
            rewritten.extend([p] if p in shown else resolve(p))
        out.append((cid, list(dict.fromkeys(rewritten))))
    return out
