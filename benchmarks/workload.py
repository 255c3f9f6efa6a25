"""Deterministic benchmark workload: a dataset tree (v1) and a "1% change" applied to it (v2).

The same ``seed`` (and ``scale``) always produces byte-identical trees, on any machine: every byte comes from
``random.Random`` instances seeded from strings, whose output is stable across Python versions (>= 3.9).

Full-scale layout (``scale=1.0``), relative to ``root``::

    dir000/file00000.csv ... dir199/file19999.bin   20,000 small files of 2-64 KiB in 200 folders; the
                                                    even-numbered ones are text (CSV-like lines drawn from a
                                                    seeded vocabulary, compresses to ~1/3), the odd-numbered
                                                    ones random bytes (incompressible)
    big/big0.csv                                    150 MiB of text
    big/big1.bin, big/big2.bin                      150 MiB of random bytes each

``scale`` multiplies the file and folder counts and the big files' sizes. ``mutate`` then modifies 1% of the
small files, deletes and adds a few, rewrites 1 MiB in the middle of one big file and appends 1 MiB to
another, and reports how many bytes changed, raw and zstd-compressed (level 3), so a version store can be
judged on how much it grows for the change.

Importing this module has no side effects; generation needs only the standard library, ``mutate`` also
needs ``zstandard``.
"""

from __future__ import annotations

import hashlib
import os
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

KiB = 1 << 10
MiB = 1 << 20

TEXT_SUFFIXES = (".csv", ".txt")
BIG_DIR = "big"

_CORPUS_SIZE = 16 * MiB  # text pieces are drawn from a seeded corpus this large
_WRITE_BLOCK = 8 * MiB  # big files are produced and written in blocks of this size


# ----------------------------------------------------------------------------------------------------------
# Specification and results


@dataclass(frozen=True)
class BigFile:
    path: str  # relative, "/"-separated
    kind: str  # "text" or "random"
    size: int


@dataclass(frozen=True)
class WorkloadSpec:
    """What ``generate`` writes. ``WorkloadSpec.scaled(f)`` is the standard workload at scale ``f``."""

    n_small: int = 20_000
    n_dirs: int = 200
    small_min: int = 2 * KiB
    small_max: int = 64 * KiB
    big: tuple[BigFile, ...] = (
        BigFile("big/big0.csv", "text", 150 * MiB),
        BigFile("big/big1.bin", "random", 150 * MiB),
        BigFile("big/big2.bin", "random", 150 * MiB),
    )

    @classmethod
    def scaled(cls, scale: float) -> WorkloadSpec:
        if scale <= 0:
            raise ValueError("scale must be > 0")
        base = cls()
        return cls(
            n_small=max(1, round(base.n_small * scale)),
            n_dirs=max(1, round(base.n_dirs * scale)),
            big=tuple(BigFile(b.path, b.kind, max(64 * KiB, round(b.size * scale))) for b in base.big),
        )


@dataclass
class WorkloadInfo:
    root: str
    seed: int
    scale: float
    n_files: int
    n_dirs: int
    n_small: int
    n_text: int
    n_random: int
    small_bytes: int
    big_files: list[BigFile]
    big_bytes: int
    total_bytes: int


@dataclass
class ChangeInfo:
    seed: int
    modified: list[str] = field(default_factory=list)
    added: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    # (path, offset, length) of the region rewritten in place in a big file
    big_rewritten: list[tuple[str, int, int]] = field(default_factory=list)
    # (path, old size, appended length)
    big_appended: list[tuple[str, int, int]] = field(default_factory=list)
    changed_bytes: int = 0  # raw bytes of new content (modified + added files, big regions)
    compressed_changed_bytes: int = 0  # the same content, each piece zstd-compressed at level 3

    @property
    def n_changed_files(self) -> int:
        return (
            len(self.modified)
            + len(self.added)
            + len(self.deleted)
            + len({p for p, *_ in self.big_rewritten} | {p for p, *_ in self.big_appended})
        )


# ----------------------------------------------------------------------------------------------------------
# Content generators


def _rng(seed: int, *parts: object) -> random.Random:
    return random.Random("/".join([str(seed), *map(str, parts)]))


_corpus_cache: dict[int, bytes] = {}


