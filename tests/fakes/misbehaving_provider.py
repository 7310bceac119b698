"""A deliberately misbehaving provider for the provider host's tests (go-plugin style).

Raw framing with ``struct`` + ``msgpack``, NOT the SDK, so it can break every rule. It never
checks the cookie. The mode comes from ``DSO_FAKE_MODE``:

- ``bad-cookie``: a well-formed handshake with a wrong cookie (``DSO_FAKE_COOKIE``, default
  ``not-the-cookie``; set it empty to leave the cookie out), then behaves;
- ``bad-version``: a handshake choosing protocol 99;
- ``no-handshake``: sleeps without writing anything;
- ``hang``: handshakes, then reads and ignores every request (shutdown and EOF included);
- ``crash-mid-request``: handshakes, answers ``configure``, reads the next request and exits
  3 without answering it;
- ``garbage-stdout``: writes text that is not a frame;
- ``oversized-frame``: writes a frame header claiming 1 GiB, and a few bytes;
- ``slow-shutdown``: behaves, but ignores ``shutdown``, EOF and SIGTERM for 30 s;
- ``stray-print``: behaves, but writes text to stdout between frames (no stdout protection).

``garbage-stdout`` and ``oversized-frame`` misbehave instead of the handshake by default; with
``DSO_FAKE_AT=request`` they handshake, answer ``configure``, and misbehave as the answer to
the next request. Behaving means: ``configure``/``watch``/``shutdown`` → ``{}``, ``ping`` →
``{time}``, ``get``/``versions`` → every ref ``not_found``, ``list`` → no names.
"""

from __future__ import annotations

import os
import signal
import struct
import sys
import time
from typing import Any

import msgpack

from kernel.protocol.handshake import MAGIC_COOKIE_VALUE

HEADER = struct.Struct(">I")
MODES = (
    "bad-cookie",
    "bad-version",
    "no-handshake",
    "hang",
    "crash-mid-request",
    "garbage-stdout",
    "oversized-frame",
    "slow-shutdown",
    "stray-print",
)
GARBAGE = b"Hello! I am definitely not a msgpack frame.\n"


def write(data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(1, view) :]


def send(message: list[Any]) -> None:
    body = msgpack.packb(message, use_bin_type=True)
    write(HEADER.pack(len(body)) + body)


def handshake(protocol: int = 1, cookie: str | None = MAGIC_COOKIE_VALUE) -> None:
    params: dict[str, Any] = {
        "core_version": "0.0.0-fake",
        "protocol": protocol,
        "name": "misbehaving",
        "version": "0.0.0",
        "capabilities": ["get", "versions", "list", "watch"],
    }
    if cookie is not None:
        params["cookie"] = cookie
    send([2, "handshake", params])


class Reader:
    """Blocking frame reader on fd 0 (os.read, never sys.stdin.buffer)."""

    def __init__(self) -> None:
        self.buf = b""

    def _fill(self, n: int) -> bool:
        while len(self.buf) < n:
            data = os.read(0, 65536)
            if not data:
                return False
            self.buf += data
        return True

    def next(self) -> list[Any] | None:
        """The next message, or None at end of stdin."""
        if not self._fill(4):
            return None
        (length,) = HEADER.unpack_from(self.buf)
        if not self._fill(4 + length):
            return None
        body, self.buf = self.buf[4 : 4 + length], self.buf[4 + length :]
        message: list[Any] = msgpack.unpackb(body, raw=False)
        return message


def answer(request: list[Any]) -> list[Any]:
    _, msg_id, method, params = request
    result: dict[str, Any] = {}
    if method == "ping":
        result = {"time": time.time()}
    elif method in ("get", "versions"):
        missing = {"code": "not_found", "message": "the misbehaving provider has no secrets"}
        result = {
            "values" if method == "get" else "versions": {},
            "errors": {ref["id"]: missing for ref in params.get("refs", [])},
        }
    elif method == "list":
        result = {"names": []}
    return [1, msg_id, None, result]


def behave(reader: Reader, *, before_answer: bytes = b"", ignore_shutdown: bool = False) -> int:
    """Answer requests until shutdown/EOF, optionally writing junk before each answer."""
    while True:
        request = reader.next()
        if request is None:
            return 0
        if request[0] != 0:
            continue
        if request[2] == "shutdown" and ignore_shutdown:
            return 0
        if before_answer:
            write(before_answer)
        send(answer(request))
        if request[2] == "shutdown":
            return 0


def until_first_request(reader: Reader) -> list[Any] | None:
    """Answer ``configure`` requests; return the first other request (None at EOF)."""
    while True:
        request = reader.next()
        if request is None or (request[0] == 0 and request[2] != "configure"):
            return request
        if request[0] == 0:
            send(answer(request))


def sleep_forever() -> int:
    while True:
        time.sleep(3600)


def main() -> int:
    mode = os.environ.get("DSO_FAKE_MODE", "")
    at_request = os.environ.get("DSO_FAKE_AT", "start") == "request"
    reader = Reader()
    if mode not in MODES:
        sys.stderr.write(f"misbehaving provider: set DSO_FAKE_MODE to one of {', '.join(MODES)}\n")
        return 2
    sys.stderr.write(f'{{"level": "info", "message": "misbehaving provider in mode {mode}"}}\n')
    if mode == "bad-cookie":
        handshake(cookie=os.environ.get("DSO_FAKE_COOKIE", "not-the-cookie") or None)
        return behave(reader)
    if mode == "bad-version":
        handshake(protocol=99)
        return behave(reader)
    if mode == "no-handshake":
        return sleep_forever()
    if mode in ("garbage-stdout", "oversized-frame"):
        if at_request:
            handshake()
            if until_first_request(reader) is None:
                return 0
        write(GARBAGE if mode == "garbage-stdout" else HEADER.pack(1 << 30) + b"\x93\x01\x02")
        return sleep_forever()
    handshake()
    if mode == "hang":
        while reader.next() is not None:
            pass
        return sleep_forever()
    if mode == "crash-mid-request":
        until_first_request(reader)
        return 3
    if mode == "slow-shutdown":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        behave(reader, ignore_shutdown=True)
        time.sleep(30)
        return 0
    # stray-print
    return behave(reader, before_answer=b"debug: a stray print on stdout\n")


if __name__ == "__main__":
    sys.exit(main())
