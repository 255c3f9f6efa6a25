"""Push, fetch, pull and clone: moving objects and refs between a repository and a remote.

Remote layout (docs/format.md "Remote layout")::

    dvx-remote.json           {"format": 1}, created once (create-if-absent)
    HEAD                      "ref: refs/heads/<default branch>"
    refs/heads/NAME           commit id; updated only by compare-and-swap
    refs/tags/NAME
    packs/HASH.pack           the same pack format as on disk; immutable
    packs/HASH.idx            its index, uploaded after the pack: an index is what makes a pack visible

Every object on a remote is in a pack, so the set of objects a remote holds is known from its indexes alone
(one listing of ``packs/`` plus the indexes not yet cached locally): a push never lists the bucket's objects or
asks object by object. Data packs are uploaded before the packs holding trees and commits, and all packs
before the ref, so a remote that has a tree has everything below it; an interrupted push leaves only unused
packs, which the next push reuses (same objects in the same order give the same pack name).

Reads of single objects out of a remote pack are byte-range requests, coalesced when objects are adjacent.
Every object received is verified (decoded, hashed) before it enters the local store.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import codec, durable
from .errors import (
    CorruptObject,
    DvxError,
    MissingObject,
    NonFastForward,
    RemoteError,
    UnknownRevision,
    UnsupportedFormat,
    UsageError,
    os_error,
)
from .ids import hash_bytes, is_id
from .model import DIR, FILE, Commit
from .refs import HEADS, REMOTES, TAGS, check_ref_name
from .remote.backend import absolute_url
from .store import BLOB, CHUNKED, COMMIT, TREE, TYPE_WORDS, ObjectInfo, parse_manifest
from .store.pack import IndexEntry, PackIndex, PackStreamWriter, encode_index

if TYPE_CHECKING:
    from .remote.backend import Backend
    from .repo import Repo

REMOTE_FORMAT = 1
MARKER = "dvx-remote.json"
PUSH_PACK_SIZE = 64 << 20
# A push removes temps that killed writers left on a folder remote once they are this old (seconds).
STALE_TEMP_AGE = 24 * 3600.0
# Adjacent wanted objects closer than this are fetched in one range request.
COALESCE_GAP = 256 << 10
GCS_TOKEN_MODES = ("anon", "google_default", "cloud", "cache")
SECRET_WORDS = ("secret", "password", "token", "credential", "key")

Progress = Callable[[int, int], None]  # (done, total): bytes for ``progress``, objects for ``objects``


@dataclass
class TransferStats:
    objects: int = 0
    bytes: int = 0
    packs: int = 0
    requests: int = 0
    refs_updated: list[str] = field(default_factory=list)
    up_to_date: bool = False
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "objects": self.objects,
            "bytes": self.bytes,
            "packs": self.packs,
            "requests": self.requests,
            "refs_updated": self.refs_updated,
            "up_to_date": self.up_to_date,
            "warnings": self.warnings,
        }


# --- remote configuration -------------------------------------------------------------------------------


def _raise_remote(message: str) -> bool:
    raise RemoteError(message)


def check_remote_name(name: str) -> None:
    check_ref_name(name, "remote")
    if "/" in name:
        raise UsageError(f"invalid remote name {name!r} (no '/')")


def parse_options(items: Iterable[str]) -> dict[str, str]:
    options: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--option expects KEY=VALUE, got {item!r}")
        if key.lower() == "token" and (value in GCS_TOKEN_MODES or value.endswith(".json")):
            pass  # gcsfs's credential *mode* or the path of a key file: neither is itself a secret
        elif any(w in key.lower() for w in SECRET_WORDS) and key.lower() not in ("key_prefix",):
            raise UsageError(
                f"refusing to store {key!r} in .dvx/config: credentials come from the environment "
                "(AWS_* variables, ~/.aws, GOOGLE_APPLICATION_CREDENTIALS), never from the repository"
            )
        _refuse_userinfo(value, f"option {key}")
        options[key] = value
    return options


def _refuse_userinfo(text: str, what: str) -> None:
    """Refuse ``scheme://user:password@host`` (an endpoint, or the remote URL itself): it would put a secret in
    ``.dvx/config``, which is copied, shared and printed, and ``--no-check`` would store it unprobed."""
    from urllib.parse import urlsplit

    if "://" not in text:
        return
    try:
        netloc = urlsplit(text.strip()).netloc
    except ValueError:
        return
    if "@" in netloc:
        raise UsageError(
            f"refusing to store credentials from the {what} in .dvx/config (the part before '@'): they come "
            "from the environment (AWS_* variables, ~/.aws, GOOGLE_APPLICATION_CREDENTIALS)"
        )


def remote_config(repo: Repo, name: str) -> dict[str, Any]:
    remotes = repo.config.get("remotes", {})
    if name not in remotes:
        known = ", ".join(sorted(remotes)) or "none configured"
        raise UsageError(f"no remote named {name!r} ({known}; add one with 'dvx remote add NAME URL')")
    cfg = remotes[name]
    if not isinstance(cfg, dict) or "url" not in cfg:
        from .errors import BadConfig

        raise BadConfig(f"remote {name!r} in .dvx/config has no url")
    return cfg


def open_remote(repo: Repo, name: str) -> Backend:
    from .remote.backend import open_backend

    cfg = remote_config(repo, name)
    # A relative folder path (written by an older dvx) means the repository's folder, never the current one.
    return open_backend(absolute_url(str(cfg["url"]), repo.root), dict(cfg.get("options", {})))


def add_remote(repo: Repo, name: str, url: str, options: dict[str, str], *, check: bool = True) -> str:
    """Add (and unless ``check`` is false, probe) a remote; returns the URL as stored.

    A relative folder path is stored absolute, resolved from the current folder as the user typed it: stored
    as given it would be resolved again from wherever each later command runs.
    """
    check_remote_name(name)
    if name in repo.config.get("remotes", {}):
        from .errors import RefExists

        raise RefExists(f"a remote named {name!r} already exists")
    from .remote.backend import open_backend

    _refuse_userinfo(url, "remote URL")
    _refuse_repository(url)
    url = absolute_url(url)
    backend = open_backend(url, options)  # refuses unknown schemes
    if check:
        from .source import is_url

        local = None if is_url(url) else os.path.expanduser(url)
        if local is not None and not os.path.isdir(os.path.dirname(os.path.abspath(local)) or "/"):
            raise UsageError(f"cannot use {url} as a remote: the folder it would be made in does not exist")
        made = local is not None and not os.path.exists(local)
        try:
            backend.check()
        finally:
            if made:  # the probe made the folder: leave no trace of it (the first push makes it again)
                with contextlib.suppress(OSError):
                    os.rmdir(local)  # type: ignore[arg-type]
    repo.config.setdefault("remotes", {})[name] = {"url": url, "options": options}
    repo.save_config()
    return url


def _refuse_repository(url: str) -> None:
    """A repository's folder is not a remote: a push would write the remote layout into its working tree.
    (``dvx get`` and ``dvx checkout --to`` read a repository folder directly; to share one, push to a remote.)"""
    from .source import is_repository, is_url

    path = url.removeprefix("file://")
    if is_repository(path):
        raise UsageError(
            f"{url} is a dvx repository, not a remote (a remote is a folder or bucket that dvx push fills; "
            "make an empty folder for it)"
        )
    if not is_url(path):
        # A repository's .dvx (or a folder in it): a push would plant refs whose objects that repository
        # never reads. Symlinks are resolved, so another name for the folder is refused too.
        here = os.path.realpath(os.path.expanduser(path))
        for folder in (here, *(str(p) for p in Path(here).parents)):
            if os.path.basename(folder) == ".dvx" and os.path.isfile(os.path.join(folder, "config")):
                raise UsageError(f"{url} is inside the repository metadata {folder}, not a remote")


def remove_remote(repo: Repo, name: str) -> None:
    remote_config(repo, name)
    del repo.config["remotes"][name]
    repo.save_config()
    for ref in list(repo.refs.list(f"{REMOTES}{name}/")):
        repo.refs.update(f"{REMOTES}{name}/{ref}", None, repo.refs.get(f"{REMOTES}{name}/{ref}"))


# --- the remote view ----------------------------------------------------------------------------------------


class RemoteView:
    """What one remote holds, from its refs and pack indexes (indexes cached under ``.dvx/remotes/NAME``)."""

    def __init__(self, repo: Repo, backend: Backend, cache_dir: Path, *, connections: int = 8) -> None:
        self.repo = repo
        self.backend = backend
        self.cache_dir = cache_dir
        self.connections = connections
        self.indexes: dict[str, PackIndex] = {}
        self.ignored_refs: list[str] = []  # remote ref names no dvx writes (refused, never made local)
        self._where: dict[bytes, tuple[str, IndexEntry]] | None = None

    def check_format(self, *, create: bool) -> bool:
        """True if the remote is a dvx remote; with ``create``, make it one. Refuses unknown versions."""
        try:
            doc = durable.loads_json(self.backend.read(MARKER))
        except DvxError as exc:
            if not _is_not_found(exc):
                raise
            if not create:
                return False
            self.backend.write_if_absent(MARKER, json.dumps({"format": REMOTE_FORMAT}).encode() + b"\n")
            return self.check_format(create=False) or _raise_remote(
                f"cannot create {self.backend.url}/{MARKER}: something that is not a file is in its place"
            )
        except ValueError as exc:
            raise RemoteError(f"{self.backend.url}/{MARKER} is not valid JSON") from exc
        if not isinstance(doc, dict) or "format" not in doc:
            raise RemoteError(f"{self.backend.url}/{MARKER} is not a dvx remote marker (no format field)")
        # `type(...) is int`: JSON true is a Python bool, and True == 1 would pass it as format 1.
        if type(doc["format"]) is not int or doc["format"] != REMOTE_FORMAT:
            raise UnsupportedFormat(
                f"remote {self.backend.url} has format {doc['format']!r} in {MARKER}, this dvx reads {REMOTE_FORMAT}"
            )
        return True

    def require_format(self) -> None:
        """Refuse a location that is not a dvx remote, or one of another format: every reader does this first
        (docs/format.md §17.3), before it reads a ref or an index."""
        if not self.check_format(create=False):
            # One more request, on this failure path only: a read in a missing bucket is a plain "not found"
            # on GCS, but a listing says "bucket ... does not exist", which is what the user must hear.
            if self.backend.list("refs/"):
                raise RemoteError(f"remote {self.backend.url} is damaged: it has refs but no readable {MARKER}")
            from .source import is_repository, is_url

            url = self.backend.url
            if is_repository(url.removeprefix("file://")):
                raise RemoteError(f"{url} is a dvx repository, not a remote (dvx get and dvx checkout --to read it "
                                  "directly; to clone it, push it to a remote first)")
            if not is_url(url) and not os.path.exists(os.path.expanduser(url.removeprefix("file://"))):
                raise RemoteError(f"{url} does not exist")
            raise RemoteError(f"{url} is not a dvx remote (nothing was pushed there yet)")

    def load_indexes(self) -> None:
        """List ``packs/`` once and read the indexes not cached yet (in parallel)."""
        # Only `packs/<name>.idx` itself: a key deeper under packs/ is no index of this remote (§17.2).
        names = sorted(
            k[len("packs/") : -len(".idx")]
            for k in self.backend.list("packs/")
            if k.endswith(".idx") and k.count("/") == 1
        )
        durable.make_dirs(self.cache_dir)
        todo = []
        for name in names:
            if not is_id(name):
                continue
            cached = self.cache_dir / f"{name}.idx"
            if cached.is_file():
                try:
                    self.indexes[name] = PackIndex(cached.read_bytes(), name)
                    continue
                except DvxError:
                    cached.unlink()
            todo.append(name)

        def get(name: str) -> tuple[str, bytes]:
            return name, self.backend.read(f"packs/{name}.idx")

        with ThreadPoolExecutor(max_workers=self.connections) as pool:
            for name, data in pool.map(get, todo):
                idx = PackIndex(data, name)
                if idx.pack_hash.hex() != name:
                    raise CorruptObject(f"remote index {name} belongs to another pack")
                durable.write_replace_file(self.cache_dir / f"{name}.idx", data, site="remote-index")
                self.indexes[name] = idx
        self._where = None

    def where(self) -> dict[bytes, tuple[str, IndexEntry]]:
        if self._where is None:
            w: dict[bytes, tuple[str, IndexEntry]] = {}
            known = (BLOB, TREE, COMMIT, CHUNKED)
            for name, idx in self.indexes.items():
                for e in idx:
                    if e.type not in known:  # §17.6: refused, never taken for content not fetched yet
                        raise CorruptObject(
                            f"remote index {name} lists object {e.object_id.hex()} with unknown type {e.type}",
                            e.object_id.hex(),
                        )
                    w.setdefault(e.object_id, (name, e))
            self._where = w
        return self._where

    def has(self, object_id: str) -> bool:
        return bytes.fromhex(object_id) in self.where()

    def refs(self) -> dict[str, tuple[str, str]]:
        """Remote refs as full name → (commit id, version token)."""
        out: dict[str, tuple[str, str]] = {}
        keys = []
        for k in self.backend.list("refs/"):
            if k.endswith(".lock"):
                continue
            kind = HEADS if k.startswith(HEADS) else TAGS if k.startswith(TAGS) else None
            try:
                if kind is None:
                    raise UsageError(k)
                check_ref_name(k[len(kind) :])
            except UsageError:
                self.ignored_refs.append(k)  # a name no dvx writes: never let it become a local ref
                continue
            keys.append(k)

        def get(key: str) -> tuple[str, tuple[bytes, str] | None]:
            return key, self.backend.read_ref(key)

        with ThreadPoolExecutor(max_workers=self.connections) as pool:
            for key, got in pool.map(get, keys):
                if got is None:
                    continue
                value = got[0].decode("utf-8", "replace").strip()
                if not is_id(value):
                    raise RemoteError(f"remote ref {key} does not hold a commit id")
                out[key] = (value, got[1])
        return out

    def default_branch(self) -> str | None:
        try:
            text = self.backend.read("HEAD").decode("utf-8", "replace").strip()  # a hint: never fatal
        except DvxError as exc:
            if _is_not_found(exc):
                return None
            raise
        return text[len("ref: " + HEADS) :] if text.startswith("ref: " + HEADS) else None

    # -- downloads ------------------------------------------------------------------------------------------

    def fetch_objects(
        self, ids: Iterable[str], progress: Progress | None = None, objects: Progress | None = None
    ) -> TransferStats:
        """Download objects by id (coalesced byte ranges, in parallel), verify them, store them in one pack.

        ``progress`` is told bytes received, ``objects`` objects verified and stored, each as (done, total).
        """
        stats = TransferStats()
        where = self.where()
        wanted: dict[str, list[IndexEntry]] = {}
        missing = []
        for oid in set(ids):
            hit = where.get(bytes.fromhex(oid))
            if hit is None:
                missing.append(oid)
                continue
            wanted.setdefault(hit[0], []).append(hit[1])
        if missing:
            raise MissingObject(
                f"object {missing[0]} is neither in the local store nor on remote {self.backend.url}", missing[0]
            )
        ranges = coalesce(wanted, COALESCE_GAP, PUSH_PACK_SIZE)
        total = sum(e - s for _, s, e, _ in ranges)
        total_objects = sum(len(g) for _, _, _, g in ranges)
        done = [0, 0]
        lock = threading.Lock()
        self.repo.lock.acquire()  # objects enter the store under the repo lock, like any other write
        try:
            writer = self.repo.store.writer()
        except BaseException:
            self.repo.lock.release()
            raise

        def get(item: tuple[str, int, int, list[IndexEntry]]) -> int:
            pack, start, end, group = item
            data = self.backend.read_range(f"packs/{pack}.pack", start, end)
            if len(data) != end - start:
                raise RemoteError(f"remote pack {pack} is shorter than its index says")
            for e in group:
                payload = data[e.offset - start : e.offset - start + e.stored_size]
                oid = e.object_id.hex()
                _verify(oid, e, payload)
                writer.add_encoded(oid, e.type, e.codec, e.raw_size, payload)
            with lock:
                done[0] += end - start
                done[1] += len(group)
                if progress is not None:
                    progress(done[0], total)
                if objects is not None:
                    objects(done[1], total_objects)
            return len(group)

        try:
            with ThreadPoolExecutor(max_workers=self.connections) as pool:
                for n in pool.map(get, ranges):
                    stats.objects += n
            writer.finish()
        except BaseException:
            writer.abort()
            raise
        finally:
            self.repo.lock.release()
        stats.bytes = total
        stats.packs = len(writer.finished_packs)
        return stats


Range = tuple[str, int, int, list[IndexEntry]]  # (pack, start, end, the objects whose payloads lie inside)


def coalesce(by_pack: dict[str, list[IndexEntry]], gap: int, max_range: int) -> list[Range]:
    """Byte ranges covering the payloads of ``by_pack``'s objects, in pack order then offset: neighbours closer
    than ``gap`` share one range request (what lies between them is downloaded and skipped), up to ``max_range``
    bytes a range (docs/format.md §17.6)."""
    out: list[Range] = []
    for pack in sorted(by_pack):
        entries = sorted(by_pack[pack], key=lambda e: e.offset)
        start, end, group = entries[0].offset, entries[0].offset + entries[0].stored_size, [entries[0]]
        for e in entries[1:]:
            if e.offset - end <= gap and e.offset + e.stored_size - start <= max_range:
                end = max(end, e.offset + e.stored_size)
                group.append(e)
            else:
                out.append((pack, start, end, group))
                start, end, group = e.offset, e.offset + e.stored_size, [e]
        out.append((pack, start, end, group))
    return out


def _verify(oid: str, e: IndexEntry, payload: bytes) -> None:
    """Decode and hash one received object; nothing unverified enters the store.

    The type comes from the remote's index, not from the hashed bytes: a blob relabelled as a tree (or a
    commit) hashes right, so trees and commits are also parsed. Stored under the wrong type, it would stay in
    the store for good ("one id, one object"), and every later fetch would skip it as present.
    """
    from .model import decode_commit, decode_tree

    raw = codec.decode(e.codec, payload, e.raw_size, oid)
    if e.type == CHUNKED:
        parse_manifest(raw, oid)
    elif hash_bytes(raw) != oid:
        raise CorruptObject(f"remote served a corrupt or substituted object {oid}", oid)
    elif e.type not in (BLOB, TREE, COMMIT):
        raise CorruptObject(f"remote object {oid} has unknown type {e.type}", oid)
    elif e.type != BLOB:
        try:
            (decode_tree if e.type == TREE else decode_commit)(raw, oid)
        except CorruptObject as exc:
            raise CorruptObject(f"remote served object {oid} as a {TYPE_WORDS[e.type]}, but it is not one ({exc})", oid) from exc


def _fields(e: IndexEntry) -> tuple[bytes, int, int, int, int, int]:
    return (e.object_id, e.type, e.codec, e.offset, e.stored_size, e.raw_size)


def _is_not_found(exc: BaseException) -> bool:
    from .remote.backend import RemoteNotFound

    return isinstance(exc, RemoteNotFound)


def view_for(repo: Repo, name: str) -> RemoteView:
    cfg = remote_config(repo, name)
    backend = open_remote(repo, name)
    connections = int(cfg.get("options", {}).get("connections", 8))
    return RemoteView(repo, backend, repo.dvx / "remotes" / name / "packs", connections=connections)


# --- push ---------------------------------------------------------------------------------------------------


def objects_to_send(repo: Repo, tips: list[str], remote: RemoteView) -> tuple[list[str], list[str]]:
    """Objects reachable from ``tips`` that the remote lacks: ``(data ids, metadata ids)``.

    Stops descending at commits and trees the remote already has: it has everything below them, because
    metadata is sent bottom-up. ``meta`` is in post-order (chunk manifests and subtrees before the trees that
    name them, trees before their commits, parents before children), and push uploads the metadata packs one
    by one in that order, so an interrupted push never leaves the remote with an object whose descendants
    are missing.
    """
    data: list[str] = []
    meta: list[str] = []
    seen: set[str] = set()
    store = repo.store

    def add_file(name: str, file_id: str) -> None:
        seen.add(file_id)
        info = store.info(file_id)
        if info is None and store.fetcher is not None:
            data.append(file_id)  # a lazy clone's content not fetched yet: push fetches it, then walks again
            return
        if info is None:
            raise MissingObject(f"cannot push: content of {name} ({file_id[:16]}) is not in the local store", file_id)
        if info.type != CHUNKED:
            data.append(file_id)
            return
        manifests: list[str] = []
        for chunk_id, type_ in repo.chunk_objects(file_id):
            if chunk_id in seen or remote.has(chunk_id):
                continue
            seen.add(chunk_id)
            (manifests if type_ == CHUNKED else data).append(chunk_id)
        meta.extend(manifests)
        meta.append(file_id)

    # Iterative post-order DFS: (id, is_commit, expanded).
    stack: list[tuple[str, bool, bool]] = [(t, True, False) for t in reversed(tips)]
    while stack:
        oid, is_commit, expanded = stack.pop()
        if expanded:
            meta.append(oid)
            continue
        if oid in seen or remote.has(oid):
            continue
        seen.add(oid)
        stack.append((oid, is_commit, True))
        if is_commit:
            c = repo.read_commit(oid)
            stack.append((c.tree, False, False))
            stack.extend((p, True, False) for p in reversed(c.parents))
            continue
        node = repo.trees.node(oid)
        if node.entries is None:
            stack.extend((sub, False, False) for _, sub, _, _ in node.buckets)
            continue
        for e in node.entries:
            if e.kind == DIR:
                stack.append((e.id, False, False))
            elif e.kind == FILE and e.id not in seen and not remote.has(e.id):
                add_file(e.name, e.id)
    return data, meta


def _build_packs(repo: Repo, ids: list[str], tmp_dir: Path, *, keep_order: bool = False) -> list[tuple[str, Path, int, int]]:
    """Copy stored objects (already compressed: no re-encoding) into temp packs of ~64 MiB.

    With ``keep_order`` (metadata, which must arrive bottom-up) the objects go in the order given; else in the
    order they lie in the local packs. Returns ``(name, path, size, count)`` of each pack.
    """
    out: list[tuple[str, Path, int, int]] = []
    store = repo.store
    infos: list[ObjectInfo] = []
    for oid in ids:
        info = store.info(oid)
        if info is None:
            raise MissingObject(f"cannot push: object {oid} is not in the local store", oid)
        infos.append(info)
    # Data is read in the order it lies in the local packs: sequential reads, which the kernel reads ahead
    # (objects just committed are no longer in the page cache, see store.start_writeback).
    if not keep_order:
        infos.sort(key=lambda o: (o.pack is None, o.pack or "", o.offset))
    # Each pack's span is read ahead while the one before it is copied (verification keeps the CPU busy).
    spans: dict[str, list[int]] = {}
    for info in infos if not keep_order else ():
        if info.pack is not None:
            span = spans.setdefault(info.pack, [info.offset, info.offset])
            span[0] = min(span[0], info.offset)
            span[1] = max(span[1], info.offset + info.stored_size)
    ahead = iter(spans.items())

    def read_ahead(n: int) -> None:
        for pack, (start, end) in itertools.islice(ahead, n):
            store.prefetch(pack, start, end - start)

    read_ahead(2)  # the first pack and the next
    current: str | None = None
    i = 0
    durable.make_dirs(tmp_dir)
    while i < len(infos):
        tmp = durable.temp_name(tmp_dir, "push")
        with open(tmp, "wb") as fh:
            w = PackStreamWriter(fh)
            while i < len(infos) and w.size < PUSH_PACK_SIZE:
                info = infos[i]
                oid = info.id
                i += 1
                if info.pack is not None and info.pack != current:
                    if current is not None:
                        read_ahead(1)  # one pack further than the one now read
                    current = info.pack
                payload = store.read_payload(info)
                # Never upload what we cannot vouch for.
                _verify(oid, IndexEntry(b"", info.type, info.codec, 0, len(payload), info.raw_size), payload)
                w.add(bytes.fromhex(oid), info.type, info.codec, info.raw_size, payload)
            digest = w.finish()
            entries = w.entries
        name = digest.hex()
        idx_path = tmp.with_suffix(".idx")
        idx_path.write_bytes(encode_index(digest, entries))
        out.append((name, tmp, os.path.getsize(tmp), len(entries)))
    return out


def push(
    repo: Repo,
    remote_name: str = "origin",
    refs: list[str] | None = None,
    *,
    force: bool = False,
    progress: Progress | None = None,
    objects: Progress | None = None,
) -> TransferStats:
    """Send the objects the remote lacks, then move its refs by compare-and-swap (fast-forward only).

    ``progress`` is told bytes sent, ``objects`` objects sent, each as (done, total), after each pack.
    """
    _refuse_repository(remote_config(repo, remote_name).get("url", ""))
    view = view_for(repo, remote_name)
    start_requests = view.backend.request_count
    stats = TransferStats()
    updates = _resolve_push_refs(repo, refs)
    if not view.check_format(create=False):
        if repo.refs.list(f"{REMOTES}{remote_name}/"):
            # Pushed to or fetched from before, and now not a dvx remote: an unmounted or deleted folder, an
            # emptied bucket. Filling it afresh would hide that, and the other clones' history is not here.
            raise RemoteError(
                f"remote {remote_name!r} ({view.backend.url}) holds no dvx data any more (unmounted or deleted?); "
                f"to start it afresh: dvx remote remove {remote_name} and add it again"
            )
        view.check_format(create=True)
    view.load_indexes()
    remote_refs = view.refs()
    # Refuse non-fast-forwards before sending anything.
    plan: list[tuple[str, str, tuple[str, str] | None]] = []
    for ref, new in updates:
        current = remote_refs.get(ref)
        if current is not None and current[0] == new:
            # Already there (a push killed after its swap, or one from another clone): the tracking ref, which
            # that push may not have reached, mirrors what was just read.
            tracking = f"{REMOTES}{remote_name}/{ref[len(HEADS):]}" if ref.startswith(HEADS) else None
            if tracking and repo.refs.get(tracking) != new:
                with contextlib.suppress(DvxError):
                    repo.refs.update(tracking, new, repo.refs.get(tracking))
            continue
        if current is not None and not force and ref.startswith(HEADS):
            if not repo.store.has(current[0]) or not is_ancestor(repo, current[0], new):
                raise NonFastForward(
                    f"push of {ref[len(HEADS):]} rejected: the remote has commits you do not have "
                    f"(run 'dvx fetch {remote_name}' and 'dvx merge {remote_name}/{ref[len(HEADS):]}', then push again)"
                )
        if current is not None and not force and ref.startswith(TAGS):
            raise NonFastForward(f"tag {ref[len(TAGS):]} already exists on the remote with another commit")
        plan.append((ref, new, current))
    if not plan:
        stats.up_to_date = True
        stats.requests = view.backend.request_count - start_requests
        return stats
    data, meta = objects_to_send(repo, [new for _, new, _ in plan], view)
    if repo.store.fetcher is not None:
        data, meta = _fetch_what_a_lazy_clone_lacks(repo, [new for _, new, _ in plan], view, data, meta)
    tmp_dir = repo.dvx / "tmp"
    with repo.lock:
        packs_data = _build_packs(repo, data, tmp_dir) if data else []
    try:
        # A pack the remote already indexes arrived in an earlier, interrupted push: not sent again.
        send_data = [p for p in packs_data if not _remote_has_pack(view, p[0])]
        # Totals grow once the metadata packs are built (after the data is up); objects are known now.
        total = [sum(size for _, _, size, _ in send_data), sum(n for _, _, _, n in send_data) + len(meta)]
        done = [0, 0]
        lock = threading.Lock()

        def upload(item: tuple[str, Path, int, int]) -> None:
            name, path, size, count = item
            try:
                durable.fault("push.before-pack")
                view.backend.upload_file(f"packs/{name}.pack", str(path))
                durable.fault("push.before-index")
                view.backend.write(f"packs/{name}.idx", path.with_suffix(".idx").read_bytes())
            except OSError as exc:
                raise os_error(exc, f"cannot upload pack {name[:16]}") from exc
            with lock:
                done[0] += size
                done[1] += count
                if progress is not None:
                    progress(done[0], total[0])
                if objects is not None:
                    objects(done[1], total[1])

        with ThreadPoolExecutor(max_workers=view.connections) as pool:
            list(pool.map(upload, send_data))
        # Trees and commits only once every object they reference has arrived.
        with repo.lock:
            packs_meta = _build_packs(repo, meta, tmp_dir, keep_order=True) if meta else []
        try:
            send_meta = [p for p in packs_meta if not _remote_has_pack(view, p[0])]
            total[0] += sum(size for _, _, size, _ in send_meta)
            total[1] = sum(n for _, _, _, n in send_data + send_meta)
            for item in send_meta:
                upload(item)
        finally:
            _cleanup(packs_meta)
        for _, _, size, n in send_data + send_meta:
            stats.objects += n
            stats.bytes += size
        stats.packs = len(send_data) + len(send_meta)
    finally:
        _cleanup(packs_data)
    durable.fault("push.before-ref")
    for ref, new, current in plan:
        if not view.backend.compare_and_swap(ref, current[1] if current else None, f"{new}\n".encode()):
            raise NonFastForward(
                f"push of {ref.split('/', 2)[-1]} rejected: someone else updated it on the remote just now "
                f"(run 'dvx fetch {remote_name}', merge {remote_name}/{ref.split('/', 2)[-1]} if it moved on, "
                "and push again)"
            )
        stats.refs_updated.append(ref)
        tracking = f"{REMOTES}{remote_name}/{ref[len(HEADS):]}" if ref.startswith(HEADS) else None
        if tracking:
            # From here on the push has landed: what follows only mirrors it locally or leaves a hint, so a
            # failure is a warning. Reported as an error, it would make a push that succeeded look lost.
            try:
                repo.refs.update(tracking, new, repo.refs.get(tracking))
            except DvxError as exc:
                stats.warnings.append(f"could not update {tracking} ({exc}); 'dvx fetch {remote_name}' will")
    # The remote's default branch (for clone) is set once, by the first push of a branch: the current one if
    # it was pushed, else the first branch pushed. A push of tags only leaves it alone.
    pushed = [ref for ref in stats.refs_updated if ref.startswith(HEADS)]
    if pushed:
        branch, _ = repo.head()
        default = HEADS + branch if branch and HEADS + branch in pushed else pushed[0]
        try:
            view.backend.write_if_absent("HEAD", f"ref: {default}\n".encode())
        except RemoteError as exc:
            stats.warnings.append(f"could not write the remote's HEAD, a hint for clone ({exc})")
    # Temps that pushes killed on the way left on a folder remote (a temp per file being written) go once they
    # are STALE_TEMP_AGE old: a younger one may belong to a push still running.
    with contextlib.suppress(OSError, DvxError):
        view.backend.sweep_temps(STALE_TEMP_AGE)
    stats.requests = view.backend.request_count - start_requests
    return stats


def _fetch_what_a_lazy_clone_lacks(
    repo: Repo, tips: list[str], view: RemoteView, data: list[str], meta: list[str]
) -> tuple[list[str], list[str]]:
    """A lazy clone pushing to another remote: fetch from its lazy remote, in batches, the contents it has not
    fetched yet, and plan again with them local (a fetched file may be a manifest whose chunks are to be sent
    too, and a chunk may itself be a manifest). Each round fetches something new, so this ends."""
    fetcher = repo.store.fetcher
    while fetcher is not None:
        absent = [oid for oid in data + meta if not repo.store.has(oid)]
        if not absent:
            break
        fetcher(absent)  # raises MissingObject naming what the lazy remote lacks too
        if all(not repo.store.has(oid) for oid in absent):
            raise MissingObject(f"cannot push: object {absent[0]} could not be fetched", absent[0])
        data, meta = objects_to_send(repo, tips, view)
    return data, meta


def _remote_has_pack(view: RemoteView, name: str) -> bool:
    return name in view.indexes


def _cleanup(packs: list[tuple[str, Path, int, int]]) -> None:
    for _, path, _, _ in packs:
        for p in (path, path.with_suffix(".idx")):
            try:
                p.unlink()
            except FileNotFoundError:
                pass


def _resolve_push_refs(repo: Repo, refs: list[str] | None) -> list[tuple[str, str]]:
    if not refs:
        branch, head = repo.head()
        if branch is None or head is None:
            raise UsageError("nothing to push: HEAD is detached or has no commits (name a branch to push)")
        return [(HEADS + branch, head)]
    out = []
    for name in dict.fromkeys(refs):  # each ref once: a second swap from the token read before would fail
        if repo.refs.get(HEADS + name) is not None:
            out.append((HEADS + name, repo.refs.get(HEADS + name) or ""))
        elif repo.refs.get(TAGS + name) is not None:
            out.append((TAGS + name, repo.refs.get(TAGS + name) or ""))
        else:
            raise UnknownRevision(f"no branch or tag named {name!r} to push")
    return out


def is_ancestor(repo: Repo, ancestor: str, descendant: str) -> bool:
    if ancestor == descendant:
        return True
    for cid, _ in repo.iter_commits([descendant]):
        if cid == ancestor:
            return True
    return False


# --- fetch, pull, clone -----------------------------------------------------------------------------------------


def fetch(
    repo: Repo, remote_name: str = "origin", *, progress: Progress | None = None, objects: Progress | None = None
) -> TransferStats:
    """Bring the remote's refs, commits, trees and chunk manifests; outside a lazy clone, also the file contents
    of everything the fetched refs reach that the store lacks (docs/format.md §17.6).

    A repository that is not a lazy clone is complete (§15.2 invariant 3): every ref names a commit whose whole
    closure is here, which ``merge``, ``checkout``, ``fsck`` and ``gc`` rely on. So the refs move only once
    everything they need is stored: killed before, a fetch leaves the refs as they were, and the next fetch
    downloads only what is still missing. A lazy clone fetches metadata only; its contents come on demand.
    """
    view = view_for(repo, remote_name)
    start_requests = view.backend.request_count
    view.require_format()
    # Refs first: a push publishes packs before refs, so every object the refs read here name is in the packs
    # listed after.
    remote_refs = view.refs()
    view.load_indexes()
    wanted = []
    for _, idx in view.indexes.items():
        for e in idx:
            if e.type in (COMMIT, TREE, CHUNKED):
                oid = e.object_id.hex()
                if not repo.store.has(oid):
                    wanted.append(oid)
    stats = view.fetch_objects(wanted, progress, objects) if wanted else TransferStats()
    # The refs are checked and set under the repository lock: a commit that was here already, unreachable, was
    # not fetched again, and a gc running meanwhile would delete it under the new ref. The contents are looked
    # for and fetched under it too, for the same reason (a content found here must still be here for the ref).
    with repo.lock:
        # A remote ref must name a commit that is here: else it would become a local ref to nothing, and the
        # local fsck and gc would fail on it ever after. Checked for every ref before any ref is set.
        for ref, (value, _) in remote_refs.items():
            info = repo.store.info(value)
            if info is None or info.type != COMMIT:
                what = "that none of its packs holds" if info is None else "that is not a commit"
                raise RemoteError(
                    f"remote {view.backend.url} is damaged: its ref {ref} names {value[:16]} {what} "
                    f"(no local ref was changed; run 'dvx fsck --remote {remote_name}')"
                )
        updates: list[tuple[str, str, str | None]] = []  # (local ref, new value, old value)
        for ref, (value, _) in remote_refs.items():
            if ref.startswith(HEADS):
                tracking = f"{REMOTES}{remote_name}/{ref[len(HEADS):]}"
                old = repo.refs.get(tracking)
                if old != value:
                    updates.append((tracking, value, old))
            elif ref.startswith(TAGS) and repo.refs.get(ref) is None:
                updates.append((ref, value, None))
        if updates and not repo.is_lazy:
            files = files_to_complete(repo, [new for _, new, _ in updates], repo.root_commits())
            _add_stats(stats, fetch_contents(repo, view, files, progress, objects))
        for ref, new, old in updates:
            repo.refs.update(ref, new, old)
            stats.refs_updated.append(ref)
        repo.tidy_packs()
    stats.up_to_date = not stats.refs_updated
    stats.warnings.extend(f"ignored remote ref {k!r}: not a valid branch or tag name" for k in view.ignored_refs)
    stats.requests = view.backend.request_count - start_requests
    return stats


def files_to_complete(repo: Repo, tips: Iterable[str], complete: Iterable[str]) -> list[str]:
    """The file ids of the commits reachable from ``tips`` but not from ``complete``: of each such commit, the
    files that differ from its first parent's (read at the cost of the changes, :meth:`TreeReader.differing`).

    Every other file of such a commit is its first parent's, and that parent is complete: reachable from
    ``complete`` (commits whose closure is here, §15.2 invariant 3), or itself walked. So these ids, with their
    chunks, are all that the tips need beyond what is here, and a fetch of commits already here reads nothing.
    """
    from .merge import ancestors

    commits: dict[str, Commit] = {}

    def commit(cid: str) -> Commit:
        if cid not in commits:
            commits[cid] = repo.read_commit(cid)
        return commits[cid]

    done = ancestors(lambda cid: commit(cid).parents, complete)
    files: dict[str, None] = {}
    stack = list(tips)
    while stack:
        cid = stack.pop()
        if cid in done:
            continue
        done.add(cid)
        c = commit(cid)
        stack.extend(c.parents)
        base = commit(c.parents[0]).tree if c.parents else None
        _, theirs = repo.trees.differing(base, c.tree)
        files.update(dict.fromkeys(e.id for e in theirs.values() if e.kind == FILE))
    return list(files)


def contents_missing(repo: Repo, file_ids: Iterable[str]) -> list[str]:
    """What the contents of these files need that the store lacks: each file id not here (a blob, or a manifest
    not fetched yet) and the chunks not here of each manifest that is, following a chunk that is itself a
    manifest one level, as reads, fsck and gc do (:meth:`Repo.chunk_objects`)."""
    store = repo.store
    out: dict[str, None] = {}
    seen: set[str] = set()
    for fid in dict.fromkeys(file_ids):
        info = store.info(fid)
        if info is None:
            out[fid] = None
        elif info.type == CHUNKED:
            for chunk_id, _ in repo.chunk_objects(fid):
                if chunk_id not in seen:
                    seen.add(chunk_id)
                    if not store.has(chunk_id):
                        out[chunk_id] = None
    return list(out)


def fetch_contents(
    repo: Repo,
    view: RemoteView,
    file_ids: Iterable[str],
    progress: Progress | None = None,
    objects: Progress | None = None,
    *,
    missing: list[str] | None = None,
) -> TransferStats:
    """Download from ``view`` what the contents of these files lack (``missing``, if the caller has computed it
    already): one parallel batch (:meth:`RemoteView.fetch_objects`), then one more for the chunks of each
    manifest it brought (a file id may be a manifest, and so may a chunk). Each round stores objects that were
    not here, of which a remote has finitely many, so this ends."""
    stats = TransferStats()
    wanted = contents_missing(repo, file_ids) if missing is None else missing
    while wanted:
        _add_stats(stats, view.fetch_objects(wanted, progress, objects))
        arrived = [oid for oid in wanted if (info := repo.store.info(oid)) is not None and info.type == CHUNKED]
        wanted = contents_missing(repo, arrived)
    return stats


def _add_stats(stats: TransferStats, more: TransferStats) -> None:
    stats.objects += more.objects
    stats.bytes += more.bytes
    stats.packs += more.packs


def install_lazy_fetcher(repo: Repo, remote_name: str | None = None) -> None:
    """Let the store fetch missing objects from the remote on demand (for lazy clones)."""
    name = remote_name or repo.config.get("core", {}).get("lazy_remote")
    if not name or name not in repo.config.get("remotes", {}):
        return
    state: dict[str, RemoteView] = {}

    def fetcher(ids: list[str]) -> None:
        if "view" not in state:
            view = view_for(repo, name)
            view.require_format()
            view.load_indexes()
            state["view"] = view
        state["view"].fetch_objects(ids)

    repo.store.fetcher = fetcher


def prefetch_files(
    repo: Repo,
    file_ids: Iterable[str],
    progress: Progress | None = None,
    *,
    remote_name: str | None = None,
    objects: Progress | None = None,
) -> TransferStats:
    """Make sure the contents of these files are local, fetching what is missing in one parallel batch (and one
    more for the chunks of manifests not here yet: :func:`fetch_contents`).

    From ``remote_name`` if given (``pull`` fetches from the remote it pulls from, which need not be the lazy
    remote: a repository made by ``init`` has none), else from ``core.lazy_remote``. When nothing is missing,
    the remote is not contacted.
    """
    missing = contents_missing(repo, file_ids)
    if not missing:
        return TransferStats()
    name = remote_name or repo.config.get("core", {}).get("lazy_remote")
    if not name:
        raise MissingObject(
            f"object {missing[0]} is missing from the store and no remote is configured to fetch it", missing[0]
        )
    view = view_for(repo, name)
    view.require_format()
    view.load_indexes()
    stats = fetch_contents(repo, view, (), progress, objects, missing=missing)
    stats.requests = view.backend.request_count
    return stats


def pull(
    repo: Repo, remote_name: str = "origin", *, progress: Progress | None = None, objects: Progress | None = None
) -> tuple[TransferStats, str]:
    """Fetch, then fast-forward the current branch to the remote's; refuse (advising merge) otherwise."""
    stats = fetch(repo, remote_name, progress=progress, objects=objects)
    branch, head = repo.head()
    if branch is None:
        raise UsageError("cannot pull with a detached HEAD (check out a branch first)")
    theirs = repo.refs.get(f"{REMOTES}{remote_name}/{branch}")
    if theirs is None:
        raise UnknownRevision(f"remote {remote_name!r} has no branch {branch!r}")
    if head == theirs:
        return stats, "up to date"
    if head is not None and is_ancestor(repo, theirs, head):
        return stats, "ahead"
    if head is not None and not is_ancestor(repo, head, theirs):
        raise NonFastForward(
            f"cannot fast-forward {branch} to {remote_name}/{branch}: the histories diverged "
            f"(run 'dvx merge {remote_name}/{branch}')"
        )
    checkout_with_fetch(
        repo, theirs, progress=progress, move_branch=(HEADS + branch, head), remote_name=remote_name, objects=objects
    )
    return stats, "fast-forward"