def text_corpus(seed: int) -> bytes:
    """16 MiB of CSV-like lines from a seeded vocabulary (cached per seed for the process)."""
    corpus = _corpus_cache.get(seed)
    if corpus is not None:
        return corpus
    rng = _rng(seed, "corpus")
    letters = "abcdefghijklmnopqrstuvwxyz"
    words = ["".join(rng.choices(letters, k=rng.randint(2, 10))).encode() for _ in range(2048)]
    words += [str(rng.randint(0, 99_999)).encode() for _ in range(512)]
    words += [f"{rng.uniform(-1000, 1000):.3f}".encode() for _ in range(512)]
    seps = [b","] * 7 + [b"\n"]
    phrases = [
        b"".join(rng.choice(words) + rng.choice(seps) for _ in range(rng.randint(2, 6)))
        for _ in range(1 << 16)
    ]
    indices = memoryview(rng.randbytes(2 * (_CORPUS_SIZE // 20 + 1))).cast("H")
    corpus = b"".join(map(phrases.__getitem__, indices))[:_CORPUS_SIZE]
    _corpus_cache[seed] = corpus
    return corpus


def _text_pieces(corpus: bytes, rng: random.Random, size: int) -> Iterator[bytes]:
    """Whole lines drawn from random places of ``corpus``, ``size`` bytes in total (the last one cut)."""
    remaining = size
    limit = len(corpus) - 16 * KiB
    while remaining > 0:
        start = corpus.find(b"\n", rng.randrange(limit)) + 1
        want = min(remaining, rng.randint(256, 8 * KiB))
        end = corpus.find(b"\n", start + want - 1) + 1
        if end <= start or end - start > remaining:
            end = start + min(want, remaining)
        piece = corpus[start:end]
        remaining -= len(piece)
        yield piece


def text_bytes(corpus: bytes, rng: random.Random, size: int) -> bytes:
    return b"".join(_text_pieces(corpus, rng, size))


def content_bytes(kind: str, corpus: bytes, rng: random.Random, size: int) -> bytes:
    if kind == "text":
        return text_bytes(corpus, rng, size)
    return rng.randbytes(size)


def kind_of(path: str) -> str:
    return "text" if path.endswith(TEXT_SUFFIXES) else "random"


def _small_path(i: int, n_dirs: int) -> str:
    ext = ".csv" if i % 2 == 0 else ".bin"
    return f"dir{i % n_dirs:03d}/file{i:05d}{ext}"


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def _write_big(path: Path, kind: str, corpus: bytes, rng: random.Random, size: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        done = 0
        while done < size:
            n = min(_WRITE_BLOCK, size - done)
            f.write(content_bytes(kind, corpus, rng, n))
            done += n


# ----------------------------------------------------------------------------------------------------------
# Public API


def generate(
    root: Path, scale: float = 1.0, seed: int = 0, *, spec: WorkloadSpec | None = None
) -> WorkloadInfo:
    """Write workload v1 into ``root`` (created if needed; existing files of the same names are overwritten).

    ``spec`` overrides the scaled standard layout (``scale`` is then only recorded).
    """
    root = Path(root)
    spec = spec or WorkloadSpec.scaled(scale)
    corpus = text_corpus(seed)
    root.mkdir(parents=True, exist_ok=True)
    for d in range(spec.n_dirs):
        (root / f"dir{d:03d}").mkdir(exist_ok=True)

    small_bytes = n_text = 0
    for i in range(spec.n_small):
        rel = _small_path(i, spec.n_dirs)
        rng = _rng(seed, "small", i)
        size = rng.randint(spec.small_min, spec.small_max)
        kind = kind_of(rel)
        n_text += kind == "text"
        with open(root / rel, "wb") as f:
            f.write(content_bytes(kind, corpus, rng, size))
        small_bytes += size

    for big in spec.big:
        _write_big(root / big.path, big.kind, corpus, _rng(seed, "big", big.path), big.size)

    big_bytes = sum(b.size for b in spec.big)
    return WorkloadInfo(
        root=str(root),
        seed=seed,
        scale=scale,
        n_files=spec.n_small + len(spec.big),
        n_dirs=spec.n_dirs + (1 if spec.big else 0),
        n_small=spec.n_small,
        n_text=n_text,
        n_random=spec.n_small - n_text,
        small_bytes=small_bytes,
        big_files=list(spec.big),
        big_bytes=big_bytes,
        total_bytes=small_bytes + big_bytes,
    )


def list_files(root: Path) -> list[str]:
    """All regular files under ``root`` as sorted "/"-separated relative paths, skipping dot-directories."""
    root = Path(root)
    out: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        rel_dir = os.path.relpath(dirpath, root)
        for name in filenames:
            out.append(name if rel_dir == "." else f"{rel_dir}/{name}".replace(os.sep, "/"))
    return sorted(out)


def mutate(root: Path, seed: int = 0) -> ChangeInfo:
    """Apply the "1% change" to a tree made by ``generate`` (deterministic for a given tree and seed).

    Small files are those outside ``big/``: 1% of them (at least one) get new content of the same kind and a
    new size, a few (0.05%, at least one) are deleted and as many added. In the big files, 1 MiB in the
    middle of the first random one is rewritten and 1 MiB appended to the first text one (smaller regions for
    files under 4 MiB; with a single big file both happen to it).
    """
    import zstandard  # only needed here

    root = Path(root)
    cctx = zstandard.ZstdCompressor(level=3)
    corpus = text_corpus(seed)
    rng = _rng(seed, "mutate")
    info = ChangeInfo(seed=seed)

    files = list_files(root)
    bigs = [p for p in files if p.startswith(BIG_DIR + "/")]
    small = [p for p in files if not p.startswith(BIG_DIR + "/")]

    def account(data: bytes) -> None:
        info.changed_bytes += len(data)
        info.compressed_changed_bytes += len(cctx.compress(data))

    if small:
        n_mod = max(1, round(len(small) * 0.01))
        n_few = max(1, round(len(small) * 0.0005))
        n_del = min(n_few, max(0, len(small) - n_mod))
        picks = rng.sample(small, n_mod + n_del)
        for rel in sorted(picks[:n_mod]):
            frng = _rng(seed, "modify", rel)
            data = content_bytes(kind_of(rel), corpus, frng, frng.randint(2 * KiB, 64 * KiB))
            _write(root / rel, data)
            account(data)
            info.modified.append(rel)
        for rel in sorted(picks[n_mod:]):
            (root / rel).unlink()
            info.deleted.append(rel)
        dirs = sorted({rel.rsplit("/", 1)[0] for rel in small if "/" in rel}) or [""]
        for k in range(n_few):
            ext = ".csv" if k % 2 == 0 else ".bin"
            d = rng.choice(dirs)
            rel = f"{d}/new{k:05d}{ext}" if d else f"new{k:05d}{ext}"
            n = 0
            while (root / rel).exists():
                n += 1
                rel = f"{d}/new{k:05d}-{n}{ext}" if d else f"new{k:05d}-{n}{ext}"
            frng = _rng(seed, "add", rel)
            data = content_bytes(kind_of(rel), corpus, frng, frng.randint(2 * KiB, 64 * KiB))
            _write(root / rel, data)
            account(data)
            info.added.append(rel)

    if bigs:
        rewrite = next((p for p in bigs if kind_of(p) == "random"), bigs[0])
        others = [p for p in bigs if p != rewrite]
        append = next((p for p in others if kind_of(p) == "text"), others[0] if others else rewrite)

        path = root / rewrite
        size = path.stat().st_size
        length = min(MiB, max(1, size // 4))
        offset = (size - length) // 2
        data = content_bytes(kind_of(rewrite), corpus, _rng(seed, "rewrite", rewrite), length)
        with open(path, "r+b") as f:
            f.seek(offset)
            f.write(data)
        account(data)
        info.big_rewritten.append((rewrite, offset, length))

        path = root / append
        size = path.stat().st_size
        length = min(MiB, max(64 * KiB, size // 4))
        data = content_bytes(kind_of(append), corpus, _rng(seed, "append", append), length)
        with open(path, "ab") as f:
            f.write(data)
        account(data)
        info.big_appended.append((append, size, length))

    return info


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(4 * MiB):
            h.update(block)
    return h.hexdigest()


def tree_digest(root: Path) -> str:
    """One hash over every file's relative path and content (dot-directories skipped)."""
    root = Path(root)
    h = hashlib.sha256()
    for rel in list_files(root):
        h.update(rel.encode() + b"\0" + file_digest(root / rel).encode() + b"\n")
    return h.hexdigest()
