"""The built-in ``webhook`` extension: an HMAC-signed JSON POST per rotation event.

Requests are sent by one background thread from a bounded queue, so a slow or dead receiver
never delays a rotation; the hook only enqueues. Each POST carries::

    Content-Type:     application/json
    X-DSO-Event:      rotation_completed
    X-DSO-Trace-Id:   <the rotation's trace id>
    X-DSO-Timestamp:  <Unix seconds, also in the body>
    X-DSO-Delivery:   <id, the same on every retry of one notification>
    X-DSO-Signature:  sha256=<hex HMAC-SHA256 of the raw body, keyed with the webhook secret>

A connection error, a timeout, 429 or a 5xx is retried up to ``retries`` times, waiting 1 s,
2 s, 4 s… (at most 30 s); any other status gives up at once. Giving up is logged with the trace
id. The secret is a :class:`~kernel.secret_value.SecretValue` and the URL is logged by origin
only (its path may itself be a token, as in Slack's incoming webhooks).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import http.client
import json
import queue
import ssl
import threading
import time
import urllib.parse
import uuid
from dataclasses import dataclass

from kernel import __version__
from kernel.extensions.events import RotationEvent
from kernel.extensions.hookspecs import hookimpl
from kernel.log import get_logger
from kernel.secret_value import SecretValue

#: ``extensions.webhook.events`` → the events sent.
EVENT_SETS: dict[str, frozenset[str]] = {
    "all": frozenset(
        {
            "rotation_planned",
            "rotation_started",
            "after_swap",
            "rotation_failed",
            "rotation_rolled_back",
            "rotation_completed",
        }
    ),
    "outcomes": frozenset({"rotation_completed", "rotation_failed", "rotation_rolled_back"}),
    "failures": frozenset({"rotation_failed", "rotation_rolled_back"}),
}
SIGNATURE_HEADER = "X-DSO-Signature"
#: Notifications waiting beyond this are dropped (and logged): memory stays bounded.
QUEUE_SIZE = 1000

_log = get_logger("extensions.webhook")
_STOP = object()


def sign(secret: SecretValue, body: bytes) -> str:
    """The ``X-DSO-Signature`` value for ``body``: ``sha256=<hex>``."""
    return "sha256=" + hmac.new(secret.reveal(), body, hashlib.sha256).hexdigest()


def verify(secret: bytes, body: bytes, signature: str) -> bool:
    """What a receiver does: recompute the HMAC of the raw body, compare in constant time."""
    expected = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, signature)


def origin(url: str) -> str:
    """``scheme://host[:port]`` of ``url``: what logs show of it."""
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"


@dataclass(frozen=True, slots=True)
class Delivery:
    """One notification: the signed request, sent as-is on every attempt."""

    event: str
    trace_id: str
    body: bytes
    headers: dict[str, str]


