"""Raw clients of the agent's unix socket for the API tests: send exact bytes, read what comes
back, and parse it strictly (an HTTP/1.1 response, or JSON lines), so a test sees what a
client would and nothing the dso client smooths over.

Used by the unit tests (a server on a stand-in action table) and the integration tests (the
real ``dso agent``)."""

from __future__ import annotations

import json
import re
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_STATUS_LINE = re.compile(r"HTTP/1\.1 (\d{3})(?: (.*))?")


def connect(path: Path | str, *, timeout: float = 10.0) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(str(path))
    except BaseException:
        sock.close()
        raise
    return sock


def read_all(sock: socket.socket) -> bytes:
    """Everything until the agent closes (a reset after its answer counts as a close)."""
    chunks = []
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def exchange(
    path: Path | str, data: bytes, *, half_close: bool = True, timeout: float = 10.0
) -> bytes:
    """Send ``data`` (then half-close, unless told not to) and read until the agent closes."""
    with connect(path, timeout=timeout) as sock:
        try:
            sock.sendall(data)
            if half_close:
                sock.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the agent answered (413) and closed before taking all of it
        return read_all(sock)


def timed_exchange(path: Path | str, data: bytes, **kwargs: Any) -> tuple[bytes, float]:
    started = time.monotonic()
    raw = exchange(path, data, **kwargs)
    return raw, time.monotonic() - started


@dataclass
class HttpAnswer:
    status: int
    reason: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def parse_http(raw: bytes, *, head: bool = False, heads: int | None = None) -> list[HttpAnswer]:
    """Every response in ``raw``, framed by Content-Length; ValueError for anything else (a
    truncated head or body, a bad status line or header, trailing bytes). ``head``: answers to
    HEAD requests (no body); ``heads``: only the first ``heads`` answers are (pipelined HEAD
    requests followed by others, e.g. junk answered 400 with a body)."""
    bodiless = heads if heads is not None else (1 << 30 if head else 0)
    answers = []
    rest = raw
    while rest:
        top, sep, rest = rest.partition(b"\r\n\r\n")
        if not sep:
            raise ValueError(f"an incomplete response head: {top[:200]!r}")
        lines = top.decode("latin-1").split("\r\n")
        match = _STATUS_LINE.fullmatch(lines[0])
        if match is None:
            raise ValueError(f"not an HTTP/1.1 status line: {lines[0][:200]!r}")
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, colon, value = line.partition(":")
            if not colon or not name or name != name.strip():
                raise ValueError(f"a malformed header line: {line[:200]!r}")
            headers[name.lower()] = value.strip()
        length = 0 if len(answers) < bodiless else int(headers["content-length"])
        if len(rest) < length:
            raise ValueError(f"a body of {len(rest)} bytes, {length} announced")
        answers.append(HttpAnswer(int(match[1]), match[2] or "", headers, rest[:length]))
        rest = rest[length:]
    return answers


def http_one(raw: bytes, *, head: bool = False) -> HttpAnswer:
    answers = parse_http(raw, head=head)
    assert len(answers) == 1, answers
    return answers[0]


def http_request(
    method: str,
    target: str,
    *,
    host: str = "localhost",
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    close: bool = True,
) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}"]
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")


def http(path: Path | str, method: str, target: str, **kwargs: Any) -> HttpAnswer:
    """One request on its own connection, and its parsed answer."""
    raw = exchange(path, http_request(method, target, **kwargs), half_close=False)
    return http_one(raw, head=method == "HEAD")


def parse_lines(raw: bytes) -> list[dict[str, Any]]:
    """Every answer line as a JSON object; ValueError for anything else (an unterminated last
    line, a line that is not a JSON object)."""
    if not raw:
        return []
    if not raw.endswith(b"\n"):
        raise ValueError(f"an unterminated answer line: {raw[-200:]!r}")
    docs = []
    for line in raw.split(b"\n")[:-1]:
        doc = json.loads(line)
        if not isinstance(doc, dict):
            raise ValueError(f"an answer line that is not an object: {line[:200]!r}")
        docs.append(doc)
    return docs


def lines(path: Path | str, *requests: dict[str, Any], timeout: float = 10.0) -> list[Any]:
    """Send JSON-lines requests on one connection; their answers (the agent closes after)."""
    data = b"".join(json.dumps(r).encode() + b"\n" for r in requests)
    return parse_lines(exchange(path, data, timeout=timeout))


def line(path: Path | str, request: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    (answer,) = lines(path, request, **kwargs)
    return answer
