"""Debounce, coalesce and run: one thread owns the waiting targets, a bounded pool rotates them.

A change names a target (a compose service, or a container outside compose) and why
(:class:`Reason`: the source, the references that moved, a trace id). The first change of a
target starts its **debounce window** (``agent.watch.debounce_window``); every change of that
target arriving inside the window joins it, and when the window closes the target is rotated
**once** with all of them (three secrets of one container changed within 5 s → one rotation).
The window is not extended by later changes, so a steady trickle cannot postpone a rotation
forever. A change arriving while its target is rotating is kept and, once that rotation ends,
causes **one** more (the rotation in flight may have fetched before the change). Different
targets are independent: two services sharing a secret both rotate, side by side, at most
``concurrency`` at a time.

The scheduler knows nothing about Docker or providers: ``rotate(target, reasons)`` does the work
(the agent passes a function that runs a :class:`~kernel.rotation.batch.Batch` of the target).
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from kernel.log import get_logger
from kernel.rotation.targets import log_context

if TYPE_CHECKING:
    from kernel.rotation.targets import Target

log = get_logger("agent.scheduler")


@dataclass(frozen=True, slots=True)
class Reason:
    """Why a target should be checked and rotated."""

    #: ``watch``, ``poll``, ``webhook``, ``docker``, ``start``, ``recover``, ``api``.
    source: str
    #: The references (as written) that moved, when known.
    references: frozenset[str] = frozenset()
    #: Carried into the rotation's journal entry, hooks and log lines.
    trace_id: str = ""
    #: Rotate even if no version moved (an operator's ``rotate`` with ``force``).
    force: bool = False


@dataclass(slots=True)
class _Waiting:
    target: Target
    due: float
    reasons: list[Reason] = field(default_factory=list)


class Scheduler:
    """See the module docstring. Thread-safe: :meth:`submit` from any thread."""

    def __init__(
        self,
        rotate: Callable[[Target, list[Reason]], None],
        *,
        window: float,
        concurrency: int = 2,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._rotate = rotate
        self.window = window
        self._clock = clock
        self._cond = threading.Condition()
        self._waiting: dict[str, _Waiting] = {}
        self._again: dict[str, _Waiting] = {}
        self._running: set[str] = set()
        self._heap: list[tuple[float, int, str]] = []
        self._seq = itertools.count()
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="dso-rotate")
        self._thread: threading.Thread | None = None
        self._stopping = False
        #: Rotations started, by lock key (tests and status).
        self.started: dict[str, int] = {}

    # -- input ------------------------------------------------------------------------------

    def submit(self, target: Target, reason: Reason, *, now: bool = False) -> None:
        """Schedule ``target`` at the end of its debounce window (``now``: without one)."""
        key = target.lock_key
        with self._cond:
            if self._stopping:
                return
            if key in self._running:
                self._again.setdefault(key, _Waiting(target, 0.0)).reasons.append(reason)
                log.debug("%s is rotating: one more rotation after it", key)
                return
            waiting = self._waiting.get(key)
            if waiting is None:
                due = self._clock() + (0.0 if now else self.window)
                waiting = self._waiting[key] = _Waiting(target, due)
                heapq.heappush(self._heap, (due, next(self._seq), key))
                log.debug(
                    "Rotation debounce: %g second window",
                    0.0 if now else self.window,
                    extra={"target": key, "trace_id": reason.trace_id, **log_context(None, key)},
                )
            elif now and waiting.due > self._clock():
                # An operator's "now" does not wait for the window of a change noticed before.
                waiting.due = self._clock()
                heapq.heappush(self._heap, (waiting.due, next(self._seq), key))
            waiting.reasons.append(reason)
            self._cond.notify()

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="dso-scheduler", daemon=True)
        self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def busy(self) -> bool:
        """Targets waiting, rotating or due again."""
        with self._cond:
            return bool(self._waiting or self._running or self._again)

    def pending(self) -> int:
        """Targets waiting: in their debounce window, or due again after their rotation."""
        with self._cond:
            return len(self._waiting) + len(self._again)

    def rotating(self) -> int:
        """Targets rotating now."""
        with self._cond:
            return len(self._running)

    def queued(self) -> dict[str, list[str]]:
        """Lock keys of the targets ``waiting`` (debounce window), ``rotating`` and due
        ``again`` after their rotation, sorted (for ``status`` and the queue depth metric)."""
        with self._cond:
            return {
                "waiting": sorted(self._waiting),
                "rotating": sorted(self._running),
                "again": sorted(self._again),
            }

    def stop(self, timeout: float | None = None) -> None:
        """Take no more work; wait up to ``timeout`` for the rotations in flight."""
        with self._cond:
            self._stopping = True
            self._waiting.clear()
            self._again.clear()
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5)
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._running:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    log.warning(
                        "stopping with rotations in flight (%s): recovery finishes them",
                        ", ".join(sorted(self._running)),
                    )
                    break
                self._cond.wait(left)
        self._pool.shutdown(wait=False, cancel_futures=True)

    # -- the loop ---------------------------------------------------------------------------

    def _loop(self) -> None:
        with self._cond:
            while not self._stopping:
                now = self._clock()
                while self._heap and self._heap[0][0] <= now:
                    due, _, key = heapq.heappop(self._heap)
                    waiting = self._waiting.get(key)
                    if waiting is None or waiting.due != due:
                        continue  # an entry made stale by an earlier "now"
                    del self._waiting[key]
                    self._running.add(key)
                    self.started[key] = self.started.get(key, 0) + 1
                    self._pool.submit(self._run, waiting)
                wait = self._heap[0][0] - now if self._heap else None
                self._cond.wait(wait)

    def _run(self, waiting: _Waiting) -> None:
        key = waiting.target.lock_key
        try:
            self._rotate(waiting.target, waiting.reasons)
        except BaseException:  # a bug in a rotation must not kill the agent's pool
            log.exception("rotation of %s raised", key)
        finally:
            with self._cond:
                self._running.discard(key)
                again = self._again.pop(key, None)
                if again is not None and not self._stopping:
                    again.due = self._clock()
                    self._waiting[key] = again
                    heapq.heappush(self._heap, (again.due, next(self._seq), key))
                self._cond.notify_all()
