"""``memory://name/prefix`` remotes: a dictionary in this process, for fast tests of the layers above.

Every :class:`MemoryBackend` of one process sees the same store (open the same URL twice, get the same
data); other processes see nothing. One process-wide lock makes each operation atomic, compare-and-swap
included. The version token is a hash of the content.
"""

from __future__ import annotations

import threading
from typing import Any

from ..errors import RemoteError, UsageError
from .backend import (
    Backend,
    BackendError,
    RemoteNotFound,
    content_token,
    validate_key,
    validate_prefix,
)

_STORE: dict[str, bytes] = {}
_LOCK = threading.Lock()


class MemoryBackend(Backend):
    """A prefix of the process-wide in-memory store."""

    def __init__(self, url: str, root: str, connections: int) -> None:
        super().__init__(url, connections)
        self.root = root

    @classmethod
    def from_url(cls, url: str, connections: int, options: dict[str, Any]) -> MemoryBackend:
        if options:
            name = next(iter(options))
            raise UsageError(f"option {name!r} does not apply to memory:// remotes (only 'connections' does)")
        root = url[len("memory://") :].strip("/")
        if not root:
            raise RemoteError(
                f"invalid remote URL {url!r}: memory:// URLs need a name (memory://name/prefix)"
            )
        try:
            validate_prefix(root)
        except RemoteError:
            raise RemoteError(f"invalid remote URL {url!r}: empty, '.' or '..' path component") from None
        return cls(f"memory://{root}", root, connections)

    def _k(self, key: str) -> str:
        return f"{self.root}/{validate_key(key)}"

    def _missing(self, what: str) -> RemoteNotFound:
        return RemoteNotFound(f"{what}: not found", "not found")

    def read(self, key: str) -> bytes:
        k = self._k(key)
        self._count()
        with _LOCK:
            data = _STORE.get(k)
        if data is None:
            raise self._missing(f"cannot read {self._where(key)}")
        return data

    def read_range(self, key: str, start: int, end: int) -> bytes:
        where = f"cannot read bytes [{start}, {end}) of {self._where(key)}"
        if start < 0 or end < 0:
            raise RemoteError(f"{where}: negative range")
        if end <= start:
            validate_key(key)
            return b""
        data = self.read(key)
        if start >= len(data):
            reason = "requested range is beyond the end of the object"
            raise BackendError(f"{where}: {reason}", reason)
        return data[start:end]

    def read_many(self, keys: list[str]) -> dict[str, bytes]:
        unique = list(dict.fromkeys(validate_key(k) for k in keys))
        return {key: self.read(key) for key in unique}

    def read_ref(self, key: str) -> tuple[bytes, str] | None:
        k = self._k(key)
        self._count()
        with _LOCK:
            data = _STORE.get(k)
        return None if data is None else (data, content_token(data))

    def list(self, prefix: str) -> list[str]:
        prefix = validate_prefix(prefix)
        start = f"{self.root}/{prefix}/" if prefix else f"{self.root}/"
        skip = len(self.root) + 1
        self._count()
        with _LOCK:
            return sorted(k[skip:] for k in _STORE if k.startswith(start))

    def exists(self, key: str) -> bool:
        k = self._k(key)
        self._count()
        with _LOCK:
            return k in _STORE

    def size(self, key: str) -> int:
        return len(self.read(key))

    def write(self, key: str, data: bytes) -> None:
        k = self._k(key)
        self._count()
        with _LOCK:
            _STORE[k] = bytes(data)

    def write_if_absent(self, key: str, data: bytes) -> bool:
        k = self._k(key)
        self._count()
        with _LOCK:
            if k in _STORE:
                return False
            _STORE[k] = bytes(data)
            return True

    def write_many(self, items: dict[str, bytes]) -> None:
        for key, data in items.items():
            self.write(key, data)

    def upload_file(self, key: str, local_path: str) -> None:
        try:
            with open(local_path, "rb") as f:
                data = f.read()
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise BackendError(f"cannot upload {local_path} to {self._where(key)}: {reason}", reason) from exc
        self.write(key, data)

    def compare_and_swap(self, key: str, expected_token: str | None, data: bytes) -> bool:
        k = self._k(key)
        self._count()
        with _LOCK:
            current = _STORE.get(k)
            token = None if current is None else content_token(current)
            if token != expected_token:
                return False
            _STORE[k] = bytes(data)
            return True

    def delete(self, key: str) -> None:
        k = self._k(key)
        self._count()
        with _LOCK:
            _STORE.pop(k, None)


def clear(url: str | None = None) -> None:
    """Drop everything under ``url`` (a ``memory://`` URL), or the whole store; for tests."""
    with _LOCK:
        if url is None:
            _STORE.clear()
            return
        root = url[len("memory://") :].strip("/") + "/"
        for k in [k for k in _STORE if k.startswith(root)]:
            del _STORE[k]