def checkout_with_fetch(
    repo: Repo,
    commit_id: str,
    *,
    progress: Progress | None = None,
    move_branch: tuple[str, str | None] | None = None,
    force: bool = False,
    remote_name: str | None = None,
    objects: Progress | None = None,
) -> None:
    """Fetch the file contents a checkout needs (only those, from ``remote_name`` or else the lazy remote), then
    check out and optionally move a branch."""
    target = repo.trees.flatten(repo.read_commit(commit_id).tree)
    _, head = repo.refs.head()
    current = repo.trees.flatten(repo.read_commit(head).tree) if head else {}
    needed = [e.id for p, e in target.items() if e.kind == FILE and (p not in current or current[p].id != e.id)]
    prefetch_files(repo, needed, progress, remote_name=remote_name, objects=objects)
    if move_branch is not None:
        _fast_forward(repo, move_branch, commit_id, current, target, force=force, progress=progress)
    else:
        repo.checkout(commit_id, force=force, progress=progress)


def _fast_forward(
    repo: Repo,
    move_branch: tuple[str, str | None],
    commit_id: str,
    current: dict[str, Any],
    target: dict[str, Any],
    *,
    force: bool,
    progress: Progress | None,
) -> None:
    """Working tree first (only changed paths), then the branch by compare-and-swap, HEAD on the branch all
    along, as a merge's fast-forward does. Killed in between, HEAD is still on the old commit and the files are
    the new ones; the next pull completes it (a path already as the target wants is no conflict). Checking
    out the commit id instead detached HEAD there, and the next pull refused to run on a detached HEAD."""
    from .errors import DirtyWorkingTree
    from .repo import plan_checkout

    ref, old = move_branch
    with repo.lock:
        work, cache, _ = repo._work_entries()  # noqa: SLF001 - same package
        writes, deletes, clashes = plan_checkout(current, target, work, force=force)
        if clashes:
            shown = ", ".join(clashes[:10]) + (f" and {len(clashes) - 10} more" if len(clashes) > 10 else "")
            raise DirtyWorkingTree(
                f"pull would overwrite uncommitted changes: {shown} (commit them, then pull again)"
            )
        repo._apply(writes, deletes, work, cache, progress)  # noqa: SLF001 - same package
        cache.set_head(commit_id, repo.read_commit(commit_id).tree, target)  # the next status reads no tree
        repo.refs.update(ref, commit_id, old)
        repo.refs.set_head_symbolic(ref)
        try:
            cache.save()
        except DvxError:
            pass  # the stat cache is only a hint


