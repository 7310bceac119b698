"""The agent's inbound webhook: ``POST <agent.webhook.path>`` asks for a ``versions`` check now.

A caller (a CI job, a secret manager's event hook) names a provider and secrets; the server only
calls ``on_hint(provider, secrets, trace_id)`` so the agent asks that provider for their current
versions. Nothing in a request is trusted as a value or a version: a forged call can at most
cause one provider read. Request body (JSON, at most 64 KiB)::

    {"provider": "vault", "secret": "app/db"}                  # or "secrets": ["app/db", "app/api"]
    {"provider": "vault", "secrets": ["app/db"], "idempotency_key": "deploy-42"}

Authentication (``agent.webhook.token`` and/or ``hmac_secret``): a request must carry at least
one configured credential, and every configured credential it carries must be right; a header
for a credential that is not configured is ignored. ``Authorization: Bearer <token>`` is checked
before the body is read; ``X-DSO-Signature: sha256=<hex>`` (HMAC-SHA256 of the raw body) after.
Both compare in constant time. Order of checks: path (404), method (405), rate (429), headers'
credentials (401), size (413), framing and Content-Type (400), signature (401), body (400),
idempotency key (200, no second hint), then ``on_hint`` (202).

Each connection carries one request and must deliver it whole within ``read_timeout``, so a slow
client cannot hold a worker; at most ``max_connections`` are served at once (the others wait in
the listen backlog until one ends).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import http.server
import io
import json
import re
import socket
import socketserver
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from kernel.config.model import AgentWebhookConfig
from kernel.config.schema import PROVIDER_NAME_PATTERN
from kernel.errors import ConfigError
from kernel.extensions.events import new_trace_id
from kernel.log import get_logger

#: ``on_hint(provider, secrets, trace_id)``: queue a ``versions`` check; must not block long.
OnHint = Callable[[str, tuple[str, ...], str], None]

MAX_BODY = 64 * 1024
MAX_SECRETS = 100
MAX_SECRET_LENGTH = 512
MAX_KEY_LENGTH = 200
#: A repeated idempotency key within this many seconds answers 200 and triggers nothing.
IDEMPOTENCY_WINDOW = 600.0
#: Keys remembered at most (oldest forgotten first), so memory stays bounded under a flood.
IDEMPOTENCY_KEYS = 10_000
#: Seconds a connection has to deliver its request line, headers and body.
READ_TIMEOUT = 5.0
MAX_CONNECTIONS = 16
#: Unread body bytes discarded after an early answer, so the client reads it instead of a reset.
DRAIN_LIMIT = 1024 * 1024
SIGNATURE_HEADER = "X-DSO-Signature"
THREAD_NAME = "dso-webhook"

_PROVIDER = re.compile(PROVIDER_NAME_PATTERN)
_SIGNATURE = re.compile(r"sha256=([0-9a-fA-F]{64})")
log = get_logger("agent.webhook")


class _Reject(Exception):
    """An answer other than 202/200: status, reason code (stats, body) and a message."""

    def __init__(self, status: int, reason: str, message: str, **headers: str) -> None:
        super().__init__(message)
        self.status, self.reason, self.message, self.headers = status, reason, message, headers


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` saved; one request takes one."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float]) -> None:
        self._rate, self._burst, self._clock = rate, float(burst), clock
        self._tokens, self._stamp = float(burst), clock()
        self._lock = threading.Lock()

    def take(self) -> float:
        """0 when a token was taken, else the seconds until one is available."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self._burst, self._tokens + (now - self._stamp) * self._rate)
            self._stamp = now
            if self._tokens >= 1:
                self._tokens -= 1
                return 0.0
            return (1 - self._tokens) / self._rate


class _Seen:
    """Idempotency keys of the last :data:`IDEMPOTENCY_WINDOW` seconds → their trace id."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._keys: OrderedDict[str, tuple[float, str]] = OrderedDict()
        self._lock = threading.Lock()

    def claim(self, key: str, trace_id: str) -> str | None:
        """None when ``key`` is new (now claimed by ``trace_id``), else the first trace id."""
        with self._lock:
            now = self._clock()
            while self._keys:
                oldest, (stamp, _) = next(iter(self._keys.items()))
                if now - stamp < IDEMPOTENCY_WINDOW and len(self._keys) < IDEMPOTENCY_KEYS:
                    break
                del self._keys[oldest]
            if key in self._keys:
                return self._keys[key][1]
            self._keys[key] = (now, trace_id)
            return None

    def release(self, key: str) -> None:
        with self._lock:
            self._keys.pop(key, None)


class _DeadlineReader(io.RawIOBase):
    """Socket reads that fail once the connection's deadline has passed (not per read)."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self._sock, self._deadline = sock, deadline
        self.timed_out = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        remaining = self._deadline - time.monotonic()
        try:
            if remaining <= 0:
                raise TimeoutError("the request was not received in time")
            self._sock.settimeout(remaining)
            return self._sock.recv_into(buffer)
        except TimeoutError:
            self.timed_out = True
            raise


