"""``dvx get URL REV DIR``: files of a remote's revision on a node that has no repository.

A remote (any URL :func:`dvx.remote.backend.open_backend` takes, or a folder path) is read directly, as
``clearml-data get`` does: no clone, no working tree, no local copy of the file contents besides the shared
:class:`~dvx.cache.Cache` that read-only checkouts link from. What is kept is small and lives in the cache::

    <cache>/v1/remotes/<key>/          key = first 32 hex digits of H(remote URL + options), see docs/format.md
        url                            the remote's URL, for people looking at the folder
        lock                           flock: one metadata update at a time (concurrent jobs wait, then reuse)
        packs/<name>.idx               copies of the remote's pack indexes (as .dvx/remotes/NAME/packs in a clone)
        objects/, tmp/                 an object store holding only the remote's commits, trees and chunk
                                       manifests (types 2-4): what resolving a revision and listing it need

Order of a ``get``: under the lock, read ``dvx-remote.json``, the refs, then the indexes (a push publishes packs
before it moves a ref, so indexes listed after the refs cover them), and download the metadata objects the store
lacks, as ``fetch`` does; resolve REV against the remote's refs (branch, tag, ``HEAD``, commit id or unique
prefix); list the tree; then :func:`dvx.readonly.checkout_to` with contents filled by :class:`RemoteContent`:
only the objects the selected files need, read as byte ranges of the remote packs (adjacent objects coalesced,
ranges in parallel), every object decoded and verified against its id (and every chunked file against its own
id) and written straight into a cache temp file, published only once complete and durable.

``dvx.checkout(url, ...)`` and ``dvx.open(url, ...)`` take the same URLs: a string is a repository path when
``PATH/.dvx`` exists, a remote otherwise.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from . import codec, durable
from .cache import Cache, CacheTemp, Publisher
from .errors import CorruptObject, MissingObject, RemoteError, UnknownRevision, os_error
from .ids import hash_bytes, hasher, is_id, is_id_prefix
from .lock import RepoLock
from .model import Commit, decode_commit
from .refs import HEADS, TAGS
from .store import BLOB, CHUNKED, COMMIT, TREE, ObjectStore, parse_manifest
from .store.pack import IndexEntry
from .trees import TreeReader

if TYPE_CHECKING:
    from .readonly import CheckoutReport, Item, Progress
    from .remote.backend import Backend
    from .transfer import RemoteView

REMOTES_DIR = "remotes"
# Adjacent wanted objects closer than this are read in one range: on a network store a request costs more than
# 256 KiB of transfer; in a folder, only touching objects are merged (their record headers lie between them).
NETWORK_GAP = 256 << 10
LOCAL_GAP = 64
MAX_RANGE = 8 << 20  # bytes per range request (a thread holds one range, decoded, at a time)
LOCK_TIMEOUT = 600.0  # a metadata update of a big remote may take a while; other jobs wait for it

_SCHEME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def is_url(text: str) -> bool:
    return bool(_SCHEME_RE.match(text))


def is_repository(text: str) -> bool:
    """True when ``text`` is a local repository's folder (it has ``.dvx``), not a remote."""
    return not is_url(text) and os.path.isfile(os.path.join(os.path.expanduser(text), ".dvx", "config"))


def remote_key(url: str, options: dict[str, str] | None = None) -> str:
    """The folder name of a remote's metadata in the cache: H(normalized URL, options) cut to 32 hex digits."""
    opts = "".join(f"\n{k}={v}" for k, v in sorted((options or {}).items()) if k != "connections")
    return hash_bytes(f"{url}{opts}".encode())[:32]


# --- reading contents out of remote packs -------------------------------------------------------------------


@dataclass
class _Target:
    """One cache file being assembled from its pieces (chunks) as they arrive, in any order."""

    oid: str
    size: int
    executable: bool
    pieces: list[tuple[str, int]]
    offsets: list[int]
    lock: threading.Lock = field(default_factory=threading.Lock)
    tmp: CacheTemp | None = None
    chmod: bool = False  # the temp file's mode must still be set (a umask took bits off)
    remaining: int = 0
    next_hash: int = 0  # pieces [0, next_hash) are hashed, in order
    written: set[int] = field(default_factory=set)
    hash: Any = None


