"""The agent's Docker events source: one thread streaming the daemon's events, reconnecting.

:class:`DockerEvents` reads ``/events`` (container, network and volume events, filtered at the
daemon) and hands each one to a callback as a :class:`DockerEvent`. When the daemon goes away
(the stream ends or a call fails) it logs one WARNING for the whole outage, retries with an
exponential :class:`Backoff`, and once subscribed again asks for the events it missed
(``since=`` the last one seen: the daemon replays its in-memory buffer, so a short restart of the
connection loses nothing; a restart of dockerd itself empties that buffer, which is why the agent
runs a full reconcile from ``on_reconnect``). Replayed events already delivered are dropped.

Docker SDK exceptions are translated at this boundary
(:func:`~kernel.containers.client.docker_errors`): nothing foreign leaves this module.
"""

from __future__ import annotations

import contextlib
import enum
import random
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kernel.containers.events import each_event, open_client, subscribe
from kernel.errors import DockerError
from kernel.log import get_logger

if TYPE_CHECKING:
    import docker

log = get_logger("agent.docker")

#: Event types asked of the daemon (``filters={"type": …}``); everything else never arrives.
EVENT_TYPES = ("container", "network", "volume")
THREAD_NAME = "dso-docker-events"
#: Keys of recently delivered events kept to drop the daemon's replay after a reconnect.
_DEDUP_KEYS = 4096


@dataclass(frozen=True, slots=True)
class Backoff:
    """Delays between reconnection attempts: ``initial * factor**attempt``, capped, jittered.

    ``jitter`` is the fraction that may be taken off at random (delay in
    ``[base * (1 - jitter), base]``), so agents on many hosts do not reconnect in step.
    """

    initial: float = 0.5
    factor: float = 2.0
    maximum: float = 30.0
    jitter: float = 0.2

    def __post_init__(self) -> None:
        if not 0 < self.initial <= self.maximum:
            raise ValueError("backoff: need 0 < initial <= maximum")
        if self.factor < 1:
            raise ValueError("backoff: factor must be >= 1")
        if not 0 <= self.jitter < 1:
            raise ValueError("backoff: jitter must be in [0, 1)")

    def delay(self, attempt: int, rand: float) -> float:
        """Seconds to wait before attempt ``attempt + 1``; ``rand`` is uniform in ``[0, 1)``."""
        # Capping the exponent keeps factor**attempt finite after days of outage.
        base = min(self.maximum, self.initial * self.factor ** min(attempt, 64))
        return base * (1.0 - self.jitter * rand)


@dataclass(frozen=True, slots=True)
class DockerEvent:
    """One daemon event, as the agent needs it.

    ``action`` is Docker's own (``start``, ``die``, ``stop``, ``destroy``, ``create``,
    ``health_status: healthy``, ``connect``…). ``labels`` is the actor's attribute map: for a
    container its labels plus ``name``/``image`` (and ``exitCode`` on ``die``); for a network
    ``name``/``type`` (and ``container`` on ``connect``/``disconnect``).
    """

    type: str
    action: str
    id: str
    name: str
    labels: Mapping[str, str] = field(hash=False)
    time: float
    time_nano: int

    @property
    def health(self) -> str | None:
        """``healthy``/``unhealthy``/``starting`` for a ``health_status`` event, else None."""
        prefix, sep, status = self.action.partition(":")
        return status.strip() if sep and prefix == "health_status" else None

    @property
    def key(self) -> tuple[int, str, str]:
        """What identifies an event across a replay."""
        return (self.time_nano, self.id, self.action)

    @classmethod
    def from_raw(cls, raw: Mapping[str, Any]) -> DockerEvent | None:
        """The event for one decoded ``/events`` message; None for exec_* and other types."""
        kind = str(raw.get("Type") or "")
        action = str(raw.get("Action") or raw.get("status") or "")
        if kind not in EVENT_TYPES or not action or action.startswith("exec_"):
            return None
        actor = raw.get("Actor") or {}
        ident = str(actor.get("ID") or raw.get("id") or "")
        attributes = {str(k): str(v) for k, v in (actor.get("Attributes") or {}).items()}
        # A volume's ID is its name; containers and networks carry theirs as an attribute.
        name = attributes.get("name") or (ident if kind == "volume" else "")
        nano = raw.get("timeNano")
        time_nano = int(nano) if nano else int(raw.get("time") or 0) * 10**9
        return cls(kind, action, ident, name, attributes, time_nano / 1e9, time_nano)


