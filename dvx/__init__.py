"""dvx: git-like, local-first version control for datasets.

The Python API is what the CLI uses::

    import dvx
    repo = dvx.Repo.init("data")
    repo.commit("first import")
    for entry in repo.log():
        print(entry.id, entry.commit.message)
"""

from __future__ import annotations

from .errors import (
    CorruptObject,
    DirtyWorkingTree,
    DvxError,
    MergeConflict,
    MissingObject,
    NonFastForward,
    NotARepository,
    RemoteError,
    UnknownRevision,
)
from .repo import Repo

__version__ = "0.1.0"

__all__ = [
    "Repo",
    "DvxError",
    "NotARepository",
    "UnknownRevision",
    "DirtyWorkingTree",
    "CorruptObject",
    "MissingObject",
    "MergeConflict",
    "RemoteError",
    "NonFastForward",
    "__version__",
]
