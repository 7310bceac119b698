"""The agent's inbound webhook, a real server on 127.0.0.1:0 driven with http.client.

Every test checks what a caller sees (status, JSON body) and what the agent sees (``on_hint``
calls): a request that is not authenticated, well-formed and within the limits triggers nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import http.client
import json
import logging
import select
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from kernel.agent.webhook import MAX_BODY, WebhookServer
from kernel.config.model import AgentWebhookConfig
from kernel.errors import ConfigError
from kernel.secret_value import SecretValue

TOKEN = "tok-3f9a1c7e-canary"
KEY = "hmac-5b2d8e0f-canary"
PATH = "/hooks/secret-changed"
JSON = {"Content-Type": "application/json"}
BEARER = {**JSON, "Authorization": f"Bearer {TOKEN}"}
BODY = json.dumps({"provider": "vault", "secret": "app/db"}).encode()


class Clock:
    """A clock the test moves by hand (rate limit and idempotency window)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Hints:
    """The ``on_hint`` callback: records every call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[str, ...], str]] = []
        self.lock = threading.Lock()

    def __call__(self, provider: str, secrets: tuple[str, ...], trace_id: str) -> None:
        with self.lock:
            self.calls.append((provider, secrets, trace_id))


def config(**changes: Any) -> AgentWebhookConfig:
    base = AgentWebhookConfig(
        enabled=True,
        listen="127.0.0.1:0",
        token=SecretValue(TOKEN),
        hmac_secret=SecretValue(KEY),
        rate_limit="100/s",
        burst=100,
    )
    return replace(base, **changes)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def hints() -> Hints:
    return Hints()


@pytest.fixture
def start(clock: Clock, hints: Hints) -> Iterator[Any]:
    servers: list[WebhookServer] = []

    def start(cfg: AgentWebhookConfig | None = None, **kwargs: Any) -> WebhookServer:
        server = WebhookServer(cfg or config(), hints, clock=clock, **kwargs)
        server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def server(start: Any) -> WebhookServer:
    started: WebhookServer = start()
    return started


def send(
    server: WebhookServer,
    body: bytes = BODY,
    headers: dict[str, str] | None = None,
    *,
    method: str = "POST",
    path: str = PATH,
) -> tuple[int, dict[str, Any], http.client.HTTPResponse]:
    host, port = server.address
    connection = http.client.HTTPConnection(host, port, timeout=10)
    try:
        connection.request(method, path, body=body, headers=BEARER if headers is None else headers)
        response = connection.getresponse()
        payload = json.loads(response.read() or b"{}")
        return response.status, payload, response
    finally:
        connection.close()


def signed(body: bytes, key: str = KEY) -> dict[str, str]:
    digest = hmac.new(key.encode(), body, hashlib.sha256).hexdigest()
    return {**JSON, "X-DSO-Signature": f"sha256={digest}"}


def test_an_authenticated_request_asks_for_a_check_of_the_named_secrets(
    server: WebhookServer, hints: Hints
) -> None:
    status, payload, response = send(server)
    assert status == 202
    assert response.getheader("Content-Type") == "application/json"
    assert payload == {"accepted": True, "trace_id": hints.calls[0][2]}
    assert hints.calls == [("vault", ("app/db",), payload["trace_id"])]
    assert len(payload["trace_id"]) == 32

    body = json.dumps({"provider": "aws", "secrets": ["a/b", "c", "a/b"]}).encode()
    assert send(server, body)[0] == 202
    assert hints.calls[1][:2] == ("aws", ("a/b", "c"))
    assert server.stats == {"accepted": 2, "duplicate": 0, "rejected": {}}


@pytest.mark.parametrize(
    "headers",
    [
        {**JSON, "Authorization": "Bearer wrong-token"},
        {**JSON, "Authorization": f"Basic {TOKEN}"},
        {**JSON, "Authorization": f"Bearer {TOKEN}x"},
        JSON,
    ],
    ids=["wrong token", "wrong scheme", "longer token", "no credentials"],
)
def test_a_wrong_or_missing_token_is_401_and_triggers_nothing(
    server: WebhookServer, hints: Hints, headers: dict[str, str]
) -> None:
    status, payload, _ = send(server, headers=headers)
    assert status == 401
    assert payload["accepted"] is False and payload["error"] == "unauthorized"
    assert hints.calls == []
    assert server.stats["rejected"] == {"unauthorized": 1}


def test_a_valid_hmac_signature_alone_is_accepted(server: WebhookServer, hints: Hints) -> None:
    assert send(server, BODY, signed(BODY))[0] == 202
    assert [call[:2] for call in hints.calls] == [("vault", ("app/db",))]


@pytest.mark.parametrize(
    "headers",
    [
        signed(BODY, key="another-key"),
        signed(BODY + b" "),
        {**JSON, "X-DSO-Signature": "sha256=zz"},
        {**JSON, "X-DSO-Signature": hmac.new(KEY.encode(), BODY, hashlib.sha256).hexdigest()},
    ],
    ids=["wrong key", "other body", "not hex", "no sha256= prefix"],
)
def test_a_bad_signature_is_401_and_triggers_nothing(
    server: WebhookServer, hints: Hints, headers: dict[str, str]
) -> None:
    assert send(server, BODY, headers)[0] == 401
    assert hints.calls == []


def test_with_both_configured_every_credential_presented_must_be_right(
    server: WebhookServer, hints: Hints
) -> None:
    both_right = {**signed(BODY), "Authorization": f"Bearer {TOKEN}"}
    assert send(server, BODY, both_right)[0] == 202
    right_token_bad_signature = {**signed(BODY, key="x"), "Authorization": f"Bearer {TOKEN}"}
    assert send(server, BODY, right_token_bad_signature)[0] == 401
    bad_token_right_signature = {**signed(BODY), "Authorization": "Bearer nope"}
    assert send(server, BODY, bad_token_right_signature)[0] == 401
    assert len(hints.calls) == 1


def test_a_credential_that_is_not_configured_does_not_authenticate(
    start: Any, hints: Hints
) -> None:
    token_only = start(config(hmac_secret=None))
    assert send(token_only, BODY, signed(BODY))[0] == 401
    signature_only = start(config(token=None))
    assert send(signature_only, BODY, BEARER)[0] == 401
    assert send(signature_only, BODY, signed(BODY))[0] == 202
    assert len(hints.calls) == 1


def test_a_repeated_idempotency_key_answers_200_without_a_second_hint(
    server: WebhookServer, hints: Hints, clock: Clock
) -> None:
    keyed = json.dumps({"provider": "vault", "secret": "app/db", "idempotency_key": "d-42"})
    status, first, _ = send(server, keyed.encode())
    assert status == 202
    clock.now += 599
    status, again, _ = send(server, keyed.encode())
    assert status == 200
    assert again == {"accepted": True, "duplicate": True, "trace_id": first["trace_id"]}
    # The header is the same key when the body names none.
    assert send(server, BODY, {**BEARER, "Idempotency-Key": "d-42"})[0] == 200
    assert len(hints.calls) == 1
    clock.now += 2  # 10 minutes after the first: a new request
    assert send(server, keyed.encode())[0] == 202
    assert len(hints.calls) == 2
    assert server.stats["duplicate"] == 2


def test_a_body_over_64_kib_is_413_and_not_read(server: WebhookServer, hints: Hints) -> None:
    padding = "x" * MAX_BODY
    big = json.dumps({"provider": "vault", "secret": "a", "pad": padding}).encode()
    status, payload, _ = send(server, big)
    assert (status, payload["error"]) == (413, "too_large")
    assert hints.calls == []
    # Just under the cap is fine.
    fits = json.dumps({"provider": "vault", "secret": "a", "pad": padding[:-100]}).encode()
    assert len(fits) <= MAX_BODY
    assert send(server, fits)[0] == 202


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        (b"{not json", BEARER),
        (b"\xff\xfe", BEARER),
        (b'["vault", "app/db"]', BEARER),
        (b'{"secret": "app/db"}', BEARER),
        (b'{"provider": "Vault!", "secret": "app/db"}', BEARER),
        (b'{"provider": "vault"}', BEARER),
        (b'{"provider": "vault", "secret": "a", "secrets": ["b"]}', BEARER),
        (b'{"provider": "vault", "secrets": []}', BEARER),
        (b'{"provider": "vault", "secrets": "app/db"}', BEARER),
        (b'{"provider": "vault", "secret": 7}', BEARER),
        (b'{"provider": "vault", "secret": ""}', BEARER),
        (b'{"provider": "vault", "secret": "a\\nb"}', BEARER),
        (json.dumps({"provider": "vault", "secret": "a" * 513}).encode(), BEARER),
        (b'{"provider": "vault", "secret": "a", "idempotency_key": 5}', BEARER),
        (BODY, {**BEARER, "Content-Type": "text/plain"}),
        (BODY, {"Authorization": f"Bearer {TOKEN}"}),
    ],
    ids=[
        "not json",
        "not utf-8",
        "not an object",
        "no provider",
        "bad provider name",
        "no secret",
        "secret and secrets",
        "empty list",
        "secrets not a list",
        "secret not text",
        "empty secret",
        "control character",
        "513 characters",
        "key not text",
        "text/plain",
        "no content type",
    ],
)
def test_a_malformed_request_is_400_and_triggers_nothing(
    server: WebhookServer, hints: Hints, body: bytes, headers: dict[str, str]
) -> None:
    status, payload, _ = send(server, body, headers)
    assert (status, payload["accepted"], payload["error"]) == (400, False, "bad_request")
    assert payload["message"]
    assert hints.calls == []


def test_what_the_http_parser_refuses_is_answered_in_json(
    server: WebhookServer, hints: Hints, caplog: pytest.LogCaptureFixture
) -> None:
    status, payload, response = send(server, BODY, {**BEARER, "X-Long": "x" * 70_000})
    assert (status, payload["error"]) == (431, "bad_request")
    assert response.getheader("Server") == "dso-webhook"
    assert hints.calls == []
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_a_512_character_secret_path_is_accepted(server: WebhookServer, hints: Hints) -> None:
    assert send(server, json.dumps({"provider": "v", "secret": "é" * 512}).encode())[0] == 202
    assert hints.calls[0][1] == ("é" * 512,)


def test_unknown_path_is_404_and_wrong_method_is_405(server: WebhookServer) -> None:
    assert send(server, path="/hooks/other")[0] == 404
    assert send(server, path="/hooks/secret-changed/x")[0] == 404
    assert send(server, path=f"{PATH}?source=ci")[0] == 202  # a query string is ignored
    status, payload, response = send(server, b"", method="GET")
    assert (status, payload["error"]) == (405, "method_not_allowed")
    assert response.getheader("Allow") == "POST"


def test_beyond_the_rate_and_burst_requests_get_429_until_tokens_refill(
    start: Any, hints: Hints, clock: Clock
) -> None:
    server = start(config(rate_limit="1/s", burst=3))
    assert [send(server)[0] for _ in range(3)] == [202, 202, 202]
    status, payload, response = send(server)
    assert (status, payload["error"]) == (429, "rate_limited")
    assert response.getheader("Retry-After") == "1"
    assert len(hints.calls) == 3
    clock.now += 1
    assert send(server)[0] == 202


def test_refused_requests_spend_the_rate_limit_and_a_bad_token_is_refused_unread(
    start: Any, hints: Hints, clock: Clock
) -> None:
    server = start(config(rate_limit="1/s", burst=2))
    too_big = b"{" + b" " * MAX_BODY + b"}"
    assert send(server, too_big, {**JSON, "Authorization": "Bearer x"})[0] == 401
    assert send(server, BODY, JSON)[0] == 401
    assert send(server)[0] == 429
    assert hints.calls == []
    assert server.stats["rejected"] == {"unauthorized": 2, "rate_limited": 1}


def test_a_slow_client_is_cut_and_does_not_block_another_request(start: Any, hints: Hints) -> None:
    server = start(read_timeout=1.0)
    slow = socket.create_connection(server.address, timeout=10)
    try:
        slow.sendall(f"POST {PATH} HTTP/1.1\r\nHost: x\r\nContent-Ty".encode())
        began = time.monotonic()
        assert send(server)[0] == 202
        assert time.monotonic() - began < 0.9  # served while the slow one still waits
        # It keeps trickling a byte every 0.3 s: the deadline is per request, not per read.
        answer = b"?"
        for _ in range(20):
            with contextlib.suppress(OSError):
                slow.sendall(b"e")
            if select.select([slow], [], [], 0.3)[0]:
                try:
                    answer = slow.recv(1024)
                except ConnectionResetError:
                    answer = b""
                break
        assert answer == b""  # closed without an answer
        assert 0.9 < time.monotonic() - began < 1.8
    finally:
        slow.close()
    assert len(hints.calls) == 1
    deadline = time.monotonic() + 5
    while server.stats["rejected"].get("timeout") != 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.stats["rejected"] == {"timeout": 1}


def test_connections_beyond_the_cap_wait_for_a_free_slot(start: Any, hints: Hints) -> None:
    server = start(read_timeout=1.0, max_connections=1)
    slow = socket.create_connection(server.address, timeout=10)
    try:
        slow.sendall(b"POST")
        time.sleep(0.2)
        began = time.monotonic()
        assert send(server)[0] == 202
        waited = time.monotonic() - began
    finally:
        slow.close()
    # Served only once the slow connection's deadline freed the one slot (1 s after it came).
    assert 0.6 < waited < 3
    assert len(hints.calls) == 1


def test_stop_cuts_connections_in_progress(start: Any) -> None:
    server = start(read_timeout=30.0)
    slow = socket.create_connection(server.address, timeout=10)
    try:
        slow.sendall(b"POST")
        time.sleep(0.2)
        began = time.monotonic()
        server.stop()
        assert time.monotonic() - began < 2
        assert slow.recv(1024) == b""
    finally:
        slow.close()
    with pytest.raises(OSError):
        socket.create_connection(server.address, timeout=2).close()


def test_a_failing_on_hint_is_500_and_the_key_can_be_retried(clock: Clock) -> None:
    calls: list[str] = []

    def on_hint(provider: str, secrets: tuple[str, ...], trace_id: str) -> None:
        calls.append(trace_id)
        if len(calls) == 1:
            raise RuntimeError("queue closed")

    server = WebhookServer(config(), on_hint, clock=clock)
    server.start()
    try:
        headers = {**BEARER, "Idempotency-Key": "k1"}
        assert send(server, BODY, headers)[0] == 500
        assert send(server, BODY, headers)[0] == 202
    finally:
        server.stop()
    assert len(calls) == 2


def test_an_address_in_use_is_a_config_error_naming_the_key(
    server: WebhookServer, hints: Hints
) -> None:
    host, port = server.address
    other = WebhookServer(config(listen=f"{host}:{port}"), hints)
    with pytest.raises(ConfigError) as caught:
        other.start()
    assert "agent.webhook.listen" in str(caught.value)
    assert f"{host}:{port}" in str(caught.value)
    assert caught.value.exit_code == 3


def test_no_token_or_secret_in_logs_or_responses(
    server: WebhookServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="dso")
    answers = [
        send(server),
        send(server, BODY, signed(BODY)),
        send(server, BODY, {**JSON, "Authorization": f"Bearer {TOKEN[:-1]}"}),
        send(server, BODY, {**JSON, "Authorization": f"Bearer {KEY}"}),
        send(server, BODY, signed(BODY, key=TOKEN)),
        send(server, b"{", BEARER),
    ]
    assert [status for status, _, _ in answers] == [202, 202, 401, 401, 401, 400]
    seen = caplog.text + "".join(
        json.dumps(payload) + str(response.getheaders()) for _, payload, response in answers
    )
    for canary in (TOKEN, KEY, TOKEN[:-1], "canary"):
        assert canary not in seen
    accepted = [r for r in caplog.records if r.getMessage().startswith("Webhook hint accepted")]
    assert [getattr(r, "trace_id", None) for r in accepted] == [
        payload["trace_id"] for _, payload, _ in answers[:2]
    ]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 3
    assert all("127.0.0.1:" in r.getMessage() for r in warnings)
