"""The kernel's side of one provider process: handshake, pipelined requests, deadlines.

:class:`ProviderClient` owns one :class:`~kernel.provider_host.process.ProviderProcess`. It
never restarts it (the registry does). Requests carry ids from a counter, never reused while
an answer could arrive; futures wait by id, so any number can be in flight and answers may
come in any order. The kernel enforces each request's timeout itself, whatever the provider
does: a timer thread fails the future with :class:`ProviderTimeoutError` at the deadline and
forgets the id, so a late answer is ignored. When the process ends (crash, EOF, protocol
violation) every pending request fails with an error naming the provider and its exit status.

Secret values only pass through here as ``bytes`` inside :class:`~kernel.protocol.GetResult`;
nothing in this module logs a result or a parameter.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, TypeVar

from kernel import telemetry
from kernel.errors import (
    DSOError,
    ProtocolError,
    ProviderError,
    ProviderStartError,
)
from kernel.protocol import (
    DEFAULT_REQUEST_TIMEOUT,
    SHUTDOWN_TIMEOUT,
    START_TIMEOUT,
    SUPPORTED_PROTOCOLS,
    Capability,
    Changed,
    GetResult,
    Handshake,
    Method,
    Notification,
    Request,
    Response,
    SecretRef,
    VersionsResult,
    decode_message,
    exception_for,
    parse_list_result,
    parse_ping_result,
)
from kernel.provider_host import failures
from kernel.provider_host.pending import Call, PendingCalls, settle
from kernel.provider_host.process import ProviderCommand, ProviderProcess
from kernel.provider_host.relog import level_for
from kernel.provider_host.settings import wire_settings
from kernel.provider_host.stats import LatencyStats

log = logging.getLogger("dso.provider_host")
_T = TypeVar("_T")


class ProviderClient:
    """One running provider process. Create with :meth:`start`; close with :meth:`close`."""

    handshake: Handshake
    pid: int

    def __init__(
        self,
        command: ProviderCommand,
        *,
        request_timeout: float,
        environ: Mapping[str, str],
        log_level: str | None,
        stats: LatencyStats | None,
    ) -> None:
        self.command = command
        self.name = command.name
        self.request_timeout = request_timeout
        self.stats = stats if stats is not None else LatencyStats()
        self._lock = threading.Lock()
        self._pending = PendingCalls(command.name, self._on_expired)
        self._failure: ProviderError | None = None
        self._closing = False
        self._start_error: ProviderError | None = None
        self._handshake: Future[Handshake] = Future()
        self._handshaken = False
        self._shutdown_id = -1
        self._on_changed: Callable[[Changed], None] | None = None
        self.exit_status: int | None = None
        #: Called once, from any thread, when the process has ended (the registry restarts it).
        self.on_exit: Callable[[ProviderClient], None] | None = None
        logger = logging.getLogger(f"dso.provider.{command.name}")
        self.process = ProviderProcess.spawn(
            command,
            environ=environ,
            log_level=log_level if log_level is not None else level_for(logger),
            on_frames=self._on_frames,
            on_closed=self._on_closed,
        )
        self.pid = self.process.pid
        self.process.start_reading()

    @classmethod
    def start(
        cls,
        command: ProviderCommand,
        *,
        settings: Mapping[str, Any] | None = None,
        start_timeout: float = START_TIMEOUT,
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
        environ: Mapping[str, str] | None = None,
        log_level: str | None = None,
        stats: LatencyStats | None = None,
    ) -> ProviderClient:
        """Spawn ``command``, validate its handshake within ``start_timeout`` seconds, and send
        ``configure`` when ``settings`` is given. Raises :class:`ProviderStartError` (or the
        mapped error of a refused ``configure``); the process is always reaped on failure."""
        client = cls(
            command,
            request_timeout=request_timeout,
            environ=os.environ if environ is None else environ,
            log_level=log_level,
            stats=stats,
        )
        try:
            client.handshake = client._handshake.result(timeout=start_timeout)
        except FutureTimeout:
            error = failures.handshake_timeout(command.name, start_timeout)
            client._fail(error, kill=True)
            raise error from None
        except BaseException:
            client._fail(ProviderStartError("start abandoned", provider=command.name), kill=True)
            raise
        if settings is not None:
            try:
                client.configure(settings)
            except BaseException:
                client.close(grace=0.5)
                raise
        return client

    # -- raw requests -----------------------------------------------------------------------

    def submit(
        self, method: str, params: Mapping[str, Any], *, timeout: float | None = None
    ) -> Future[Any]:
        """Send a request now; the future holds the raw result or the mapped :class:`DSOError`.

        ``params`` gets the absolute ``deadline``; the kernel fails the future at that time
        whatever the provider does. Never blocks on the answer (pipelining)."""
        timeout = self.request_timeout if timeout is None else timeout
        method = str(method)
        added = None if self._failure is not None else self._pending.add(method, timeout)
        if added is None:
            future: Future[Any] = Future()
            settle(future, error=failures.not_running(self.name, method, self._failure))
            return future
        msg_id, call = added
        try:
            self.process.send([0, msg_id, method, {**params, "deadline": time.time() + timeout}])
        except OSError:
            self._forget(msg_id, failures.not_running(self.name, method, self._failure))
        except ProtocolError as exc:  # the request itself is too large for a frame
            self._forget(msg_id, ProtocolError(exc.message, provider=self.name))
        return call.future

    def call(self, method: str, params: Mapping[str, Any], *, timeout: float | None = None) -> Any:
        """Send a request and wait for its raw result; raises the mapped :class:`DSOError`."""
        timeout = self.request_timeout if timeout is None else timeout
        future = self.submit(method, params, timeout=timeout)
        try:
            return future.result(timeout + 5.0)
        except FutureTimeout:  # the timer thread is the guard; this is the guard's guard
            raise failures.timed_out(self.name, method, timeout) from None

    def _forget(self, msg_id: int, error: ProviderError) -> None:
        call = self._pending.pop(msg_id)
        if call is not None:
            settle(call.future, error=error)

    # -- typed methods ----------------------------------------------------------------------

    def configure(self, settings: Mapping[str, Any], *, timeout: float | None = None) -> None:
        """Send the provider its settings (first, and again on a configuration reload)."""
        self.call(Method.CONFIGURE, {"settings": wire_settings(settings)}, timeout=timeout)

    def get(self, refs: Sequence[SecretRef], *, timeout: float | None = None) -> GetResult:
        """Values and version ids of a batch; per-reference failures are in ``errors``."""
        raw = self.call(Method.GET, self._refs(refs, Capability.GET), timeout=timeout)
        return self._parse(lambda: GetResult.from_wire(raw, [ref.id for ref in refs]), "get")

    def versions(
        self, refs: Sequence[SecretRef], *, timeout: float | None = None
    ) -> VersionsResult:
        """Version ids of a batch, without values (the cheap change check)."""
        raw = self.call(Method.VERSIONS, self._refs(refs, Capability.VERSIONS), timeout=timeout)
        ids = [ref.id for ref in refs]
        return self._parse(lambda: VersionsResult.from_wire(raw, ids), "versions")

    def list_names(self, prefix: str | None = None, *, timeout: float | None = None) -> list[str]:
        """Secret paths under ``prefix`` (capability ``list``)."""
        self._require(Capability.LIST)
        params = {} if prefix is None else {"prefix": prefix}
        raw = self.call(Method.LIST, params, timeout=timeout)
        return self._parse(lambda: parse_list_result(raw), "list")

    def ping(self, *, timeout: float | None = None) -> float:
        """Round trip of a ``ping``, in seconds."""
        started = time.perf_counter()
        raw = self.call(Method.PING, {}, timeout=timeout)
        elapsed = time.perf_counter() - started
        self._parse(lambda: parse_ping_result(raw), "ping")
        return elapsed

    def watch(self, refs: Sequence[SecretRef], on_changed: Callable[[Changed], None]) -> None:
        """Replace the watched set; ``on_changed`` runs on the reading thread: return quickly."""
        self._on_changed = on_changed
        self.call(Method.WATCH, self._refs(refs, Capability.WATCH))

    def _refs(self, refs: Sequence[SecretRef], capability: Capability) -> dict[str, Any]:
        self._require(capability)
        return {"refs": [ref.to_wire() for ref in refs]}

    def _require(self, capability: Capability) -> None:
        if capability not in self.handshake.capabilities:
            raise ProviderError(
                f"does not support {capability.value!r} (it announced"
                f" {', '.join(sorted(self.handshake.capabilities))})",
                provider=self.name,
                code="invalid_request",
            )

    def _parse(self, parse: Callable[[], _T], method: str) -> _T:
        try:
            return parse()
        except ProtocolError as exc:
            message = f"bad {method!r} answer: {exc.message}"
            raise ProtocolError(message, provider=self.name) from None

    # -- reading (on the process's reader thread) ---------------------------------------------

    def _on_frames(self, bodies: list[bytes]) -> None:
        for body in bodies:
            message = decode_message(body)
            if not self._handshaken:
                self._on_handshake(message)
            elif type(message) is Response:
                call = self._pending.pop(message.id)
                if call is None:
                    if message.id == self._shutdown_id:
                        continue
                    log.debug("%s: ignoring a late answer to request %d", self.name, message.id)
                    continue
                self._record(
                    call.method, time.perf_counter() - call.started, ok=message.error is None
                )
                if message.error is None:
                    settle(call.future, message.result)
                else:
                    error = exception_for(
                        message.error.code, message.error.message, provider=self.name
                    )
                    settle(call.future, error=error)
            elif type(message) is Notification:
                self._on_notification(message)
            elif type(message) is Request:
                log.warning("%s: ignoring a request: providers send none", self.name)

    def _on_handshake(self, message: Request | Response | Notification) -> None:
        try:
            handshake = Handshake.from_message(message, SUPPORTED_PROTOCOLS)
        except ProtocolError as exc:
            self._start_error = failures.bad_handshake(self.name, exc)
            raise
        self._handshaken = True
        settle(self._handshake, handshake)

    def _on_notification(self, message: Notification) -> None:
        if message.method != Method.CHANGED:
            log.debug("%s: ignoring notification %r", self.name, message.method)
            return
        changed = Changed.from_wire(message.params)
        callback = self._on_changed
        if callback is None:
            return
        try:
            callback(changed)
        except Exception:
            log.exception("%s: the changed-notification callback failed", self.name)

    def _on_closed(self, violation: ProtocolError | None) -> None:
        """The provider's stdout ended or broke the protocol: reap it, fail what is pending."""
        if violation is not None:
            status = self.process.kill()
            error: ProviderError = self._start_error or failures.protocol_violation(
                self.name, violation
            )
        else:
            status = self.process.stop(SHUTDOWN_TIMEOUT)
            if self._closing:
                error = failures.stopped(self.name)
            else:
                tail = [] if self._handshaken else self.process.stderr_tail(wait=0.5)
                error = failures.exited(self.name, status, handshaken=self._handshaken, tail=tail)
        self.exit_status = status
        self._fail(error)

    # -- failure and deadlines --------------------------------------------------------------

    def _fail(self, error: ProviderError, *, kill: bool = False) -> None:
        """Mark the client dead (the first reason wins) and fail every pending request."""
        with self._lock:
            first = self._failure is None
            if first:
                self._failure = error
        pending = self._pending.close()
        if kill:
            self.exit_status = self.process.kill()
        failure, status = self._failure, self.exit_status
        assert failure is not None
        settle(self._handshake, error=failure)
        for call in pending:
            settle(call.future, error=failures.in_progress(self.name, call.method, failure, status))
        callback = self.on_exit
        if first and callback is not None:
            try:
                callback(self)
            except Exception:
                log.exception("%s: the exit callback failed", self.name)

    def _record(self, method: str, seconds: float, *, ok: bool) -> None:
        self.stats.record(method, seconds, ok=ok)
        telemetry.emit("provider_call", provider=self.name, method=method, seconds=seconds, ok=ok)

    def _on_expired(self, call: Call) -> None:
        self._record(call.method, call.timeout, ok=False)
        settle(call.future, error=failures.timed_out(self.name, call.method, call.timeout))

    # -- lifecycle --------------------------------------------------------------------------

    @property
    def alive(self) -> bool:
        """True while the process runs and has not broken the protocol."""
        return self._failure is None and self.process.returncode is None

    @property
    def failure(self) -> DSOError | None:
        """Why the client stopped working, once it has."""
        return self._failure

    def close(self, grace: float = SHUTDOWN_TIMEOUT) -> int | None:
        """Stop the provider: ``shutdown`` → ``grace`` → SIGTERM → ``grace`` → SIGKILL. Always
        reaps it; returns the exit status."""
        self._closing = True

        def shutdown() -> None:
            if self._failure is None and self._handshake.done():
                msg_id = self._shutdown_id = self._pending.untracked_id()
                params = {"deadline": time.time() + grace}
                self.process.send([0, msg_id, Method.SHUTDOWN.value, params])

        status = self.process.stop(grace, shutdown)
        self.exit_status = status
        self._fail(failures.stopped(self.name))
        return status

    def __enter__(self) -> ProviderClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