class WebhookServer:
    """The inbound webhook of ``agent.webhook``; :meth:`start` binds and serves in a thread."""

    def __init__(
        self,
        config: AgentWebhookConfig,
        on_hint: OnHint,
        *,
        clock: Callable[[], float] = time.monotonic,
        read_timeout: float = READ_TIMEOUT,
        max_connections: int = MAX_CONNECTIONS,
        on_request: Callable[[str, str | None], None] | None = None,
    ) -> None:
        self.config = config
        self._on_hint = on_hint
        #: Told each request's outcome (``accepted``, ``duplicate`` or ``rejected``, reason).
        self._on_request = on_request
        self.read_timeout = read_timeout
        self._bucket = TokenBucket(config.rate_per_second, config.burst, clock)
        self._seen = _Seen(clock)
        self._slots = threading.BoundedSemaphore(max_connections)
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {"accepted": 0, "duplicate": 0}
        self._rejected: dict[str, int] = {}
        self._server: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        """Bind ``listen`` and serve from thread ``dso-webhook``; ConfigError if it cannot bind."""
        host, port = self.config.address
        try:
            family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
            self._server = _HTTPServer((host, port), family, self)
        except OSError as exc:
            raise ConfigError(
                f"the webhook cannot listen on {self.config.listen}: "
                f"{exc.strerror or exc.__class__.__name__}",
                key="agent.webhook.listen",
                hint="choose a free port on an address of this host, or set "
                "agent.webhook.enabled: false",
            ) from None
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.2}, name=THREAD_NAME
        )
        self._thread.daemon = True
        self._thread.start()
        log.info("Webhook listening on %s:%d%s", *self.address, self.config.path)

    @property
    def address(self) -> tuple[str, int]:
        """The bound ``(host, port)`` (the real port when ``listen`` asked for port 0)."""
        if self._server is None:
            return self.config.address
        bound = self._server.server_address
        return str(bound[0]), int(bound[1])

    def stop(self) -> None:
        """Stop accepting, cut the connections in progress, and wait for their threads."""
        server, self._server = self._server, None
        if server is None:
            return
        server.stopping = True
        server.shutdown()
        server.close_all()
        if self._thread is not None:
            self._thread.join()

    @property
    def stats(self) -> dict[str, Any]:
        """``{"accepted": n, "duplicate": n, "rejected": {reason: n}}``."""
        with self._lock:
            return {**self._counts, "rejected": dict(self._rejected)}

    def _count(self, outcome: str, reason: str | None = None) -> None:
        with self._lock:
            if reason is None:
                self._counts[outcome] += 1
            else:
                self._rejected[reason] = self._rejected.get(reason, 0) + 1
        if self._on_request is not None:
            self._on_request(outcome, reason)

    # -- one request ------------------------------------------------------------------------

    def handle(self, request: _Handler) -> tuple[int, dict[str, Any]]:
        """Check ``request`` and call ``on_hint``; raises :class:`_Reject` for any other answer."""
        if urlsplit(request.path).path != self.config.path:
            raise _Reject(404, "not_found", "unknown path")
        if request.command != "POST":
            raise _Reject(405, "method_not_allowed", "use POST", Allow="POST")
        wait = self._bucket.take()
        if wait:
            raise _Reject(429, "rate_limited", "too many requests", **{"Retry-After": _ceil(wait)})
        signature = self._check_headers(request)
        body = request.read_body()
        if signature is not None:
            assert self.config.hmac_secret is not None
            expected = hmac.new(self.config.hmac_secret.reveal(), body, hashlib.sha256)
            if not hmac.compare_digest(expected.hexdigest().encode(), signature.encode()):
                raise self._unauthorized(request, "bad signature")
        provider, secrets, key = _parse(body, request.headers.get("Idempotency-Key"))
        trace_id = new_trace_id()
        if key is not None:
            first = self._seen.claim(key, trace_id)
            if first is not None:
                self._count("duplicate")
                return 200, {"accepted": True, "duplicate": True, "trace_id": first}
        try:
            self._on_hint(provider, secrets, trace_id)
        except Exception:
            if key is not None:
                self._seen.release(key)
            log.exception(
                "Webhook hint could not be queued",
                extra={"trace_id": trace_id, "provider": provider},
            )
            raise _Reject(500, "internal_error", "the hint could not be queued") from None
        self._count("accepted")
        log.info(
            "Webhook hint accepted: check %d secret(s) of provider %s",
            len(secrets),
            provider,
            extra={"trace_id": trace_id, "provider": provider},
        )
        return 202, {"accepted": True, "trace_id": trace_id}

    def _check_headers(self, request: _Handler) -> str | None:
        """The presented credentials: 401 unless one is present and the token (if any) is right.

        Returns the signature's hex digest to check against the body, or None.
        """
        token, key = self.config.token, self.config.hmac_secret
        authorization = request.headers.get("Authorization") if token is not None else None
        signature = request.headers.get(SIGNATURE_HEADER) if key is not None else None
        if authorization is None and signature is None:
            raise self._unauthorized(request, "no credentials")
        if authorization is not None:
            assert token is not None
            scheme, _, presented = authorization.partition(" ")
            right = hmac.compare_digest(presented.strip().encode("iso-8859-1"), token.reveal())
            if scheme.lower() != "bearer" or not right:
                raise self._unauthorized(request, "bad token")
        if signature is None:
            return None
        match = _SIGNATURE.fullmatch(signature.strip())
        if match is None:
            raise self._unauthorized(request, "bad signature")
        return match.group(1).lower()

    def _unauthorized(self, request: _Handler, why: str) -> _Reject:
        host, port = request.client_address[:2]
        log.warning("Webhook request from %s:%s rejected: %s", host, port, why)
        return _Reject(401, "unauthorized", "missing or wrong credentials")


