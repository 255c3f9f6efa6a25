"""Sweeping unreachable objects out of a store (called by ``Repo.gc`` with the live set, under the repo lock).

Loose objects are deleted one by one; a pack holding dead objects is rewritten with only its live ones (the new
pack and index are published before the old ones are removed, so a crash leaves duplicates, never a loss).
Anything modified within the grace period is left alone: a process that wrote it may still be about to
reference it.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from .. import codec, durable
from ..errors import CorruptObject, RefConflict, os_error
from ..ids import hash_bytes
from ..refs import REF_TEMP, RefStore
from . import CHUNKED, ObjectStore, StoreWriter
from .pack import PackIndex, open_pack, read_at

if TYPE_CHECKING:
    from ..repo import GcReport


def _old(path: os.PathLike[str] | str, cutoff: float) -> bool:
    try:
        return os.stat(path).st_mtime < cutoff
    except FileNotFoundError:
        return False


def collect(store: ObjectStore, live: set[str], *, grace_seconds: float, dry_run: bool = False) -> GcReport:
    from ..repo import GcReport

    res = GcReport()
    cutoff = time.time() - grace_seconds
    _check_roots(store, live)
    try:
        for oid, path in list(store.iter_loose()):
            if oid in live:
                continue
            if not _old(path, cutoff):
                res.kept_young += 1
                continue
            size = path.stat().st_size
            if not dry_run:
                os.unlink(path)
            res.objects_removed += 1
            res.bytes_freed += size
        packs = store.packs()
        # Rewrite packs with dead objects, and merge many small packs into few.
        victims: list[PackIndex] = []
        for name, idx in packs.items():
            pack_path = store.pack_dir / f"{name}.pack"
            if not _old(pack_path, cutoff):
                res.kept_young += 1
                continue
            dead = sum(1 for oid in idx.ids() if oid.hex() not in live)
            if dead or len(packs) > 16:
                victims.append(idx)
        if victims and not dry_run:
            _rewrite(store, victims, live, res)
        elif victims:
            for idx in victims:
                for e in idx:
                    if e.object_id.hex() not in live:
                        res.objects_removed += 1
                        res.bytes_freed += e.stored_size
        if not dry_run:
            _clean_tmp(store, cutoff)
    except OSError as exc:
        raise os_error(exc, "gc stopped") from exc
    return res


def _check_roots(store: ObjectStore, live: set[str]) -> None:
    """Fail closed, before anything is deleted: read every ref and HEAD again (``.dvx`` is the parent of the
    objects folder) and refuse unless each one can be read and its commit is in ``live``. A ref that cannot be
    read raises (corrupt, not absent: docs/format.md §11.1, §16); one that is not in ``live`` was moved
    after the live set was computed (by a writer that ignores the repository lock: an older dvx)."""
    refs = RefStore(store.dir.parent)
    roots = [value for _, value in refs.all_refs()]
    _, head = refs.head()
    if head is not None:
        roots.append(head)
    moved = sorted({r for r in roots if r not in live})
    if moved:
        raise RefConflict(
            f"refs changed while gc was running (commit {moved[0][:12]} is not in the live set); nothing was "
            "deleted, run dvx gc again"
        )


# A store keeps at most this many small packs (every commit, merge and fetch seals one): past it, the small
# ones are merged into one, so that a long history of small commits does not become thousands of files.
SMALL_PACK = 8 << 20
MAX_SMALL_PACKS = 32


def consolidate(store: ObjectStore) -> int:
    """Merge the packs smaller than :data:`SMALL_PACK` into one (or a few) when there are more than
    :data:`MAX_SMALL_PACKS`; returns how many were replaced. Nothing is dropped, so no grace period applies;
    the caller holds the repository lock. Each object is copied at most once per ``MAX_SMALL_PACKS`` packs
    until its pack grows past ``SMALL_PACK``: a small, bounded cost per commit."""
    small = [idx for idx in store.packs().values() if (idx.pack_size or 0) < SMALL_PACK]
    if len(small) <= MAX_SMALL_PACKS:
        return 0
    from ..repo import GcReport

    res = GcReport()
    try:
        _rewrite(store, small, None, res)
    except OSError as exc:
        raise os_error(exc, "cannot merge small packs") from exc
    return res.packs_rewritten


def _rewrite(store: ObjectStore, victims: list[PackIndex], live: set[str] | None, res: GcReport) -> None:
    """Copy the objects of ``victims`` in ``live`` (all of them: None) into new packs, then delete the victims."""
    writer = StoreWriter(store)
    copied: set[bytes] = set()
    # The writer must not skip objects merely because the victim packs still hold them.
    for idx in victims:
        fd = open_pack(store.pack_dir / f"{idx.name}.pack")
        try:
            for e in idx:
                oid = e.object_id.hex()
                if e.object_id in copied:
                    continue  # the same object in two victim packs (e.g. after an interrupted gc)
                if live is not None and oid not in live:
                    res.objects_removed += 1
                    res.bytes_freed += e.stored_size
                    continue
                payload = read_at(fd, e.offset, e.stored_size)
                # Verify before carrying an object forward: a repack must not launder corruption.
                raw = codec.decode(e.codec, payload, e.raw_size, oid)
                if e.type != CHUNKED and hash_bytes(raw) != oid:
                    raise CorruptObject(f"object {oid} is corrupt; gc stopped (run dvx fsck)", oid)
                writer._append(oid, e.type, e.codec, len(raw), payload)  # noqa: SLF001 - same package
                copied.add(e.object_id)
        finally:
            os.close(fd)
    writer.finish()
    for idx in victims:
        if idx.name in writer.finished_packs:
            continue  # rewrote to identical bytes: same name, keep it
        durable.fault("gc.before-delete")
        os.unlink(store.pack_dir / f"{idx.name}.idx")
        os.unlink(store.pack_dir / f"{idx.name}.pack")
        res.packs_rewritten += 1
    durable.fsync_dir(store.pack_dir)
    store.reload_packs()


def _clean_tmp(store: ObjectStore, cutoff: float) -> None:
    """Remove what crashes leave: temp files, and packs whose index was never published."""
    leftovers: list[Path] = []
    if store.tmp_dir.is_dir():
        leftovers.extend(store.tmp_dir.iterdir())
    for d in (store.pack_dir, store.dir, store.dir.parent):
        if d.is_dir():
            leftovers.extend(f for f in d.iterdir() if f.name.startswith(".") and f.name.endswith(".tmp"))
    if store.pack_dir.is_dir():
        leftovers.extend(p for p in store.pack_dir.glob("*.pack") if not p.with_suffix(".idx").exists())
    refs = store.dir.parent / "refs"
    if refs.is_dir() and not refs.is_symlink():
        # A ref's new value goes to ``.NAME.PID.new`` before its rename: one whose process is gone is dead.
        for folder, entries, _ in durable.walk_no_follow(refs):
            for name, st in entries:
                m = REF_TEMP.fullmatch(name)
                if m and st.st_mtime < cutoff and not durable.pid_alive(int(m.group(1))):
                    leftovers.append(refs / folder / name)
    for f in leftovers:
        try:
            if f.is_dir() and not f.is_symlink():
                # A staging folder (``checkout-*``) of a checkout or merge killed mid-way: gone once nothing in
                # it has changed for the grace period (gc holds the repository lock, which they hold too).
                if _newest(f) < cutoff:
                    durable.remove_tree(f)
            elif _old(f, cutoff):
                f.unlink()
        except FileNotFoundError:
            pass



def _newest(folder: Path) -> float:
    """The latest modification time of ``folder`` and anything in it."""
    newest = folder.lstat().st_mtime
    for _, entries, _ in durable.walk_no_follow(folder):
        for _, st in entries:
            newest = max(newest, st.st_mtime)
    return newest
