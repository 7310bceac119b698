"""The built-in webhook: signed requests, retries with backoff, giving up, never blocking."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable

import pytest

from kernel.extensions.builtin.webhook import WebhookNotifier, sign, verify
from kernel.secret_value import SecretValue
from tests.unit.extensions_support import (
    TRACE_ID,
    capture_logs,
    facade_with,
    make_event,
    receiver,
)

SECRET = b"webhook-signing-key"


def notifier(url: str, **kw: object) -> WebhookNotifier:
    options: dict[str, object] = {"backoff": 0.01, "max_backoff": 0.05, "timeout": 5.0}
    options.update(kw)
    return WebhookNotifier(url, SecretValue(SECRET), **options)  # type: ignore[arg-type]


def eventually(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_the_receiver_verifies_the_signature_over_the_raw_body() -> None:
    with receiver() as rx:
        hook = notifier(rx.url)
        facade_with(("webhook", hook)).completed(make_event(step="done"))
        [request] = rx.wait_for(1)
    assert verify(SECRET, request.body, request.headers["X-DSO-Signature"])
    assert not verify(b"another-key", request.body, request.headers["X-DSO-Signature"])
    assert not verify(SECRET, request.body + b" ", request.headers["X-DSO-Signature"])
    doc = json.loads(request.body)
    assert request.path == "/hooks/dso?x=1"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["X-DSO-Event"] == doc["event"] == "rotation_completed"
    assert request.headers["X-DSO-Trace-Id"] == doc["trace_id"] == TRACE_ID
    assert request.headers["X-DSO-Timestamp"] == str(doc["timestamp"])
    assert request.headers["X-DSO-Delivery"] == doc["delivery"]
    assert doc["rotation"]["target"] == "web" and doc["rotation"]["step"] == "done"
    assert doc["rotation"]["trace_id"] == TRACE_ID
    assert abs(doc["timestamp"] - time.time()) < 60


def test_sign_is_hmac_sha256_hex() -> None:
    import hashlib
    import hmac

    body = b'{"a":1}'
    expected = hmac.new(SECRET, body, hashlib.sha256).hexdigest()
    assert sign(SecretValue(SECRET), body) == f"sha256={expected}"


def test_server_errors_are_retried_then_delivered() -> None:
    with receiver([500, 503]) as rx, capture_logs() as logs:
        hook = notifier(rx.url, retries=3)
        hook.notify("rotation_completed", make_event())
        eventually(lambda: hook.delivered == 1)
        requests = rx.requests
    assert len(requests) == 3
    assert len({r.headers["X-DSO-Delivery"] for r in requests}) == 1  # one notification
    assert len({r.body for r in requests}) == 1
    retries = logs.matching("failed (HTTP 5")
    assert len(retries) == 2
    assert "attempt 1 of 4 failed (HTTP 500); retrying" in retries[0].getMessage()
    assert "attempt 2 of 4 failed (HTTP 503); retrying" in retries[1].getMessage()
    assert all(r.trace_id == TRACE_ID for r in retries)  # type: ignore[attr-defined]
    assert hook.undelivered == 0


def test_it_gives_up_after_the_retries_and_logs_with_the_trace_id() -> None:
    with receiver([500] * 10) as rx, capture_logs() as logs:
        hook = notifier(rx.url, retries=2)
        hook.notify("rotation_failed", make_event(error="health check failed"))
        eventually(lambda: hook.undelivered == 1)
        assert len(rx.requests) == 3
    [record] = logs.matching("not delivered")
    assert "rotation_failed notification not delivered after 3 attempt(s): HTTP 500" in (
        record.getMessage()
    )
    assert record.trace_id == TRACE_ID  # type: ignore[attr-defined]


@pytest.mark.parametrize("status", [400, 401, 404])
def test_client_errors_are_not_retried(status: int) -> None:
    with receiver([status]) as rx:
        hook = notifier(rx.url, retries=3)
        hook.notify("rotation_completed", make_event())
        eventually(lambda: hook.undelivered == 1)
        assert len(rx.requests) == 1


def test_429_is_retried() -> None:
    with receiver([429]) as rx:
        hook = notifier(rx.url, retries=1)
        hook.notify("rotation_completed", make_event())
        eventually(lambda: hook.delivered == 1)
        assert len(rx.requests) == 2


def test_connection_errors_are_retried_and_the_url_is_logged_by_origin_only() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: connections are refused
        url = f"http://127.0.0.1:{port}/services/T000/B000/token-in-the-path"
        with capture_logs() as logs:
            hook = notifier(url, retries=1)
            hook.notify("rotation_completed", make_event())
            eventually(lambda: hook.undelivered == 1)
    [record] = logs.matching("not delivered after 2 attempt(s)")
    assert "ConnectionRefusedError" in record.getMessage()
    assert f"http://127.0.0.1:{port}" in record.getMessage()
    assert "token-in-the-path" not in logs.text()
    assert "token-in-the-path" not in repr(hook)


def test_a_slow_receiver_never_blocks_the_rotation() -> None:
    with receiver(delay=1.0) as rx:
        hook = notifier(rx.url)
        extensions = facade_with(("webhook", hook))
        started = time.monotonic()
        for _ in range(5):
            extensions.completed(make_event())
        assert time.monotonic() - started < 0.5  # the receiver sleeps 1 s per request
        assert rx.wait_for(1)  # yet it is delivered, in the background


def test_event_selection_and_dry_runs() -> None:
    with receiver() as rx:
        extensions = facade_with(("webhook", notifier(rx.url, events="failures")))
        event = make_event()
        extensions.planned(event)
        extensions.started(event)
        extensions.completed(event)
        extensions.failed(event.evolve(error="boom"))
        extensions.rolled_back(event.evolve(error="boom"))
        extensions.shutdown()
        assert [r.headers["X-DSO-Event"] for r in rx.requests] == [
            "rotation_failed",
            "rotation_rolled_back",
        ]
    with receiver() as rx:
        extensions = facade_with(("webhook", notifier(rx.url, events="all")))
        extensions.planned(make_event(dry_run=True))
        extensions.planned(make_event())
        extensions.shutdown()
        assert [r.headers["X-DSO-Event"] for r in rx.requests] == ["rotation_planned"]


def test_shutdown_delivers_what_is_queued() -> None:
    with receiver(delay=0.05) as rx:
        hook = notifier(rx.url)
        extensions = facade_with(("webhook", hook))
        for _ in range(5):
            extensions.completed(make_event())
        extensions.shutdown()
        assert hook.delivered == 5 and len(rx.requests) == 5


def test_shutdown_gives_up_at_its_deadline() -> None:
    with receiver([500] * 100) as rx, capture_logs() as logs:
        hook = notifier(rx.url, retries=5, backoff=30.0, max_backoff=30.0, shutdown_grace=0.3)
        extensions = facade_with(("webhook", hook))
        extensions.completed(make_event())
        extensions.completed(make_event())
        rx.wait_for(1)
        started = time.monotonic()
        extensions.shutdown()
        assert time.monotonic() - started < 3.0  # not the 30 s backoff
        eventually(lambda: hook.undelivered == 2)
    assert logs.matching("dso is stopping")
    assert logs.matching("dso stopped before it could be sent")


def test_the_secret_is_never_shown(canary: str) -> None:
    with receiver([500] * 10) as rx, capture_logs() as logs:
        hook = WebhookNotifier(rx.url, SecretValue(canary), retries=1, backoff=0.01)
        facade_with(("webhook", hook)).completed(make_event())
        eventually(lambda: hook.undelivered == 1)
        bodies = b"".join(r.body for r in rx.requests)
    assert canary not in logs.text() + repr(hook) + str(vars(hook))
    assert canary.encode() not in bodies
    with pytest.raises(TypeError):
        WebhookNotifier(rx.url, canary)  # type: ignore[arg-type]


def test_only_http_urls_are_accepted() -> None:
    with pytest.raises(ValueError, match="http:// or https://"):
        WebhookNotifier("file:///etc/passwd", SecretValue("k"))
