"""dvx: git-like, local-first version control for datasets.

The Python API is what the CLI uses::

    import dvx
    repo = dvx.Repo.init("data")
    repo.commit("first import")
    for entry in repo.log():
        print(entry.id, entry.commit.message)

For jobs that only read a dataset (no repository needed on the node)::

    root = dvx.checkout("s3://datasets/imagenet", "v3", "/scratch/imagenet-v3", patterns=["train/**"])
    with dvx.open("s3://datasets/imagenet", "v3", "labels.csv") as fh:
        header = fh.readline()

Importing ``dvx`` is cheap: ``Repo``, ``checkout``, ``open`` and ``get`` are loaded on first use (PEP 562), so
that the CLI does not pay for modules a command does not need. The errors are plain imports.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .errors import (
    CorruptObject,
    DirtyWorkingTree,
    DvxError,
    MergeConflict,
    MissingObject,
    NoMatch,
    NonFastForward,
    NotARepository,
    RemoteError,
    UnknownRevision,
)

if TYPE_CHECKING:
    from .readonly import checkout
    from .readonly import open_file as open
    from .repo import Repo
    from .source import get

__version__ = "0.1.0"

# name -> (module, attribute): what ``__getattr__`` imports on first use.
_LAZY = {
    "Repo": ("dvx.repo", "Repo"),
    "checkout": ("dvx.readonly", "checkout"),
    "open": ("dvx.readonly", "open_file"),
    "get": ("dvx.source", "get"),
}


def __getattr__(name: str) -> Any:
    try:
        module, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'dvx' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value  # later lookups do not come back here
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "Repo",
    "checkout",
    "open",
    "get",
    "DvxError",
    "NotARepository",
    "UnknownRevision",
    "DirtyWorkingTree",
    "CorruptObject",
    "MissingObject",
    "MergeConflict",
    "NoMatch",
    "RemoteError",
    "NonFastForward",
    "__version__",
]
