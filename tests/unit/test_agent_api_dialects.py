"""The socket server's two dialects on a real unix socket, with a stand-in action table: what an
HTTP client (curl) and a JSON-lines client (nc) send, and exactly what they get back.

The stand-in (tests/unit/agent_api_support.py) records the requests and echoes them, so each
test sees how bytes became a request (action, parameters, dialect, may_mutate) and how an
answer became bytes.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kernel.agent.api import http_dialect, lines_dialect
from kernel.agent.api import server as server_module
from tests.socket_support import (
    connect,
    exchange,
    http,
    http_one,
    http_request,
    line,
    lines,
    parse_http,
    parse_lines,
    read_all,
)
from tests.unit.agent_api_support import MUTATING, Denying, Served, serve, wait


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    running = serve(tmp_path)
    try:
        yield running
    finally:
        running.server.stop()


# -- HTTP ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "target", "action"),
    [
        ("health", "/", "health"),  # curl --unix-socket S http://health
        ("status", "/", "status"),
        ("metrics:80", "/", "metrics"),
        ("localhost", "/", "health"),  # / on any other host is health
        ("localhost", "/status", "status"),
        ("localhost", "/v1/containers", "containers"),
        ("health", "/providers", "providers"),  # a path wins over the host
    ],
)
def test_http_action_from_the_path_or_from_the_host_on_root(
    served: Served, host: str, target: str, action: str
) -> None:
    answer = http(served.path, "GET", target, host=host)
    assert answer.status == 200
    assert served.actions.requests[-1].action == action
    assert served.actions.requests[-1].dialect == "http"


def test_http_parameters_from_the_query_and_a_post_body(served: Served) -> None:
    answer = http(served.path, "GET", "/rotations?status=failed&target=web&limit=3")
    assert answer.json()["params"] == {"status": "failed", "target": "web", "limit": "3"}
    assert served.actions.requests[-1].may_mutate is False

    body = json.dumps({"service": "web", "force": True}).encode()
    posted = http(served.path, "POST", "/rotate?project=shop", body=body)
    assert posted.status == 202
    assert posted.json()["params"] == {"project": "shop", "service": "web", "force": True}
    assert served.actions.requests[-1].may_mutate is True

    # POST / with the action in the body (a client that cannot set a path)
    named = http(served.path, "POST", "/", body=b'{"action": "status", "x": 1}')
    assert named.json() == {"action": "status", "params": {"x": 1}, "dialect": "http"}


def test_http_mutating_action_over_get_is_405_with_allow(served: Served) -> None:
    for name in sorted(MUTATING):
        answer = http(served.path, "GET", f"/{name}")
        assert answer.status == 405
        assert answer.reason == "Method Not Allowed"
        assert answer.headers["allow"] == "POST"
        assert answer.headers["content-type"] == "application/json"
        assert answer.json()["status"] == 405


@pytest.mark.parametrize(
    ("method", "body", "status", "message"),
    [
        ("PUT", None, 405, "method PUT is not supported"),
        ("DELETE", None, 405, "method DELETE is not supported"),
        ("POST", b"{not json", 400, "the body is not JSON"),
        ("POST", b"[1, 2]", 400, "the body must be a JSON object"),
        ("POST", b'"status"', 400, "the body must be a JSON object"),
        ("POST", b"\xff\xfe{}", 400, "the body is not JSON"),
        ("GET", None, 404, "unknown action 'nope'"),
    ],
)
def test_http_bad_requests_get_a_json_error(
    served: Served, method: str, body: bytes | None, status: int, message: str
) -> None:
    target = "/nope" if status == 404 else "/status"
    answer = http(served.path, method, target, body=body)
    assert answer.status == status
    assert answer.headers["content-type"] == "application/json"
    doc = answer.json()
    assert doc["status"] == status and message in doc["error"]


def test_http_malformed_request_line_is_400_and_closes(served: Served) -> None:
    raw = exchange(served.path, b"GET /status HTTP/1.1 extra\r\n\r\n", half_close=False)
    answer = http_one(raw)
    assert answer.status == 400
    assert answer.headers["connection"] == "close"
    assert "malformed HTTP request" in answer.json()["error"]


def test_http_keep_alive_serves_requests_in_turn(served: Served) -> None:
    first = http_request("GET", "/status", close=False)
    second = http_request("GET", "/health", close=False)
    third = http_request("GET", "/containers", close=True)
    with connect(served.path) as sock:
        sock.sendall(first + second)  # pipelined
        time.sleep(0.2)
        sock.sendall(third)
        answers = parse_http(read_all(sock))
    assert [a.json()["action"] for a in answers] == ["status", "health", "containers"]


def test_http_head_has_the_headers_and_no_body(served: Served) -> None:
    raw = exchange(served.path, http_request("HEAD", "/status"), half_close=False)
    answer = http_one(raw, head=True)
    assert answer.status == 200 and int(answer.headers["content-length"]) > 0
    assert answer.body == b""


def test_http_text_answer_is_sent_as_text(served: Served) -> None:
    answer = http(served.path, "GET", "/", host="metrics")
    assert answer.headers["content-type"] == "text/plain; version=0.0.4"
    assert answer.body == b"m 1\n"
    assert answer.headers["server"] == "dso-agent"


def test_http_events_are_server_sent_events(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a client that left is noticed at the next keep-alive line
    monkeypatch.setattr(http_dialect, "KEEPALIVE", 0.3)
    with connect(served.path, timeout=5) as sock:
        sock.sendall(http_request("GET", "/events", close=False))
        reader = sock.makefile("rb")
        assert reader.readline().startswith(b"HTTP/1.1 200")
        head = b""
        while not head.endswith(b"\r\n\r\n"):
            head += reader.readline()
        assert b"content-type: text/event-stream" in head
        assert wait(lambda: served.bus._streams)
        served.bus.publish("rotation", target="service:shop/web", status="completed")
        seen = b""
        while b"\n\n" not in seen.split(b"event: rotation\n", 1)[-1]:
            seen += reader.readline()
        event = seen.split(b"event: rotation\n", 1)[1].split(b"\n")[0]
        assert event.startswith(b"data: ")
        doc = json.loads(event[len(b"data: ") :])
        assert doc["type"] == "rotation" and doc["target"] == "service:shop/web"
        reader.close()
    # the client left: its stream is closed and its slot given back
    assert wait(lambda: not served.bus._streams)
    assert wait(lambda: served.server.stream_slots._value == server_module.MAX_STREAMS)


# -- JSON lines ---------------------------------------------------------------------------------


def test_lines_one_answer_per_line_in_order_with_ids(served: Served) -> None:
    answers = lines(
        served.path,
        {"action": "status", "id": 1},
        {"action": "rotations", "params": {"limit": 3}, "id": "b"},
        {"action": "rotate", "service": "web"},
        {"action": "nope", "id": 4},
    )
    assert answers[0] == {
        "ok": True,
        "status": 200,
        "action": "status",
        "id": 1,
        "result": {"action": "status", "params": {}, "dialect": "lines"},
    }
    assert answers[1]["id"] == "b" and answers[1]["result"]["params"] == {"limit": 3}
    assert answers[2]["status"] == 202 and "id" not in answers[2]
    assert answers[2]["result"]["params"] == {"service": "web"}
    assert served.actions.requests[2].may_mutate is True  # lines: no GET/POST distinction
    assert answers[3]["ok"] is False and answers[3]["status"] == 404 and answers[3]["id"] == 4
    assert "unknown action 'nope'" in answers[3]["error"]


def test_lines_error_extras_come_back_as_result(served: Served) -> None:
    answer = line(served.path, {"action": "conflict"})
    assert answer == {
        "ok": False,
        "status": 409,
        "action": "conflict",
        "error": "busy",
        "result": {"target": "web"},
    }


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"[1, 2]\n", "expected a JSON object"),
        (b'"status"\n', "expected a JSON object"),
        (b"{nope\n", "not a JSON object"),
        (b'{"action": "\xff"}\n', "not a JSON object"),
        (b"\x00\x01\x02\x03\n", "not a JSON object"),
        (b'{"id": 1}\n', 'missing "action"'),
        (b'{"action": 7}\n', 'missing "action"'),
        (b'{"action": ""}\n', 'missing "action"'),
    ],
)
def test_lines_bad_requests_get_a_400_line(served: Served, data: bytes, message: str) -> None:
    (answer,) = parse_lines(exchange(served.path, data))
    assert answer["ok"] is False and answer["status"] == 400
    assert message in answer["error"]
    assert not served.actions.requests


def test_lines_a_bad_line_does_not_end_the_connection(served: Served) -> None:
    raw = exchange(served.path, b'{"action":"status","id":1}\nnope\n{"action":"health","id":3}\n')
    answers = parse_lines(raw)
    assert [a["status"] for a in answers] == [200, 400, 200]
    assert answers[2]["id"] == 3
    # an id that is not a plain string or number is not echoed
    (odd,) = lines(served.path, {"action": "status", "id": {"x": 1}})
    assert "id" not in odd and odd["ok"] is True


def test_lines_last_line_without_newline_is_answered_at_eof(served: Served) -> None:
    (answer,) = parse_lines(exchange(served.path, b'{"action":"health"}'))
    assert answer["ok"] is True and answer["action"] == "health"


def test_lines_events_stream_after_the_answer_line(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lines_dialect, "KEEPALIVE", 0.3)
    with connect(served.path, timeout=5) as sock:
        sock.sendall(b'{"action":"events","id":9}\n')
        reader = sock.makefile("rb")
        first = json.loads(reader.readline())
        assert first["ok"] is True and first["id"] == 9
        assert wait(lambda: served.bus._streams)
        served.bus.publish("check", source="poll", secrets=3, moved=0)
        event = json.loads(reader.readline())
        assert event["type"] == "check" and event["secrets"] == 3
        keepalive = json.loads(reader.readline())  # nothing happens: a keep-alive line
        assert keepalive["type"] == "keepalive"
        reader.close()
    assert wait(lambda: not served.bus._streams)


# -- sniffing -----------------------------------------------------------------------------------


def test_a_method_cut_short_still_makes_an_http_request(served: Served) -> None:
    request = http_request("GET", "/status")
    with connect(served.path) as sock:
        sock.sendall(request[:2])
        time.sleep(0.3)
        sock.sendall(request[2:])
        answer = http_one(read_all(sock))
    assert answer.status == 200 and answer.json()["action"] == "status"


def test_leading_whitespace_is_json_lines(served: Served) -> None:
    (answer,) = parse_lines(exchange(served.path, b'\n  \n{"action":"health"}\n'))
    assert answer["ok"] is True


# -- failures and refusals ----------------------------------------------------------------------


def test_an_exception_in_the_action_table_costs_one_connection_only(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="dso")
    assert exchange(served.path, b'{"action":"boom"}\n') == b""
    assert "socket: a connection failed" in caplog.text
    assert line(served.path, {"action": "health"})["ok"] is True
    assert served.server.connections == 0 or wait(lambda: served.server.connections == 0)


def test_a_refused_peer_gets_403_a_warning_an_audit_line_and_an_event(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="dso")
    running = serve(tmp_path, authorizer=Denying())
    seen: list[dict[str, object]] = []
    running.bus.listen(seen.append)
    try:
        answer = http(running.path, "GET", "/", host="health")
        refused = line(running.path, {"action": "status"})
    finally:
        running.server.stop()
    assert answer.status == 403 and "may not use the agent's socket" in answer.json()["error"]
    assert refused["ok"] is False and refused["status"] == 403
    assert not running.actions.requests  # nothing reached the actions
    me = f"uid {os.getuid()} (pid {os.getpid()}, gid {os.getgid()})"
    assert caplog.text.count(f"socket: refused {me}") == 2
    denied = [e for e in seen if e["type"] == "denied"]
    assert [(e["uid"], e["pid"]) for e in denied] == [(os.getuid(), os.getpid())] * 2
    audit = [json.loads(x) for x in running.audit.read_text().splitlines()]
    assert [a["outcome"] for a in audit] == ["denied", "denied"]
    assert audit[0]["event"] == "socket_request"
    assert audit[0]["caller"]["uid"] == os.getuid() and audit[0]["caller"]["pid"] == os.getpid()


def test_stop_removes_the_socket_and_ends_open_connections(tmp_path: Path) -> None:
    """Connections in progress and event streams waiting for their next event alike: the
    agent's stop is not held up by its clients."""
    running = serve(tmp_path)
    idle = connect(running.path)
    sse = connect(running.path)
    follower = connect(running.path)
    try:
        idle.sendall(b'{"action":')  # a request in progress
        sse.sendall(http_request("GET", "/events", close=False))
        follower.sendall(b'{"action":"events"}\n')
        assert wait(lambda: len(running.bus._streams) == 2)
        started = time.monotonic()
        running.server.stop()
        assert time.monotonic() - started < 1
        assert idle.recv(100) == b""
        assert read_all(sse).startswith(b"HTTP/1.1 200")
        assert parse_lines(read_all(follower))[0]["ok"] is True
    finally:
        for sock in (idle, sse, follower):
            sock.close()
    assert not running.bus._streams
    assert not running.path.exists()
    with pytest.raises(OSError):
        connect(running.path)


def test_many_clients_at_once_are_all_answered(served: Served) -> None:
    failures: list[BaseException] = []

    def client(n: int) -> None:
        try:
            if n % 2:
                answer = http(served.path, "GET", "/status")
                assert answer.status == 200
            else:
                (answer_line,) = lines(served.path, {"action": "health", "id": n})
                assert answer_line["id"] == n
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(100)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert failures == []
    assert len(served.actions.requests) == 100


def test_a_stream_hands_out_its_last_events_before_the_stop_cuts_it(tmp_path: Path) -> None:
    running = serve(tmp_path)
    follower = connect(running.path)
    try:
        follower.sendall(b'{"action":"events"}\n')
        assert wait(lambda: len(running.bus._streams) == 1)
        for n in range(50):
            running.bus.publish("check", source="poll", secrets=n, moved=0)
        running.bus.publish("stopping")
        running.server.stop()
        lines = parse_lines(read_all(follower))
    finally:
        follower.close()
    assert lines[0]["ok"] is True
    assert [e["type"] for e in lines[1:]] == ["check"] * 50 + ["stopping"]
