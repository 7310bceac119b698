"""The socket's limits on a real unix socket (docs/agent-api.md, "Limits"): request size, the
time a request may take to arrive, idle and linger times, clients that do not read, the cap on
connections and on event streams. The time limits are shrunk so each test takes a second or
two; the behaviour a client sees is the real one.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from kernel.agent.api import http_dialect, lines_dialect, wire
from kernel.agent.api import server as server_module
from kernel.agent.api.wire import MAX_REQUEST
from tests.socket_support import (
    connect,
    exchange,
    http,
    http_one,
    http_request,
    line,
    parse_http,
    parse_lines,
    read_all,
    timed_exchange,
)
from tests.unit.agent_api_support import Served, serve, wait

#: The shrunk limits (seconds).
HEADER = 1.5
IDLE = 0.8
LINGER = 0.5
WRITE = 0.5
#: Scheduling slack allowed on top of a limit.
SLACK = 0.5


@pytest.fixture
def limited(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Served]]:
    for module in (server_module, http_dialect, lines_dialect):
        monkeypatch.setattr(module, "HEADER_TIMEOUT", HEADER)
    monkeypatch.setattr(http_dialect, "IDLE_TIMEOUT", IDLE)
    monkeypatch.setattr(lines_dialect, "LINGER", LINGER)
    monkeypatch.setattr(wire, "WRITE_TIMEOUT", WRITE)
    started: list[Served] = []

    def make(*, connections: int | None = None, streams: int | None = None) -> Served:
        if connections is not None:
            monkeypatch.setattr(server_module, "MAX_CONNECTIONS", connections)
        if streams is not None:
            monkeypatch.setattr(server_module, "MAX_STREAMS", streams)
        running = serve(tmp_path)
        started.append(running)
        return running

    try:
        yield make
    finally:
        for running in started:
            running.server.stop()


def assert_healthy(served: Served) -> None:
    assert line(served.path, {"action": "health"})["ok"] is True
    assert http(served.path, "GET", "/", host="health").status == 200


# -- size -----------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [MAX_REQUEST, MAX_REQUEST + 1000, 10 * MAX_REQUEST])
def test_a_json_line_over_64_kib_is_413(limited: Callable[..., Served], size: int) -> None:
    served = limited()
    data = b'{"action":"status","pad":"' + b"x" * size + b'"}\n'
    (answer,) = parse_lines(exchange(served.path, data))
    assert answer == {
        "ok": False,
        "status": 413,
        "error": "a request line is limited to 65536 bytes",
    }
    assert not served.actions.requests
    assert_healthy(served)


def test_a_json_line_under_64_kib_is_served(limited: Callable[..., Served]) -> None:
    served = limited()
    pad = "x" * (MAX_REQUEST - 100)
    answer = line(served.path, {"action": "status", "pad": pad})
    assert answer["ok"] is True and answer["result"]["params"]["pad"] == pad


@pytest.mark.parametrize(
    "request_bytes",
    [
        # headers just over the limit (request line + headers + body <= 64 KiB)
        b"GET /status HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * (MAX_REQUEST + 500) + b"\r\n\r\n",
        b"GET /status HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * (4 * MAX_REQUEST) + b"\r\n\r\n",
        # a body announced too large: refused before it is sent
        b"POST /rotate HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n\r\n",
        # a body too large, sent
        b"POST /rotate HTTP/1.1\r\nHost: x\r\nContent-Length: 70000\r\n\r\n"
        + b'{"pad":"'
        + b"x" * 69990
        + b'"}',
        # a chunked body too large
        b"POST /rotate HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        + (b"4000\r\n" + b"x" * 0x4000 + b"\r\n") * 5
        + b"0\r\n\r\n",
    ],
    ids=["headers-just-over", "headers-256k", "content-length-10m", "body-70k", "chunked-80k"],
)
def test_an_http_request_over_64_kib_is_413(
    limited: Callable[..., Served], request_bytes: bytes
) -> None:
    served = limited()
    answer = http_one(exchange(served.path, request_bytes, half_close=False))
    assert answer.status == 413
    assert answer.headers["content-type"] == "application/json"
    assert answer.json() == {"error": "a request is limited to 65536 bytes", "status": 413}
    assert not served.actions.requests
    assert_healthy(served)


def test_json_nested_deeper_than_the_parser_goes_is_400(limited: Callable[..., Served]) -> None:
    served = limited()
    deep = b"[" * 50_000  # within the size limit, far past the recursion limit
    (answer,) = parse_lines(exchange(served.path, deep + b"\n"))
    assert answer["status"] == 400 and "not a JSON object" in answer["error"]
    body = b'{"x": ' + deep
    posted = http(served.path, "POST", "/status", body=body)
    assert posted.status == 400 and "the body is not JSON" in posted.json()["error"]
    assert_healthy(served)


# -- time -------------------------------------------------------------------------------------


def test_a_silent_client_is_cut_after_the_header_timeout(limited: Callable[..., Served]) -> None:
    served = limited()
    raw, seconds = timed_exchange(served.path, b"", half_close=False)
    assert raw == b""
    assert HEADER - 0.1 < seconds < HEADER + SLACK


@pytest.mark.parametrize(
    ("start", "dialect"),
    [(b'{"action":', "lines"), (b"GET /status HTTP/1.1\r\nHost: x\r\n", "http")],
)
def test_a_request_that_stalls_gets_408(
    limited: Callable[..., Served], start: bytes, dialect: str
) -> None:
    served = limited()
    raw, seconds = timed_exchange(served.path, start, half_close=False)
    assert HEADER - 0.1 < seconds < HEADER + SLACK
    if dialect == "lines":
        (answer,) = parse_lines(raw)
        assert answer["status"] == 408
        assert answer["error"] == "the request line did not end in time"
    else:
        http_answer = http_one(raw)
        assert http_answer.status == 408
        assert http_answer.json()["error"] == "the request did not arrive in time"


@pytest.mark.parametrize(
    "request_bytes",
    [
        b'{"action":"status","pad":"' + b"x" * 100 + b'"}\n',
        b"GET /status HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"x" * 100 + b"\r\n\r\n",
    ],
    ids=["lines", "http"],
)
def test_a_slow_client_is_cut_a_header_timeout_after_its_first_byte(
    limited: Callable[..., Served], request_bytes: bytes
) -> None:
    """One byte every 0.2 s: the request never completes in time. The time counts from the
    first byte, whatever the agent needed to tell the dialect (HTTP: the method)."""
    served = limited()
    with connect(served.path) as sock:
        answer: list[bytes] = []
        reader = threading.Thread(target=lambda: answer.append(read_all(sock)))
        started = time.monotonic()
        reader.start()
        try:
            for byte in request_bytes:
                sock.send(bytes([byte]))
                if not reader.is_alive():
                    break
                time.sleep(0.2)
        except (BrokenPipeError, ConnectionResetError):
            pass
        reader.join(5)
        seconds = time.monotonic() - started
    assert answer, "the slow client was never cut"
    assert seconds < HEADER + SLACK, f"cut after {seconds:.2f}s"
    assert b"408" in answer[0]
    assert_healthy(served)


def test_blank_lines_do_not_keep_a_connection_open(limited: Callable[..., Served]) -> None:
    """A newline every 0.2 s is not a request: it must not hold a connection slot."""
    served = limited()
    with connect(served.path) as sock:
        started = time.monotonic()
        try:
            while time.monotonic() - started < 3 * HEADER:
                sock.send(b"\n")
                time.sleep(0.2)
        except (BrokenPipeError, ConnectionResetError):
            pass
        seconds = time.monotonic() - started
    assert seconds < HEADER + SLACK, f"still open after {seconds:.2f}s of blank lines"


def test_a_lines_connection_closes_a_linger_after_its_answer(
    limited: Callable[..., Served],
) -> None:
    """What lets ``echo '{"action":"status"}' | nc -U sock`` return: nc never half-closes."""
    served = limited()
    with connect(served.path) as sock:
        sock.sendall(b'{"action":"status"}\n')
        started = time.monotonic()
        reader = sock.makefile("rb")
        assert json.loads(reader.readline())["ok"] is True
        answered = time.monotonic()
        assert reader.read() == b""  # closed by the agent
        reader.close()
        closed = time.monotonic()
    assert answered - started < 0.3
    assert LINGER - 0.1 < closed - answered < LINGER + SLACK


def test_a_lines_connection_stays_open_while_requests_come(
    limited: Callable[..., Served],
) -> None:
    served = limited()
    with connect(served.path) as sock:
        reader = sock.makefile("rb")
        for n in range(4):
            sock.sendall(json.dumps({"action": "health", "id": n}).encode() + b"\n")
            assert json.loads(reader.readline())["id"] == n
            time.sleep(LINGER / 2)
        reader.close()


def test_an_idle_keep_alive_http_connection_is_closed(limited: Callable[..., Served]) -> None:
    served = limited()
    with connect(served.path) as sock:
        sock.sendall(http_request("GET", "/status", close=False))
        started = time.monotonic()
        raw = read_all(sock)
        seconds = time.monotonic() - started
    assert [a.status for a in parse_http(raw)] == [200]
    assert IDLE - 0.1 < seconds < IDLE + SLACK


def test_a_method_cut_short_then_closed_is_answered_at_once(
    limited: Callable[..., Served],
) -> None:
    """ "GE" and the client half-closes: nothing more can come, so no reason to wait."""
    served = limited()
    raw, seconds = timed_exchange(served.path, b"GE")
    assert seconds < 0.5, f"answered after {seconds:.2f}s"
    (answer,) = parse_lines(raw)
    assert answer["status"] == 400


def test_a_client_that_does_not_read_its_answer_is_cut(limited: Callable[..., Served]) -> None:
    served = limited()
    with connect(served.path) as sock:
        sock.sendall(b'{"action":"big"}\n')
        # never reads: the agent's send blocks once the socket buffers are full
        assert wait(lambda: served.server.connections == 1, 2)
        started = time.monotonic()
        assert wait(lambda: served.server.connections == 0, WRITE + 2)
        assert time.monotonic() - started < WRITE + SLACK + 0.5
    assert_healthy(served)


# -- caps -------------------------------------------------------------------------------------


def test_clients_beyond_the_connection_cap_wait_for_a_slot(
    limited: Callable[..., Served],
) -> None:
    """Three slots held by silent clients: a fourth client is not refused, it waits in the
    listen backlog until the header timeout frees a slot, then gets its answer."""
    served = limited(connections=3)
    holders = [connect(served.path) for _ in range(3)]
    try:
        assert wait(lambda: served.server.connections == 3)
        (answer,), seconds = _timed(
            lambda: parse_lines(exchange(served.path, b'{"action":"health"}\n'))
        )
    finally:
        for sock in holders:
            sock.close()
    assert answer["ok"] is True
    assert 0.5 < seconds < HEADER + SLACK


def test_event_streams_have_their_own_cap(
    limited: Callable[..., Served], monkeypatch: pytest.MonkeyPatch
) -> None:
    served = limited(streams=2)
    streams = [connect(served.path) for _ in range(2)]
    try:
        for sock in streams:
            sock.sendall(b'{"action":"events"}\n')
            assert json.loads(sock.recv(4096).split(b"\n")[0])["ok"] is True
        third = parse_lines(exchange(served.path, b'{"action":"events"}\n'))
        assert third == [
            {
                "ok": False,
                "status": 503,
                "action": "events",
                "error": "too many event streams open (at most 2)",
            }
        ]
        assert_healthy(served)  # streams never take the other slots
    finally:
        for sock in streams:
            sock.close()


def _timed(call: Callable[[], object]) -> tuple[object, float]:
    started = time.monotonic()
    result = call()
    return result, time.monotonic() - started
