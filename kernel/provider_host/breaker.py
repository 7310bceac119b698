"""A circuit breaker per provider: isolate a failing back end so it cannot stall everything.

A provider that keeps failing (its back end is down, its credentials expired, it crashes or
times out) would otherwise make every rotation wait for its timeout. After
``failure_threshold`` consecutive failures the breaker *opens*: calls fail at once with
:class:`~kernel.errors.ProviderUnavailableError`. After ``cooldown`` seconds one trial call is
let through (*half-open*); its success closes the breaker, its failure opens it again.

What counts as a failure is the caller's decision (the provider host counts the wire codes in
:data:`kernel.protocol.BREAKER_CODES`, timeouts, crashes, start failures and protocol
violations; ``not_found`` is a healthy answer). Results are tied to an admission ticket so a
late answer to a call admitted before the breaker opened cannot close it, and only the trial's
own result decides a half-open breaker. The clock is injectable for tests.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from kernel import telemetry
from kernel.errors import ProviderUnavailableError


class BreakerState(StrEnum):
    """Where a provider's breaker is."""

    #: Normal operation: every call goes through; consecutive failures are counted.
    CLOSED = "closed"
    #: Isolated: calls fail fast without reaching the provider until the cooldown has passed.
    OPEN = "open"
    #: Probing: the cooldown passed and one trial call is in flight; others still fail fast.
    HALF_OPEN = "half_open"


class BreakerEvent(StrEnum):
    """What can happen to a breaker."""

    #: A counted call succeeded (or failed in a way that says nothing about health).
    SUCCESS = "success"
    #: A counted call failed, and the consecutive failures are still below the threshold.
    FAILURE = "failure"
    #: A counted call failed and the consecutive failures reached the threshold.
    TRIP = "trip"
    #: A call arrived after the cooldown (or after a trial outlived a whole cooldown).
    COOLDOWN_ELAPSED = "cooldown_elapsed"
    #: An operator or a configuration reload reset the breaker.
    RESET = "reset"


_C, _O, _H = BreakerState.CLOSED, BreakerState.OPEN, BreakerState.HALF_OPEN

#: Every allowed transition; a pair missing here is impossible and raises ``ValueError``.
#: Results that arrive while open, or from a non-trial call while half-open, are dropped before
#: they reach this table (see :meth:`CircuitBreaker.record`).
TRANSITIONS: MappingProxyType[tuple[BreakerState, BreakerEvent], BreakerState] = MappingProxyType(
    {
        (_C, BreakerEvent.SUCCESS): _C,
        (_C, BreakerEvent.FAILURE): _C,
        (_C, BreakerEvent.TRIP): _O,
        (_C, BreakerEvent.RESET): _C,
        (_O, BreakerEvent.COOLDOWN_ELAPSED): _H,
        (_O, BreakerEvent.RESET): _C,
        (_H, BreakerEvent.SUCCESS): _C,
        (_H, BreakerEvent.FAILURE): _O,
        (_H, BreakerEvent.TRIP): _O,
        (_H, BreakerEvent.COOLDOWN_ELAPSED): _H,
        (_H, BreakerEvent.RESET): _C,
    }
)


def transition(state: BreakerState, event: BreakerEvent) -> BreakerState:
    """The state after ``event`` in ``state``; raises ``ValueError`` for an impossible pair."""
    try:
        return TRANSITIONS[(state, event)]
    except KeyError:
        message = f"breaker event {event.value!r} cannot happen while {state.value}"
        raise ValueError(message) from None


@dataclass(frozen=True, slots=True)
class Ticket:
    """Proof of admission: pass it back to :meth:`CircuitBreaker.record`."""

    generation: int
    trial: bool


