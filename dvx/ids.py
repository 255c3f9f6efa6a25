"""Content ids: BLAKE3-256 of the uncompressed bytes, written as 64 lowercase hex digits."""

from __future__ import annotations

import re

import blake3

ID_HEX_LEN = 64
ID_BYTES = 32
_HEX_ID = re.compile(r"[0-9a-f]{64}\Z")
_HEX_PREFIX = re.compile(r"[0-9a-f]{4,64}\Z")

# BLAKE3 in Rust releases the GIL and can use several threads; past this size a second thread pays off.
_MULTITHREAD_FROM = 8 << 20


def hash_bytes(data: bytes | bytearray | memoryview) -> str:
    """The content id of ``data``."""
    if len(data) >= _MULTITHREAD_FROM:
        return blake3.blake3(data, max_threads=blake3.blake3.AUTO).hexdigest()
    return blake3.blake3(data).hexdigest()


def hasher() -> blake3.blake3:
    """An incremental hasher whose ``hexdigest()`` is a content id."""
    return blake3.blake3()


def is_id(text: str) -> bool:
    """True for a full, canonical (lowercase) hex id."""
    return len(text) == ID_HEX_LEN and not text.strip("0123456789abcdef")


def is_id_prefix(text: str) -> bool:
    """True for 4 to 64 lowercase hex digits: what a user may abbreviate an id to."""
    return bool(_HEX_PREFIX.match(text))


def to_bytes(object_id: str) -> bytes:
    return bytes.fromhex(object_id)


def from_bytes(raw: bytes) -> str:
    return raw.hex()
