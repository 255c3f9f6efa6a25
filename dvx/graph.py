"""ASCII drawing of a commit graph for ``dvx log --graph`` (pure: commits in, lines out).

Lanes work as in git: each column holds the commit id it expects next. A commit takes its column and marks it
``*``; its first parent inherits the column; further parents open new columns beside it (drawn ``|\\``); when
two columns come to expect the same commit they converge (drawn ``|/``) before that commit is printed.
"""

from __future__ import annotations


def _row(cells: dict[int, str], width: int) -> str:
    grid = [" "] * max(width, 1)
    for pos, ch in cells.items():
        if pos >= len(grid):
            grid.extend(" " * (pos - len(grid) + 1))
        grid[pos] = ch
    return "".join(grid).rstrip()


def render_graph(nodes: list[tuple[str, list[str]]], texts: dict[str, str]) -> list[str]:
    """``nodes``: ``(id, parents)`` newest first, as ``log`` lists them. Returns printable lines."""
    lanes: list[str | None] = []
    lines: list[str] = []
    for cid, parents in nodes:
        if cid not in lanes:
            lanes.append(cid)
        col = lanes.index(cid)
        cells = {2 * i: ("*" if i == col else "|") for i in range(len(lanes))}
        lines.append(_row(cells, 2 * len(lanes)) + " " + texts.get(cid, cid[:12]))
        new = [p for p in dict.fromkeys(parents[1:]) if p not in lanes and p != (parents[0] if parents else None)]
        lanes[col] = parents[0] if parents else None
        if new:
            n_before = len(lanes)
            for k, p in enumerate(new):
                lanes.insert(col + 1 + k, p)
            cells = {2 * i: "|" for i in range(col + 1)}
            for k in range(len(new)):
                cells[2 * col + 1 + 2 * k] = "\\"
            for i in range(col + 1, n_before):  # lanes to the right move over by len(new)
                cells[2 * i + 1 + 2 * (len(new) - 1)] = "\\"
            lines.append(_row(cells, 2 * len(lanes)))
        _converge(lanes, lines)
    return lines


def _converge(lanes: list[str | None], lines: list[str]) -> None:
    """Merge columns that expect the same commit, and close finished ones, drawing the moves."""
    seen: set[str] = set()
    drop: list[int] = []
    for i, lane in enumerate(lanes):
        if lane is None or lane in seen:
            drop.append(i)
        else:
            seen.add(lane)
    if not drop:
        return
    first = drop[0]
    if any(i > first for i in range(len(lanes)) if i not in drop) or any(lanes[i] is not None for i in drop):
        cells: dict[int, str] = {}
        for i in range(len(lanes)):
            if i in drop:
                if lanes[i] is not None:
                    cells[2 * i - 1] = "/"
            elif i > first:
                cells[2 * i - 1] = "/"
            else:
                cells[2 * i] = "|"
        lines.append(_row(cells, 2 * len(lanes)))
    for i in reversed(drop):
        del lanes[i]