class CircuitBreaker:
    """The breaker of one provider. Thread-safe."""

    def __init__(
        self,
        name: str,
        *,
        failure_threshold: int = 5,
        cooldown: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        if cooldown <= 0:
            raise ValueError("cooldown must be positive")
        self.name = name
        self.failure_threshold = failure_threshold
        self.cooldown = cooldown
        self._clock = clock
        self._lock = threading.Lock()
        self._state = BreakerState.CLOSED
        # Bumped on every state change: results of tickets from another generation are stale.
        self._generation = 0
        self._failures = 0
        self._opened_at = 0.0
        self._trial_at = 0.0
        self._trips = 0
        self._last_failure: str | None = None
        self._changed_at: float | None = None

    # -- the call path ------------------------------------------------------------------------

    def admit(self) -> Ticket:
        """Let a call through, or raise :class:`ProviderUnavailableError` while open."""
        with self._lock:
            now = self._clock()
            if self._state is BreakerState.CLOSED:
                return Ticket(self._generation, False)
            due = (self._opened_at if self._state is BreakerState.OPEN else self._trial_at) + (
                self.cooldown
            )
            if now >= due:
                # Open long enough, or a trial outlived a whole cooldown: admit a (new) trial.
                self._apply(BreakerEvent.COOLDOWN_ELAPSED)
                self._trial_at = now
                return Ticket(self._generation, True)
            raise self._unavailable(due - now)

    def record(self, ticket: Ticket, *, ok: bool, reason: str | None = None) -> None:
        """Report the outcome of an admitted call; ``reason`` (no secret values) on failure."""
        with self._lock:
            if not ok:
                self._last_failure = reason or "failed"
            if self._state is BreakerState.OPEN:
                return
            if self._state is BreakerState.HALF_OPEN and (
                not ticket.trial or ticket.generation != self._generation
            ):
                return
            if ok:
                self._failures = 0
                self._apply(BreakerEvent.SUCCESS)
                return
            self._failures += 1
            if self._state is BreakerState.HALF_OPEN or self._failures >= self.failure_threshold:
                self._apply(BreakerEvent.TRIP)
            else:
                self._apply(BreakerEvent.FAILURE)

    def observe_failure(self, reason: str) -> None:
        """Count a failure seen outside a call (a crash, a failed background restart). Only a
        closed breaker counts it; open or half-open, the trial call decides."""
        with self._lock:
            self._last_failure = reason
            if self._state is not BreakerState.CLOSED:
                return
            self._failures += 1
            if self._failures >= self.failure_threshold:
                self._apply(BreakerEvent.TRIP)
            else:
                self._apply(BreakerEvent.FAILURE)

    def release(self, ticket: Ticket) -> None:
        """Give back a ticket whose call never reached the provider: a trial may go again."""
        with self._lock:
            if (
                self._state is BreakerState.HALF_OPEN
                and ticket.trial
                and ticket.generation == self._generation
            ):
                self._trial_at = self._clock() - self.cooldown

    def reset(self) -> None:
        """Close the breaker and forget the failures (configuration reload, operator action)."""
        with self._lock:
            self._failures = 0
            self._apply(BreakerEvent.RESET)

    # -- state ------------------------------------------------------------------------------------

    def _apply(self, event: BreakerEvent) -> None:
        new = transition(self._state, event)
        if new is not self._state or event is BreakerEvent.COOLDOWN_ELAPSED:
            self._generation += 1
        if new is BreakerState.OPEN and self._state is not BreakerState.OPEN:
            self._opened_at = self._clock()
            self._trips += 1
        if new is BreakerState.CLOSED and self._state is not BreakerState.CLOSED:
            self._failures = 0
        previous, self._state = self._state, new
        if new is not previous:
            self._changed_at = time.time()
            telemetry.emit("breaker", provider=self.name, state=new.value, previous=previous.value)

    def _unavailable(self, retry_in: float) -> ProviderUnavailableError:
        last = f" (last: {self._last_failure})" if self._last_failure else ""
        what = "a trial request is in progress" if self._state is BreakerState.HALF_OPEN else ""
        return ProviderUnavailableError(
            f"circuit breaker open after {self.failure_threshold} consecutive failures{last};"
            f" {what or 'requests fail fast'}, next trial in {retry_in:.1f} s",
            provider=self.name,
            code="unavailable",
            hint=f"`docker dso providers check {self.name}` shows what is wrong",
        )

    @property
    def state(self) -> BreakerState:
        with self._lock:
            return self._state

    @property
    def consecutive_failures(self) -> int:
        with self._lock:
            return self._failures

    def to_json(self) -> dict[str, Any]:
        """State for ``status --json``: state, failures, threshold, cooldown, trips, retry_in."""
        with self._lock:
            retry_in = None
            if self._state is BreakerState.OPEN:
                retry_in = round(max(0.0, self._opened_at + self.cooldown - self._clock()), 3)
            return {
                "state": self._state.value,
                "consecutive_failures": self._failures,
                "failure_threshold": self.failure_threshold,
                "cooldown": self.cooldown,
                "trips": self._trips,
                "retry_in": retry_in,
                "last_failure": self._last_failure,
                "changed_at": self._changed_at,
            }
