"""``Repo``: the public Python API of one repository; every CLI command is a call on it.

Write ordering (the crash-safety argument): file objects, then trees, then the commit are written and fsynced
into the store; only then is the branch ref moved (compare-and-swap). A crash before the ref update leaves the
previous commit as the tip and some unreferenced objects that ``gc`` reclaims; a crash after it leaves the new
commit complete. The stat cache is written last and is only a hint.
"""

from __future__ import annotations

import contextlib
import errno
import getpass
import heapq
import json
import os
import shutil
import socket
import stat
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from . import codec, durable, worktree
from .diff import Diff, diff_flat, differs
from .errors import (
    BadConfig,
    BadPath,
    CorruptObject,
    DirtyWorkingTree,
    DvxError,
    EmptyMessage,
    MissingObject,
    NoMatch,
    NotARepository,
    NothingToCommit,
    NoWorktree,
    RefExists,
    RepositoryExists,
    RevisionNotFound,
    StorageError,
    UnknownRevision,
    UnsupportedFormat,
    UsageError,
    os_error,
)
from .ids import is_id, is_id_prefix
from .lock import RepoLock
from .model import DIR, FILE, LINK, Commit, Entry, decode_commit, link_entry, misplaced
from .refs import HEADS, REMOTES, TAGS, RefStore, check_ref_name, is_ref_name
from .store import BLOB, CHUNKED, COMMIT, TREE, TYPE_WORDS, ObjectStore, StoreWriter, parse_manifest
from .store.pack import scan_pack
from .trees import TreeReader, build
from .worktree import Chunking, Found, StatCache

if TYPE_CHECKING:
    from .merge import MergeResult

DVX_DIR = ".dvx"
FORMAT_VERSION = 1
DEFAULT_BRANCH = "main"

Progress = Callable[[int, int], None]  # (done, total) in bytes


@dataclass
class Status:
    added: list[str] = field(default_factory=list)
    modified: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.added or self.modified or self.deleted)

    def to_json(self) -> dict[str, list[str]]:
        return {"added": self.added, "modified": self.modified, "deleted": self.deleted}


@dataclass(frozen=True)
class LogEntry:
    id: str
    commit: Commit
    refs: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "parents": list(self.commit.parents),
            "message": self.commit.message,
            "author": self.commit.author,
            "time": self.commit.time,
            "refs": list(self.refs),
            "tree": self.commit.tree,
            "meta": dict(self.commit.meta),
        }


@dataclass
class FsckReport:
    objects: int = 0
    bytes: int = 0
    bad: dict[str, str] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    not_fetched: int = 0
    missing_content: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.bad and not self.missing


@dataclass
class GcReport:
    objects_removed: int = 0
    bytes_freed: int = 0
    packs_rewritten: int = 0
    kept_young: int = 0


def utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# zstd level 1, as git compresses loose objects and Fedora's btrfs its files: on the benchmark's text it runs
# about 1.3x as fast as level 3 for a store about 4% larger. `init --compression-level` picks another.
DEFAULT_COMPRESSION_LEVEL = 1


def default_config(compression_level: int = DEFAULT_COMPRESSION_LEVEL) -> dict[str, Any]:
    c = Chunking()
    return {
        "format": FORMAT_VERSION,
        "core": {
            "compression_level": compression_level,
            "chunk_avg": c.avg,
            "chunk_min": c.min,
            "chunk_max": c.max,
            "chunk_threshold": c.threshold,
        },
        "user": {},
        "remotes": {},
    }