def clone(
    url: str,
    directory: str | os.PathLike[str] | None = None,
    *,
    branch: str | None = None,
    checkout: bool = True,
    options: dict[str, str] | None = None,
    progress: Progress | None = None,
    objects: Progress | None = None,
    warn: Callable[[str], None] | None = None,
) -> Repo:
    """Make a new repository from a remote: refs and metadata now, file contents when a checkout needs them.
    ``warn`` hears the fetch's warnings (remote refs ignored for their names)."""
    from .remote.backend import open_backend
    from .repo import Repo

    _refuse_userinfo(url, "remote URL")
    backend = open_backend(url, options or {})
    name = directory if directory is not None else _default_dir(url)
    dest = Path(name)
    if os.path.lexists(dest) and not dest.is_dir():
        raise UsageError(f"destination {dest} exists and is not a folder")
    if dest.exists() and any(dest.iterdir()):
        if _interrupted_clone_of(dest, absolute_url(url)):
            raise UsageError(f"destination {dest} holds an interrupted clone of {url}: run 'dvx checkout BRANCH' "
                             "in it to write its files, or remove it and clone again")
        raise UsageError(f"destination {dest} exists and is not empty")
    created = not os.path.lexists(dest)
    repo: Repo | None = None
    try:
        repo = Repo.init(dest)
        # Stored absolute: a relative folder path was meant from here, not from wherever a later command runs.
        stored_url = absolute_url(url)
        repo.config.setdefault("remotes", {})["origin"] = {"url": stored_url, "options": dict(options or {})}
        repo.config["core"]["lazy_remote"] = "origin"
        # No files are checked out here yet (docs/format.md §14.1), also while this clone writes them: killed
        # half-way, the folder must not pass for a checkout whose missing files the user deleted. status and
        # commit refuse there, and the next checkout writes every file.
        repo.config["core"]["worktree"] = False
        repo.save_config()
        del backend
        stats = fetch(repo, "origin", progress=progress, objects=objects)
        if warn is not None:
            for w in stats.warnings:
                warn(w)
        view = view_for(repo, "origin")
        tracking = repo.refs.list(f"{REMOTES}origin/")
        head_branch = view.default_branch()
        if head_branch not in tracking:
            head_branch = None  # HEAD is only a hint (docs/format.md §17.5): fall back as if it were absent
        chosen = branch or head_branch or ("main" if "main" in tracking else next(iter(sorted(tracking)), None))
        if chosen is None:
            return repo  # an empty remote: an empty clone, like git
        if chosen not in tracking:
            raise UnknownRevision(f"remote has no branch {chosen!r}")
        commit_id = tracking[chosen]
        repo.refs.update(HEADS + chosen, commit_id, None)
        repo.refs.set_head_symbolic(HEADS + chosen)
        install_lazy_fetcher(repo)
        if checkout:
            target = repo.trees.flatten(repo.read_commit(commit_id).tree)
            prefetch_files(repo, [e.id for e in target.values() if e.kind == FILE], progress, objects=objects)
            # HEAD already names the commit: materialize everything by checking out against an empty tree.
            repo.refs.set_head_detached(commit_id)
            _materialize_all(repo, target, progress)
            repo.refs.set_head_symbolic(HEADS + chosen)
            del repo.config["core"]["worktree"]  # every file is here now
            repo.save_config()
    except BaseException:
        if repo is not None:
            repo.close()
        _discard_failed_clone(dest, created)
        raise
    return repo


