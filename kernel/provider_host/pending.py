"""The requests in flight to one provider process: ids, futures and kernel-side deadlines.

Ids come from a counter and are never reused while an answer could arrive (protocol §4). The
kernel enforces every request's timeout itself (§8.2): one timer thread sleeps until the
earliest deadline and fails what expired. Answered requests leave their deadline in the heap
(removing it would cost a search per answer) and are skipped when it comes up; the heap is
rebuilt when stale entries pile up. The thread is woken only when a request's deadline is
earlier than its planned wake-up, which with one timeout per provider is almost never: a
round trip costs no extra thread switch.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from kernel.protocol import MAX_REQUEST_ID

_INF = float("inf")


@dataclass(slots=True)
class Call:
    """One request in flight."""

    future: Future[Any]
    method: str
    #: ``time.monotonic()`` at which the kernel gives up.
    deadline: float
    timeout: float
    #: ``time.perf_counter()`` when it was sent, for latency stats.
    started: float


def settle(future: Future[Any], result: Any = None, error: BaseException | None = None) -> None:
    """Resolve a future unless it is already resolved or was cancelled meanwhile."""
    if future.done():
        return
    try:
        if error is None:
            future.set_result(result)
        else:
            future.set_exception(error)
    except Exception:  # InvalidStateError: cancelled concurrently
        return


class PendingCalls:
    """The in-flight table of one process, with its deadline thread."""

    def __init__(self, name: str, on_expired: Callable[[Call], None]) -> None:
        self._on_expired = on_expired
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._calls: dict[int, Call] = {}
        self._heap: list[tuple[float, int]] = []
        # When the deadline thread will look next (0.0 while it is awake and looking).
        self._wake_at = _INF
        self._ids = itertools.count(1)
        self._closed = False
        self._thread = threading.Thread(
            target=self._expire_loop, name=f"dso-provider-{name}-deadlines", daemon=True
        )
        self._thread.start()

    def add(self, method: str, timeout: float) -> tuple[int, Call] | None:
        """Register a request about to be sent; None once the table is closed."""
        now = time.monotonic()
        call = Call(Future(), method, now + timeout, timeout, time.perf_counter())
        with self._lock:
            if self._closed:
                return None
            msg_id = self._next_id()
            self._calls[msg_id] = call
            heapq.heappush(self._heap, (call.deadline, msg_id))
            if call.deadline < self._wake_at:
                self._wake.notify()
            elif len(self._heap) > 4 * len(self._calls) + 1024:
                self._heap = [(c.deadline, i) for i, c in self._calls.items()]
                heapq.heapify(self._heap)
        return msg_id, call

    def _next_id(self) -> int:
        msg_id = next(self._ids) & MAX_REQUEST_ID
        while msg_id in self._calls or msg_id == 0:  # only after 2**32 requests
            msg_id = next(self._ids) & MAX_REQUEST_ID
        return msg_id

    def untracked_id(self) -> int:
        """An id for a request whose answer nobody waits for (``shutdown``)."""
        with self._lock:
            return self._next_id()

    def pop(self, msg_id: int) -> Call | None:
        """The call answered by ``msg_id``; None if it expired (a late answer) or is unknown."""
        with self._lock:
            return self._calls.pop(msg_id, None)

    def close(self) -> list[Call]:
        """Stop tracking: no more requests; returns those still pending (to fail them)."""
        with self._lock:
            self._closed = True
            calls = list(self._calls.values())
            self._calls.clear()
            self._heap = []
            self._wake.notify()
        return calls

    def __len__(self) -> int:
        with self._lock:
            return len(self._calls)

    def _expire_loop(self) -> None:
        while True:
            expired: list[Call] = []
            with self._lock:
                if self._closed:
                    return
                now = time.monotonic()
                heap = self._heap
                while heap and heap[0][0] <= now:
                    _, msg_id = heapq.heappop(heap)
                    call = self._calls.get(msg_id)
                    if call is not None and call.deadline <= now:
                        del self._calls[msg_id]
                        expired.append(call)
                if not expired:
                    self._wake_at = heap[0][0] if heap else _INF
                    self._wake.wait(None if not heap else self._wake_at - now)
                    self._wake_at = 0.0
                    continue
            for call in expired:
                self._on_expired(call)