class RemoteContent:
    """File contents read straight out of a remote's packs into the cache (or, for ``open``, into memory).

    ``where`` maps raw object ids to ``(pack name, index entry)`` (:meth:`dvx.transfer.RemoteView.where`);
    ``manifests`` is a store holding the remote's chunk manifests. Counters ``bytes`` and ``requests`` record
    what was downloaded.
    """

    def __init__(self, backend: Backend, where: dict[bytes, tuple[str, IndexEntry]], manifests: ObjectStore) -> None:
        from .remote.local import LocalBackend

        self.backend = backend
        self.where = where
        self.manifests = manifests
        self.gap = LOCAL_GAP if isinstance(backend, LocalBackend) else NETWORK_GAP
        self.connections = max(1, backend.connections)
        self._count_lock = threading.Lock()
        self.bytes = 0
        self.requests = 0

    # -- lookups --------------------------------------------------------------------------------------

    def entry(self, oid: str) -> tuple[str, IndexEntry]:
        hit = self.where.get(bytes.fromhex(oid))
        if hit is None:
            raise MissingObject(f"object {oid} is not on remote {self.backend.url}", oid)
        return hit

    def pieces(self, file_id: str) -> list[tuple[str, int]]:
        """The blobs whose bytes, in order, are the file's content: ``[(blob id, size)]``.

        A chunk that is itself a chunked file (docs/format.md §8.4) is replaced by its chunks, one level deep;
        the file's own hash, checked at the end, covers the result.
        """
        _, e = self.entry(file_id)
        if e.type == BLOB:
            return [(file_id, e.raw_size)]
        if e.type != CHUNKED:
            raise CorruptObject(f"object {file_id} is not file content", file_id)
        out: list[tuple[str, int]] = []
        checked: dict[tuple[str, int], list[tuple[str, int]]] = {}  # inner manifests checked: a repeated one once
        for cid, n in self._manifest(file_id):
            sub = checked.get((cid, n))
            if sub is not None:
                out.extend(sub)
                continue
            _, ce = self.entry(cid)
            if ce.type == CHUNKED and cid != file_id:
                sub = self._manifest(cid)
                if n > codec.MAX_OBJECT_SIZE or sum(s for _, s in sub) != n:
                    raise CorruptObject(f"chunk manifest {cid} of file {file_id} does not describe {n} bytes", cid)
                for c, s in sub:  # each part a blob of exactly its listed size: a piece is written whole (_write)
                    pe = self.entry(c)[1]
                    if pe.type != BLOB or pe.raw_size != s:
                        raise CorruptObject(f"chunk {c} of chunk manifest {cid} is not a blob of {s} bytes", cid)
                checked[cid, n] = sub
                out.extend(sub)
            elif ce.type == BLOB and ce.raw_size == n:
                out.append((cid, n))
            else:
                raise CorruptObject(f"chunk {cid} of file {file_id} is corrupt", cid)
        return out

    def _manifest(self, oid: str) -> list[tuple[str, int]]:
        return parse_manifest(self.manifests.get(oid, CHUNKED)[1], oid)[1]

    # -- downloads ------------------------------------------------------------------------------------

    def _read(self, pack: str, start: int, end: int) -> bytes:
        data = self.backend.read_range(f"packs/{pack}.pack", start, end)
        with self._count_lock:
            self.bytes += len(data)
            self.requests += 1
        if len(data) != end - start:
            raise RemoteError(f"remote pack {pack} on {self.backend.url} is shorter than its index says")
        return data

    @staticmethod
    def _decode(e: IndexEntry, payload: memoryview, *, verify: bool = True) -> bytes | memoryview:
        """The bytes of a blob (raw payloads are not copied), verified against its id unless ``verify`` is False:
        for a chunk whose every use is inside a chunked file, whose own hash, checked before the file is
        published, covers these bytes too."""
        oid = e.object_id.hex()
        if e.type != BLOB:
            raise CorruptObject(f"remote object {oid} is not a blob", oid)
        if e.codec == codec.RAW:
            if len(payload) != e.raw_size:
                raise CorruptObject(f"object {oid} has the wrong size", oid)
            raw: bytes | memoryview = payload
        else:
            raw = codec.decode(e.codec, payload, e.raw_size, oid)
        if verify and hash_bytes(raw) != oid:
            raise CorruptObject(f"remote served a corrupt or substituted object {oid}", oid)
        return raw

    def read_piece(self, oid: str, size: int) -> bytes:
        """One blob, downloaded and verified (for :class:`dvx.readonly.VerifiedFile`)."""
        pack, e = self.entry(oid)
        data = self._read(pack, e.offset, e.offset + e.stored_size)
        raw = self._decode(e, memoryview(data))
        if len(raw) != size:
            raise CorruptObject(f"chunk {oid} has the wrong size", oid)
        return bytes(raw)

    def ranges(self, ids: Sequence[str]) -> list[tuple[str, int, int, list[IndexEntry]]]:
        """Coalesced byte ranges ``(pack, start, end, entries)`` covering the objects ``ids``, in pack order."""
        by_pack: dict[str, list[IndexEntry]] = {}
        for oid in ids:
            pack, e = self.entry(oid)
            by_pack.setdefault(pack, []).append(e)
        from .transfer import coalesce

        return coalesce(by_pack, self.gap, MAX_RANGE)

    # -- filling the cache ------------------------------------------------------------------------------

    def fill(self, cache: Cache, items: list[Item], jobs: int, advance: Callable[[int], None]) -> tuple[int, int]:
        """Make every ``(id, size, executable)`` present in ``cache``; returns ``(bytes downloaded, requests)``."""
        from .readonly import drain

        before = (self.bytes, self.requests)
        pub = cache.publisher()
        targets: list[_Target] = []
        try:
            for oid, size, exe in items:
                if cache.lookup(oid, size, exe) is not None:
                    continue  # published by another process meanwhile
                tmp = cache.variant_temp(oid, size, exe)
                if tmp is not None:  # the other variant is cached: copy it rather than download again
                    pub.add(tmp, oid, size, exe)
                    advance(size)
                    continue
                pieces = self.pieces(oid)
                offsets, pos = [], 0
                for _, n in pieces:
                    offsets.append(pos)
                    pos += n
                if pos != size:
                    raise CorruptObject(f"file {oid} has {pos} bytes on the remote, its tree entry says {size}", oid)
                targets.append(_Target(oid, size, exe, pieces, offsets, remaining=len(pieces)))
            need: dict[str, list[tuple[_Target, int]]] = {}
            for t in targets:
                for i, (pid, _) in enumerate(t.pieces):
                    need.setdefault(pid, []).append((t, i))
            if need:
                cache.setup()

                def one(item: tuple[str, int, int, list[IndexEntry]]) -> None:
                    pack, start, end, group = item
                    data = memoryview(self._read(pack, start, end))
                    for e in group:
                        uses = need[e.object_id.hex()]
                        verify = any(len(t.pieces) == 1 for t, _ in uses)
                        raw = self._decode(e, data[e.offset - start : e.offset - start + e.stored_size], verify=verify)
                        for t, i in uses:
                            self._write(cache, pub, t, i, raw)
                            advance(len(raw))

                drain(one, self.ranges(list(need)), max(jobs, self.connections if self.gap == NETWORK_GAP else 1))
            pub.finish()
        except BaseException:
            for t in targets:
                if t.tmp is not None:
                    t.tmp.discard()
                    t.tmp = None
            pub.abort()
            raise
        return self.bytes - before[0], self.requests - before[1]

    @staticmethod
    def _write(cache: Cache, pub: Publisher, t: _Target, i: int, raw: bytes | memoryview) -> None:
        """Write piece ``i`` of ``t`` at its offset; hash what is now contiguous; publish ``t`` once complete."""
        with t.lock:
            if i in t.written:
                return
            try:
                if t.tmp is None:
                    multi = len(t.pieces) > 1  # hashed as a whole, reading back pieces that came early
                    t.tmp, t.chmod = cache.new_object_temp(t.oid, t.executable, readable=multi)
                    if multi:
                        t.hash = hasher()
                fd = t.tmp.fd
                _pwrite_all(fd, raw, t.offsets[i])
                t.written.add(i)
                t.remaining -= 1
                if t.hash is not None:
                    while t.next_hash in t.written:
                        j = t.next_hash
                        piece = raw if j == i else os.pread(fd, t.pieces[j][1], t.offsets[j])
                        t.hash.update(piece)
                        t.next_hash += 1
                if t.remaining:
                    return
                if t.hash is not None and t.hash.hexdigest() != t.oid:
                    raise CorruptObject(f"file {t.oid} is corrupt on the remote (its chunks do not hash to its id)", t.oid)
                # Size: every piece was written whole, and the pieces' sizes add up to t.size (checked).
                if t.chmod:
                    os.fchmod(fd, cache.mode(t.executable))
                cache.seal(fd, t.oid)
            except OSError as exc:
                raise os_error(exc, "cannot write to the cache") from exc
            tmp, t.tmp = t.tmp, None
        pub.add(tmp, t.oid, t.size, t.executable)


