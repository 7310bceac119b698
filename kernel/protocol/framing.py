"""Length-prefixed frames: a 4-byte big-endian unsigned length, then that many bytes of body.

This is the transport layer under :mod:`kernel.protocol.messages` (pynvim/LSP layering:
transport → framing → session). Both sides check a claimed length against
:data:`MAX_FRAME_SIZE` as soon as the 4 header bytes arrive, before waiting for or allocating
the body, so a broken or hostile peer cannot make the other side buffer a gigabyte.

Read with ``os.read`` on the raw file descriptor and :meth:`FrameDecoder.feed` the bytes:
``msgpack.Unpacker(sys.stdin.buffer)`` blocks forever trying to fill its buffer (DESIGN §8).
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable

from kernel.errors import ProtocolError

#: The frame header: the body length as a big-endian unsigned 32-bit integer.
HEADER = struct.Struct(">I")
HEADER_SIZE = HEADER.size

#: Largest body either side accepts or sends (16 MiB). A longer claim is a protocol error.
MAX_FRAME_SIZE = 16 * 1024 * 1024

#: How much to ask ``os.read`` for at a time; a pipe holds 64 KiB on Linux.
READ_SIZE = 256 * 1024

_pack_header = HEADER.pack
_unpack_header = HEADER.unpack_from


def check_length(length: int, max_size: int = MAX_FRAME_SIZE) -> None:
    """Raise :class:`ProtocolError` unless ``0 < length <= max_size``."""
    if length == 0:
        raise ProtocolError("zero-length frame (a frame carries exactly one msgpack message)")
    if length > max_size:
        raise ProtocolError(
            f"frame of {length} bytes exceeds the maximum of {max_size} bytes"
            " (is something else writing to the provider's stdout?)"
        )


def encode_frame(body: bytes, max_size: int = MAX_FRAME_SIZE) -> bytes:
    """``body`` with its length header; raises :class:`ProtocolError` if it is too long."""
    length = len(body)
    if not 0 < length <= max_size:
        check_length(length, max_size)
    return _pack_header(length) + body


def encode_frames(bodies: Iterable[bytes], max_size: int = MAX_FRAME_SIZE) -> bytes:
    """Several frames joined, to hand to one ``write`` call (pipelined answers)."""
    parts: list[bytes] = []
    for body in bodies:
        length = len(body)
        if not 0 < length <= max_size:
            check_length(length, max_size)
        parts.append(_pack_header(length))
        parts.append(body)
    return b"".join(parts)


def write_all(fd: int, data: bytes) -> None:
    """Write every byte of ``data`` to a blocking file descriptor (pipes may write partially)."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


class FrameDecoder:
    """Incremental frame splitter: feed it whatever ``os.read`` returned, get whole bodies back.

    Copies each byte at most twice however the stream is chunked, and never buffers more than
    one frame plus one read. Not thread-safe: one reader owns it.
    """

    __slots__ = ("_have", "_max", "_need", "_parts")

    def __init__(self, max_frame_size: int = MAX_FRAME_SIZE) -> None:
        self._max = max_frame_size
        # Bytes of an unfinished frame, as received; joined once ``_need`` bytes are there.
        self._parts: list[bytes] = []
        self._have = 0
        self._need = 0

    @property
    def pending(self) -> int:
        """Bytes received that do not yet make a whole frame."""
        return self._have

    @property
    def incomplete(self) -> bool:
        """True when the stream stopped inside a frame (truncated input)."""
        return self._have > 0

    def feed(self, data: bytes) -> list[bytes]:
        """Add bytes from the stream; return the bodies of the frames they complete, in order.

        Raises :class:`ProtocolError` on a zero or oversized length as soon as its header is
        complete. After an error the stream is unusable: drop the connection.
        """
        if self._parts:
            self._parts.append(data)
            self._have += len(data)
            if self._have < self._need:
                return []
            data = b"".join(self._parts)
            self._parts = []
            self._have = 0
        frames: list[bytes] = []
        pos = 0
        end = len(data)
        max_size = self._max
        while end - pos >= HEADER_SIZE:
            (length,) = _unpack_header(data, pos)
            if not 0 < length <= max_size:
                check_length(length, max_size)
            start = pos + HEADER_SIZE
            stop = start + length
            if stop > end:
                self._stash(data[pos:], HEADER_SIZE + length)
                return frames
            frames.append(data[start:stop])
            pos = stop
        if pos < end:
            self._stash(data[pos:], HEADER_SIZE)
        return frames

    def _stash(self, rest: bytes, need: int) -> None:
        self._parts = [rest]
        self._have = len(rest)
        self._need = need

    def close(self) -> None:
        """Declare end of stream; raises :class:`ProtocolError` if it ended inside a frame."""
        if self._have:
            have = self._have
            need = self._need
            self._parts = []
            self._have = 0
            what = f"{need} bytes" if need > HEADER_SIZE else "a complete header"
            raise ProtocolError(f"stream ended inside a frame: {have} bytes received of {what}")
