"""Helpers for the merge tests: trees and commits made directly through the store (no files on disk).

A *spec* is ``{path: code}`` where a code names an entry: ``f3`` a file with content 3, ``x3`` the same content
executable, ``l3`` a symlink to ``target3``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import types
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from dvx.ids import hash_bytes
from dvx.model import DIR, FILE, LINK, Entry, TreeNode, decode_tree, link_entry
from dvx.refs import HEADS
from dvx.repo import Repo
from dvx.store import BLOB, TREE
from dvx.trees import TreeReader, build

ROOT = Path(__file__).resolve().parents[2]


def content(n: str) -> bytes:
    return f"content {n}\n".encode()


def entry(name: str, code: str) -> Entry:
    kind, n = code[0], code[1:]
    if kind in "fx":
        data = content(n)
        return Entry(name, FILE, hash_bytes(data), len(data), kind == "x")
    if kind == "l":
        return link_entry(name, f"target{n}")
    raise ValueError(code)


def flat_entries(spec: Mapping[str, str]) -> dict[str, Entry]:
    return {p: entry(p.rpartition("/")[2], c) for p, c in spec.items()}


def code_of(e: Entry) -> str:
    """Inverse of :func:`entry` for the codes used in tests."""
    if e.kind == LINK:
        assert e.target is not None
        return "l" + e.target[len("target") :]
    for n in range(100):
        if hash_bytes(content(str(n))) == e.id:
            return ("x" if e.executable else "f") + str(n)
    return f"?{e.id[:8]}"


def write_tree(writer: Any, spec: Mapping[str, str]) -> str:
    """Store blobs and trees for ``spec`` through ``writer``; return the root tree id."""
    for code in set(spec.values()):
        if code[0] in "fx":
            data = content(code[1:])
            writer.add(hash_bytes(data), BLOB, data)
    return build(writer, flat_entries(spec))


def make_tree(repo: Repo, spec: Mapping[str, str]) -> str:
    with repo.store.writer() as w:
        return write_tree(w, spec)


def tree_id(spec: Mapping[str, str]) -> str:
    """The id ``spec``'s root tree gets (computed, nothing stored)."""
    return build(MemoryStore(), flat_entries(spec))  # type: ignore[arg-type]


def make_commit(repo: Repo, spec: Mapping[str, str], parents: list[str], message: str = "c") -> str:
    return repo.write_commit(make_tree(repo, spec), parents, message)


def set_branch(repo: Repo, name: str, commit: str) -> None:
    repo.refs.update(HEADS + name, commit, repo.refs.get(HEADS + name))


def flat_codes(source: Any, tree_id: str) -> dict[str, str]:
    """``{path: code}`` of a tree read through ``source`` (anything with ``read_dir``)."""
    out: dict[str, str] = {}

    def walk(tid: str, prefix: str) -> None:
        for e in source.read_dir(tid):
            if e.kind == DIR:
                walk(e.id, prefix + e.name + "/")
            else:
                out[prefix + e.name] = code_of(e)

    walk(tree_id, "")
    return out


class MemoryStore:
    """Just enough of ObjectStore for TreeReader and trees.build: trees kept in a dict."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    def get(self, object_id: str, expect_type: int | None = None) -> tuple[int, bytes]:
        return TREE, self.objects[object_id]

    def has(self, object_id: str) -> bool:
        return object_id in self.objects

    def add(self, object_id: str, type_: int, data: bytes) -> bool:
        if type_ == TREE:
            self.objects[object_id] = bytes(data)
        return True


class MemoryTrees:
    """An in-memory tree source for pure merge tests."""

    def __init__(self) -> None:
        self.store = MemoryStore()
        self.reader = TreeReader(self.store)  # type: ignore[arg-type]

    def tree(self, spec: Mapping[str, str]) -> str:
        return build(self.store, flat_entries(spec))  # type: ignore[arg-type]

    def node(self, tree_id: str) -> TreeNode:
        return decode_tree(self.store.objects[tree_id], tree_id)


def count_reads(repo: Repo) -> list[int]:
    """From now on, the type of every object ``repo`` reads from its store, in order (the list returned)."""
    reads: list[int] = []
    get = repo.store.get

    def counting_get(object_id: str, expect_type: int | None = None) -> tuple[int, bytes]:
        t, data = get(object_id, expect_type)
        reads.append(t)
        return t, data

    repo.store.get = counting_get  # type: ignore[method-assign]
    return reads


# --- working-tree repositories and the CLI ---------------------------------------------------------------


def write_files(root: Path, files: Mapping[str, str | None]) -> None:
    """Write (text) or delete (None) files under ``root``."""
    for rel, text in files.items():
        p = root / rel
        if text is None:
            if p.is_dir() and not p.is_symlink():
                import shutil

                shutil.rmtree(p)
            elif p.exists() or p.is_symlink():
                p.unlink()
            continue
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)


def snapshot(root: Path) -> dict[str, Any]:
    """Everything a failed merge must leave untouched: files (bytes and modes), refs, HEAD, objects."""
    files: dict[str, Any] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        if rel_dir == ".dvx" or rel_dir.startswith(".dvx" + os.sep):
            continue
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            full = os.path.join(dirpath, name)
            st = os.lstat(full)
            if os.path.islink(full):
                files[os.path.relpath(full, root)] = ("link", os.readlink(full))
            else:
                files[os.path.relpath(full, root)] = ("file", st.st_mode, Path(full).read_bytes())
    dvx = root / ".dvx"
    refs = {str(p.relative_to(dvx)): p.read_bytes() for p in (dvx / "refs").rglob("*") if p.is_file()}
    objects = sorted(str(p.relative_to(dvx)) for p in (dvx / "objects").rglob("*") if p.is_file())
    return {"files": files, "refs": refs, "HEAD": (dvx / "HEAD").read_bytes(), "objects": objects}


def run_dvx(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, DVX_AUTHOR="Test <test@example.com>", NO_COLOR="1")
    env.pop("DVX_DIR_ROOT", None)
    proc = subprocess.run(
        [sys.executable, "-m", "dvx.cli.main", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"dvx {' '.join(args)} failed ({proc.returncode}): {proc.stderr}")
    return proc


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Repo]:
    monkeypatch.setenv("DVX_AUTHOR", "Test <test@example.com>")
    r = Repo.init(tmp_path / "repo")
    yield r
    r.close()


@pytest.fixture
def mem() -> MemoryTrees:
    return MemoryTrees()


@pytest.fixture(scope="session")
def h() -> Any:
    """These helpers, as a fixture (test modules must not ``import conftest``: other test folders have one)."""
    return types.SimpleNamespace(**globals())
