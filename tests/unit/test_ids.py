"""Content ids: BLAKE3-256 hex of the uncompressed bytes."""

from __future__ import annotations

import os

import blake3
import pytest

from dvx import ids


def test_hash_bytes_is_blake3_hex() -> None:
    assert ids.hash_bytes(b"") == "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
    data = os.urandom(1000)
    assert ids.hash_bytes(data) == blake3.blake3(data).hexdigest()
    assert ids.hash_bytes(memoryview(data)) == ids.hash_bytes(bytearray(data))


def test_multithreaded_hash_of_large_input_equals_plain_blake3() -> None:
    data = os.urandom(9 << 20)  # past the size where a second thread is used
    assert ids.hash_bytes(data) == blake3.blake3(data).hexdigest()


def test_incremental_hasher_matches_one_shot() -> None:
    data = os.urandom(300_000)
    h = ids.hasher()
    for i in range(0, len(data), 7777):
        h.update(data[i : i + 7777])
    assert h.hexdigest() == ids.hash_bytes(data)


def test_is_id_accepts_only_canonical_lowercase_64_hex() -> None:
    good = ids.hash_bytes(b"x")
    assert ids.is_id(good)
    assert not ids.is_id(good.upper())
    assert not ids.is_id(good[:-1])
    assert not ids.is_id(good + "0")
    assert not ids.is_id(good + "\n")
    assert not ids.is_id("g" * 64)


@pytest.mark.parametrize("prefix", ["abcd", "0123456789", "f" * 64])
def test_is_id_prefix_accepts_4_to_64_hex(prefix: str) -> None:
    assert ids.is_id_prefix(prefix)


@pytest.mark.parametrize("prefix", ["", "abc", "ABCD", "abcg", "f" * 65, "abcd\n", "ab cd"])
def test_is_id_prefix_refuses(prefix: str) -> None:
    assert not ids.is_id_prefix(prefix)


def test_bytes_round_trip() -> None:
    oid = ids.hash_bytes(b"round trip")
    raw = ids.to_bytes(oid)
    assert len(raw) == ids.ID_BYTES
    assert ids.from_bytes(raw) == oid
