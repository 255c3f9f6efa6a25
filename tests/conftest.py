"""Shared fixtures: a fresh repository, the real ``dvx`` CLI as a subprocess, and folder snapshots.

Kept generic on purpose: anything specific to one test module lives in that module.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from dvx.repo import Repo

# Real S3 and GCS servers and remote URL fixtures, for every test folder (see remote_servers.py).
pytest_plugins = ["remote_servers"]

CLI = [sys.executable, "-m", "dvx.cli.main"]

# Deterministic author, no colours, and a short repository-lock wait so that a lock that wrongly stays
# held shows up as a failure instead of a 30 s hang.
CLI_ENV = {"DVX_AUTHOR": "Test User <test@example.com>", "NO_COLOR": "1", "DVX_LOCK_TIMEOUT": "5"}

os.environ.setdefault("DVX_AUTHOR", CLI_ENV["DVX_AUTHOR"])  # for in-process Repo calls


def _cli_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment the CLI runs with: this one minus injected faults, plus :data:`CLI_ENV` and ``extra``."""
    env = {k: v for k, v in os.environ.items() if k not in ("DVX_FAULT", "DVX_DIR_ROOT")}
    env.update(CLI_ENV)
    env.update(extra or {})
    return env


def _run_dvx(
    args: Sequence[str],
    cwd: str | os.PathLike[str],
    env: Mapping[str, str] | None = None,
    check: bool | None = None,
    *,
    timeout: float = 120,
    prefix: Sequence[str] = (),
) -> subprocess.CompletedProcess[str]:
    """Run ``dvx ARGS`` in ``cwd``; ``check=True`` wants exit 0, ``check=False`` wants a failure.

    ``prefix`` goes before the interpreter (e.g. ``setpriv ...`` to drop privileges).
    """
    proc = subprocess.run(
        [*prefix, *CLI, *args],
        cwd=cwd,
        env=_cli_env(env),
        capture_output=True,
        text=True,
        errors="surrogateescape",
        timeout=timeout,
    )
    if check is True:
        assert proc.returncode == 0, f"dvx {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}"
    elif check is False:
        assert proc.returncode != 0, f"dvx {' '.join(args)} should have failed:\n{proc.stdout}"
    return proc


def _snapshot(root: str | os.PathLike[str], skip: Sequence[str] = ()) -> dict[str, tuple[Any, ...]]:
    """Every entry under ``root`` (not following links): dirs, files (exec bit, bytes), links (target).

    ``skip``: ``/``-separated relative paths left out together with everything below them.
    """
    base = Path(root)
    out: dict[str, tuple[Any, ...]] = {}
    skipped = set(skip)
    stack = [base]
    while stack:
        current = stack.pop()
        for entry in os.scandir(current):
            path = Path(entry.path)
            rel = path.relative_to(base).as_posix()
            if rel in skipped:
                continue
            st = entry.stat(follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                out[rel] = ("d",)
                stack.append(path)
            elif stat.S_ISLNK(st.st_mode):
                out[rel] = ("l", os.readlink(path))
            elif stat.S_ISREG(st.st_mode):
                out[rel] = ("f", bool(st.st_mode & 0o100), path.read_bytes())
            else:
                out[rel] = ("special", stat.S_IFMT(st.st_mode))
    return out


def _write_files(root: str | os.PathLike[str], files: Mapping[str, bytes | str]) -> None:
    """Create files (and their parent folders) from ``{relative path: content}``."""
    for rel, content in files.items():
        path = Path(root, rel)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)


@pytest.fixture(scope="session")
def run_dvx() -> Callable[..., subprocess.CompletedProcess[str]]:
    return _run_dvx


@pytest.fixture(scope="session")
def dvx_argv() -> list[str]:
    """The command line that starts the CLI, for tests that manage the process themselves (Popen, kill)."""
    return list(CLI)


@pytest.fixture(scope="session")
def cli_env() -> Callable[[Mapping[str, str] | None], dict[str, str]]:
    return _cli_env


@pytest.fixture(scope="session")
def snapshot() -> Callable[..., dict[str, tuple[Any, ...]]]:
    return _snapshot


@pytest.fixture(scope="session")
def write_files() -> Callable[[str | os.PathLike[str], Mapping[str, bytes | str]], None]:
    return _write_files


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[Repo]:
    """A fresh, empty repository in ``tmp_path/repo`` (its working tree is ``repo.root``)."""
    r = Repo.init(tmp_path / "repo")
    yield r
    r.close()
