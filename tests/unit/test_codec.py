"""Object payload codec: raw for incompressible data, zstd otherwise; decoding refuses bombs."""

from __future__ import annotations

import os
import struct

import pytest
import zstandard

from dvx import codec
from dvx.errors import CorruptObject

OID = "0" * 64
TEXT = b"".join(b"line %d of a very ordinary CSV file,with,some,columns\n" % i for i in range(20000))


def test_random_data_is_stored_raw() -> None:
    data = os.urandom(300_000)
    kind, payload = codec.encode(data, 3)
    assert kind == codec.RAW
    assert bytes(payload) == data


@pytest.mark.parametrize("size", [1 << 10, 8 << 10, 60 << 10, 64 << 10, 1 << 20])
def test_random_data_is_raw_and_text_zstd_at_every_size(size: int) -> None:
    # Below 64 KiB nothing is sampled: the whole object is compressed and kept only if that saves 5%.
    noise = os.urandom(size)
    assert codec.encode(noise, 1) == (codec.RAW, noise)
    kind, payload = codec.encode(TEXT[:size], 1)
    assert kind == codec.ZSTD
    assert len(payload) < size // 2


def test_from_64_kib_the_decision_is_taken_on_three_samples() -> None:
    # Text except where the samples are taken (start, a third in, end): judged by the samples alone.
    size = 256 << 10
    data = bytearray(TEXT[:size])
    for at in (0, size // 3, size - 4096):
        data[at : at + 4096] = os.urandom(4096)
    assert codec.looks_incompressible(bytes(data))
    assert codec.encode(bytes(data), 1)[0] == codec.RAW
    assert not codec.looks_incompressible(TEXT[: 100 << 10])
    assert not codec.looks_incompressible(os.urandom(60 << 10))  # too small to sample


def test_tiny_objects_are_stored_raw() -> None:
    assert codec.encode(b"a" * 10, 3)[0] == codec.RAW


def test_text_is_zstd_and_much_smaller() -> None:
    kind, payload = codec.encode(TEXT, 3)
    assert kind == codec.ZSTD
    assert len(payload) < len(TEXT) // 5
    assert zstandard.frame_content_size(payload) == len(TEXT)


@pytest.mark.parametrize("data", [b"", b"short", TEXT, os.urandom(200_000)])
def test_round_trip(data: bytes) -> None:
    kind, payload = codec.encode(data, 3)
    assert codec.decode(kind, payload, len(data), OID) == data


def test_raw_payload_of_wrong_size_is_corrupt() -> None:
    with pytest.raises(CorruptObject):
        codec.decode(codec.RAW, b"abc", 4, OID)


def test_unknown_codec_is_corrupt() -> None:
    with pytest.raises(CorruptObject):
        codec.decode(7, b"abc", 3, OID)


def test_frame_size_different_from_recorded_size_is_corrupt() -> None:
    frame = zstandard.ZstdCompressor(write_content_size=True).compress(TEXT)
    with pytest.raises(CorruptObject):
        codec.decode(codec.ZSTD, frame, len(TEXT) - 1, OID)
    with pytest.raises(CorruptObject):
        codec.decode(codec.ZSTD, frame, len(TEXT) + 1, OID)


def _with_declared_size(frame: bytes, declared: int) -> bytes:
    """Rewrite a zstd frame header so that it declares ``declared`` bytes (8-byte content size field)."""
    assert frame[:4] == b"\x28\xb5\x2f\xfd"
    fhd = frame[4]
    fcs_flag, single_segment, dict_flag = fhd >> 6, (fhd >> 5) & 1, fhd & 3
    assert dict_flag == 0
    pos = 5 + (0 if single_segment else 1)  # window descriptor only without single segment
    fcs_len = {0: 1 if single_segment else 0, 1: 2, 2: 4, 3: 8}[fcs_flag]
    new_fhd = (3 << 6) | (fhd & 0x3F)
    return frame[:4] + bytes([new_fhd]) + frame[5:pos] + struct.pack("<Q", declared) + frame[pos + fcs_len :]


def test_frame_declaring_a_huge_size_is_refused_without_allocating() -> None:
    data = bytes(1 << 20)
    frame = _with_declared_size(zstandard.ZstdCompressor(write_content_size=True).compress(data), 1 << 40)
    assert zstandard.frame_content_size(frame) == 1 << 40  # the bomb is well formed
    # The index records the true size: the header disagrees.
    with pytest.raises(CorruptObject):
        codec.decode(codec.ZSTD, frame, len(data), OID)
    # A hostile index that agrees with the header: over the hard cap, refused before decompressing.
    with pytest.raises(CorruptObject):
        codec.decode(codec.ZSTD, frame, 1 << 40, OID)


def test_frame_without_content_size_is_refused() -> None:
    frame = zstandard.ZstdCompressor(write_content_size=False).compress(TEXT)
    with pytest.raises(CorruptObject):
        codec.decode(codec.ZSTD, frame, len(TEXT), OID)


def test_truncated_or_garbage_frame_is_corrupt_not_zstd_error() -> None:
    frame = zstandard.ZstdCompressor(write_content_size=True).compress(TEXT)
    with pytest.raises(CorruptObject):
        codec.decode(codec.ZSTD, frame[: len(frame) // 2], len(TEXT), OID)
    with pytest.raises(CorruptObject):
        codec.decode(codec.ZSTD, b"not zstd at all", len(TEXT), OID)


def test_corrupt_error_names_the_object() -> None:
    with pytest.raises(CorruptObject) as info:
        codec.decode(codec.RAW, b"abc", 4, "ab" * 32)
    assert info.value.object_id == "ab" * 32
    assert "ab" * 32 in str(info.value)


def test_encode_many_decides_like_encode_for_each_object() -> None:
    datas = [TEXT[:5000], os.urandom(5000), b"tiny", b"", TEXT[:300_000], os.urandom(300_000), TEXT[:70_000] * 2]
    many = codec.encode_many(datas, 1)
    assert [kind for kind, _ in many] == [codec.encode(d, 1)[0] for d in datas]
    for data, (kind, payload) in zip(datas, many):
        assert codec.decode(kind, bytes(payload), len(data), OID) == data
    assert many[0][0] == codec.ZSTD and many[1] == (codec.RAW, datas[1])
    assert codec.encode_many([], 1) == []