class WatcherState(enum.Enum):
    """Where the watcher thread is."""

    #: ``start()`` not called yet.
    IDLE = "idle"
    #: Connecting to the daemon and subscribing to ``/events``.
    CONNECTING = "connecting"
    #: Subscribed; reading events.
    CONNECTED = "connected"
    #: The last attempt failed or the stream was lost; waiting before the next attempt.
    BACKOFF = "backoff"
    #: ``stop()`` was called, or the thread ended.
    STOPPED = "stopped"


#: States in which the watcher is doing its job (for the agent's health).
LIVE_STATES = frozenset({WatcherState.CONNECTING, WatcherState.CONNECTED, WatcherState.BACKOFF})


class DockerEvents:
    """Streams the daemon's events to ``on_event`` from a daemon thread, reconnecting forever.

    ``connect`` returns a fresh client per attempt. ``on_event`` and ``on_reconnect`` run on the
    watcher thread: keep them short (hand the work to a queue). ``on_reconnect`` is called after
    the stream came back from a lost daemon (not at the first connection), before the missed
    events are delivered. An exception in either callback is logged and the watcher goes on.
    ``sleep`` (default: an interruptible wait), ``clock`` and ``rand`` are injectable for tests.
    """

    def __init__(
        self,
        connect: Callable[[], docker.DockerClient],
        on_event: Callable[[DockerEvent], None],
        on_reconnect: Callable[[], None],
        *,
        backoff: Backoff | None = None,
        sleep: Callable[[float], object] | None = None,
        clock: Callable[[], float] = time.time,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self._connect = connect
        self._on_event = on_event
        self._on_reconnect = on_reconnect
        self.backoff = backoff or Backoff()
        self._stopping = threading.Event()
        self._sleep = sleep or self._stopping.wait
        self._clock = clock
        self._rand = rand
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._client: Any = None
        self._stream: Any = None
        self._state = WatcherState.IDLE
        self._last_event_at: float | None = None
        # Where a new subscription resumes (nanoseconds since the epoch, daemon's clock once an
        # event was seen), and what was delivered.
        self._last_nano: int | None = None
        self._subscribed_nano: int | None = None
        self._seen: OrderedDict[tuple[int, str, str], None] = OrderedDict()

    # -- public API -------------------------------------------------------------------------

    def start(self) -> None:
        """Start the watcher thread (once)."""
        with self._lock:
            if self._thread is not None:
                raise RuntimeError("DockerEvents.start() called twice")
            self._thread = threading.Thread(target=self._run, name=THREAD_NAME, daemon=True)
            self._state = WatcherState.CONNECTING
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> bool:
        """End the stream and join the thread; True when it ended within ``timeout``."""
        self._stopping.set()
        with self._lock:
            stream, client = self._stream, self._client
        # Closing the response's socket makes the blocked read return at once.
        _close_quietly(stream)
        _close_quietly(client)
        thread = self._thread
        if thread is None:
            self._state = WatcherState.STOPPED
            return True
        thread.join(timeout)
        return not thread.is_alive()

    @property
    def state(self) -> WatcherState:
        return self._state

    @property
    def alive(self) -> bool:
        """The thread runs and is connected, connecting or waiting to retry."""
        thread = self._thread
        return thread is not None and thread.is_alive() and self._state in LIVE_STATES

    @property
    def connected(self) -> bool:
        return self._state is WatcherState.CONNECTED

    @property
    def last_event_at(self) -> float | None:
        """``clock()`` when the last event was delivered, or None."""
        return self._last_event_at

    # -- the watcher thread -----------------------------------------------------------------

    def _run(self) -> None:
        attempt = 0
        ever_connected = False
        in_outage = False
        try:
            while not self._stopping.is_set():
                self._state = WatcherState.CONNECTING
                try:
                    stream = self._subscribe()
                except DockerError as exc:
                    reason = str(exc)
                except Exception as exc:
                    log.exception("Docker event stream: unexpected error while connecting")
                    reason = type(exc).__name__
                else:
                    if stream is None:  # stopped while connecting
                        break
                    attempt = 0
                    in_outage = False
                    log.info("Event watcher started")
                    if ever_connected:
                        self._call_on_reconnect()
                    ever_connected = True
                    reason = self._read(stream)
                    if self._stopping.is_set():
                        break
                    self._state = WatcherState.BACKOFF
                if not in_outage:
                    in_outage = True
                    message = (
                        "Docker event stream lost, reconnecting..."
                        if ever_connected
                        else "Docker event stream not connected, retrying..."
                    )
                    log.warning(message, extra={"reason": reason})
                delay = self.backoff.delay(attempt, self._rand())
                attempt += 1
                log.debug(
                    "Docker event stream: attempt %d failed (%s), next in %.2fs",
                    attempt,
                    reason,
                    delay,
                )
                self._state = WatcherState.BACKOFF
                self._sleep(delay)
        finally:
            self._disconnect()
            self._state = WatcherState.STOPPED

    def _subscribe(self) -> Any:
        """A subscribed ``/events`` stream, or None when ``stop()`` came first."""
        client = open_client(self._connect)
        try:
            stream = subscribe(client, types=EVENT_TYPES, since=self._since())
        except BaseException:
            _close_quietly(client)
            raise
        with self._lock:
            if self._stopping.is_set():
                _close_quietly(stream)
                _close_quietly(client)
                return None
            self._client, self._stream = client, stream
            self._state = WatcherState.CONNECTED
        if self._subscribed_nano is None:
            # Until an event is seen, a reconnect resumes from the first subscription.
            self._subscribed_nano = int(self._clock() * 1e9)
        return stream

    def _since(self) -> str | None:
        """``since=`` for a subscription: None at first, then the last event's time."""
        since = self._last_nano if self._last_nano is not None else self._subscribed_nano
        if since is None:
            return None
        seconds, nanos = divmod(since, 10**9)
        return f"{seconds}.{nanos:09d}"

    def _read(self, stream: Any) -> str:
        """Deliver events until the stream ends; why it ended."""
        try:
            for raw in each_event(stream):
                if self._stopping.is_set():
                    break
                self._handle(raw)
            return "the event stream ended"
        except DockerError as exc:
            return str(exc)
        except Exception as exc:
            log.exception("Docker event stream: unexpected error while reading")
            return type(exc).__name__
        finally:
            self._disconnect()

    def _handle(self, raw: Mapping[str, Any]) -> None:
        event = DockerEvent.from_raw(raw)
        if event is None:
            return
        if event.key in self._seen:
            log.debug(
                "Docker event %s %s %s: already delivered", event.type, event.action, event.id
            )
            return
        self._seen[event.key] = None
        if len(self._seen) > _DEDUP_KEYS:
            self._seen.popitem(last=False)
        self._last_nano = max(self._last_nano or 0, event.time_nano)
        self._last_event_at = self._clock()
        # Attributes hold every label of the container: DEBUG only.
        log.debug(
            "Docker event %s %s %s",
            event.type,
            event.action,
            event.name or event.id,
            extra={"attributes": dict(event.labels)},
        )
        try:
            self._on_event(event)
        except Exception:
            log.exception(
                "Docker event handler failed on %s %s of %s",
                event.type,
                event.action,
                event.name or event.id,
            )

    def _call_on_reconnect(self) -> None:
        try:
            self._on_reconnect()
        except Exception:
            log.exception("Docker event stream: the reconnect handler failed")

    def _disconnect(self) -> None:
        with self._lock:
            stream, client = self._stream, self._client
            self._stream = self._client = None
        _close_quietly(stream)
        _close_quietly(client)


def _close_quietly(resource: Any) -> None:
    """Close a stream or client that may already be closed or half-broken."""
    if resource is None:
        return
    with contextlib.suppress(Exception):
        resource.close()
