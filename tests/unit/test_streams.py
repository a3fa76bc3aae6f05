"""Stream plumbing and the archive framing: round trips and every kind of damage."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backup.errors import CorruptSnapshot
from backup.framing import pack, unpack
from backup.streams import IterStream, Meter, as_file, compress, decompress, rechunk, verify

members_strategy = st.lists(
    st.tuples(st.text(min_size=1, max_size=20), st.lists(st.binary(max_size=300), max_size=5)),
    max_size=5,
)


@given(members_strategy, st.integers(1, 64))
@settings(max_examples=200)
def test_pack_unpack_round_trip(members: list[tuple[str, list[bytes]]], piece: int) -> None:
    stream = list(rechunk(pack(members), piece))  # arbitrary re-chunking on the way
    unpacked = [(member.name, b"".join(member)) for member in unpack(stream)]
    assert unpacked == [(name, b"".join(chunks)) for name, chunks in members]


def test_unpack_skips_unread_members() -> None:
    archive = list(pack([("a", [b"1" * 10]), ("b", [b"2" * 5])]))
    names = [member.name for member in unpack(archive)]
    assert names == ["a", "b"]


@pytest.mark.parametrize("cut", [1, 5, 9, 20, -2, -1])
def test_truncated_archive_is_detected(cut: int) -> None:
    archive = b"".join(pack([("db/app", [b"x" * 100])]))
    with pytest.raises(CorruptSnapshot):
        for member in unpack([archive[:cut]]):
            member.skip()


def test_a_damaged_member_name_is_corrupt_not_a_decoding_crash() -> None:
    archive = bytearray(b"".join(pack([("db/app", [b"x" * 10])])))
    name_at = archive.index(b"db/app")
    archive[name_at] = 0xFF  # no UTF-8 sequence starts with 0xFF
    with pytest.raises(CorruptSnapshot, match="damaged member name"):
        list(unpack([bytes(archive)]))


def test_trailing_garbage_and_bad_header_are_detected() -> None:
    archive = b"".join(pack([("a", [b"x"])]))
    with pytest.raises(CorruptSnapshot, match="after its end"):
        list(unpack([archive + b"junk"]))
    with pytest.raises(CorruptSnapshot, match="bad header"):
        list(unpack([b"NOPE!" + archive[5:]]))


def test_compress_round_trip_and_truncation() -> None:
    data = [bytes([i % 251]) * 70_000 for i in range(40)]
    compressed = list(compress(data))
    assert b"".join(decompress(compressed)) == b"".join(data)
    joined = b"".join(compressed)
    with pytest.raises(CorruptSnapshot):
        b"".join(decompress([joined[: len(joined) // 2]]))


def test_a_highly_compressible_stream_decompresses_in_bounded_pieces() -> None:
    zeros = b"".join(compress(bytes(1 << 20) for _ in range(256)))  # 256 MiB -> ~8 KiB
    assert len(zeros) < 64 * 1024
    total, largest = 0, 0
    for piece in decompress([zeros]):  # one input chunk: the decoder's worst case
        total += len(piece)
        largest = max(largest, len(piece))
        assert not piece.strip(b"\0")
    assert total == 256 << 20 and largest <= 64 << 20


def test_meter_counts_and_hashes() -> None:
    seen: list[int] = []
    meter = Meter(progress=lambda done, _elapsed: seen.append(done), interval=0)
    chunks = [b"abc", b"", b"defg"]
    assert list(meter.measure(chunks)) == chunks
    assert meter.size == 7
    assert meter.sha256 == hashlib.sha256(b"abcdefg").hexdigest()
    assert seen[-1] == 7


def test_verify_accepts_match_and_rejects_mismatch() -> None:
    data = [b"hello ", b"world"]
    digest = hashlib.sha256(b"hello world").hexdigest()
    assert b"".join(verify(data, sha256=digest, size=11)) == b"hello world"
    with pytest.raises(CorruptSnapshot, match="sha256"):
        list(verify([b"hello_world"], sha256=digest, size=11))
    with pytest.raises(CorruptSnapshot, match="bytes"):
        list(verify(data, sha256=digest, size=12))


def test_iterstream_reads_across_chunks() -> None:
    raw = IterStream([b"x", b"yz"])
    assert raw.read(3) == b"x"  # raw streams may return short reads
    stream = as_file([b"ab", b"", b"cdef", b"g"])
    assert stream.read(3) == b"abc"
    assert stream.read() == b"defg"
    assert stream.read(1) == b""
