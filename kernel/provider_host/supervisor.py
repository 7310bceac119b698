"""Supervision of one provider: its current process, restarts with backoff, breaker, stats.

:class:`SupervisedProvider` is what :meth:`ProviderHost.client` returns. It starts the process
on the first call, and after a crash restarts it with exponential backoff and jitter (a call
arriving during a short backoff waits for it; a background timer restarts the provider anyway,
so watches resume). Every call goes through the provider's
:class:`~kernel.provider_host.breaker.CircuitBreaker` and is timed in its
:class:`~kernel.provider_host.stats.LatencyStats`; both belong to the supervisor, not to a
process, so they outlive restarts.

A provider with no watch and no call for ``idle_timeout`` seconds (``providers.<name>.
idle_timeout``) is stopped gracefully and reported ``idle``; the next call starts it again
like the first one. Calls in flight are counted under the supervisor's lock, which the idle
stop takes too: a process with a call in flight is never stopped, and a call arriving after
the stop starts a new process.

What the breaker counts as one failure: a request answered with a code in
:data:`kernel.protocol.BREAKER_CODES` (``auth_failed``, ``unavailable``, ``timeout``,
``internal``); a request the kernel timed out; a failed start; one crash or protocol violation
(the requests that died with the process are not counted again); a batch in which no reference
succeeded and one failed with a breaker code. ``not_found``, ``access_denied`` and
``invalid_request`` are healthy answers, and so is a missing provider program (a configuration
problem, reported as such).
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from kernel.errors import (
    DSOError,
    ProviderError,
    ProviderNotFoundError,
    ProviderTimeoutError,
    ProviderUnavailableError,
)
from kernel.protocol import BREAKER_CODES, wire_code
from kernel.protocol.methods import Changed, GetResult, SecretRef, VersionsResult
from kernel.provider_host.breaker import CircuitBreaker, Ticket
from kernel.provider_host.client import ProviderClient
from kernel.provider_host.process import ProviderCommand
from kernel.provider_host.stats import LatencyStats

if TYPE_CHECKING:
    from kernel.config import ProviderConfig

#: Seconds ``status`` waits for the supervisor's lock before reporting ``starting``.
STATUS_WAIT = 0.2

log = logging.getLogger("dso.provider_host")
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class Backoff:
    """Delay before restart attempt ``n``: ``initial * factor**(n-1)``, capped at
    ``maximum``, ± ``jitter`` (a fraction) so providers crashing together do not restart in
    lockstep. A process that ran ``reset_after`` seconds before crashing starts over at 1."""

    initial: float = 0.2
    factor: float = 2.0
    maximum: float = 30.0
    jitter: float = 0.2
    reset_after: float = 10.0

    def delay(self, attempt: int, rand: Callable[[], float] = random.random) -> float:
        base = min(self.maximum, self.initial * self.factor ** max(0, attempt - 1))
        return max(0.0, base * (1.0 + self.jitter * (2.0 * rand() - 1.0)))


class SupervisedProvider:
    """The handle to one provider: calls go through its breaker to its current process."""

    def __init__(
        self,
        config: ProviderConfig,
        resolve: Callable[[], ProviderCommand],
        settings: Mapping[str, Any],
        *,
        environ: Mapping[str, str] | None,
        start_timeout: float,
        backoff: Backoff,
        clock: Callable[[], float],
        rand: Callable[[], float],
    ) -> None:
        self.name = config.name
        self.config = config
        self.timeout = config.timeout
        self.settings = settings
        self.breaker = CircuitBreaker(
            config.name,
            failure_threshold=config.breaker.failure_threshold,
            cooldown=config.breaker.cooldown,
            clock=clock,
        )
        self.stats = LatencyStats()
        self._resolve = resolve
        self._environ = environ
        self._start_timeout = start_timeout
        self._backoff = backoff
        self._clock = clock
        self._rand = rand
        self._lock = threading.RLock()
        self._wakeup = threading.Condition(self._lock)
        self._client: ProviderClient | None = None
        self._command: ProviderCommand | None = None
        self._started_at = 0.0
        self._next_start = 0.0
        self._attempt = 0
        self._starts = 0
        self._crashes = 0
        self._last_exit: str | None = None
        self._restart_delay: float | None = None
        self._timer: threading.Timer | None = None
        self._watch: tuple[tuple[SecretRef, ...], Callable[[Changed], None]] | None = None
        self._warm_error: DSOError | None = None
        self._closed = False
        self.idle_timeout = config.idle_timeout
        #: Calls holding the current process (between ``_running`` and their answer).
        self._in_flight = 0
        self._last_used = 0.0
        self._idle_timer: threading.Timer | None = None
        #: Stopped for idleness (not a crash); cleared by the next start.
        self._idle = False
        self._idle_stops = 0
        #: Processes being stopped for idleness (outside the lock): ``close`` waits for them.
        self._retiring: list[ProviderClient] = []

    # -- calls --------------------------------------------------------------------------------

    def warm(self) -> None:
        """Start the process now, ahead of the first call (``up`` does it while compose reads
        the project). A failure is not retried with backoff: the first call raises it as is."""
        with self._lock:
            if self._closed or self._starts or self._warm_error is not None:
                return
            try:
                self._start()
            except DSOError as exc:
                self._warm_error = exc
                self._attempt, self._next_start, self._last_exit = 0, 0.0, None

    def get(self, refs: Sequence[SecretRef], *, timeout: float | None = None) -> GetResult:
        """Values and version ids of a batch (see :meth:`ProviderClient.get`)."""
        return self._invoke("get", lambda c, t: c.get(refs, timeout=t), timeout)

    def versions(
        self, refs: Sequence[SecretRef], *, timeout: float | None = None
    ) -> VersionsResult:
        """Version ids of a batch, without values."""
        return self._invoke("versions", lambda c, t: c.versions(refs, timeout=t), timeout)

    def list_names(self, prefix: str | None = None, *, timeout: float | None = None) -> list[str]:
        """Secret paths under ``prefix``."""
        return self._invoke("list", lambda c, t: c.list_names(prefix, timeout=t), timeout)

    def ping(self, *, timeout: float | None = None) -> float:
        """Round trip of a ``ping`` in seconds (starts the provider if needed)."""
        return self._invoke("ping", lambda c, t: c.ping(timeout=t), timeout)

    def watch(self, refs: Sequence[SecretRef], on_changed: Callable[[Changed], None]) -> None:
        """Watch ``refs``; re-established on every restart of the provider."""
        with self._lock:
            self._watch = (tuple(refs), on_changed)
        self._invoke("watch", lambda c, t: c.watch(refs, on_changed), None)

    def _invoke(
        self, method: str, fn: Callable[[ProviderClient, float], _T], timeout: float | None
    ) -> _T:
        timeout = self.timeout if timeout is None else timeout
        ticket = self.breaker.admit()
        client: ProviderClient | None = None
        try:
            client = self._running(timeout)
            result = fn(client, timeout)
        except (ProviderUnavailableError, ProviderNotFoundError):
            self.breaker.release(ticket)
            raise
        except DSOError as exc:
            self._judge_error(ticket, exc, client)
            raise
        except BaseException:
            self.breaker.release(ticket)
            raise
        finally:
            if client is not None:
                self._call_done()
        self._judge_result(ticket, result)
        return result

    def _judge_error(self, ticket: Ticket, exc: DSOError, client: ProviderClient | None) -> None:
        if wire_code(exc) not in BREAKER_CODES:
            self.breaker.record(ticket, ok=True)
        elif (
            client is not None
            and client.failure is not None
            and not isinstance(exc, ProviderTimeoutError)
            and not ticket.trial
        ):
            # The process died under this call: the exit itself is counted once.
            self.breaker.release(ticket)
            self._note_exit(client)
        else:
            self.breaker.record(ticket, ok=False, reason=_reason(exc))

    def _judge_result(self, ticket: Ticket, result: object) -> None:
        if isinstance(result, GetResult | VersionsResult) and result.errors:
            answered = result.values if isinstance(result, GetResult) else result.versions
            bad = [e for e in result.errors.values() if e.code in BREAKER_CODES]
            if bad and not answered:
                self.breaker.record(ticket, ok=False, reason=f"{bad[0].code}: {bad[0].message}")
                return
        self.breaker.record(ticket, ok=True)

    # -- the process --------------------------------------------------------------------------

    def _running(self, timeout: float) -> ProviderClient:
        """The live client, started now if needed; waits out a restart backoff shorter than
        ``timeout``, else raises :class:`ProviderUnavailableError`."""
        with self._lock:
            while True:
                if self._closed:
                    raise ProviderUnavailableError("the host is closed", provider=self.name)
                client = self._client
                if client is not None and client.alive:
                    self._in_flight += 1
                    return client
                if self._warm_error is not None:
                    error, self._warm_error = self._warm_error, None
                    raise error
                if client is not None:
                    self._note_exit(client)
                wait = self._next_start - self._clock()
                if wait <= 0:
                    client = self._start()
                    self._in_flight += 1
                    return client
                if wait > timeout:
                    raise ProviderUnavailableError(
                        f"{self._last_exit or 'it stopped'}; restarting in {wait:.1f} s",
                        provider=self.name,
                        code="unavailable",
                    )
                self._wakeup.wait(wait)

    def _start(self, *, background: bool = False) -> ProviderClient:
        """Start a process (lock held). A failure delays the next attempt with backoff, and
        retries it in the background if this was a background restart after a crash."""
        command = self._command = self._resolve()
        self._idle = False
        try:
            client = ProviderClient.start(
                command,
                settings=self.settings,
                start_timeout=self._start_timeout,
                request_timeout=self.timeout,
                environ=self._environ,
                stats=self.stats,
            )
        except ProviderError as exc:
            self._attempt += 1
            self._last_exit = f"failed to start: {_reason(exc)}"
            self._schedule(self._attempt, background=background)
            raise
        self._client = client
        self._started_at = self._clock()
        self._starts += 1
        client.on_exit = self._on_exit
        if self._starts > 1 and self._starts - 1 == self._idle_stops:
            log.debug("provider %s started again after idling (pid %d)", self.name, client.pid)
        elif self._starts > 1:
            log.info("provider %s restarted (pid %d)", self.name, client.pid)
        self._last_used = self._clock()
        self._arm_idle(self.idle_timeout)
        if self._watch is not None:
            refs, callback = self._watch
            try:
                client.watch(refs, callback)
            except DSOError as exc:
                log.warning("provider %s: re-establishing its watch failed: %s", self.name, exc)
        return client

    def _on_exit(self, client: ProviderClient) -> None:
        """Called by the client when its process ends for any reason."""
        with self._lock:
            if client is self._client and not self._closed:
                self._note_exit(client)

    def _note_exit(self, client: ProviderClient) -> None:
        """Account for a dead process once (lock held): count it, schedule the restart."""
        with self._lock:
            if client is not self._client:
                return
            self._client = None
            if self._closed:
                return
            self._crashes += 1
            uptime = self._clock() - self._started_at
            self._attempt = 1 if uptime >= self._backoff.reset_after else self._attempt + 1
            failure = client.failure
            self._last_exit = _reason(failure) if failure is not None else "it stopped"
            log.warning("provider %s: %s", self.name, self._last_exit)
            self.breaker.observe_failure(self._last_exit)
            self._schedule(self._attempt, background=True)

    def _schedule(self, attempt: int, *, background: bool) -> None:
        delay = self._restart_delay = self._backoff.delay(attempt, self._rand)
        self._next_start = self._clock() + delay
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if background:
            self._schedule_at(self._next_start)

    def _restart_in_background(self) -> None:
        with self._lock:
            if self._closed or (self._client is not None and self._client.alive):
                return
            if self._clock() < self._next_start:
                self._schedule_at(self._next_start)
                return
            try:
                self._start(background=True)
            except DSOError as exc:
                self.breaker.observe_failure(_reason(exc))
                log.warning("provider %s: restart failed: %s", self.name, exc)
            finally:
                self._wakeup.notify_all()

    def _schedule_at(self, when: float) -> None:
        self._timer = threading.Timer(max(0.0, when - self._clock()), self._restart_in_background)
        self._timer.daemon = True
        self._timer.start()

    # -- idling -------------------------------------------------------------------------------

    def _call_done(self) -> None:
        with self._lock:
            self._in_flight -= 1
            self._last_used = self._clock()
            if self._idle_timer is None:
                self._arm_idle(self.idle_timeout)

    def _watching(self) -> bool:
        return self._watch is not None and bool(self._watch[0])

    def _arm_idle(self, delay: float) -> None:
        """Check for idleness in ``delay`` seconds (lock held). One timer at a time: a call
        only moves ``_last_used``, and the check re-arms itself for the time left."""
        if self.idle_timeout <= 0 or self._closed or self._idle_timer is not None:
            return
        timer = threading.Timer(max(0.0, delay), self._idle_check)
        timer.daemon = True
        timer.name = f"dso-idle-{self.name}"
        self._idle_timer = timer
        timer.start()

    def _idle_check(self) -> None:
        """Stop the process if nothing used it for ``idle_timeout`` and nothing watches."""
        with self._lock:
            self._idle_timer = None
            client = self._client
            if self._closed or client is None or not client.alive or self._watching():
                return  # a crash restart or a watch re-arms when it ends
            if self._in_flight:
                return  # the last call to finish re-arms
            left = self._last_used + self.idle_timeout - self._clock()
            if left > 0:
                self._arm_idle(left)
                return
            # Detached under the lock: no call can pick it up, and its exit is no crash.
            self._client = None
            self._idle = True
            self._idle_stops += 1
            self._retiring.append(client)
        log.info(
            "provider %s idle for %gs: stopping it (pid %d); the next request starts it again",
            self.name,
            self.idle_timeout,
            client.pid,
        )
        try:
            client.close()
        finally:
            with self._lock:
                self._retiring.remove(client)

    # -- status and shutdown ------------------------------------------------------------------

    @property
    def client(self) -> ProviderClient | None:
        """The current process's client, if one is running."""
        with self._lock:
            return self._client

    def state(self) -> str:
        """``running``, ``idle`` (stopped for idleness, starts at the next call),
        ``restarting`` (crashed, backoff), ``stopped`` or ``closed``."""
        with self._lock:
            if self._closed:
                return "closed"
            if self._client is not None and self._client.alive:
                return "running"
            if self._idle:
                return "idle"
            return "restarting" if self._next_start > self._clock() else "stopped"

    def status(self) -> dict[str, Any]:
        """JSON-able state: process, restarts, breaker, latency per method. Never waits for a
        process being started (the lock is held for up to the start timeout): that one is
        reported ``starting``."""
        if not self._lock.acquire(timeout=STATUS_WAIT):
            return {
                "name": self.name,
                "type": self.config.type,
                "state": "starting",
                "pid": None,
                "starts": self._starts,
                "breaker": self.breaker.to_json(),
                "latency": self.stats.to_json(),
            }
        try:
            client = self._client if self._client is not None and self._client.alive else None
            command = self._command
            doc: dict[str, Any] = {
                "name": self.name,
                "type": self.config.type,
                "state": self.state(),
                "pid": client.pid if client else None,
                "origin": command.origin if command else None,
                "command": list(command.argv) if command else None,
                "version": client.handshake.version if client else None,
                "protocol": client.handshake.protocol if client else None,
                "capabilities": sorted(str(c) for c in client.handshake.capabilities)
                if client
                else None,
                "starts": self._starts,
                "idle_stops": self._idle_stops,
                "idle_timeout": self.idle_timeout,
                "crashes": self._crashes,
                "last_exit": self._last_exit,
                "next_start_in": round(max(0.0, self._next_start - self._clock()), 3)
                if self._next_start > self._clock()
                else None,
                "restart_delay": None
                if self._restart_delay is None
                else round(self._restart_delay, 3),
                "timeout": self.timeout,
            }
        finally:
            self._lock.release()
        doc["breaker"] = self.breaker.to_json()
        doc["latency"] = self.stats.to_json()
        return doc

    def close(self) -> None:
        """Stop the process (gracefully, always reaped) and refuse further calls."""
        with self._lock:
            self._closed = True
            if self._timer is not None:
                self._timer.cancel()
            if self._idle_timer is not None:
                self._idle_timer.cancel()
                self._idle_timer = None
            client, self._client = self._client, None
            retiring = list(self._retiring)
            self._wakeup.notify_all()
        if client is not None:
            client.close()
        for old in retiring:  # stopped for idleness: wait until reaped (close is idempotent)
            old.close()


def _reason(exc: BaseException) -> str:
    text = exc.message if isinstance(exc, DSOError) else str(exc)
    return text.split(": ", 1)[1] if text.startswith("provider '") else text
