"""The HTTP/1.1 dialect (``h11`` does the framing): ``GET /<action>``, ``POST /<action>``.

``curl --unix-socket /run/dso/agent.sock http://health`` arrives as ``GET /`` with
``Host: health``: on ``/`` the Host header names the action (``http://status``,
``http://metrics`` work the same way). Parameters come from the query string and, for a POST,
a JSON object body. Reading actions answer GET and HEAD (and POST); the mutating ones only
POST. ``/events`` is a server-sent event stream. Keep-alive is honoured, with an idle limit.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

import h11

from kernel.agent.api.actions import ACTIONS, Answer, Request
from kernel.agent.api.wire import (
    HEADER_TIMEOUT,
    IDLE_TIMEOUT,
    KEEPALIVE,
    MAX_REQUEST,
    Closed,
    Timeout,
)

if TYPE_CHECKING:
    from kernel.agent.api.server import Connection

_REASONS = {
    200: "OK",
    202: "Accepted",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    413: "Content Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
}
_SERVER = b"dso-agent"


class _Reject(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def serve(conn: Connection) -> None:
    h = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_REQUEST)
    first = True
    while not conn.stopping:
        try:
            if first:
                got = _read_request(conn, h, HEADER_TIMEOUT, began=conn.wire.first_byte)
            else:
                got = _read_request(conn, h, IDLE_TIMEOUT)
        except _Reject as reject:
            _send_raw(conn, reject.status, {"error": reject.message, "status": reject.status})
            return
        except h11.RemoteProtocolError as exc:
            status = exc.error_status_hint if 400 <= exc.error_status_hint < 500 else 400
            _send_raw(conn, status, {"error": f"malformed HTTP request: {exc}", "status": status})
            return
        if got is None:
            return
        first = False
        head, body = got
        answer = _dispatch(conn, head, body)
        keep = _respond(conn, h, head, answer)
        if not keep or h.our_state is h11.MUST_CLOSE or h.their_state is h11.MUST_CLOSE:
            return
        try:
            h.start_next_cycle()
        except h11.LocalProtocolError:
            return


def deny(conn: Connection, message: str) -> None:
    _send_raw(conn, 403, {"error": message, "status": 403})


def _read_request(
    conn: Connection, h: h11.Connection, idle: float, *, began: float | None = None
) -> tuple[h11.Request, bytes] | None:
    """The next request, or None when the client is done (or sent nothing within ``idle``).
    Once started (``began``, else at its first byte) it has :data:`HEADER_TIMEOUT` to arrive,
    and at most :data:`MAX_REQUEST` bytes in all."""
    wire = conn.wire
    deadline = time.monotonic() + idle
    started = False
    head: h11.Request | None = None
    body = bytearray()
    size = 0
    while True:
        event = h.next_event()
        if event is h11.NEED_DATA:
            if wire.buffer:
                data = wire.take(len(wire.buffer))
            else:
                try:
                    more = wire.fill(deadline)
                except Timeout:
                    if started:
                        raise _Reject(408, "the request did not arrive in time") from None
                    return None
                except Closed:
                    return None
                data = wire.take(len(wire.buffer)) if more else b""
            if data and not started:
                started = True
                deadline = (time.monotonic() if began is None else began) + HEADER_TIMEOUT
            size += len(data)
            if size > MAX_REQUEST:
                raise _Reject(413, f"a request is limited to {MAX_REQUEST} bytes")
            h.receive_data(data)
            continue
        if isinstance(event, h11.Request):
            head = event
            length = _content_length(event)
            if length is not None and length > MAX_REQUEST:
                raise _Reject(413, f"a request is limited to {MAX_REQUEST} bytes")
        elif isinstance(event, h11.Data):
            body += event.data
            if len(body) > MAX_REQUEST:
                raise _Reject(413, f"a request is limited to {MAX_REQUEST} bytes")
        elif isinstance(event, h11.EndOfMessage):
            assert head is not None
            return head, bytes(body)
        elif isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
            return None


def _dispatch(conn: Connection, head: h11.Request, body: bytes) -> Answer:
    method = head.method.decode("ascii", "replace").upper()
    target = head.target.decode("ascii", "replace")
    parts = urlsplit(target)
    name = parts.path.strip("/")
    if name.startswith("v1/"):
        name = name[3:]
    if not name:
        host = _header(head, b"host").split(":")[0].lower()
        name = host if host in ACTIONS else "health"
    params: dict[str, Any] = dict(parse_qsl(parts.query, keep_blank_values=False))
    if method not in ("GET", "HEAD", "POST"):
        return Answer.error(405, f"method {method} is not supported: use GET or POST")
    if body.strip():
        try:
            doc = json.loads(body)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            message = f"the body is not JSON: {str(exc).splitlines()[0][:120]}"
            return Answer.error(400, message)
        if not isinstance(doc, dict):
            return Answer.error(400, "the body must be a JSON object")
        action = doc.pop("action", None)
        if isinstance(action, str) and action and name in ("", "health") and not parts.path[1:]:
            name = action
        params.update(doc)
    request = Request(name[:64], params, conn.peer, "http", may_mutate=method == "POST")
    return conn.handle(request)


def _respond(conn: Connection, h: h11.Connection, head: h11.Request, answer: Answer) -> bool:
    """Send the answer; False when the connection must close."""
    headers = [(b"server", _SERVER)]
    head_only = head.method.upper() == b"HEAD"
    if answer.stream is not None:
        headers += [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
        try:
            conn.wire.send(h.send(h11.Response(status_code=200, headers=headers)))
            _stream(conn, h, answer)
        finally:
            answer.stream.close()
        return False
    if answer.text is not None:
        payload = answer.text.encode()
        content_type = answer.content_type
    else:
        payload = (json.dumps(answer.body, default=str) + "\n").encode()
        content_type = "application/json"
    headers += [
        (b"content-type", content_type.encode()),
        (b"content-length", str(len(payload)).encode()),
    ]
    allow = answer.body.get("allow") if isinstance(answer.body, dict) else None
    if answer.status == 405 and isinstance(allow, str):
        headers.append((b"allow", allow.encode()))
    reason = _REASONS.get(answer.status, "").encode()
    response = h11.Response(status_code=answer.status, headers=headers, reason=reason)
    data = h.send(response)
    if not head_only:
        data += h.send(h11.Data(data=payload))
    data += h.send(h11.EndOfMessage())
    conn.wire.send(data)
    return True


def _stream(conn: Connection, h: h11.Connection, answer: Answer) -> None:
    stream = answer.stream
    assert stream is not None
    try:
        for event in stream.follow(KEEPALIVE, lambda: conn.stopping):
            if event is None:
                chunk = b": keepalive\n\n"
            else:
                text = json.dumps(event, separators=(",", ":"), default=str)
                chunk = f"event: {event.get('type', 'message')}\ndata: {text}\n\n".encode()
            conn.wire.send(h.send(h11.Data(data=chunk)))
        conn.wire.send(h.send(h11.EndOfMessage()))
    except (Closed, h11.LocalProtocolError):
        return


def _send_raw(conn: Connection, status: int, body: dict[str, Any]) -> None:
    """An answer outside h11's state machine (the request could not be parsed): then close."""
    payload = (json.dumps(body) + "\n").encode()
    head = (
        f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\n"
        f"server: dso-agent\r\ncontent-type: application/json\r\n"
        f"content-length: {len(payload)}\r\nconnection: close\r\n\r\n"
    ).encode()
    try:
        conn.wire.send(head + payload)
    except Closed:
        return


def _header(head: h11.Request, name: bytes) -> str:
    for key, value in head.headers:
        if key == name:
            return value.decode("latin-1")
    return ""


def _content_length(head: h11.Request) -> int | None:
    raw = _header(head, b"content-length")
    return int(raw) if raw.isdigit() else None