class Repo:
    """A dvx repository: a project folder (the working tree) with a ``.dvx`` directory inside.

    Example::

        repo = Repo.init("data")
        repo.commit("first import")
        repo.status().modified
    """

    def __init__(self, root: str | os.PathLike[str], *, dvx_dir: str | os.PathLike[str] | None = None) -> None:
        self.root = Path(root).absolute()
        self.dvx = Path(dvx_dir) if dvx_dir is not None else self.root / DVX_DIR
        if not (self.dvx / "config").is_file():
            raise NotARepository(f"not a dvx repository: {self.root} (run 'dvx init' first)")
        self.config = self._load_config()
        core = self.config["core"]
        try:
            self.chunking = Chunking(
                int(core["chunk_avg"]), int(core["chunk_min"]), int(core["chunk_max"]), int(core["chunk_threshold"])
            )
            self.level = int(core["compression_level"])
        except (KeyError, TypeError, ValueError) as exc:
            raise BadConfig(f"bad core settings in .dvx/config: {exc}") from exc
        if self.level not in codec.LEVELS:
            raise BadConfig(f"core.compression_level must be 1..22, not {self.level}")
        c = self.chunking
        if not (256 <= c.avg <= 4 << 20 and 64 <= c.min <= min(c.avg, 1 << 20) and max(1024, c.avg) <= c.max <= 16 << 20
                and 64 << 10 <= c.threshold <= 64 << 20):
            raise BadConfig(
                "core.chunk_* out of range (need 64 <= chunk_min <= chunk_avg <= 4 MiB, chunk_avg <= chunk_max <= "
                "16 MiB, 64 KiB <= chunk_threshold <= 64 MiB)"
            )
        self.store = ObjectStore(self.dvx / "objects", self.dvx / "tmp", compression_level=self.level)
        self.refs = RefStore(self.dvx)
        self.trees = TreeReader(self.store)
        self.lock = RepoLock(self.dvx / "lock")
        self._umask = _read_umask()
        if self.config["core"].get("lazy_remote"):
            from .transfer import install_lazy_fetcher

            install_lazy_fetcher(self)

    # -- creation and discovery ------------------------------------------------------------------

    @classmethod
    def init(
        cls,
        path: str | os.PathLike[str] = ".",
        *,
        branch: str = DEFAULT_BRANCH,
        compression_level: int = DEFAULT_COMPRESSION_LEVEL,
    ) -> Repo:
        """Create a repository in ``path`` (created if missing); refuses a folder that already has one.

        ``compression_level`` (zstd, 1..22) is recorded in the config; higher levels make a smaller store and
        slower commits.
        """
        root = Path(path).absolute()
        dvx = root / DVX_DIR
        if dvx.exists():
            raise RepositoryExists(f"a dvx repository already exists in {root}")
        check_ref_name(branch)
        if type(compression_level) is not int or compression_level not in codec.LEVELS:
            raise UsageError(f"compression level must be 1..22, not {compression_level}")
        staging = root / f".dvx-init-{os.getpid()}"
        try:
            durable.make_dirs(root)
            for sub in ("objects/pack", "objects/loose", "refs/heads", "refs/tags", "tmp"):
                (staging / sub).mkdir(parents=True, exist_ok=True)
            cfg = json.dumps(default_config(compression_level), indent=2).encode() + b"\n"
            durable.write_new_file(staging / "config", cfg)
            durable.write_new_file(staging / "HEAD", f"ref: {HEADS}{branch}\n".encode())
            # Publish the whole directory at once: a crash leaves no half-initialized .dvx.
            os.rename(staging, dvx)
            durable.fsync_dir(root)
        except BaseException as exc:
            shutil.rmtree(staging, ignore_errors=True)  # a half-made .dvx is never left behind
            if isinstance(exc, FileExistsError):
                raise RepositoryExists(f"a dvx repository already exists in {root}") from None
            if isinstance(exc, OSError):
                raise os_error(exc, f"cannot create a repository in {root}") from exc
            raise
        return cls(root)

    @classmethod
    def find(cls, start: str | os.PathLike[str] = ".") -> Repo:
        """The repository containing ``start`` (searching parents, as git does)."""
        here = Path(start).absolute()
        for candidate in (here, *here.parents):
            meta = candidate / DVX_DIR
            if (meta / "config").is_file():
                return cls(candidate)
            if os.path.lexists(meta):
                # A damaged repository stops the search: going on up would act on an enclosing repository.
                what = "is not a folder" if not meta.is_dir() else "has no config file (.dvx/config is missing or not a file)"
                raise BadConfig(f"damaged dvx repository at {candidate}: .dvx {what}")
        raise NotARepository(f"not a dvx repository (or any parent up to /): {here}")

    def _load_config(self) -> dict[str, Any]:
        try:
            doc = durable.loads_json(durable.read_regular_file(self.dvx / "config", limit=1 << 20).decode("utf-8"))
        except OSError as exc:
            raise os_error(exc, "cannot read .dvx/config") from exc
        except ValueError as exc:
            raise BadConfig(f".dvx/config is not valid JSON: {exc}") from exc
        if not isinstance(doc, dict) or not isinstance(doc.get("core"), dict):
            raise BadConfig(".dvx/config is malformed (no 'core' section)")
        if type(doc.get("format")) is not int or doc["format"] != FORMAT_VERSION:
            raise UnsupportedFormat(
                f"repository format {doc.get('format')!r} is not supported by this dvx (it reads {FORMAT_VERSION})"
            )
        base = default_config()
        for key, value in base.items():
            doc.setdefault(key, value)
        _check_config(doc)
        return doc

    def save_config(self) -> None:
        with self.lock:
            data = json.dumps(self.config, indent=2, sort_keys=True).encode() + b"\n"
            durable.write_replace_file(self.dvx / "config", data, site="config")

    def close(self) -> None:
        """Release the open pack files. The object stays usable: a later call opens what it needs again."""
        self.store.close()

    def __repr__(self) -> str:
        return f"Repo({os.fspath(self.root)!r})"

    def __enter__(self) -> Repo:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def has_worktree(self) -> bool:
        """False in a repository whose files were never checked out (``clone --no-checkout``): its folder does
        not hold HEAD's files, so status, commit and merges must not read it as the working tree. The first
        ``checkout`` materializes HEAD's files and makes it an ordinary repository."""
        return self.config["core"].get("worktree", True) is not False

    @property
    def is_lazy(self) -> bool:
        """A lazy clone (``core.lazy_remote`` set, §17.6): a file content missing here is not fetched yet, not
        lost, even when that remote is no longer configured and nothing can fetch it on demand."""
        return bool(self.config["core"].get("lazy_remote"))

    def _require_worktree(self, what: str) -> None:
        if not self.has_worktree:
            branch, _ = self.head()
            raise NoWorktree(
                f"cannot {what}: no files are checked out here (a clone made with --no-checkout, or one interrupted "
                f"while writing its files); run 'dvx checkout {branch or 'REV'}' first"
            )

    # -- objects ------------------------------------------------------------------------------------

    def read_commit(self, commit_id: str) -> Commit:
        """The commit with this full id (:meth:`resolve` turns a branch, tag or prefix into one)."""
        if not is_id(commit_id):
            raise UnknownRevision(f"{commit_id!r} is not a full commit id (resolve a revision first: repo.resolve)")
        return decode_commit(self.store.get(commit_id, COMMIT)[1], commit_id)

    def author(self) -> str:
        env = os.environ.get("DVX_AUTHOR")
        if env:
            try:
                env.encode("utf-8")
            except UnicodeEncodeError:
                raise BadConfig(f"DVX_AUTHOR is not valid UTF-8: {repr(env.encode('utf-8', 'surrogateescape'))[1:]}") from None
            if not env.isprintable():  # a newline would let a commit print a forged "Date:" line in log
                raise BadConfig(f"DVX_AUTHOR holds a control character: {env!r}")
            return env
        user = self.config.get("user", {})
        name = user.get("name") or _safe_user()
        email = user.get("email") or f"{_safe_user()}@{socket.gethostname()}"
        author = f"{name} <{email}>"
        if not author.isprintable():  # a newline would let a commit print a forged "Date:" line in log
            raise BadConfig(f"user.name / user.email hold a control character: {author!r}")
        return author

    # -- revisions ------------------------------------------------------------------------------------

    def head(self) -> tuple[str | None, str | None]:
        """``(branch name or None if detached, commit id or None if unborn)``."""
        ref, commit = self.refs.head()
        return (ref[len(HEADS) :] if ref and ref.startswith(HEADS) else ref), commit

    def resolve(self, rev: str) -> str:
        """Resolve revision syntax to a commit id: id or unique prefix (>= 4 hex), branch, tag, HEAD, ~N, ^N."""
        if not rev:  # not stripped, as in git: 'main ' is no branch (checkout would detach HEAD at main)
            raise UnknownRevision("empty revision")
        i = 0
        while i < len(rev) and rev[i] not in "~^":
            i += 1
        base, ops = rev[:i], rev[i:]
        steps: list[tuple[str, int]] = []
        pos = 0
        while pos < len(ops):
            op = ops[pos]
            pos += 1
            if op not in "~^":
                raise UnknownRevision(f"unknown revision {rev!r} (after ~ or ^ only a number may follow)")
            digits = ""
            while pos < len(ops) and ops[pos] in "0123456789":
                digits += ops[pos]
                pos += 1
            # A count too long for int() (over 4300 digits) is past any history or parent list anyway.
            steps.append((op, int(digits) if 0 < len(digits) <= 18 else 10**18 if digits else 1))
        commit = self._resolve_base(base)
        for op, n in steps:
            parents = self.read_commit(commit).parents
            if op == "~":
                for _ in range(n):
                    parents = self.read_commit(commit).parents
                    if not parents:
                        raise UnknownRevision(f"revision {rev!r} goes past the first commit")
                    commit = parents[0]
            else:
                if n == 0:
                    continue
                if n > len(parents):
                    raise UnknownRevision(f"revision {rev!r}: commit {commit[:12]} has {len(parents)} parent(s)")
                commit = parents[n - 1]
        return commit

    def _resolve_base(self, base: str) -> str:
        if base in ("HEAD", "@"):
            _, commit = self.refs.head()
            if commit is None:
                raise UnknownRevision("HEAD has no commits yet")
            return commit
        # A full id names its object, even when a ref has the same name (as git does with a full hash).
        if is_id(base.lower()):
            info = self.store.info(base.lower())
            if info is not None:
                if info.type != COMMIT:
                    raise UnknownRevision(f"{base[:12]} is not a commit (it names a {TYPE_WORDS.get(info.type, 'object')})")
                return base.lower()
        # git's order (gitrevisions): a full ref name, then a tag, a branch, a remote-tracking branch. A ref
        # that is there but unreadable raises: it is never skipped in favour of the next candidate.
        if is_ref_name(base):
            for ref in (base, TAGS + base, HEADS + base, REMOTES + base):
                if ref.startswith("refs/"):
                    value = self.refs.get(ref)
                    if value is not None:
                        return value
        if is_id_prefix(base.lower()):
            matches = self._commits_with_prefix(base.lower())
            if len(matches) == 1:
                return matches[0]
            if len(matches) > 1:
                raise UnknownRevision(f"revision {base!r} is ambiguous ({len(matches)} commits start with it)")
        raise RevisionNotFound(f"unknown revision {base!r} (not a branch, tag or commit id)")

    def ambiguous_name(self, rev: str) -> bool:
        """True when ``rev`` is both a branch and a tag (git warns: "refname is ambiguous")."""
        if not is_ref_name(rev) or rev.startswith("refs/"):
            return False
        return self.refs.get(TAGS + rev) is not None and self.refs.get(HEADS + rev) is not None

    def _commits_with_prefix(self, prefix: str) -> list[str]:
        found: set[str] = set()
        raw_prefix = bytes.fromhex(prefix[: len(prefix) // 2 * 2])
        for idx in self.store.packs().values():
            for e in idx:
                if e.type == COMMIT and e.object_id.startswith(raw_prefix) and e.object_id.hex().startswith(prefix):
                    found.add(e.object_id.hex())
        # A commit of >= 512 KiB (a long message or metadata) is stored loose.
        try:
            names = os.listdir(self.store.loose_dir / prefix[:2])
        except (FileNotFoundError, NotADirectoryError):
            names = []
        for name in names:
            oid = prefix[:2] + name
            if oid.startswith(prefix) and is_id(oid) and oid not in found:
                info = self.store.info(oid)
                if info is not None and info.type == COMMIT:
                    found.add(oid)
        return sorted(found)

    def _try_lock(self) -> bool:
        """The repository lock if it is free and can be taken: a read-only ``.dvx`` (a shared, read-only
        mount, or another user's repository) still answers the commands that only read."""
        try:
            return self.lock.try_acquire()
        except StorageError:
            return False

    def _tree_of(self, rev: str | None) -> str | None:
        if rev is None:
            _, commit = self.refs.head()
            return None if commit is None else self.read_commit(commit).tree
        return self.read_commit(self.resolve(rev)).tree

    # -- working tree state --------------------------------------------------------------------------

    def _work_entries(
        self,
        *,
        ingest_into: StoreWriter | None = None,
        progress: Progress | None = None,
        scanned: worktree.ScanResult | None = None,
        cache: StatCache | None = None,
        head_id: str | None = None,
    ) -> tuple[dict[str, Entry], StatCache, list[str]]:
        """The working tree as ``{path: Entry}``, re-reading only files the stat cache cannot vouch for.

        With ``ingest_into`` (a store writer) the files read are also chunked, compressed and stored, and a
        cached id is only used for content the store holds: a path the cache knows to equal its HEAD listing
        needs no look-up when that listing is of ``head_id`` (the caller's HEAD, whose closure is in the store),
        any other cached id is looked up.
        """
        result = scanned if scanned is not None else worktree.scan(self.root)
        if cache is None:
            cache = StatCache(self.dvx / "index").load()
        started = worktree.now_ns()
        keys = result.keys
        known: dict[str, worktree.ScanKey] = {}
        listed: dict[str, Entry] = {}
        trusted = ingest_into is None or (head_id == cache.head_commit and self.store.fetcher is None)
        clean = cache.clean_keys(cache.head_commit) if trusted else None
        if clean is not None:
            known = clean[0]
            listed = cache.head_entries(cache.head_commit) or {}
        entries: dict[str, Entry] = {}
        todo: list[tuple[str, worktree.FileKey]] = []
        for path, key in keys.items():
            if known.get(path) == key:
                entries[path] = listed[path]  # equal to the cached HEAD listing: its entry as it is
                continue
            if isinstance(key, str):
                entries[path] = link_entry(path.rpartition("/")[2], key)
                continue
            row = cache.row(path)
            if (row is not None and row.settled and row.key == key[:4]
                    and (ingest_into is None or ingest_into.has(row.id, key[0]))):
                entries[path] = Entry(path.rpartition("/")[2], FILE, row.id, key[0], key[4])
            else:
                todo.append((path, key))
        if todo:
            on_bytes: Callable[[int], None] | None = None
            if progress is not None:
                total = sum(k[0] for _, k in todo)
                done = [0]
                lock = threading.Lock()

                def on_bytes(n: int) -> None:
                    with lock:
                        done[0] += n
                        progress(done[0], total)

            reader = worktree.Ingest(self.root, ingest_into, self.chunking, self.level, on_bytes)
            scanned_keys = dict(todo)
            for path, oid, size, executable, stable in reader.run(todo):
                if oid is None:
                    continue  # vanished since the scan: as if the scan had not seen it
                entries[path] = Entry(path.rpartition("/")[2], FILE, oid, size, executable)
                if stable:  # else it changed after the scan: the next scan's key will not match anyway
                    size0, mtime, ctime, ino, _ = scanned_keys[path]
                    cache.record_key(path, (size0, mtime, ctime, ino), oid, started)
        cache.retain(keys)
        return entries, cache, result.warnings

    def status(self, *, paths: Sequence[str] | None = None) -> Status:
        """Added, modified and deleted paths of the working tree against HEAD (everything is added before
        the first commit). With ``paths`` (repository paths; a final ``/`` matches only a folder), only those
        at or below them, as ``git status -- PATHS``.

        The common case costs one scan and one read of the stat cache: when every scanned path has the stat
        key the cache recorded for HEAD's content, and there are as many as HEAD has, nothing changed.
        """
        self._require_worktree("show the status")
        result = worktree.scan(self.root)
        cache = StatCache(self.dvx / "index").load()
        _, head_id = self.refs.head()
        clean = cache.clean_keys(head_id)
        if clean is not None:
            known, n_head = clean
            if len(known) == n_head and known == result.keys:
                return Status(warnings=result.warnings)
        head_flat: dict[str, Entry] = {}
        if head_id is not None:
            listed = cache.head_entries(head_id)
            if listed is None:
                head_tree = self.read_commit(head_id).tree
                listed = self.trees.flatten(head_tree)
                cache.set_head(head_id, head_tree, listed)
            head_flat = listed
        entries, cache, warnings = self._work_entries(scanned=result, cache=cache)
        d = diff_flat(head_flat, entries, renames=False)
        if cache.dirty and self._try_lock():
            # Refresh the cache opportunistically, as git does; never wait for a lock to report status.
            try:
                cache.save()
            except DvxError:
                pass
            finally:
                self.lock.release()
        keep = _path_filter(paths)
        return Status(
            added=list(keep({c.path: c for c in d.added})),
            modified=list(keep({c.path: c for c in d.modified})),
            deleted=list(keep({c.path: c for c in d.deleted})),
            warnings=warnings,
        )

    # -- commit -----------------------------------------------------------------------------------------

    def commit(
        self,
        message: str,
        *,
        allow_empty: bool = False,
        meta: dict[str, str] | None = None,
        progress: Progress | None = None,
        warn: Callable[[str], None] | None = None,
    ) -> str:
        """Snapshot the whole working tree (minus ``.dvxignore``) as a new commit on the current branch.

        ``warn`` is called with each warning of the scan (special files skipped), as ``status`` reports them.
        If the commit fails, the objects it stored are removed again.
        """
        if not message or not message.strip():
            raise EmptyMessage("empty commit message (give one with -m)")
        self._require_worktree("commit")
        with self.lock:
            branch_ref, head_id = self.refs.head()
            head_tree = self.read_commit(head_id).tree if head_id else None
            with self.store.writer(discard_on_abort=True) as writer:
                entries, cache, warnings = self._work_entries(ingest_into=writer, progress=progress, head_id=head_id)
                if warn is not None:
                    for w in warnings:
                        warn(w)
                # On HEAD's tree, when the stat cache holds its listing: only the changed folders are encoded.
                listing = cache.head_entries(head_id) if head_tree is not None else None
                base = (self.trees, head_tree, listing) if head_tree is not None and listing is not None else None
                tree_id = build(writer, entries, base)
                if not allow_empty:
                    if head_tree is not None and tree_id == head_tree:
                        raise NothingToCommit("nothing to commit, working tree clean (use --allow-empty to commit anyway)")
                    if head_tree is None and not entries:
                        raise NothingToCommit("nothing to commit: the working tree is empty (use --allow-empty)")
                commit = Commit(
                    tree=tree_id,
                    parents=(head_id,) if head_id else (),
                    message=message,
                    author=self.author(),
                    time=utc_now(),
                    meta=dict(meta or {}),
                )
                commit_id = commit.id
                writer.add(commit_id, COMMIT, commit.encode())
            durable.fault("commit.before-ref")
            self._advance_head(branch_ref, head_id, commit_id)
            durable.fault("commit.after-ref")
            cache.set_head(commit_id, tree_id, entries)  # the next status compares against this listing
            try:
                cache.save()
            except DvxError:
                pass  # the cache is a hint; the commit is already safe
            self.tidy_packs()
            return commit_id

    def tidy_packs(self) -> None:
        """Merge small packs once too many have piled up (:func:`dvx.store.gc.consolidate`). Best effort: the
        operation that wrote them is complete already, and a later one tries again."""
        from .store.gc import consolidate

        with self.lock:
            try:
                consolidate(self.store)
            except DvxError:
                pass

    def _advance_head(self, branch_ref: str | None, expected: str | None, new: str) -> None:
        if branch_ref is not None:
            self.refs.update(branch_ref, new, expected)
        else:
            self.refs.set_head_detached(new)

    def write_commit(self, tree: str, parents: Iterable[str], message: str, meta: dict[str, str] | None = None) -> str:
        """Store a commit object (no ref moves); used by merge and squash."""
        commit = Commit(tree, tuple(parents), message, self.author(), utc_now(), dict(meta or {}))
        with self.store.writer() as writer:
            writer.add(commit.id, COMMIT, commit.encode())
        return commit.id

    # -- history -------------------------------------------------------------------------------------------

    def ref_names(self) -> dict[str, list[str]]:
        """commit id → decorations (``HEAD -> main``, ``tag: v1``, ``origin/main``)."""
        out: dict[str, list[str]] = {}
        branch, head = self.head()
        if head is not None:
            out.setdefault(head, []).append(f"HEAD -> {branch}" if branch else "HEAD")
        for name, value in self.refs.list(HEADS).items():
            if name != branch:
                out.setdefault(value, []).append(name)
        for name, value in self.refs.list(TAGS).items():
            out.setdefault(value, []).append(f"tag: {name}")
        for name, value in self.refs.list(REMOTES).items():
            out.setdefault(value, []).append(name)
        return out

    def iter_commits(self, starts: Iterable[str]) -> Iterator[tuple[str, Commit]]:
        """Commits reachable from ``starts``, newest first (by time, then id): each exactly once."""
        for cid, c, _ in self._walk(starts, lambda cid, c: (True, c.parents)):
            yield cid, c

    def _walk(
        self, starts: Iterable[str], choose: Callable[[str, Commit], tuple[bool, Iterable[str]]]
    ) -> Iterator[tuple[str, Commit, bool]]:
        """Commits newest first (by time, then id), each once: ``choose(id, commit)`` says whether it is shown
        and which parents the walk goes on to."""
        heap: list[tuple[str, str, Commit]] = []
        seen: set[str] = set()

        def push(cid: str) -> None:
            if cid not in seen:
                seen.add(cid)
                c = self.read_commit(cid)
                heapq.heappush(heap, (_neg_time(c.time), cid, c))

        for s in starts:
            push(s)
        while heap:
            _, cid, c = heapq.heappop(heap)
            shown, follow = choose(cid, c)
            yield cid, c, shown  # parents are read only if the consumer asks for more
            for p in follow:
                push(p)

    def log(
        self,
        rev: str | Sequence[str] | None = None,
        *,
        limit: int | None = None,
        paths: list[str] | None = None,
        followed: dict[str, tuple[str, ...]] | None = None,
        all_refs: bool = False,
    ) -> list[LogEntry]:
        """History from ``rev`` (default HEAD; several revisions: the union of their histories), newest first;
        with ``paths``, only commits that changed them, simplified as git's default: a merge that kept one
        parent's version of the paths is followed along that parent only (the other side's history of the paths
        did not reach the result). A path ending in ``/`` matches only a folder, as in git. ``all_refs`` adds
        every branch, tag and remote-tracking branch and HEAD to the starts, as ``git log --all`` does.

        ``followed``, if given, receives for each commit the walk went through the parents it went on to: the
        simplified history a graph of the shown commits is drawn from (:func:`dvx.graph.rewrite_parents`)."""
        revs = [rev] if isinstance(rev, str) else list(rev or [])
        starts = list(dict.fromkeys(self.resolve(r) for r in revs))
        if all_refs:
            head = self.head()[1]
            starts = list(dict.fromkeys([*starts, *([head] if head else []), *(v for _, v in self.refs.all_refs())]))
            if not starts:
                return []  # nothing committed anywhere yet
        starts = starts or [self.resolve("HEAD")]
        names = self.ref_names()
        norm = [(_norm_path(p), p.endswith("/")) for p in paths or []]
        out: list[LogEntry] = []
        if limit is not None and limit <= 0:
            return []
        walk = (self._path_history(starts, norm, followed) if norm
                else ((cid, c, True) for cid, c in self.iter_commits(starts)))
        for cid, c, shown in walk:
            if not shown:
                continue
            out.append(LogEntry(cid, c, tuple(names.get(cid, []))))
            if limit is not None and len(out) >= limit:
                break
        return out

    def _path_history(
        self, starts: list[str], paths: list[tuple[str, bool]], followed: dict[str, tuple[str, ...]] | None = None
    ) -> Iterator[tuple[str, Commit, bool]]:
        """Commits from ``start`` newest first, each with whether it changed ``paths`` (git's TREESAME rule): a
        commit is shown unless it equals one of its parents on the paths; a merge equal to a parent is walked
        through that parent only."""

        def at(tree: str) -> list[tuple[str, str, bool] | None]:
            out: list[tuple[str, str, bool] | None] = []
            for p, folder_only in paths:
                e = self.trees.lookup(tree, p) if p else Entry("", DIR, tree)
                if e is None or (folder_only and e.kind != DIR):
                    out.append(None)
                else:
                    out.append((e.kind, e.id, e.executable))
            return out

        def choose(cid: str, c: Commit) -> tuple[bool, Iterable[str]]:
            mine = at(c.tree)
            if not c.parents:
                return any(m is not None for m in mine), ()
            same = next((p for p in c.parents if at(self.read_commit(p).tree) == mine), None)
            if same is not None:
                return False, (same,)
            return True, c.parents

        def recorded(cid: str, c: Commit) -> tuple[bool, Iterable[str]]:
            shown, follow = choose(cid, c)
            assert followed is not None
            followed[cid] = tuple(follow)
            return shown, follow

        return self._walk(starts, choose if followed is None else recorded)

    # -- diff, ls, show --------------------------------------------------------------------------------------

    def diff(self, rev_a: str | None = None, rev_b: str | None = None, *, paths: Sequence[str] | None = None) -> Diff:
        """``diff()``: working tree vs HEAD; ``diff(A)``: working tree vs A; ``diff(A, B)``: A vs B.

        With ``paths`` (repository paths), only changes to them and below them, as ``git diff -- PATHS``: a path
        ending in ``/`` matches only a folder, and renames are paired only among the paths selected."""
        pick = _path_filter(paths)
        if rev_b is not None:
            if rev_a is None:
                raise UsageError("diff(rev_b=...) needs rev_a too: diff(A, B) compares two revisions")
            old, new = self.trees.differing(self._tree_of(rev_a), self._tree_of(rev_b))
            return diff_flat(pick(old), pick(new))
        old = self.trees.flatten(self._tree_of(rev_a)) if rev_a is not None else self.trees.flatten(self._tree_of(None))
        self._require_worktree("compare with the working tree")
        work, _, _ = self._work_entries()
        return diff_flat(pick(old), pick(work))

    def ls(self, rev: str | None = None, patterns: list[str] | None = None, *, under: str = "") -> list[tuple[str, Entry]]:
        """Files of ``rev`` (default HEAD) as ``(path, Entry)``, filtered by gitignore-style globs.

        With ``under`` (a repository path of a folder), only the files below it, and ``patterns`` match their
        paths relative to it, as `git ls-tree` run in that folder does; the paths returned stay repository paths.
        """
        tree = self._tree_of(rev)
        if tree is None:
            raise UnknownRevision("HEAD has no commits yet")
        under = under.strip("/")
        if not under:
            return list(worktree.select_paths(self.trees.walk(tree), patterns).items())
        folder = self.trees.lookup(tree, under)
        if folder is None or folder.kind != DIR:
            return []
        base = under + "/"
        kept = worktree.select_paths(self.trees.walk(folder.id), patterns)
        return [(base + p, e) for p, e in kept.items()]

    # -- checkout --------------------------------------------------------------------------------------------

    def checkout(self, rev: str, *, force: bool = False, progress: Progress | None = None) -> str:
        """Move the working tree and HEAD to ``rev``, touching only paths that differ.

        Refuses (naming them) when uncommitted changes would be overwritten, unless ``force``: as git's
        ``--force``, that also deletes untracked files in the way (a file where the target needs a folder, a
        folder of untracked files where it needs a file); nested repositories and special files in the way
        still refuse. A branch name makes HEAD follow the branch; anything else detaches HEAD.
        """
        with self.lock:
            # As git: a name that is a branch checks out that branch (HEAD follows it), even if a tag has it too.
            is_branch = rev != "HEAD" and is_ref_name(rev) and self.refs.get(HEADS + rev) is not None
            target_id = self.resolve(HEADS + rev if is_branch else rev)
            target_tree = self.read_commit(target_id).tree
            _, head_id = self.refs.head()
            # With no files checked out yet (clone --no-checkout), HEAD's files are not here: write all of them.
            materialized = self.has_worktree
            head_tree = self.read_commit(head_id).tree if head_id and materialized else None
            cache = StatCache(self.dvx / "index").load()
            if force:  # every tracked path is compared with the working tree
                listing = cache.head_entries(head_id) if head_tree is not None else None
                flats: tuple[dict[str, Entry], dict[str, Entry]] | None = None
                if listing is not None:  # HEAD's listing from the cache, patched where the two commits differ
                    try:
                        gone, changed = self.trees.differing(head_tree, target_tree)
                    except CorruptObject:
                        pass  # a damaged tree (a name in the wrong bucket) is read in full, as ls reads it
                    else:
                        flats = listing, {**{p: e for p, e in listing.items() if p not in gone}, **changed}
                head_flat, target_flat = flats or (self.trees.flatten(head_tree), self.trees.flatten(target_tree))
            else:  # only the paths where the two commits differ can be touched: read just those
                head_flat, target_flat = self.trees.differing(head_tree, target_tree)
            work, cache, _ = self._work_entries(cache=cache)
            hidden = self._ignored_tracked(head_flat, target_flat, work)
            if hidden:
                work = {**work, **hidden}
            writes, deletes, conflicts = plan_checkout(head_flat, target_flat, work, force=force)
            if force and conflicts:
                # As git's --force: untracked files in the way are deleted too. Each conflict is an untracked
                # file where the target needs a folder, or a folder of untracked files where it needs a file.
                # What the scan did not list (special files, nested repositories) still refuses in _apply.
                deletes = sorted(set(deletes) | _in_the_way(conflicts, work))
                conflicts = []
            if conflicts:
                untracked = plan_checkout(head_flat, target_flat, work, force=True)[2]
                changes = [c for c in conflicts if c not in set(untracked)]
                if changes:
                    also = f"; untracked files are in the way too: {_some(untracked)}" if untracked else ""
                    raise DirtyWorkingTree(
                        f"checkout would overwrite uncommitted changes: {_some(changes)} (commit them, or use --force "
                        f"to discard them){also}"
                    )
                raise DirtyWorkingTree(
                    f"checkout would overwrite untracked files: {_some(untracked)} (they are in no commit: move them "
                    "away, or use --force to delete them)"
                )
            self._apply(writes, deletes, work, cache, progress)
            if is_branch:
                self.refs.set_head_symbolic(HEADS + rev)
            elif rev != "HEAD":
                self.refs.set_head_detached(target_id)
            # The next status compares against the target's whole listing: HEAD's from the cache, patched.
            listing = cache.head_entries(head_id) if head_tree is not None and not force else None
            if force or head_tree is None:
                whole = target_flat
            elif listing is not None:
                whole = {p: e for p, e in listing.items() if p not in head_flat}
                whole.update(target_flat)
            else:
                whole = self.trees.flatten(target_tree)
            cache.set_head(target_id, target_tree, whole)
            if not materialized:
                del self.config["core"]["worktree"]  # an ordinary repository from now on
                self.save_config()
            try:
                cache.save()
            except DvxError:
                pass
            return target_id

    def restore(self, rev: str, patterns: Sequence[str], *, under: str = "", progress: Progress | None = None) -> list[str]:
        """Write the files of ``rev`` that match ``patterns`` into the working tree, as ``git checkout REV --
        PATHS`` does: local changes to them are overwritten, files already equal to ``rev``'s are left untouched,
        HEAD does not move, and files ``rev`` does not have stay. Patterns are gitignore-style as for ``ls``
        (with ``under``, relative to that folder); one that matches no path of ``rev`` is an error, and then
        nothing is changed. Returns the paths written."""
        if not patterns:
            raise UsageError("name the paths to restore")
        with self.lock:
            self._require_worktree("restore paths")
            commit_id = self.resolve(rev)
            tree = self.read_commit(commit_id).tree
            base = under.strip("/")
            items: Iterable[tuple[str, Entry]] = self.trees.walk(tree)
            if base:
                folder = self.trees.lookup(tree, base)
                items = self.trees.walk(folder.id) if folder is not None and folder.kind == DIR else []
            matched, unmatched = worktree.match_paths(items, list(patterns))
            if unmatched or not matched:
                raise NoMatch(worktree.no_match_message(commit_id, patterns, unmatched, base))
            want = {(f"{base}/{p}" if base else p): e for p, e in matched.items()}
            work, cache, _ = self._work_entries()
            writes = {p: e for p, e in want.items() if p not in work or differs(work[p], e)}
            deletes = self._restore_clashes(writes, work)
            self._apply(writes, deletes, work, cache, progress)
            try:
                cache.save()
            except DvxError:
                pass
            return sorted(writes)

    def _restore_clashes(self, writes: dict[str, Entry], work: dict[str, Entry]) -> list[str]:
        """Working-tree files in the way of a restore: a file where a folder of ``writes`` must go, or files
        below a path that becomes a file. As git's checkout of paths, they are replaced when HEAD has them
        unchanged (nothing is lost: HEAD holds them); any other one (untracked, or with local changes nobody
        named) stops the restore before anything is written."""
        folders = {p.rsplit("/", i)[0] for p in writes for i in range(1, p.count("/") + 1)}
        clashes = [p for p in work if p not in writes and (p in folders or any(
            p[:i] in writes for i in range(len(p)) if p[i] == "/"))]
        if not clashes:
            return []
        head = self.head()[1]
        tree = self.read_commit(head).tree if head else None
        kept = [p for p in sorted(clashes)
                if tree is None or (e := self.trees.lookup(tree, p)) is None or differs(e, work[p])]
        if kept:
            raise DirtyWorkingTree(f"restoring would replace files that are untracked or have uncommitted changes: "
                                   f"{_some(kept)} (commit them, or move them away first)")
        return sorted(clashes)

    def _apply(
        self,
        writes: dict[str, Entry],
        deletes: list[str],
        work: dict[str, Entry],
        cache: StatCache,
        progress: Progress | None,
        *,
        scanned: bool = True,
    ) -> None:
        """Two phases, so a corrupt or missing object changes nothing: first every new content is written and
        verified into a staging folder in ``.dvx/tmp``; only then are paths deleted and the staged files renamed
        into place (and symlinks made, last, so no file is ever written through a link made here).

        Before either, whatever the scan did not report but stands where a path goes is looked at
        (:meth:`_clear_way`): a checkout that would fail half-way because of it refuses before it starts.
        ``work`` must then be the scan's listing of the working tree; ``scanned=False`` (a folder just made)
        treats anything found in the way as an obstacle.
        """
        expendable = self._clear_way(writes, deletes, work, scanned=scanned)
        if self.store.fetcher is not None:
            # A lazy clone: fetch every missing content in one parallel batch, not file by file.
            from .transfer import prefetch_files

            prefetch_files(self, [e.id for e in writes.values() if e.kind == FILE])
        # A file whose only change is its exec bit keeps its bytes: chmod, do not rewrite.
        chmods: list[tuple[str, Entry]] = []
        files: list[tuple[str, Entry]] = []
        links: list[tuple[str, Entry]] = []
        for path, entry in sorted(writes.items()):
            old = work.get(path)
            if old is not None and old.kind == FILE == entry.kind and old.id == entry.id:
                chmods.append((path, entry))
            elif entry.kind == LINK:
                links.append((path, entry))
            else:
                files.append((path, entry))
        total = sum(e.size for _, e in files)
        done = [0]
        started = worktree.now_ns()
        staging = self._staging_dir() if files else None
        placing = False
        try:
            staged: list[tuple[str, Entry, Path]] = []
            if staging is not None:

                def stage(item: tuple[int, tuple[str, Entry]]) -> tuple[str, Entry, Path]:
                    n, (path, entry) = item
                    tmp = staging / str(n)
                    _stage_file(tmp, path, entry, self.store, self._umask)
                    done[0] += entry.size
                    if progress is not None:
                        progress(done[0], total)
                    return path, entry, tmp

                with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
                    staged = list(pool.map(stage, enumerate(files)))
            # Every content is here and verified: from now on only renames, deletes and chmods.
            placing = True
            for path in sorted(deletes, key=lambda p: -p.count("/")):
                worktree.remove_path(self.root, path)
                cache.forget(path)
            for path in expendable:
                worktree.remove_untracked(self.root, path)
            for path, entry in chmods:
                worktree.set_executable(self.root, path, entry.executable, self._umask)
            for path, entry, tmp in staged:
                _place_staged(self.root, path, entry, tmp)
            for path, entry in links:
                worktree.materialize(self.root, path, entry, self.store, umask=self._umask)
        except (OSError, DvxError) as exc:
            if not placing:
                raise  # nothing in the working tree was touched yet
            # A rename or delete refused half-way (a folder made immutable, a full disk): say so, and how back.
            text = str(os_error(exc, "cannot update the working tree")) if isinstance(exc, OSError) else str(exc)
            raise StorageError(f"{text}; the working tree was partly updated and HEAD did not move "
                               "('dvx status' shows what changed, 'dvx checkout -f HEAD' restores the tracked files)") from exc
        finally:
            if staging is not None:
                shutil.rmtree(staging, ignore_errors=True)
        for path, entry, _ in staged:
            st = os.lstat(self.root / path)
            found = Found(FILE, bool(st.st_mode & 0o100), st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
            cache.record(path, found, entry.id, started)

    def _clear_way(self, writes: dict[str, Entry], deletes: list[str], work: dict[str, Entry], *, scanned: bool) -> list[str]:
        """What stands where ``writes`` go that the scan did not report, and may go (as git, which holds ignored
        files expendable): ignored files and symlinks, and folders holding only those, emptied folders or
        tracked files being deleted. Raises :class:`DirtyWorkingTree`, before anything is touched, for what
        may not: a special file (fifo, socket, device), a nested ``.git`` or ``.dvx``, untracked files.

        Only paths the scan says nothing about are stat'ed: the parents of ``work``'s paths are folders."""
        deleted = set(deletes)
        folders: set[str] = set()
        for p in work:
            d = p.rpartition("/")[0]
            while d and d not in folders:
                folders.add(d)
                d = d.rpartition("/")[0]
        root = os.fspath(self.root)
        expendable: list[str] = []
        blocked: list[str] = []

        def lstat(rel: str) -> os.stat_result | None:
            try:
                return os.lstat(f"{root}/{rel}")
            except (FileNotFoundError, NotADirectoryError):
                return None
            except OSError as exc:
                raise os_error(exc, f"cannot read {rel}") from exc

        def in_the_way(rel: str, st: os.stat_result) -> None:
            """``rel`` is on disk, unknown to the scan, where a file or a folder must go."""
            if not scanned:
                blocked.append(rel)
            elif stat.S_ISDIR(st.st_mode):
                if self._only_expendable(rel, work, deleted, blocked):
                    expendable.append(rel)
            elif _plain_kind(st):
                expendable.append(rel)  # an ignored file or symlink
            else:
                blocked.append(rel)  # a special file

        # What each folder on the way is: "dir", "absent" or "other" (a file or symlink: nothing below it is
        # looked at, so no lstat ever goes through a symlink). Folders holding scanned paths are real folders.
        state: dict[str, str] = {}
        for path in sorted(writes):
            parts = path.split("/")
            clear = True
            for i in range(1, len(parts)):
                a = "/".join(parts[:i])
                if a in folders:
                    continue
                what = state.get(a)
                if what is None:
                    st = lstat(a)
                    what = "absent" if st is None else "dir" if stat.S_ISDIR(st.st_mode) else "other"
                    state[a] = what
                    if what == "other" and a not in work:  # a tracked one is deleted first, an untracked one
                        in_the_way(a, st)  # type: ignore[arg-type]  # is a conflict already
                if what != "dir":
                    clear = False  # after the deletes nothing exists below it
                    break
            if clear and path not in work:
                st = lstat(path)
                if st is not None and not (scanned and _plain_kind(st)):
                    in_the_way(path, st)  # an ignored file or symlink itself is simply replaced
        if blocked:
            shown = ", ".join(blocked[:10]) + (f" and {len(blocked) - 10} more" if len(blocked) > 10 else "")
            raise DirtyWorkingTree(
                f"untracked files are in the way: {shown} (a special file, a nested .git or .dvx, or files the "
                "scan did not list; move them away or delete them first)"
            )
        return expendable

    def _ignored_tracked(
        self, head_flat: dict[str, Entry], target_flat: dict[str, Entry], work: dict[str, Entry]
    ) -> dict[str, Entry]:
        """What is on disk at the paths HEAD has, the checkout changes, and the scan did not report because a
        ``.dvxignore`` now excludes them. They are not untracked files to replace at will: as git keeps
        tracking an ignored file it tracks, the checkout compares them with HEAD and refuses to overwrite a
        local edit of one (it used to overwrite it silently)."""
        root = os.fspath(self.root)
        out: dict[str, Entry] = {}
        for path, h in head_flat.items():
            if path in work:
                continue
            t = target_flat.get(path)
            if t is not None and not differs(h, t):
                continue
            parts = path.split("/")
            try:
                if not all(stat.S_ISDIR(os.lstat(f"{root}/{'/'.join(parts[:i])}").st_mode) for i in range(1, len(parts))):
                    continue  # a file or symlink on the way: nothing of HEAD's is there
                st = os.lstat(f"{root}/{path}")
                if stat.S_ISREG(st.st_mode):
                    out[path] = Entry(parts[-1], FILE, worktree.hash_file(self.root / path), st.st_size,
                                      bool(st.st_mode & 0o100))
                elif stat.S_ISLNK(st.st_mode):
                    out[path] = link_entry(parts[-1], os.readlink(f"{root}/{path}"))
            except (FileNotFoundError, NotADirectoryError):
                continue
            except OSError as exc:
                raise os_error(exc, f"cannot read {path}") from exc
        return out

    def _only_expendable(self, folder: str, work: dict[str, Entry], deleted: set[str], blocked: list[str]) -> bool:
        """True if nothing under the on-disk ``folder`` would be lost by removing it; else adds what would be
        to ``blocked``. Ignored folders are not scanned, so whatever is in them is ignored too."""
        ok = True
        try:
            for rel_dir, entries, subfolders in durable.walk_no_follow(self.root / folder):
                base = f"{folder}/{rel_dir}" if rel_dir else folder
                for name, st in entries:
                    rel = f"{base}/{name}"
                    if name in worktree.ALWAYS_IGNORED:
                        blocked.append(rel)  # someone's repository: never removed on the way
                        ok = False
                    elif not stat.S_ISDIR(st.st_mode) and (rel in work and rel not in deleted or not _plain_kind(st)):
                        blocked.append(rel)
                        ok = False
                subfolders[:] = [d for d in subfolders if d not in worktree.ALWAYS_IGNORED]
        except OSError as exc:
            raise os_error(exc, f"cannot read {folder}") from exc
        return ok

    def _staging_dir(self) -> Path:
        try:
            durable.make_dirs(self.store.tmp_dir)
            return Path(tempfile.mkdtemp(prefix="checkout-", dir=self.store.tmp_dir))
        except OSError as exc:
            raise os_error(exc, "cannot make a staging folder in .dvx/tmp") from exc

    # -- merge -----------------------------------------------------------------------------------------

    def merge(
        self,
        revs: str | list[str],
        message: str | None = None,
        strategy: str = "fail",
        *,
        allow_unrelated: bool = False,
        ff: bool = False,
        update_worktree: bool | None = None,
        progress: Progress | None = None,
    ) -> MergeResult:
        """Merge ``revs`` into HEAD (three-way per path; octopus for several); see :func:`dvx.merge.merge`."""
        from .merge import merge

        return merge(self, revs, message, strategy, allow_unrelated, ff, update_worktree, progress)

    def squash(self, rev: str, message: str, *, branch: str | None = None, tag: str | None = None) -> str:
        """A new root commit with ``rev``'s tree (history flattened); see :func:`dvx.merge.squash`."""
        from .merge import squash

        return squash(self, rev, message, branch=branch, tag=tag)

    # -- branches and tags ---------------------------------------------------------------------------------

    def branches(self) -> dict[str, str]:
        return self.refs.list(HEADS)

    def tags(self) -> dict[str, str]:
        return self.refs.list(TAGS)

    def create_branch(self, name: str, rev: str = "HEAD") -> str:
        check_ref_name(name, "branch")
        with self.lock:  # a gc running now would not see the new root: the commit may be unreachable yet
            target = self.resolve(rev)
            if self.refs.get(HEADS + name) is not None:
                raise RefExists(f"a branch named {name!r} already exists")
            self.refs.update(HEADS + name, target, None)
        return target

    def delete_branch(self, name: str, *, force: bool = False) -> str:
        """Delete a branch; returns the commit it held (to recreate it with ``create_branch``).

        As ``git branch -d``: refused, unless ``force``, when the branch holds commits that neither HEAD nor
        its remote-tracking branches contain (they would become unreachable, and gc would delete them).
        """
        check_ref_name(name, "branch")
        with self.lock:  # HEAD is read under it: a checkout of this branch meanwhile would be left dangling
            current, head = self.head()
            value = self.refs.get(HEADS + name)
            if value is None:
                raise UnknownRevision(f"no branch named {name!r}")
            if name == current:
                raise UsageError(f"cannot delete branch {name!r}: it is checked out")
            if not force:
                keepers = [head] if head is not None else []
                keepers += [v for r, v in self.refs.list(REMOTES).items() if r.split("/", 1)[-1] == name]
                if not any(self._contains(k, value) for k in keepers):
                    raise UsageError(
                        f"branch {name!r} is not fully merged: its commits would be lost (merge it first, or "
                        f"delete it anyway with -D; it points at {value[:12]})"
                    )
            self.refs.update(HEADS + name, None, value)
            return value

    def _contains(self, tip: str, commit: str) -> bool:
        """True if ``commit`` is ``tip`` or one of its ancestors."""
        if tip == commit:
            return True
        return any(cid == commit for cid, _ in self.iter_commits([tip]))

    def create_tag(self, name: str, rev: str = "HEAD") -> str:
        check_ref_name(name, "tag")
        with self.lock:  # a gc running now would not see the new root: the commit may be unreachable yet
            target = self.resolve(rev)
            if self.refs.get(TAGS + name) is not None:
                raise RefExists(f"a tag named {name!r} already exists")
            self.refs.update(TAGS + name, target, None)
        return target

    def delete_tag(self, name: str) -> str:
        """Delete a tag; returns the commit it named."""
        check_ref_name(name, "tag")
        value = self.refs.get(TAGS + name)
        if value is None:
            raise UnknownRevision(f"no tag named {name!r}")
        self.refs.update(TAGS + name, None, value)
        return value

    # -- integrity and garbage collection ------------------------------------------------------------------

    def root_commits(self) -> list[str]:
        starts = [v for _, v in self.refs.all_refs()]
        _, head = self.refs.head()
        if head is not None:
            starts.append(head)
        return sorted(set(starts))

    def reachable(self, starts: Iterable[str] | None = None, *, files: bool = True) -> dict[str, int]:
        """Every object reachable from the refs (or ``starts``): id → type. Raises if anything is unreadable."""
        out: dict[str, int] = {}
        commits = list(starts) if starts is not None else self.root_commits()
        while commits:
            cid = commits.pop()
            if cid in out:
                continue
            out[cid] = COMMIT
            c = self.read_commit(cid)
            commits.extend(c.parents)
            self._reach_tree(c.tree, out, files)
        return out

    def _reach_tree(self, tree_id: str, out: dict[str, int], files: bool) -> None:
        """Add the trees (and with ``files``, the contents) under ``tree_id`` to ``out``, depth first.

        Iterative (a stack of the nodes being listed): trees can be nested deeper than Python's recursion limit.
        """
        if tree_id in out:
            return
        out[tree_id] = TREE

        def items(node_id: str) -> Iterator[Entry | str]:
            node = self.trees.node(node_id)
            if node.entries is None:
                return iter([sub for _, sub, _, _ in node.buckets])
            return iter(node.entries)

        stack = [items(tree_id)]
        while stack:
            for e in stack[-1]:
                if isinstance(e, str) or e.kind == DIR:  # a bucket's node, or a subdirectory
                    sub = e if isinstance(e, str) else e.id
                    if sub not in out:
                        out[sub] = TREE
                        stack.append(items(sub))
                        break
                elif e.kind == FILE and files and e.id not in out:
                    info = self.store.info(e.id)
                    if info is None:
                        if self.store.fetcher is not None or self.is_lazy:
                            continue  # a lazy clone's content not fetched yet: nothing local to keep or delete
                        raise MissingObject(f"object {e.id} ({e.name}) is missing from the store", e.id)
                    out[e.id] = info.type
                    if info.type == CHUNKED:
                        for chunk_id, type_ in self.chunk_objects(e.id):
                            out[chunk_id] = type_
            else:
                stack.pop()

    def chunk_objects(self, manifest_id: str) -> Iterator[tuple[str, int]]:
        """``(id, type)`` of the objects under a chunk manifest: its chunks and, where a chunk is itself stored as
        a manifest (the same bytes were once a whole chunked file), that manifest's chunks (one level, as reads
        accept). A chunk not in the store (a lazy clone) is reported as a BLOB."""
        for chunk_id, _ in parse_manifest(self.store.get(manifest_id, CHUNKED)[1], manifest_id)[1]:
            info = self.store.info(chunk_id)
            if info is not None and info.type == CHUNKED:
                yield chunk_id, CHUNKED
                for sub_id, _ in parse_manifest(self.store.get(chunk_id, CHUNKED)[1], chunk_id)[1]:
                    yield sub_id, BLOB
            else:
                yield chunk_id, BLOB

    def fsck(self, progress: Callable[[int], None] | None = None) -> FsckReport:
        """Verify every reachable object: hash, decompression, structure; and every pack's checksum."""
        report = FsckReport()
        # fsck checks what is here; it must not download a lazy clone's contents to do so.
        fetcher, self.store.fetcher = self.store.fetcher, None
        try:
            return self._fsck(report, progress, lazy=fetcher is not None or self.is_lazy)
        finally:
            self.store.fetcher = fetcher

    def _fsck(self, report: FsckReport, progress: Callable[[int], None] | None, lazy: bool) -> FsckReport:
        scanned: set[str] = set()
        for _ in range(3):  # packs another process published meanwhile (a merge of small packs) are checked too
            todo = [(name, idx) for name, idx in self.store.packs().items() if name not in scanned]
            if not todo:
                break
            for name, idx in todo:
                scanned.add(name)
                try:
                    data = durable.read_regular_file(self.store.pack_dir / f"{name}.pack")
                    scan_pack(data, name)
                    idx.validate(len(data))
                except CorruptObject as exc:
                    report.bad[name] = str(exc)
                except FileNotFoundError as exc:
                    # Gone with its index: replaced by a merge or gc since it was listed (the index is removed
                    # first, §16 step 4), its objects are read where they are now. Without it, it is damage.
                    if (self.store.pack_dir / f"{name}.idx").exists():
                        report.bad[name] = str(os_error(exc, "cannot read pack"))
                except OSError as exc:
                    report.bad[name] = str(os_error(exc, "cannot read pack"))
            self.store.refresh()
        seen: set[str] = set()
        commits = self.root_commits()
        while commits:
            cid = commits.pop()
            if cid in seen:
                continue
            seen.add(cid)
            try:
                c = self.read_commit(cid)
                report.objects += 1
            except MissingObject:
                report.missing.append(cid)
                continue
            except (CorruptObject, UnsupportedFormat) as exc:
                report.bad[cid] = str(exc)
                continue
            commits.extend(c.parents)
            self._fsck_tree(c.tree, seen, report, progress)
        if lazy:
            # File contents of a lazy clone live on the remote until a checkout needs them.
            report.not_fetched = len(report.missing_content)
        else:
            report.missing.extend(report.missing_content)
        report.missing_content = []
        return report

    def _fsck_tree(self, tree_id: str, seen: set[str], report: FsckReport, progress: Callable[[int], None] | None) -> None:
        """Check the trees and files under ``tree_id`` not in ``seen``, depth first, recording problems in ``report``.

        Iterative (a stack of the nodes being checked): trees can be nested deeper than Python's recursion limit.
        """

        routed: set[tuple[str, bytes]] = set()

        def items(node_id: str, route: bytes = b"") -> Iterator[Entry | tuple[str, bytes]] | None:
            """What a node holds: entries, or for a bucket node ``(sub-node, bucket bytes so far)``. Under a
            bucket (``route``), every name must hash to it and a bucket node's depth must be ``len(route)``
            (docs/format.md §9.4): lookups rely on both. A node met under another route is checked again."""
            if route:
                if (node_id, route) in routed:
                    return None
                routed.add((node_id, route))
            elif node_id in seen:
                return None
            first = node_id not in seen
            seen.add(node_id)
            try:
                node = self.trees.node(node_id)
                report.objects += first
            except MissingObject:
                report.missing.append(node_id)
                return None
            except (CorruptObject, UnsupportedFormat, BadPath) as exc:
                report.bad[node_id] = str(exc)
                return None
            if node.entries is None:
                if node.depth != len(route) or not 0 <= node.depth < 32:
                    report.bad[node_id] = f"tree {node_id} is a bucket node at depth {node.depth}, not {len(route)}"
                    return None
                return iter([(sub, route + bytes([b])) for b, sub, _, _ in node.buckets])
            wrong = misplaced(node.entries, route)
            if wrong is not None:
                report.bad[node_id] = f"tree {node_id} holds {wrong!r} in the wrong bucket"
            return iter(node.entries)

        top = items(tree_id)
        stack = [] if top is None else [top]
        while stack:
            for e in stack[-1]:
                if not isinstance(e, Entry) or e.kind == DIR:  # a bucket's node, or a subdirectory
                    sub = items(e.id) if isinstance(e, Entry) else items(*e)
                    if sub is not None:
                        stack.append(sub)
                        break
                elif e.kind == FILE and e.id not in seen:
                    seen.add(e.id)
                    self._fsck_file(e, seen, report)
                    if progress is not None:
                        progress(report.objects)
            else:
                stack.pop()

    def _fsck_file(self, e: Entry, seen: set[str], report: FsckReport) -> None:
        try:
            n = 0
            chunks = self.store.file_chunks(e.id)
            listed = sum(s for _, s in chunks)
            if listed != e.size:  # before reading anything: a manifest may claim any size
                report.bad[e.id] = f"file {e.id} ({e.name}) has {listed} bytes, its tree entry says {e.size}"
                return
            for data in self.store.iter_file(e.id):
                n += len(data)
            if n != e.size:
                report.bad[e.id] = f"file {e.id} ({e.name}) has {n} bytes, its tree entry says {e.size}"
                return
            new_chunks = [c for c, _ in chunks if c not in seen and c != e.id]
            seen.update(new_chunks)
            report.objects += 1 + len(new_chunks)
            report.bytes += n
        except MissingObject as exc:
            report.missing_content.append(exc.object_id or e.id)
        except (CorruptObject, UnsupportedFormat) as exc:
            report.bad[getattr(exc, "object_id", None) or e.id] = str(exc)

    def gc(self, *, grace_seconds: float = 3600.0, dry_run: bool = False) -> GcReport:
        """Delete objects unreachable from any ref, sparing everything younger than the grace period.

        Fails closed: if any ref, commit or tree cannot be read, nothing is deleted.
        """
        from .store.gc import collect

        if not grace_seconds >= 0 or grace_seconds == float("inf"):
            raise UsageError(f"the grace period must be a number of seconds >= 0, not {grace_seconds!r}")
        with self.lock:
            live = self.reachable()
            return collect(self.store, set(live), grace_seconds=grace_seconds, dry_run=dry_run)


def _in_the_way(conflicts: list[str], work: dict[str, Entry]) -> set[str]:
    """The working-tree paths a forced checkout deletes for :func:`plan_checkout`'s conflicts: each conflict
    that is a file itself, and every file under those that are folders (one pass over ``work``, not one per
    folder)."""
    out = {c for c in conflicts if c in work}
    folders = set(conflicts) - out
    if folders:
        for path in work:
            d = path.rpartition("/")[0]
            while d:
                if d in folders:
                    out.add(path)
                    break
                d = d.rpartition("/")[0]
    return out


def plan_checkout(
    head: dict[str, Entry], target: dict[str, Entry], work: dict[str, Entry], *, force: bool
) -> tuple[dict[str, Entry], list[str], list[str]]:
    """Decide what a checkout writes and deletes, and which local changes it would clobber.

    Pure: ``head`` and ``target`` are the two commits' flat trees, ``work`` the working tree. A path is
    touched only if HEAD and the target differ there (or, with ``force``, if the working tree differs from
    the target on a path either commit tracks). Untracked files are never deleted.
    """
    writes: dict[str, Entry] = {}
    deletes: list[str] = []
    conflicts: list[str] = []

    def same(a: Entry | None, b: Entry | None) -> bool:
        if a is None or b is None:
            return a is b
        return not differs(a, b)

    candidates = set(head) | set(target)
    if force:
        candidates |= {p for p in work if p in head or p in target}
    for path in candidates:
        h, t, w = head.get(path), target.get(path), work.get(path)
        if not force and same(h, t):
            continue
        if same(w, t):
            continue  # already what the target wants
        if not force and not same(w, h) and w is not None:
            conflicts.append(path)  # a local change the checkout would overwrite (a local deletion loses nothing)
            continue
        if t is None:
            if w is not None and (path in head or force and path in head):
                deletes.append(path)
        else:
            writes[path] = t
    # A file the target puts where the working tree has a directory of untracked files, or the reverse.
    deleted = set(deletes)
    remaining = {p for p in work if p not in deleted}
    dirs = {p.rsplit("/", 1)[0] for p in remaining if "/" in p}
    expanded: set[str] = set()
    for d in dirs:
        while d and d not in expanded:
            expanded.add(d)
            d = d.rpartition("/")[0]
    for path in writes:
        if path in expanded and any(p.startswith(path + "/") and p not in head for p in remaining):
            conflicts.append(path)
        parent = path.rpartition("/")[0]
        while parent:
            if parent in remaining and parent not in writes:
                conflicts.append(parent)
                break
            parent = parent.rpartition("/")[0]
    return writes, sorted(deletes), sorted(set(conflicts))


def _check_config(doc: dict[str, Any]) -> None:
    """Refuse values of the wrong type (docs/format.md §14.1), each with one line naming the key: a config
    edited by hand must not surface later as a traceback."""
    core = doc["core"]
    for key in ("compression_level", "chunk_avg", "chunk_min", "chunk_max", "chunk_threshold"):
        if key in core and type(core[key]) is not int:
            raise BadConfig(f"core.{key} in .dvx/config must be an integer, not {core[key]!r}")
    for key in ("lazy_remote",):
        if core.get(key) is not None and type(core[key]) is not str:
            raise BadConfig(f"core.{key} in .dvx/config must be a string")
    if "worktree" in core and type(core["worktree"]) is not bool:
        raise BadConfig("core.worktree in .dvx/config must be true or false")
    user = doc["user"]
    if not isinstance(user, dict):
        raise BadConfig("the 'user' section of .dvx/config must be an object")
    for key in ("name", "email"):
        if user.get(key) is not None and type(user[key]) is not str:
            raise BadConfig(f"user.{key} in .dvx/config must be a string")
    remotes = doc["remotes"]
    if not isinstance(remotes, dict):
        raise BadConfig("the 'remotes' section of .dvx/config must be an object")
    for name, remote in remotes.items():
        if not isinstance(remote, dict):  # its url is checked where it is used ("remote 'o' has no url")
            raise BadConfig(f"remote {name!r} in .dvx/config must be an object")
        if not isinstance(remote.get("options", {}), dict):
            raise BadConfig(f"remote {name!r} in .dvx/config: 'options' must be an object")


def _some(paths: list[str], n: int = 10) -> str:
    """The first ``n`` of ``paths`` for a message, and how many more there are."""
    return ", ".join(paths[:n]) + (f" and {len(paths) - n} more" if len(paths) > n else "")


def _plain_kind(st: os.stat_result) -> bool:
    """A regular file or a symlink: what the scan keeps (anything else but a folder is a special file)."""
    return stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)


def _neg_time(t: str) -> str:
    # Max-heap on time strings via a complement that sorts inversely, byte by byte.
    return "".join(chr(0x10FFFF - ord(ch)) if ch.isdigit() else ch for ch in t)


_V = TypeVar("_V")


def _path_filter(paths: Sequence[str] | None) -> Callable[[dict[str, _V]], dict[str, _V]]:
    """What keeps, of a flat listing, the entries at or below ``paths`` (all of them when ``paths`` is None;
    a path ending in ``/`` matches only what is below it; an empty path is the whole tree)."""
    if paths is None:
        return lambda flat: flat
    rules = [(_norm_path(p), p.endswith("/")) for p in paths]
    if any(p == "" for p, _ in rules):
        return lambda flat: flat
    exact = {p for p, folder_only in rules if not folder_only}
    prefixes = tuple(p + "/" for p, _ in rules)
    return lambda flat: {q: e for q, e in flat.items() if q in exact or q.startswith(prefixes)}


def _norm_path(p: str) -> str:
    parts = [x for x in p.split("/") if x not in ("", ".")]
    return "/".join(parts)


def _safe_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _read_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


__all__ = ["Repo", "Status", "LogEntry", "FsckReport", "GcReport", "plan_checkout"]


def _stage_file(tmp: Path, rel: str, entry: Entry, store: ObjectStore, umask: int) -> None:
    """Write ``entry``'s content (verified chunk by chunk and whole) to ``tmp`` with its final mode."""
    mode = (0o777 if entry.executable else 0o666) & ~umask
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
        with os.fdopen(fd, "wb") as fh:
            n = store.write_file_to(entry.id, fh)
        if n != entry.size:
            raise CorruptObject(f"{rel}: content {entry.id} has {n} bytes, the tree says {entry.size}", entry.id)
        os.chmod(tmp, mode)
    except OSError as exc:
        raise os_error(exc, f"cannot write {rel}") from exc


def _place_staged(root: Path, rel: str, entry: Entry, tmp: Path) -> None:
    """Rename a staged file over ``rel`` (a copy beside it first when .dvx/tmp is on another file system)."""
    durable.fault("checkout.before-place")
    try:
        parent = worktree.safe_parent(root, rel)
        final = parent / entry.name
        try:
            worktree._replace(tmp, final)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            beside = durable.temp_name(parent, "dvx")
            try:
                shutil.copy2(tmp, beside, follow_symlinks=False)
                worktree._replace(beside, final)
            except BaseException:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(beside)
                raise
    except OSError as exc:
        raise os_error(exc, f"cannot write {rel}") from exc
