"""One client connection's bytes: reads bounded by size and by deadlines, writes bounded by time.

Every read has a deadline (a slow or silent client cannot hold a connection slot) and the
buffer never grows past :data:`MAX_REQUEST` (what a client sends cannot make the agent grow).
"""

from __future__ import annotations

import socket
import time

#: Request line + headers + body, or one JSON line.
MAX_REQUEST = 64 * 1024
#: Seconds a request may take to arrive once it started (and a new connection to start one).
HEADER_TIMEOUT = 5.0
#: Seconds a kept-alive HTTP connection may sit idle between requests.
IDLE_TIMEOUT = 5.0
#: Seconds a JSON-lines connection waits for another request after an answer; then the agent
#: closes it, so ``echo '{"action":"status"}' | nc -U …`` returns (nc never half-closes).
LINGER = 1.0
#: Seconds a client may take to accept an answer (it must read what it asked for).
WRITE_TIMEOUT = 10.0
#: Seconds between keep-alive lines on an idle event stream (a gone client is noticed).
KEEPALIVE = 15.0


class Timeout(Exception):
    """The client sent nothing (more) before the deadline."""


class Closed(Exception):
    """The client went away."""


class Wire:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = bytearray()
        self.eof = False
        #: When the connection's first byte arrived (monotonic): the first request's
        #: :data:`HEADER_TIMEOUT` counts from it, whatever the dialect needed to be told apart.
        self.first_byte: float | None = None

    def fill(self, deadline: float, *, limit: int = MAX_REQUEST) -> bool:
        """Read more bytes into :attr:`buffer` before ``deadline`` (monotonic); False at EOF.
        Never reads past ``limit`` bytes buffered."""
        room = limit - len(self.buffer)
        if room <= 0:
            return True
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise Timeout
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(min(room, 16384))
        except TimeoutError:
            raise Timeout from None
        except OSError:
            raise Closed from None
        if not data:
            self.eof = True
            return False
        if self.first_byte is None:
            self.first_byte = time.monotonic()
        self.buffer += data
        return True

    def send(self, data: bytes) -> None:
        self.sock.settimeout(WRITE_TIMEOUT)
        try:
            self.sock.sendall(data)
        except OSError:
            raise Closed from None

    def take(self, size: int) -> bytes:
        chunk = bytes(self.buffer[:size])
        del self.buffer[:size]
        return chunk
