"""The agent's event stream: what happened, as small JSON-able dicts, to whoever listens.

Two kinds of subscribers:

- *listeners* (the metrics, the observability rings) are called on the publishing thread and
  must only record;
- *streams* (``docker dso events``, ``status --watch``, a socket client) get a bounded queue
  each: a slow reader loses its oldest events (and is told how many), it never slows the agent.

Every event has ``type`` and ``ts`` (Unix seconds); the other fields depend on the type
(docs/agent-api.md lists them). Never a value: names, versions, counts and diagnostics only.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from kernel.log import get_logger

Event = dict[str, Any]
Listener = Callable[[Event], None]
#: Events a stream holds for a slow reader before it drops the oldest.
STREAM_BUFFER = 1000
#: The last events kept for a new stream that asks for history (``status --watch`` starts with
#: them).
HISTORY = 100

log = get_logger("agent.bus")


class Stream:
    """One reader's queue. Iterate with :meth:`next`; close when done."""

    def __init__(self, bus: EventBus, types: frozenset[str] | None) -> None:
        self._bus = bus
        self.types = types
        self._queue: collections.deque[Event] = collections.deque()
        self._ready = threading.Condition()
        self.dropped = 0
        self.closed = False
        #: Called once when the stream closes (the socket server frees its stream slot).
        self.on_close: Callable[[], None] | None = None

    def wants(self, event: Event) -> bool:
        return self.types is None or event["type"] in self.types

    def put(self, event: Event) -> None:
        with self._ready:
            if len(self._queue) >= STREAM_BUFFER:
                self._queue.popleft()
                self.dropped += 1
            self._queue.append(event)
            self._ready.notify()

    def next(self, timeout: float) -> Event | None:
        """The next event, or ``None`` after ``timeout`` seconds without one (or once closed).
        Events lost to a slow reader come first as one ``{"type": "dropped", "count": n}``."""
        with self._ready:
            if not self._queue and not self.closed:
                self._ready.wait(timeout)
            if self.dropped:
                count, self.dropped = self.dropped, 0
                return {"type": "dropped", "ts": round(time.time(), 3), "count": count}
            if self._queue:
                return self._queue.popleft()
            return None

    def close(self) -> None:
        with self._ready:
            if self.closed:
                return
            self.closed = True
            self._ready.notify_all()
        self._bus._forget(self)
        if self.on_close is not None:
            self.on_close()

    def follow(
        self, keepalive: float, stopping: Callable[[], bool] = lambda: False
    ) -> Iterator[Event | None]:
        """The events until the stream is closed (or ``stopping()``) and has handed out every
        event it still held; ``None`` after each ``keepalive`` seconds without one."""
        while True:
            event = self.next(keepalive)
            if event is None and (self.closed or stopping()):
                return
            yield event

    def __iter__(self) -> Iterator[Event]:
        for event in self.follow(1.0):
            if event is not None:
                yield event


class EventBus:
    """Fan-out of the agent's events (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._listeners: tuple[Listener, ...] = ()
        self._streams: tuple[Stream, ...] = ()
        self._history: collections.deque[Event] = collections.deque(maxlen=HISTORY)
        self.published = 0

    def listen(self, listener: Listener) -> None:
        with self._lock:
            self._listeners = (*self._listeners, listener)

    def stream(self, types: frozenset[str] | None = None, *, history: bool = False) -> Stream:
        """A new reader; with ``history``, the last :data:`HISTORY` events come first."""
        reader = Stream(self, types)
        with self._lock:
            if history:
                for event in self._history:
                    if reader.wants(event):
                        reader.put(event)
            self._streams = (*self._streams, reader)
        return reader

    def publish(self, kind: str, **fields: Any) -> Event:
        event: Event = {"type": kind, "ts": round(time.time(), 3), **fields}
        with self._lock:
            self._history.append(event)
            self.published += 1
            listeners, streams = self._listeners, self._streams
        for listener in listeners:
            try:
                listener(event)
            except Exception:
                log.exception("an event listener failed on %s", kind)
        for reader in streams:
            if reader.wants(event):
                reader.put(event)
        return event

    @property
    def readers(self) -> int:
        return len(self._streams)

    def close(self) -> None:
        """End every stream (the agent stops)."""
        with self._lock:
            streams = self._streams
        for reader in streams:
            reader.close()

    def _forget(self, reader: Stream) -> None:
        with self._lock:
            self._streams = tuple(s for s in self._streams if s is not reader)
