"""The one error hierarchy of dvx.

Every error a user can cause or meet is a :class:`DvxError`; its ``str`` is one line a user can act on and its
``exit_code`` is what the CLI exits with. Anything else escaping the API is a bug (the CLI shows a traceback
for those, never for these).
"""

from __future__ import annotations

import errno


class DvxError(Exception):
    """Base of every user-facing dvx error: one line of text, one exit code."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class UsageError(DvxError):
    """The command line or an API call was malformed (bad name, bad option value)."""

    exit_code = 2


class NotARepository(DvxError):
    """No ``.dvx`` directory here or in any parent."""


class RepositoryExists(DvxError):
    """``init`` on a folder that already holds a repository."""


class UnknownRevision(DvxError):
    """A revision (branch, tag, id, ``REV~N``…) that names nothing, or names several things."""


class RevisionNotFound(UnknownRevision):
    """No branch, tag or commit has the name (as opposed to a bad ``~``/``^`` step or an ambiguous prefix)."""


class RefExists(DvxError):
    """Creating a branch or tag whose name is taken."""


class RefConflict(DvxError):
    """A compare-and-swap ref update lost a race: someone else moved the ref first."""


class DirtyWorkingTree(DvxError):
    """An operation would overwrite or discard uncommitted changes."""


class NoWorktree(DvxError):
    """A command that reads the working tree, in a repository whose files were never checked out
    (``clone --no-checkout``)."""


class NothingToCommit(DvxError):
    """``commit`` without changes and without ``allow_empty``."""


class EmptyMessage(UsageError):
    """``commit`` with an empty message."""


class LockedError(DvxError):
    """Another live dvx process holds the repository lock."""


class CorruptObject(DvxError):
    """An object whose bytes do not hash to its id, fail to decompress, or fail to parse."""

    def __init__(self, message: str, object_id: str | None = None) -> None:
        super().__init__(message)
        self.object_id = object_id


class MissingObject(DvxError):
    """An object the history needs is not in the store (and no remote could provide it)."""

    def __init__(self, message: str, object_id: str | None = None) -> None:
        super().__init__(message)
        self.object_id = object_id


class UnsupportedFormat(DvxError):
    """A repository, pack, index or object of a format version this dvx does not know."""


class BadConfig(DvxError):
    """``.dvx/config`` cannot be read or holds an invalid value."""


class NoMatch(DvxError):
    """Patterns of a checkout or ``get`` of which one matches no path of the revision (git: "pathspec did not
    match any file(s)"), or that together select nothing; nothing was changed."""


class BadPath(DvxError):
    """A file name dvx cannot store (not UTF-8, too long) or a hostile name in a tree (``..``, ``.dvx``)."""


class MergeConflict(DvxError):
    """A merge with strategy ``fail`` met conflicts; ``conflicts`` lists them."""

    def __init__(self, message: str, conflicts: list[object] | None = None) -> None:
        super().__init__(message)
        self.conflicts = conflicts or []


class RemoteError(DvxError):
    """A remote could not be reached, refused a request, or holds something invalid."""


class NonFastForward(RemoteError):
    """A push that would lose commits on the remote, or a pull that cannot fast-forward."""


class StorageError(DvxError):
    """The operating system refused a write or read (disk full, permission denied, read-only fs)."""


def os_error(exc: OSError, what: str) -> StorageError:
    """Turn an ``OSError`` met while doing ``what`` into one line a user can act on."""
    reason = {
        errno.ENOSPC: "no space left on device",
        errno.EDQUOT: "disk quota exceeded",
        errno.EACCES: "permission denied",
        errno.EPERM: "operation not permitted",
        errno.EROFS: "read-only file system",
        errno.EFBIG: "file too large for this file system",
        errno.EIO: "input/output error",
    }.get(exc.errno or 0, exc.strerror or type(exc).__name__)
    where = f" ({exc.filename})" if exc.filename else ""
    return StorageError(f"{what}: {reason}{where}")
