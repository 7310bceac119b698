"""Frames: round trips under any chunking, truncation, and size limits checked before reading."""

from __future__ import annotations

import os
import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kernel.errors import ProtocolError
from kernel.protocol import framing
from kernel.protocol.framing import (
    HEADER,
    MAX_FRAME_SIZE,
    FrameDecoder,
    encode_frame,
    encode_frames,
    write_all,
)

bodies = st.lists(st.binary(min_size=1, max_size=600), max_size=12)


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    chunks, start = [], 0
    for point in [*points, len(data)]:
        chunks.append(data[start:point])
        start = point
    return chunks


@settings(max_examples=300)
@given(bodies, st.lists(st.integers(min_value=0), max_size=30))
def test_any_sequence_of_frames_round_trips_under_any_chunking(
    frames: list[bytes], cuts: list[int]
) -> None:
    stream = encode_frames(frames)
    assert stream == b"".join(encode_frame(body) for body in frames)
    decoder = FrameDecoder()
    out: list[bytes] = []
    for chunk in split(stream, cuts):
        out.extend(decoder.feed(chunk))
    assert out == frames
    assert not decoder.incomplete
    decoder.close()


@given(st.lists(st.binary(min_size=1, max_size=300), min_size=1, max_size=6), st.data())
def test_truncated_input_is_reported_incomplete_not_hung(
    frames: list[bytes], data: st.DataObject
) -> None:
    stream = encode_frames(frames)
    boundaries = set()
    pos = 0
    for body in frames:
        boundaries.add(pos)
        pos += 4 + len(body)
    cut = data.draw(
        st.integers(min_value=1, max_value=len(stream) - 1).filter(lambda c: c not in boundaries)
    )
    decoder = FrameDecoder()
    got = decoder.feed(stream[:cut])
    assert got == frames[: len(got)]
    assert len(got) < len(frames)
    assert decoder.incomplete
    assert decoder.pending > 0
    with pytest.raises(ProtocolError, match="stream ended inside a frame"):
        decoder.close()


def test_byte_by_byte_feeding_of_a_large_frame_stays_linear() -> None:
    body = os.urandom(200_000)
    decoder = FrameDecoder()
    stream = encode_frame(body)
    out: list[bytes] = []
    for i in range(0, len(stream), 1000):
        out.extend(decoder.feed(stream[i : i + 1000]))
    assert out == [body]


@pytest.mark.parametrize("claim", [MAX_FRAME_SIZE + 1, 1 << 30, 2**32 - 1])
def test_oversized_length_raises_before_the_body_is_read_or_allocated(claim: int) -> None:
    decoder = FrameDecoder()
    tracemalloc.start()
    try:
        with pytest.raises(ProtocolError, match="exceeds the maximum"):
            decoder.feed(HEADER.pack(claim))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20, "the decoder allocated for a body it should have refused"


def test_oversized_claim_raises_even_when_the_header_arrives_in_pieces() -> None:
    decoder = FrameDecoder()
    header = HEADER.pack(2**32 - 1)
    assert decoder.feed(header[:3]) == []
    with pytest.raises(ProtocolError, match="exceeds the maximum"):
        decoder.feed(header[3:])


def test_oversized_claim_after_good_frames_still_raises() -> None:
    decoder = FrameDecoder()
    with pytest.raises(ProtocolError):
        decoder.feed(encode_frame(b"\x90") + HEADER.pack(1 << 30) + b"xx")


def test_zero_length_frame_is_invalid() -> None:
    with pytest.raises(ProtocolError, match="zero-length"):
        FrameDecoder().feed(HEADER.pack(0))
    with pytest.raises(ProtocolError, match="zero-length"):
        encode_frame(b"")


def test_text_on_the_stream_is_a_protocol_error() -> None:
    # "Hell" read as a length is ~1.2 GB: what a stray print looks like to a reader.
    with pytest.raises(ProtocolError, match="exceeds the maximum"):
        FrameDecoder().feed(b"Hello from a stray print\n")


def test_limits_are_inclusive_and_configurable() -> None:
    decoder = FrameDecoder(max_frame_size=8)
    assert decoder.feed(encode_frame(b"12345678", max_size=8)) == [b"12345678"]
    with pytest.raises(ProtocolError):
        decoder.feed(HEADER.pack(9))
    with pytest.raises(ProtocolError):
        encode_frame(b"123456789", max_size=8)
    assert framing.MAX_FRAME_SIZE == 16 * 1024 * 1024


def test_write_all_writes_everything_to_a_pipe() -> None:
    read_fd, write_fd = os.pipe()
    try:
        data = encode_frames([b"a" * 1000, b"b"])
        write_all(write_fd, data)
        os.close(write_fd)
        write_fd = -1
        got = b""
        while chunk := os.read(read_fd, 65536):
            got += chunk
        assert FrameDecoder().feed(got) == [b"a" * 1000, b"b"]
    finally:
        os.close(read_fd)
        if write_fd >= 0:
            os.close(write_fd)
