"""Output and repository helpers shared by every CLI module (kept apart from main.py so that command modules
never import the entry point, which may be running as ``__main__``)."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any


def out(text: str = "") -> None:
    sys.stdout.write(text + "\n")


def err(text: str) -> None:
    sys.stderr.write(text + "\n")


def print_json(doc: Any) -> None:
    sys.stdout.write(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")


def color() -> bool:
    return sys.stdout.isatty() and "NO_COLOR" not in os.environ


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


def human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"