def _interrupted_clone_of(dest: Path, url: str) -> bool:
    """``dest`` is a clone of ``url`` that never finished writing its files (killed: a clone that fails with an
    error removes what it made)."""
    from .repo import Repo

    try:
        repo = Repo(dest)
    except DvxError:
        return False
    remote = repo.config.get("remotes", {}).get("origin", {})
    return not repo.has_worktree and repo.is_lazy and isinstance(remote, dict) and remote.get("url") == url


def _discard_failed_clone(dest: Path, created: bool) -> None:
    """Remove what a failed clone made, so that no empty or partial repository is left looking valid (git does
    the same): the folder if the clone created it, else everything in it (it was empty before the clone)."""
    if created:
        with contextlib.suppress(OSError):
            durable.remove_tree(dest)
        return
    try:
        children = list(dest.iterdir())
    except OSError:
        return
    for child in children:
        with contextlib.suppress(OSError):
            durable.remove_tree(child)


def _materialize_all(repo: Repo, target: dict[str, Any], progress: Progress | None) -> None:
    from .worktree import StatCache

    with repo.lock:
        cache = StatCache(repo.dvx / "index").load()
        repo._apply(dict(target), [], {}, cache, progress, scanned=False)  # noqa: SLF001 - same package
        cache.save()


def _default_dir(url: str) -> str:
    base = url.rstrip("/").rsplit("/", 1)[-1] or "dataset"
    return base.removesuffix(".dvx") or "dataset"


