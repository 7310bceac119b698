"""The JSON-lines dialect: one JSON object per line in, one answer line out per request line.

    → {"action": "status"}
    ← {"ok": true, "status": 200, "action": "status", "result": {...}}
    → {"action": "rotate", "service": "web", "id": 7}
    ← {"ok": true, "status": 202, "action": "rotate", "id": 7, "result": {...}}
    → {"action": "nope"}
    ← {"ok": false, "status": 404, "action": "nope", "error": "unknown action 'nope'; ..."}

An ``id`` in a request is echoed in its answer. ``events`` answers one line, then one line per
event (``{"type": ...}``; ``{"type": "keepalive"}`` every 15 s) until the client leaves. The
connection stays open while requests keep coming; :data:`~kernel.agent.api.wire.LINGER`
seconds after an answer without a new request, the agent closes it.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from kernel.agent.api.actions import Answer, Request
from kernel.agent.api.wire import HEADER_TIMEOUT, KEEPALIVE, LINGER, MAX_REQUEST, Closed, Timeout

if TYPE_CHECKING:
    from kernel.agent.api.server import Connection


def serve(conn: Connection) -> None:
    wire = conn.wire
    # The first request has HEADER_TIMEOUT from the connection's first byte; a later one must
    # start within LINGER of the last answer. A blank line is no request: it extends neither.
    began = wire.first_byte
    until = (time.monotonic() if began is None else began) + HEADER_TIMEOUT
    while not conn.stopping:
        line = _read_line(conn, until, began)
        if line is None:
            return
        if not line.strip():
            continue
        began = None
        request, ident, error = _parse(line, conn)
        if request is None:
            assert error is not None
            wire.send(_encode(error))
        else:
            answer = conn.handle(request)
            wire.send(_encode(_answer_doc(request, ident, answer)))
            if answer.stream is not None:
                _stream(conn, answer)
                return
        until = time.monotonic() + LINGER


def deny(conn: Connection, message: str) -> None:
    conn.wire.send(_encode({"ok": False, "status": 403, "error": message}))


def _read_line(conn: Connection, until: float, began: float | None) -> bytes | None:
    """The next line (without its newline); None when the client is done or too slow: a line
    must start before ``until`` (monotonic), then end within :data:`HEADER_TIMEOUT` of its
    start (``began``, else when its first byte is seen)."""
    wire = conn.wire
    deadline = until
    started = False
    while True:
        if not started and wire.buffer.strip():
            started = True
            deadline = (time.monotonic() if began is None else began) + HEADER_TIMEOUT
        newline = wire.buffer.find(b"\n")
        if newline >= 0:
            return wire.take(newline + 1)[:-1]
        if len(wire.buffer) >= MAX_REQUEST:
            wire.send(_encode(_error(413, f"a request line is limited to {MAX_REQUEST} bytes")))
            return None
        if wire.eof:
            rest = wire.take(len(wire.buffer))
            return rest if rest.strip() else None  # a last line without its newline
        try:
            wire.fill(deadline)
        except Timeout:
            if wire.buffer.strip():
                wire.send(_encode(_error(408, "the request line did not end in time")))
            return None
        except Closed:
            return None


def _parse(line: bytes, conn: Connection) -> tuple[Request | None, Any, dict[str, Any] | None]:
    """The request of one line, the ``id`` to echo, or the error to answer."""
    try:
        doc = json.loads(line)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        return None, None, _error(400, f"not a JSON object: {_short(exc)}")
    if not isinstance(doc, dict):
        return None, None, _error(400, 'expected a JSON object such as {"action": "status"}')
    action = doc.pop("action", None)
    ident = doc.pop("id", None)
    if not _plain(ident):
        ident = None
    if not isinstance(action, str) or not action:
        error = _error(400, 'missing "action" (e.g. {"action": "status"})')
        if ident is not None:
            error["id"] = ident
        return None, ident, error
    params = doc.pop("params", None)
    if isinstance(params, dict):
        doc.update(params)
    return Request(action[:64], doc, conn.peer, "lines"), ident, None


def _answer_doc(request: Request, ident: Any, answer: Answer) -> dict[str, Any]:
    ok = answer.status < 400
    doc: dict[str, Any] = {"ok": ok, "status": answer.status, "action": request.action}
    if ident is not None:
        doc["id"] = ident
    if ok:
        doc["result"] = answer.body
    else:
        body = answer.body if isinstance(answer.body, dict) else {}
        doc["error"] = body.get("error", "failed")
        extra = {k: v for k, v in body.items() if k not in ("error", "status")}
        if extra:
            doc["result"] = extra
    return doc


def _stream(conn: Connection, answer: Answer) -> None:
    stream = answer.stream
    assert stream is not None
    try:
        for event in stream.follow(KEEPALIVE, lambda: conn.stopping):
            line = event or {"type": "keepalive", "ts": round(time.time(), 3)}
            conn.wire.send(_encode(line))
    except Closed:
        pass
    finally:
        stream.close()


def _error(status: int, message: str) -> dict[str, Any]:
    return {"ok": False, "status": status, "error": message}


def _encode(doc: dict[str, Any]) -> bytes:
    return (json.dumps(doc, separators=(",", ":"), default=str) + "\n").encode()


def _plain(value: Any) -> bool:
    return isinstance(value, str | int) and not isinstance(value, bool) and len(str(value)) < 100


def _short(exc: Exception) -> str:
    return str(exc).splitlines()[0][:120]