class WebhookNotifier:
    """Queues a signed POST per selected event; a daemon thread delivers them in order."""

    def __init__(
        self,
        url: str,
        secret: SecretValue,
        *,
        events: str = "outcomes",
        timeout: float = 5.0,
        retries: int = 3,
        backoff: float = 1.0,
        max_backoff: float = 30.0,
        shutdown_grace: float = 5.0,
    ) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"webhook URL must be http:// or https://, not {origin(url)!r}")
        if not isinstance(secret, SecretValue):
            raise TypeError("the webhook secret must be a SecretValue")
        self.url = url
        self.events = EVENT_SETS[events]
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.shutdown_grace = shutdown_grace
        self._secret = secret
        self._parts = parts
        self._queue: queue.Queue[Delivery | object] = queue.Queue(QUEUE_SIZE)
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._deadline: float | None = None
        self._wake = threading.Event()
        #: Notifications delivered / given up (for tests and status).
        self.delivered = 0
        self.undelivered = 0

    def __repr__(self) -> str:
        return f"WebhookNotifier({origin(self.url)!r})"

    # -- hooks ----------------------------------------------------------------------------

    @hookimpl
    def dso_rotation_planned(self, event: RotationEvent) -> None:
        self.notify("rotation_planned", event)

    @hookimpl
    def dso_rotation_started(self, event: RotationEvent) -> None:
        self.notify("rotation_started", event)

    @hookimpl
    def dso_after_swap(self, event: RotationEvent) -> None:
        self.notify("after_swap", event)

    @hookimpl
    def dso_rotation_failed(self, event: RotationEvent) -> None:
        self.notify("rotation_failed", event)

    @hookimpl
    def dso_rotation_rolled_back(self, event: RotationEvent) -> None:
        self.notify("rotation_rolled_back", event)

    @hookimpl
    def dso_rotation_completed(self, event: RotationEvent) -> None:
        self.notify("rotation_completed", event)

    @hookimpl
    def dso_shutdown(self) -> None:
        self.close(self.shutdown_grace)

    # -- queueing -------------------------------------------------------------------------

    def request(self, name: str, event: RotationEvent, *, now: float | None = None) -> Delivery:
        """The signed request announcing ``event`` as ``name``."""
        stamp = int(time.time() if now is None else now)
        delivery_id = uuid.uuid4().hex
        doc = {
            "event": name,
            "delivery": delivery_id,
            "timestamp": stamp,
            "trace_id": event.trace_id,
            "rotation": event.to_json(),
        }
        body = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": f"dso/{__version__}",
            "X-DSO-Event": name,
            "X-DSO-Trace-Id": event.trace_id,
            "X-DSO-Timestamp": str(stamp),
            "X-DSO-Delivery": delivery_id,
            SIGNATURE_HEADER: sign(self._secret, body),
        }
        return Delivery(name, event.trace_id, body, headers)

    def notify(self, name: str, event: RotationEvent) -> None:
        """Queue a notification if ``name`` is selected; never blocks, never raises."""
        if name not in self.events or event.dry_run or self._deadline is not None:
            return
        self._ensure_thread()
        try:
            self._queue.put_nowait(self.request(name, event))
        except queue.Full:
            self.undelivered += 1
            _log.warning(
                "webhook %s: queue full (%d waiting); %s notification dropped",
                origin(self.url),
                QUEUE_SIZE,
                name,
                extra={"trace_id": event.trace_id, "extension": "webhook"},
            )

    def close(self, grace: float) -> None:
        """Deliver what is queued for up to ``grace`` seconds, then give up on the rest."""
        if self._deadline is not None:
            return
        self._deadline = time.monotonic() + grace
        self._wake.set()
        thread = self._thread
        if thread is None:
            return
        # When the queue stays full, the worker still sees the deadline and gives up the rest.
        with contextlib.suppress(queue.Full):
            self._queue.put(_STOP, timeout=max(0.0, grace))
        thread.join(max(0.0, self._deadline - time.monotonic()) + self.timeout)

    def _ensure_thread(self) -> None:
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="dso-webhook", daemon=True)
                self._thread.start()

    # -- delivery (worker thread) ---------------------------------------------------------

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            assert isinstance(item, Delivery)
            if self._past_deadline():
                self._give_up(item, 0, "dso stopped before it could be sent")
                continue
            try:
                delivered = self.deliver(item)
            except Exception as exc:  # a bug here must not kill the thread and stall the queue
                self._give_up(item, 0, f"{type(exc).__name__}: {exc}")
                continue
            if delivered:
                self.delivered += 1

    def deliver(self, delivery: Delivery) -> bool:
        """Send ``delivery`` with retries and backoff; False (logged) when it gave up."""
        delay = self.backoff
        attempts = self.retries + 1
        for attempt in range(1, attempts + 1):
            try:
                status = self._post(delivery)
            except (OSError, http.client.HTTPException) as exc:  # ssl/timeout are OSError
                problem, retry = f"{type(exc).__name__}: {exc}", True
            else:
                if 200 <= status < 300:
                    _log.debug(
                        "webhook %s: %s delivered (HTTP %d, attempt %d)",
                        origin(self.url),
                        delivery.event,
                        status,
                        attempt,
                        extra={"trace_id": delivery.trace_id, "extension": "webhook"},
                    )
                    return True
                problem, retry = f"HTTP {status}", status == 429 or status >= 500
            if not retry or attempt == attempts:
                self._give_up(delivery, attempt, problem)
                return False
            _log.info(
                "webhook %s: attempt %d of %d failed (%s); retrying in %.1f s",
                origin(self.url),
                attempt,
                attempts,
                problem,
                delay,
                extra={"trace_id": delivery.trace_id, "extension": "webhook"},
            )
            if not self._sleep(delay):
                self._give_up(delivery, attempt, problem + "; dso is stopping")
                return False
            delay = min(delay * 2, self.max_backoff)
        return False  # pragma: no cover - the loop always returns

    def _give_up(self, delivery: Delivery, attempts: int, problem: str) -> None:
        self.undelivered += 1
        _log.warning(
            "webhook %s: %s notification not delivered after %d attempt(s): %s",
            origin(self.url),
            delivery.event,
            attempts,
            problem,
            extra={"trace_id": delivery.trace_id, "extension": "webhook"},
        )

    def _post(self, delivery: Delivery) -> int:
        parts = self._parts
        connection: http.client.HTTPConnection
        if parts.scheme == "https":
            context = ssl.create_default_context()
            connection = http.client.HTTPSConnection(
                parts.hostname or "", parts.port, timeout=self.timeout, context=context
            )
        else:
            connection = http.client.HTTPConnection(
                parts.hostname or "", parts.port, timeout=self.timeout
            )
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        try:
            connection.request("POST", target, body=delivery.body, headers=delivery.headers)
            response = connection.getresponse()
            response.read(64 * 1024)
            return response.status
        finally:
            connection.close()

    def _past_deadline(self) -> bool:
        return self._deadline is not None and time.monotonic() >= self._deadline

    def _sleep(self, delay: float) -> bool:
        """Wait ``delay`` seconds, cut short by shutdown; False once the deadline passed."""
        end = time.monotonic() + delay
        while True:
            now = time.monotonic()
            if self._past_deadline():
                return False
            if now >= end:
                return True
            limit = end if self._deadline is None else min(end, self._deadline)
            if self._wake.wait(limit - now):
                self._wake.clear()