# --- remote fsck --------------------------------------------------------------------------------------------------


def fsck_remote(repo: Repo, remote_name: str) -> tuple[int, int, dict[str, str]]:
    """Verify every pack on the remote (checksum, index agreement) and every object reachable from its refs.

    Returns ``(objects checked, bytes checked, {bad id: reason})``. Downloads each pack once, in parallel.
    """
    view = view_for(repo, remote_name)
    view.require_format()
    # Refs before indexes, as in fetch: a push landing in between must not look like missing objects.
    refs = view.refs()
    view.load_indexes()
    bad: dict[str, str] = {}
    objects: dict[bytes, tuple[int, bytes]] = {}
    lock = threading.Lock()
    from .store.pack import scan_pack

    def check(name: str) -> int:
        try:
            data = view.backend.read(f"packs/{name}.pack")
            entries = scan_pack(data, name)
            idx = view.indexes[name]
            idx.validate(len(data))
            # Every field: fetch takes type, codec and sizes from the index, not from the pack's records.
            # The objects they disagree on are reported; the pack's other objects are still checked below.
            in_index, in_pack = {_fields(e) for e in idx}, {_fields(e) for e in entries}
            if in_index != in_pack:
                with lock:
                    bad[name] = f"remote pack {name} disagrees with its index"
                    for f in in_index ^ in_pack:
                        bad[f[0].hex()] = f"remote pack {name[:16]} and its index disagree on this object"
            for e in entries:
                payload = data[e.offset : e.offset + e.stored_size]
                try:
                    _verify(e.object_id.hex(), e, payload)
                    raw = codec.decode(e.codec, payload, e.raw_size, e.object_id.hex())
                    with lock:
                        objects[e.object_id] = (e.type, raw if e.type in (TREE, COMMIT, CHUNKED) else b"")
                except DvxError as exc:
                    with lock:
                        bad.setdefault(e.object_id.hex(), str(exc))
            return len(data)
        except DvxError as exc:
            with lock:
                bad[name] = str(exc)
            return 0

    with ThreadPoolExecutor(max_workers=view.connections) as pool:
        total = sum(pool.map(check, list(view.indexes)))

    # Reachability: every object the refs need must be present and good.
    from .model import decode_commit, decode_tree

    for ref, (value, _) in sorted(refs.items()):  # as fetch and clone refuse them: a ref names a commit
        got = objects.get(bytes.fromhex(value))
        if got is not None and got[0] != COMMIT:
            bad.setdefault(value, f"remote ref {ref} names a {TYPE_WORDS.get(got[0], 'object')}, not a commit")
    seen: set[str] = set()
    stack = [v for v, _ in refs.values()]
    checked = 0
    while stack:
        oid = stack.pop()
        if oid in seen:
            continue
        seen.add(oid)
        got = objects.get(bytes.fromhex(oid))
        if got is None:
            if oid not in bad:
                bad[oid] = "missing on the remote"
            continue
        checked += 1
        type_, raw = got
        try:
            if type_ == COMMIT:
                c = decode_commit(raw, oid)
                stack.extend(c.parents)
                stack.append(c.tree)
            elif type_ == TREE:
                node = decode_tree(raw, oid)
                if node.entries is None:
                    stack.extend(sub for _, sub, _, _ in node.buckets)
                else:
                    stack.extend(e.id for e in node.entries if e.kind != "l")
            elif type_ == CHUNKED:
                stack.extend(c for c, _ in parse_manifest(raw, oid)[1])
        except DvxError as exc:
            bad[oid] = str(exc)
    return checked, total, bad


__all__ = [
    "TransferStats",
    "RemoteView",
    "push",
    "fetch",
    "pull",
    "clone",
    "prefetch_files",
    "install_lazy_fetcher",
    "fsck_remote",
    "add_remote",
    "remove_remote",
    "parse_options",
]