def _pwrite_all(fd: int, data: bytes | memoryview, offset: int) -> None:
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, offset)
        view = view[n:]
        offset += n


# --- a remote as a source of revisions ---------------------------------------------------------------------


class RemoteSource:
    """A remote seen as a read-only repository: refs read from the remote, metadata kept in the cache, contents
    read on demand. Satisfies :class:`dvx.readonly.ContentSource`; call :meth:`sync` before use.

    Example::

        src = RemoteSource("s3://datasets/imagenet")
        src.sync()
        checkout_to(src, "v3", "/scratch/imagenet-v3", cache=src.cache)
    """

    def __init__(self, url: str, *, cache: Cache | None = None, options: dict[str, str] | None = None) -> None:
        from .remote.backend import open_backend
        from .transfer import RemoteView

        self.backend = open_backend(url, options)
        self.url = self.backend.url
        self._path = not is_url(url)  # a plain path: maybe a mistyped repository path
        self.cache = cache if cache is not None else Cache.open()
        self.dir = self.cache.base / REMOTES_DIR / remote_key(self.url, options)
        self.store = ObjectStore(self.dir / "objects", self.dir / "tmp")
        self.trees = TreeReader(self.store)
        self.lock = RepoLock(self.dir / "lock", timeout=LOCK_TIMEOUT, what="dvx get")
        self.config: dict[str, Any] = {}
        self.root = self.dir
        # RemoteView stores what it downloads through ``repo.store`` under ``repo.lock``: this object has both.
        self.view: RemoteView = RemoteView(cast(Any, self), self.backend, self.dir / "packs",
                                           connections=self.backend.connections)
        self.refs: dict[str, str] = {}
        self.head_branch: str | None = None
        self._content: RemoteContent | None = None

    # -- metadata ---------------------------------------------------------------------------------------

    def sync(self) -> None:
        """Read the remote's refs and indexes and download the metadata objects not cached yet."""
        if not self.view.check_format(create=False):  # before creating anything for a URL that is no remote
            if self._path:
                raise RemoteError(
                    f"{self.url} is neither a dvx repository (no .dvx) nor a dvx remote (no dvx-remote.json)"
                )
            raise RemoteError(f"{self.url} is not a dvx remote (no dvx-remote.json: nothing was pushed there)")
        try:
            for sub in ("objects/pack", "objects/loose", "tmp", "packs"):
                os.makedirs(self.dir / sub, mode=0o777, exist_ok=True)
            url_file = self.dir / "url"
            if not url_file.exists():
                durable.write_replace_file(url_file, f"{self.url}\n".encode(), site="remote-url")
        except OSError as exc:
            raise os_error(exc, f"cannot create {self.dir}") from exc
        with self.lock:
            refs = self.view.refs()
            self.head_branch = self.view.default_branch()
            self.view.load_indexes()
            self.store.refresh()
            wanted = [
                e.object_id.hex() for idx in self.view.indexes.values() for e in idx
                if e.type in (COMMIT, TREE, CHUNKED) and not self.store.has(e.object_id.hex())
            ]
            if wanted:
                self.view.fetch_objects(wanted)
        self.refs = {name: value for name, (value, _) in refs.items()}
        self.store.fetcher = self._fetch_metadata
        self._content = RemoteContent(self.backend, self.view.where(), self.store)

    def _fetch_metadata(self, ids: list[str]) -> None:
        """The store's fallback for metadata it lacks (pushed after the sync); file contents never go there."""
        where = self.view.where()
        meta = [i for i in ids if (hit := where.get(bytes.fromhex(i))) is not None and hit[1].type != BLOB]
        if meta:
            with self.lock:
                self.view.fetch_objects(meta)

    @property
    def content(self) -> RemoteContent:
        if self._content is None:
            raise RemoteError("RemoteSource.sync() must be called first")
        return self._content

    # -- Source ------------------------------------------------------------------------------------------

    def resolve(self, rev: str) -> str:
        """A commit id from a remote branch, tag, ``HEAD``, full ref name, commit id or unique id prefix."""
        text = rev.strip()
        if text in ("HEAD", "@"):
            branch = self.head_branch or ("main" if HEADS + "main" in self.refs else None)
            if branch is not None and HEADS + branch in self.refs:
                return self.refs[HEADS + branch]
        for ref in (text, HEADS + text, TAGS + text):
            if ref.startswith("refs/") and ref in self.refs:
                return self.refs[ref]
        low = text.lower()
        if is_id(low) and (self.store.has(low) or bytes.fromhex(low) in self.view.where()):
            return low
        if is_id_prefix(low):
            raw = bytes.fromhex(low[: len(low) // 2 * 2])
            found = sorted(
                oid.hex() for oid, (_, e) in self.view.where().items()
                if e.type == COMMIT and oid.startswith(raw) and oid.hex().startswith(low)
            )
            if len(found) == 1:
                return found[0]
            if len(found) > 1:
                raise UnknownRevision(f"revision {rev!r} is ambiguous on {self.url} ({len(found)} commits start with it)")
        raise UnknownRevision(f"unknown revision {rev!r} on {self.url} (not a branch, tag or commit id there)")

    def read_commit(self, commit_id: str) -> Commit:
        return decode_commit(self.store.get(commit_id, COMMIT)[1], commit_id)

    def fill_cache(self, cache: Cache, items: list[Item], jobs: int, advance: Callable[[int], None]) -> tuple[int, int]:
        return self.content.fill(cache, items, jobs, advance)

    def file_reader(self, file_id: str) -> tuple[list[tuple[str, int]], Callable[[str, int], bytes]]:
        return self.content.pieces(file_id), self.content.read_piece

    def close(self) -> None:
        self.store.close()


def open_remote_source(url: str, *, cache: Cache | None = None, options: dict[str, str] | None = None) -> RemoteSource:
    """A synced :class:`RemoteSource` (closed by the caller)."""
    source = RemoteSource(url, cache=cache, options=options)
    try:
        source.sync()
    except BaseException:
        source.close()
        raise
    return source


def get(
    url: str,
    rev: str,
    dest: str | os.PathLike[str],
    *,
    patterns: Sequence[str] | None = None,
    readonly: bool = True,
    link: str = "auto",
    force: bool = False,
    jobs: int | None = None,
    cache: Cache | None = None,
    options: dict[str, str] | None = None,
    progress: Progress | None = None,
) -> CheckoutReport:
    """Materialize ``rev`` of the remote ``url`` (or of a local repository path) into ``dest``.

    Like :func:`dvx.readonly.checkout_to`, whose report it returns (a failure leaves no folder it created).

    Example::

        report = get("s3://datasets/imagenet", "v3", "/scratch/imagenet-v3", patterns=["val/**"])
    """
    from .readonly import Source, checkout_to

    source: Source
    if is_repository(url):
        from .repo import Repo

        repo = Repo(os.path.expanduser(url))
        source, release = repo, repo.close
    else:
        remote = open_remote_source(url, cache=cache, options=options)
        source, release, cache = remote, remote.close, remote.cache
    try:
        return checkout_to(
            source, rev, dest, patterns=patterns, link=link, readonly=readonly, force=force, cache=cache,
            jobs=jobs, progress=progress,
        )
    finally:
        release()


__all__ = ["RemoteContent", "RemoteSource", "get", "is_repository", "is_url", "open_remote_source", "remote_key"]