def _parse(body: bytes, header_key: str | None) -> tuple[str, tuple[str, ...], str | None]:
    """``(provider, secrets, idempotency key)`` of a request body; 400 when malformed."""
    try:
        document = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise _Reject(400, "bad_request", "the body is not JSON") from None
    if not isinstance(document, dict):
        raise _Reject(400, "bad_request", "the body must be a JSON object")
    provider = document.get("provider")
    if not isinstance(provider, str) or not _PROVIDER.fullmatch(provider):
        raise _Reject(400, "bad_request", "'provider' must be a provider name such as vault")
    if ("secret" in document) == ("secrets" in document):
        raise _Reject(400, "bad_request", "name exactly one of 'secret' or 'secrets'")
    names = [document["secret"]] if "secret" in document else document["secrets"]
    if not isinstance(names, list) or not 1 <= len(names) <= MAX_SECRETS:
        raise _Reject(400, "bad_request", f"'secrets' must list 1 to {MAX_SECRETS} names")
    for name in names:
        if not _printable(name, MAX_SECRET_LENGTH):
            raise _Reject(
                400,
                "bad_request",
                f"a secret must be printable text of 1 to {MAX_SECRET_LENGTH} characters",
            )
    key = document.get("idempotency_key", header_key)
    if key is not None and not _printable(key, MAX_KEY_LENGTH):
        raise _Reject(
            400,
            "bad_request",
            f"the idempotency key must be 1 to {MAX_KEY_LENGTH} printable characters",
        )
    return provider, tuple(dict.fromkeys(names)), key


def _printable(value: Any, limit: int) -> bool:
    return isinstance(value, str) and 1 <= len(value) <= limit and value.isprintable()


