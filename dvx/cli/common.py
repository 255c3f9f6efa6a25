"""Output and repository helpers shared by every CLI module (kept apart from main.py so that command modules
never import the entry point, which may be running as ``__main__``)."""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any


def out(text: str = "") -> None:
    sys.stdout.write(text + "\n")


def err(text: str) -> None:
    sys.stderr.write(text + "\n")


_SPECIAL = re.compile(r'[\x00-\x1f\x7f"\\]')
_ESCAPES = {"\a": "\\a", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\v": "\\v", "\f": "\\f", "\r": "\\r",
            '"': '\\"', "\\": "\\\\"}


def quote_path(path: str, *, arrow: bool = False) -> str:
    """A path as git's text output shows it (``core.quotePath=false``): as it is, or, if it holds a control
    character, ``"`` or ``\\``, in double quotes with C escapes (``"a\\nb"``), so that one name is one line.
    ``arrow``: also quote a name holding `` -> `` (in a rename line, ``a -> b -> c`` would be ambiguous)."""
    if not _SPECIAL.search(path) and not (arrow and " -> " in path):
        return path
    return '"' + _SPECIAL.sub(lambda m: _ESCAPES.get(m.group(), f"\\{ord(m.group()):03o}"), path) + '"'


def one_line(text: str) -> str:
    """An error message on one line: control characters (from a file name, a ref, a message) escaped."""
    return _SPECIAL.sub(lambda m: m.group() if m.group() in '"\\' else _ESCAPES.get(m.group(), f"\\x{ord(m.group()):02x}"), text)


def _utf8(stream: Any) -> bool:
    return str(getattr(stream, "encoding", "") or "").lower().replace("-", "").replace("_", "") == "utf8"


def plain_output() -> None:
    """Make output that the terminal's encoding cannot hold printable: a name or message with ``é`` under
    ``LC_ALL=C PYTHONUTF8=0`` (or ``PYTHONIOENCODING=ascii``) is written with backslash escapes, not a traceback."""
    for stream in (sys.stdout, sys.stderr):
        if not _utf8(stream) and hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")


def print_json(doc: Any) -> None:
    # JSON escapes (\u00e9) where stdout cannot hold UTF-8, so the document stays valid and exact.
    sys.stdout.write(json.dumps(doc, indent=2, ensure_ascii=not _utf8(sys.stdout)) + "\n")


def color() -> bool:
    return sys.stdout.isatty() and "NO_COLOR" not in os.environ and os.environ.get("TERM") != "dumb"


def paint(text: str, code: str) -> str:
    return f"\033[{code}m{text}\033[0m" if color() else text


Callback = Callable[[int, int], None]  # (done, total)


@contextmanager
def progress_bar(description: str, enabled: bool = True) -> Iterator[Callback | None]:
    """A rich progress bar of bytes on stderr when it is a terminal; ``None`` (no callback) otherwise."""
    with transfer_bar(description, enabled) as (on_bytes, _):
        yield on_bytes


@contextmanager
def transfer_bar(description: str, enabled: bool = True) -> Iterator[tuple[Callback | None, Callback | None]]:
    """:func:`progress_bar` that also counts objects (pushes, fetches, clones): yields the ``(bytes, objects)``
    callbacks, both ``None`` when stderr is not a terminal."""
    if not enabled or not sys.stderr.isatty():
        yield None, None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TextColumn("{task.fields[objects]}"),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        task = bar.add_task(description, total=None, objects="")

        def on_bytes(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total or None)

        def on_objects(done: int, total: int) -> None:
            bar.update(task, objects=f"{done}/{total} objects")

        yield on_bytes, on_objects


def open_repo() -> Any:
    from ..repo import Repo

    return Repo.find(os.environ.get("DVX_DIR_ROOT", "."))


def subfolder(repo: Any) -> str:
    """The repository path of the current folder ("" at the top of the repository, or outside it)."""
    here = os.path.relpath(os.getcwd(), repo.root).replace(os.sep, "/")
    return "" if here == "." or here == ".." or here.startswith("../") else here


def split_at_dashdash(positional: list[str]) -> tuple[list[str], list[str]] | None:
    """git's rule for ``CMD [REV...] -- PATH...``: the arguments before ``--`` are revisions, those after it
    paths. None when the command line has no ``--``."""
    if "--" not in sys.argv:
        return None
    after = sys.argv[sys.argv.index("--") + 1 :]
    return positional[: max(0, len(positional) - len(after))], after


def human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"
