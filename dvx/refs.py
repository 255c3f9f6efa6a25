"""Branches, tags and HEAD in ``.dvx/refs`` and ``.dvx/HEAD`` (see docs/format.md "Refs").

A ref file holds one commit id and a newline. Updates are compare-and-swap: take ``NAME.lock`` with
O_CREAT|O_EXCL (it holds "pid N"), check the current value is what the caller expects, write the new value to
a dot-named temp file beside the ref, fsync, rename it over the ref, remove the lock. A lock left behind by a killed process (its pid is gone) is taken over; a live one makes the update
wait briefly and then fail, never silently overwrite.
"""

from __future__ import annotations

import errno
import os
import re
import stat
import time
from collections.abc import Iterator
from pathlib import Path

from . import durable
from .errors import CorruptObject, RefConflict, RefExists, UsageError, os_error
from .ids import is_id
from .model import is_utf8

HEADS = "refs/heads/"
TAGS = "refs/tags/"
REMOTES = "refs/remotes/"

# A ref holds 65 bytes; anything much bigger is not a ref (and is not read into memory whole).
_MAX_REF_FILE = 4096
REF_TEMP = re.compile(r"\..+\.([0-9]{1,10})\.new")  # a new value before its rename

_BAD_REF = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]|\.\.|@\{|//|/\.|\.lock(/|$)|^\.|^/|/$|\.$")


def is_ref_name(name: str) -> bool:
    """True if ``name`` could be a ref (or a ref's path under ``refs/``): only then is it looked up as one."""
    return bool(name) and not _BAD_REF.search(name) and is_utf8(name)


def check_ref_name(name: str, what: str = "branch") -> None:
    """Refuse names git would refuse (and ones that would confuse revision syntax)."""
    if not name or _BAD_REF.search(name) or name == "@" or name == "HEAD" or name.startswith("-"):
        raise UsageError(f"invalid {what} name {name!r}")
    if not is_utf8(name):
        raise UsageError(f"invalid {what} name {name!r}: not valid UTF-8")


class RefStore:
    def __init__(self, dvx_dir: Path) -> None:
        self.dir = dvx_dir

    # -- HEAD ----------------------------------------------------------------------------------

    def head(self) -> tuple[str | None, str | None]:
        """``(branch ref, commit id)``: the branch HEAD follows (None if detached) and the commit (None if unborn)."""
        text = self._read_file(self.dir / "HEAD", ".dvx/HEAD", ".dvx/HEAD holds neither a branch nor a commit id")
        if text is None:
            return HEADS + "main", self.get(HEADS + "main", folder_is_corrupt=True)
        if text.startswith("ref: "):
            ref = text[5:]
            if not ref.startswith(HEADS):
                raise CorruptObject(f".dvx/HEAD points outside refs/heads: {ref!r}")
            check_ref_name(ref[len(HEADS):])
            return ref, self.get(ref, folder_is_corrupt=True)
        if not is_id(text):
            raise CorruptObject(".dvx/HEAD holds neither a branch nor a commit id")
        return None, text

    def set_head_symbolic(self, ref: str) -> None:
        durable.write_replace_file(self.dir / "HEAD", f"ref: {ref}\n".encode(), site="head")

    def set_head_detached(self, commit_id: str) -> None:
        durable.write_replace_file(self.dir / "HEAD", f"{commit_id}\n".encode(), site="head")

    # -- refs ----------------------------------------------------------------------------------

    def _read_file(self, path: Path, what: str, corrupt: str) -> str | None:
        """The stripped text of the plain file ``path`` (HEAD or a ref), or None if it does not exist.

        Never blocks (a fifo is refused, not waited on) and never follows a symbolic link: both, a folder,
        bytes that are not UTF-8 and a file too big to be a ref are corrupt, not absent (docs/format.md §11.1),
        since reading them as "no ref" would make gc delete what they hold.
        """
        try:
            data = durable.read_regular_file(path, follow=False, limit=_MAX_REF_FILE)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except durable.NotRegularFile as exc:
            raise CorruptObject(f"{what} is {exc.kind}, not a regular file") from None
        except OSError as exc:
            if exc.errno == errno.ENAMETOOLONG:
                return None  # a name no file can have: no such ref (`dvx ls LONGWORD` takes it for a pattern)
            raise os_error(exc, f"cannot read {what}") from exc
        if len(data) > _MAX_REF_FILE:
            raise CorruptObject(corrupt)
        try:
            return data.decode("utf-8").strip()
        except UnicodeDecodeError:
            raise CorruptObject(corrupt) from None

    def _folders_ok(self, ref: str) -> bool:
        """Check the folders on the way to ``ref``: False if one is missing (so the ref does not exist), or, below
        ``refs/<kind>/``, is a file (``a/x`` where the ref ``a`` is a file: no ref ``a/x``). ``refs`` and
        ``refs/<kind>`` that exist but are not real folders (a file, a symlink, perhaps dangling to an unmounted
        disk), or a deeper link or special file, are corrupt: the refs in them cannot be read, so none may be
        taken as absent."""
        parts = ref.split("/")
        folder = self.dir
        for depth, part in enumerate(parts[:-1]):
            folder = folder / part
            try:
                st = os.lstat(folder)
            except (FileNotFoundError, NotADirectoryError):
                return False
            except OSError as exc:
                if exc.errno == errno.ENAMETOOLONG:
                    return False
                raise os_error(exc, f"cannot read .dvx/{'/'.join(parts[:depth + 1])}") from exc
            if stat.S_ISDIR(st.st_mode):
                continue
            if depth >= 2 and stat.S_ISREG(st.st_mode):
                return False
            raise CorruptObject(
                f".dvx/{'/'.join(parts[:depth + 1])} is {durable.file_kind(st.st_mode)}, not a folder (refs in it "
                "cannot be read)"
            )
        return True

    def get(self, ref: str, *, folder_is_corrupt: bool = False) -> str | None:
        """The commit id ``ref`` holds, None if it does not exist; raises :class:`CorruptObject` if it cannot
        be read as a ref (see :meth:`_read_file`, :meth:`_folders_ok`).

        A real folder at ``ref`` is a folder of refs (``feature`` when ``feature/x`` exists, or one left empty),
        so no ref ``ref`` exists (§11.1): :meth:`list` reads what is in it. ``folder_is_corrupt`` makes it
        corrupt instead, for HEAD's branch, where taking it as unborn would hide the branch from gc.
        """
        if not self._folders_ok(ref):
            return None
        path = self.dir / ref
        corrupt = f"ref {ref} does not hold a commit id"
        try:
            value = self._read_file(path, f"ref {ref}", corrupt)
        except CorruptObject:
            if not folder_is_corrupt and _is_real_dir(path):
                return None
            raise
        if value is not None and not is_id(value):
            raise CorruptObject(corrupt)
        return value

    def list(self, prefix: str) -> dict[str, str]:
        """Refs under ``prefix`` (``refs/heads/``...), as short name → commit id.

        Fails closed (gc and fsck take their roots from here): a ref that cannot be read, a folder that cannot
        be listed, a link or a special file among the refs raise instead of being left out.
        """
        top = prefix.rstrip("/")
        out: dict[str, str] = {}
        if not self._folders_ok(top + "/x"):
            return out  # no such folder: no refs (init creates refs/heads and refs/tags, others come later)
        self._collect(self.dir / top, prefix, "", out)
        return dict(sorted(out.items()))

    def _collect(self, folder: Path, prefix: str, rel: str, out: dict[str, str]) -> None:
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except FileNotFoundError:
            if rel:
                return  # a sub-folder pruned by a concurrent delete of its last ref
            raise CorruptObject(f".dvx/{prefix} vanished while its refs were listed") from None
        except OSError as exc:
            raise os_error(exc, f"cannot list .dvx/{prefix}{rel}") from exc
        for entry in entries:
            if entry.name.startswith(".") or entry.name.endswith(".lock"):
                continue  # a lock or a temp file of an update in progress: not refs (§11.1)
            name = rel + entry.name
            try:
                is_dir = entry.is_dir(follow_symlinks=False)
            except OSError as exc:
                raise os_error(exc, f"cannot read .dvx/{prefix}{name}") from exc
            if is_dir:
                self._collect(Path(entry.path), prefix, name + "/", out)
                continue
            value = self.get(prefix + name)  # a link, a fifo...: corrupt
            if value is not None:
                out[name] = value

    def all_refs(self) -> Iterator[tuple[str, str]]:
        for prefix in (HEADS, TAGS, REMOTES):
            for name, value in self.list(prefix).items():
                yield prefix + name, value

    def update(self, ref: str, new: str | None, expected: str | None, *, timeout: float = 10.0) -> None:
        """Set ``ref`` to ``new`` (None deletes it) if it currently holds ``expected`` (None: must not exist)."""
        path = self.dir / ref
        lock = path.with_name(path.name + ".lock")
        self._folders_ok(ref)  # refs/heads a dangling link...: corrupt, rather than a 10 s wait for a lock
        if new is not None:
            self._refuse_folder_clash(ref, path)
        try:
            durable.make_dirs(path.parent)
            self._acquire(lock, timeout)
        except OSError as exc:
            raise os_error(exc, f"cannot lock {ref}") from exc
        try:
            current = self.get(ref)
            if current != expected:
                raise RefConflict(
                    f"{ref} moved (expected {(expected or 'nothing')[:12]}, found {(current or 'nothing')[:12]});"
                    " someone else updated it, try again"
                )
            durable.fault("ref.before-update")
            if new is None:
                os.unlink(path)
                durable.fsync_dir(path.parent)
                durable.fault("ref.before-prune")
                self._prune_empty_dirs(path.parent, lock)
            else:
                # The new value goes to its own temp file; the lock keeps "pid N" to the end, so a lock left by
                # a killed process is always recognisable. Dot-names are never refs (check_ref_name).
                tmp = path.with_name(f".{path.name}.{os.getpid()}.new")
                try:
                    with open(tmp, "w", encoding="utf-8") as fh:
                        fh.write(new + "\n")
                        fh.flush()
                        os.fsync(fh.fileno())
                    durable.publish_replace(tmp, path, site="ref")
                finally:
                    try:
                        os.unlink(tmp)
                    except FileNotFoundError:
                        pass
        except OSError as exc:
            raise os_error(exc, f"cannot update {ref}") from exc
        finally:
            try:
                os.unlink(lock)
            except FileNotFoundError:
                pass

    def _refuse_folder_clash(self, ref: str, path: Path) -> None:
        """Refs form folders (``a/b`` is ``refs/heads/a/b``), so ``a`` and ``a/b`` cannot both exist: say which
        ref is in the way, as git does, rather than the file system's "Is a directory"."""
        top = ref.split("/", 2)
        base = self.dir / top[0] / top[1] if len(top) == 3 else self.dir
        parent = path.parent
        while parent != base and base in parent.parents:
            if parent.is_file():
                taken = parent.relative_to(self.dir).as_posix()
                raise RefExists(f"'{taken}' exists; cannot create '{ref}'")
            parent = parent.parent
        if path.is_dir():
            inside = next((p for p in sorted(path.rglob("*")) if p.is_file() and not p.name.startswith(".")
                           and not p.name.endswith(".lock")), None)
            if inside is None and self._remove_dead_folder(path):
                return  # a folder left by a crash (empty, or only a dead process's lock and temp): no ref is there
            taken = inside.relative_to(self.dir).as_posix() if inside is not None else f"{ref}/..."
            raise RefExists(f"'{taken}' exists; cannot create '{ref}'")

    def _remove_dead_folder(self, folder: Path) -> bool:
        """Remove ``folder`` if it holds no ref and nothing of a live process: only empty folders, locks whose
        owner is gone and the ``.NAME.PID.new`` temps of dead processes (a delete killed before it pruned).
        False, leaving the rest, if anything else is there (a ref update in progress inside it)."""
        for top, _, files in os.walk(folder, topdown=False):
            for name in files:
                file = Path(top) / name
                temp = REF_TEMP.fullmatch(name)
                if name.endswith(".lock") and self._stale(file):
                    pass
                elif not (temp and not durable.pid_alive(int(temp.group(1)))):
                    return False
                try:
                    os.unlink(file)
                except FileNotFoundError:
                    pass
            try:
                os.rmdir(top)
            except OSError:
                return False  # something appeared in it meanwhile, or a link/file where a folder was
        return True

    def _prune_empty_dirs(self, folder: Path, own_lock: Path) -> None:
        """After deleting ``a/b``, remove ``refs/heads/a`` if nothing else is in it (so a branch ``a`` can exist)."""
        top = {self.dir / "refs" / "heads", self.dir / "refs" / "tags", self.dir / "refs", self.dir}
        while folder not in top and self.dir in folder.parents:
            try:
                names = os.listdir(folder)
            except FileNotFoundError:
                break
            if names and names != [own_lock.name]:
                break
            if names:  # only our own lock, which the caller removes: remove it now instead
                try:
                    os.unlink(own_lock)
                except FileNotFoundError:
                    pass
            try:
                os.rmdir(folder)
            except OSError:
                break  # someone just created a ref in it
            folder = folder.parent

    def _acquire(self, lock: Path, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileNotFoundError:  # a delete of the last ref in this folder just removed it
                if time.monotonic() > deadline:
                    raise
                durable.make_dirs(lock.parent)
                continue
            except FileExistsError:
                if self._stale(lock):
                    try:
                        os.unlink(lock)
                    except FileNotFoundError:
                        pass
                    continue
                if time.monotonic() > deadline:
                    raise RefConflict(f"{lock.name} is held by another dvx process; try again") from None
                time.sleep(0.02)
                continue
            os.write(fd, f"pid {os.getpid()}\n".encode())
            os.close(fd)
            return

    @staticmethod
    def _stale(lock: Path) -> bool:
        try:
            # Not waiting on a fifo; a folder or a fifo there raises (not a lock we may break).
            text = durable.read_regular_file(lock, follow=False, limit=_MAX_REF_FILE).decode("utf-8", "replace")
            age = time.time() - lock.stat().st_mtime
        except FileNotFoundError:
            return True
        if text.startswith("pid "):
            try:
                return not durable.pid_alive(int(text[4:].strip()))
            except ValueError:
                pass
        if not text:
            return age > 5  # created but the pid not yet written: microseconds, unless its writer died there
        return True  # not a lock this version writes (an old version left its new value here): nobody owns it


def _is_real_dir(path: Path) -> bool:
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False