def _ceil(seconds: float) -> str:
    return str(max(1, int(-(-seconds // 1))))


class _Handler(http.server.BaseHTTPRequestHandler):
    """One connection, one request (HTTP/1.0), all of it read before the connection's deadline."""

    server: _HTTPServer
    server_version = "dso-webhook"

    def version_string(self) -> str:
        return self.server_version

    def setup(self) -> None:
        super().setup()
        self.rfile.close()  # replaced: reads must respect one deadline for the whole request
        self._read_timeout = self.server.webhook.read_timeout
        self._reader = _DeadlineReader(self.connection, time.monotonic() + self._read_timeout)
        self.rfile = io.BufferedReader(self._reader)
        self._unread = 0

    def _serve(self) -> None:
        webhook = self.server.webhook
        length = self.headers.get("Content-Length", "").strip()
        self._unread = int(length) if length.isdigit() else 0
        try:
            status, payload = webhook.handle(self)
        except _Reject as reject:
            webhook._count("rejected", reject.reason)
            payload = {"accepted": False, "error": reject.reason, "message": reject.message}
            self._reply(reject.status, payload, reject.headers)
        else:
            self._reply(status, payload, {})

    do_POST = do_GET = do_HEAD = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _serve

    def read_body(self) -> bytes:
        """The body, after checking its framing, size and Content-Type (413/400)."""
        if self.headers.get("Transfer-Encoding") is not None:
            raise _Reject(400, "bad_request", "send the body with a Content-Length, not chunked")
        length = self.headers.get("Content-Length", "")
        if not length.strip().isdigit():
            raise _Reject(400, "bad_request", "a Content-Length is required")
        self._unread = int(length)
        if self._unread > MAX_BODY:
            raise _Reject(413, "too_large", f"the body exceeds {MAX_BODY // 1024} KiB")
        kind = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if kind != "application/json":
            raise _Reject(400, "bad_request", "the Content-Type must be application/json")
        body = self.rfile.read(self._unread)
        self._unread = 0
        if len(body) < int(length):
            raise _Reject(400, "bad_request", "the body ended early")
        return body

    def _reply(self, status: int, payload: dict[str, Any], headers: dict[str, str]) -> None:
        body = json.dumps(payload).encode()
        self.connection.settimeout(self._read_timeout)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Errors found by the stdlib parser (bad request line, header overflow) as JSON."""
        self.server.webhook._count("rejected", "bad_request")
        self.close_connection = True
        payload = {"accepted": False, "error": "bad_request", "message": message or "bad request"}
        self._reply(code, payload, {})

    def finish(self) -> None:
        # Read (and drop) what an early answer left unread: closing a socket with unread data
        # sends a reset, which can destroy the answer before the client reads it.
        if self._reader.timed_out:
            self.server.webhook._count("rejected", "timeout")
        with contextlib.suppress(OSError, ValueError):
            left = min(self._unread, DRAIN_LIMIT)
            while left > 0:
                chunk = self.rfile.read1(min(left, 65536))
                if not chunk:
                    break
                left -= len(chunk)
        super().finish()

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        line = getattr(self, "requestline", "")[:200]  # unset when the request line is garbage
        log.debug("Webhook %r from %s: %s", line, self.address_string(), code)

    def log_error(self, format: str, *args: Any) -> None:
        log.warning("Webhook request from %s: " + format, self.address_string(), *args)


class _HTTPServer(http.server.HTTPServer):
    """An HTTP server with a thread per connection, at most ``max_connections`` of them."""

    request_queue_size = 64

    def __init__(
        self, address: tuple[str, int], family: socket.AddressFamily, webhook: WebhookServer
    ) -> None:
        self.address_family = family
        self.webhook = webhook
        self._active: dict[socket.socket, threading.Thread] = {}
        self._guard = threading.Lock()
        self.stopping = False
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer's own also resolves the host's FQDN, a DNS query the server never needs.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), self.server_address[1]

    def process_request(self, request: Any, client_address: Any) -> None:
        # At the cap, wait for a slot rather than answer 503 unread: closing a socket with
        # unread data resets it, and the caller would see a broken pipe, not an answer. Other
        # connections wait in the listen backlog meanwhile.
        while not self.webhook._slots.acquire(timeout=0.1):
            if self.stopping:
                self.shutdown_request(request)
                return
        thread = threading.Thread(
            target=self._serve_one, args=(request, client_address), name=f"{THREAD_NAME}-conn"
        )
        thread.daemon = True
        with self._guard:
            self._active[request] = thread
        thread.start()

    def _serve_one(self, request: socket.socket, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except OSError as exc:  # the client went away
            log.debug("Webhook connection from %s ended: %s", client_address[0], exc)
        except Exception:
            log.exception("Webhook connection from %s failed", client_address[0])
        finally:
            self.shutdown_request(request)
            with self._guard:
                self._active.pop(request, None)
            self.webhook._slots.release()

    def close_all(self) -> None:
        """Close the listener, cut every connection in progress, wait for its thread."""
        self.server_close()
        with self._guard:
            active = list(self._active.items())
        for request, _ in active:
            with contextlib.suppress(OSError):
                request.shutdown(socket.SHUT_RDWR)
        for _, thread in active:
            thread.join()
