"""``serve(ProviderClass)``: the whole provider side of protocol v1.

Checks the cookie, negotiates the version, protects stdout, sends the handshake, then reads
frames with ``os.read`` on the raw fd. Requests run on a pool of daemon threads, so a slow
``get`` never blocks ``ping`` and answers may leave out of order (matched by id); methods in
``Provider.inline_methods`` are answered on the reading thread, batched into one write.
Exits 0 on ``shutdown``, end of stdin or SIGTERM, 2 on a protocol violation by the kernel.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from types import FrameType
from typing import Any, NoReturn

from kernel.errors import ProtocolError
from kernel.protocol.codes import ErrorCode
from kernel.protocol.framing import READ_SIZE, FrameDecoder
from kernel.protocol.handshake import (
    EXECUTABLE_PREFIX,
    MAGIC_COOKIE_KEY,
    MAGIC_COOKIE_VALUE,
    NAME_PATTERN,
    PROTOCOL_VERSIONS_KEY,
    SUPPORTED_PROTOCOLS,
    Capability,
    Handshake,
    describe_document,
    negotiate,
    parse_versions,
    refusal_message,
)
from kernel.protocol.messages import MessageWriter, Method, Notification, Request, decode_message
from kernel.protocol.methods import (
    MISSING_ANSWER,
    GetResult,
    SecretData,
    SecretRef,
    VersionsResult,
    parse_deadline,
    parse_prefix,
    parse_refs,
    parse_settings,
)
from providers.sdk.check import check_settings_main
from providers.sdk.errors import (
    DeadlineExceeded,
    InvalidRequest,
    log_unexpected,
    wire_error_for,
)
from providers.sdk.logs import configure_logging, get_logger, level_from_env
from providers.sdk.provider import Provider, _set_deadline
from providers.sdk.stdio import protect_stdio

log = get_logger("sdk")

#: Exit statuses of a provider process.
EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_PROTOCOL = 2

_MISSING = {"code": ErrorCode.INTERNAL.value, "message": MISSING_ANSWER}
_UNCONFIGURED_OK = frozenset({Method.CONFIGURE, Method.PING, Method.SHUTDOWN})


class _Stop(BaseException):
    """Raised in the main thread by the SIGTERM/SIGINT handler to end the read loop.

    A BaseException, so the ``except Exception`` around provider code cannot swallow it."""


def serve(provider_cls: type[Provider], argv: Sequence[str] | None = None) -> NoReturn:
    """Run ``provider_cls`` as a provider program and exit with its status. Call it from the
    provider's ``__main__``; it never returns."""
    sys.exit(run(provider_cls, sys.argv[1:] if argv is None else argv))


def run(
    provider_cls: type[Provider],
    argv: Sequence[str] = (),
    environ: Mapping[str, str] | None = None,
) -> int:
    """Everything :func:`serve` does, returning the exit status instead of exiting."""
    env = os.environ if environ is None else environ
    name = provider_cls.name
    if not NAME_PATTERN.fullmatch(name):
        raise ValueError(f"{provider_cls.__name__}.name {name!r} is not a valid provider name")
    program = EXECUTABLE_PREFIX + name
    if list(argv) == ["--describe"]:
        doc = describe_document(name, provider_cls.version, provider_cls.capabilities())
        sys.stdout.write(json.dumps(doc) + "\n")
        sys.stdout.flush()
        return EXIT_OK
    if list(argv) == ["--check-settings"]:
        return check_settings_main(provider_cls, env, sys.stdin.buffer, sys.stdout)
    if env.get(MAGIC_COOKIE_KEY) != MAGIC_COOKIE_VALUE:
        sys.stderr.write(refusal_message(program, name))
        return EXIT_REFUSED
    if argv:
        sys.stderr.write(f"{program}: unexpected arguments {list(argv)!r}\n")
        return EXIT_USAGE
    try:
        offered = parse_versions(env.get(PROTOCOL_VERSIONS_KEY))
    except ProtocolError as exc:
        sys.stderr.write(f"{program}: {exc}\n")
        return EXIT_REFUSED
    configure_logging(level_from_env(dict(env)))
    # With no common version, still announce ours so the kernel can name the mismatch.
    protocol = negotiate(offered) or max(SUPPORTED_PROTOCOLS)
    streams = protect_stdio()
    server = _Server(provider_cls(), streams.read_fd, streams.write_fd, protocol)
    return server.run()


class _Server:
    """One provider process's connection to the kernel."""

    def __init__(self, provider: Provider, read_fd: int, write_fd: int, protocol: int) -> None:
        self.provider = provider
        self.read_fd = read_fd
        self.writer = MessageWriter(write_fd)
        self.protocol = protocol
        self.capabilities = type(provider).capabilities()
        self.configured = False
        self.inline = frozenset(type(provider).inline_methods) | {Method.SHUTDOWN}
        self.handlers: dict[str, Callable[[dict[str, Any]], Any]] = {
            Method.CONFIGURE: self._configure,
            Method.GET: self._get,
            Method.VERSIONS: self._versions,
            Method.LIST: self._list,
            Method.PING: self._ping,
            Method.WATCH: self._watch,
            Method.SHUTDOWN: lambda params: {},
        }
        self.requires: dict[str, Capability] = {
            Method.VERSIONS: Capability.VERSIONS,
            Method.LIST: Capability.LIST,
            Method.WATCH: Capability.WATCH,
        }
        self.queue: queue.SimpleQueue[Request] = queue.SimpleQueue()
        provider._send = self._send_quietly

    # -- main loop ------------------------------------------------------------------------------

    def run(self) -> int:
        handshake = Handshake(
            type(self.provider).name, type(self.provider).version, self.protocol, self.capabilities
        )
        restore = self._install_signals()
        try:
            self.writer.send(handshake.to_notification().to_wire())
            for _ in range(max(1, type(self.provider).max_workers)):
                threading.Thread(target=self._work, name="dso-provider-worker", daemon=True).start()
            return self._read_loop()
        except _Stop:
            log.info("terminated by signal")
            return EXIT_OK
        except BrokenPipeError:
            log.info("the kernel closed the frame stream")
            return EXIT_OK
        finally:
            restore()
            self._close()

    def _read_loop(self) -> int:
        decoder = FrameDecoder()
        handle = self._handle
        inline = self.inline
        submit = self.queue.put
        while True:
            data = os.read(self.read_fd, READ_SIZE)
            if not data:
                if decoder.incomplete:
                    log.warning("stdin ended inside a frame (%d bytes)", decoder.pending)
                log.debug("stdin closed: exiting")
                return EXIT_OK
            try:
                bodies = decoder.feed(data)
                messages = [decode_message(body) for body in bodies]
            except ProtocolError as exc:
                log.error("the kernel broke the protocol: %s", exc.message)
                return EXIT_PROTOCOL
            answers: list[list[Any]] = []
            stop = False
            for message in messages:
                if type(message) is Request:
                    if message.method in inline:
                        answers.append(handle(message))
                        if message.method == Method.SHUTDOWN:
                            stop = True
                            break
                    else:
                        submit(message)
                elif type(message) is Notification:
                    log.debug("ignoring notification %r", message.method)
                else:
                    log.warning("ignoring a response message: the kernel sends none")
            if answers:
                self.writer.send_many(answers)
            if stop:
                log.debug("shutdown requested")
                return EXIT_OK

    def _work(self) -> None:
        get = self.queue.get
        handle = self._handle
        while True:
            answer = handle(get())
            self._send_quietly(answer)

    def _send_quietly(self, wire: list[Any]) -> None:
        try:
            self.writer.send(wire)
        except OSError as exc:  # the kernel is gone; the read loop sees EOF and exits
            log.debug("could not write a frame: %s", type(exc).__name__)
        except Exception as exc:
            log_unexpected(exc, f"sending {wire[0]!r} message")

    def _handle(self, request: Request) -> list[Any]:
        """Run one request and build its response; never raises."""
        method = request.method
        try:
            handler = self.handlers.get(method)
            if handler is None:
                raise InvalidRequest(f"unknown method {method!r}")
            capability = self.requires.get(method)
            if capability is not None and capability not in self.capabilities:
                raise InvalidRequest(f"this provider does not support {method!r}")
            if not self.configured and method not in _UNCONFIGURED_OK:
                raise InvalidRequest(f"{method!r} before configure: send configure first")
            deadline = parse_deadline(request.params)
            if time.time() > deadline:
                raise DeadlineExceeded(f"the deadline of {method!r} passed before it started")
            _set_deadline(deadline)
            try:
                result = handler(request.params)
            finally:
                _set_deadline(None)
        except Exception as exc:
            return [1, request.id, wire_error_for(exc, method).to_wire(), None]
        return [1, request.id, None, result]

    # -- methods --------------------------------------------------------------------------------

    def _configure(self, params: dict[str, Any]) -> dict[str, Any]:
        self.provider.configure(parse_settings(params))
        self.configured = True
        return {}

    def _get(self, params: dict[str, Any]) -> dict[str, Any]:
        refs = parse_refs(params)
        result = self.provider.get(refs)
        if not isinstance(result, GetResult):
            raise TypeError(f"get returned {type(result).__name__}, not GetResult")
        values: dict[str, Any] = {}
        for ref_id, data in result.values.items():
            if isinstance(data, SecretData) and type(data.value) is bytes and data.version:
                values[ref_id] = {"value": data.value, "version": str(data.version)}
            else:
                log.error("get returned a malformed SecretData for id %r", ref_id)
        return _batch("values", values, result.errors, refs)

    def _versions(self, params: dict[str, Any]) -> dict[str, Any]:
        refs = parse_refs(params)
        result = self.provider.versions(refs)
        if not isinstance(result, VersionsResult):
            raise TypeError(f"versions returned {type(result).__name__}, not VersionsResult")
        versions = {k: v for k, v in result.versions.items() if isinstance(v, str) and v}
        return _batch("versions", versions, result.errors, refs)

    def _list(self, params: dict[str, Any]) -> dict[str, Any]:
        names = self.provider.list_names(parse_prefix(params))
        if not all(isinstance(name, str) and name for name in names):
            raise TypeError("list_names must return non-empty strings")
        return {"names": list(names)}

    def _ping(self, params: dict[str, Any]) -> dict[str, Any]:
        self.provider.ping()
        return {"time": time.time()}

    def _watch(self, params: dict[str, Any]) -> dict[str, Any]:
        self.provider.watch(parse_refs(params))
        return {}

    # -- lifecycle ------------------------------------------------------------------------------

    def _install_signals(self) -> Callable[[], None]:
        if threading.current_thread() is not threading.main_thread():
            return lambda: None

        def stop(signum: int, frame: FrameType | None) -> None:
            raise _Stop(signum)

        old = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}

        def restore() -> None:
            for sig, handler in old.items():
                signal.signal(sig, handler)

        return restore

    def _close(self) -> None:
        try:
            self.provider.close()
        except Exception as exc:
            log_unexpected(exc, "close")


def _batch(
    key: str, answered: dict[str, Any], errors: Mapping[str, Any], refs: Sequence[SecretRef]
) -> dict[str, Any]:
    """A batch answer naming every requested id exactly once, and nothing else."""
    wire_errors: dict[str, Any] = {}
    for ref in refs:
        if ref.id in answered:
            continue
        error = errors.get(ref.id)
        wire_errors[ref.id] = error.to_wire() if error is not None else _MISSING
    if len(answered) > len(refs) - len(wire_errors):
        wanted = {ref.id for ref in refs}
        answered = {k: v for k, v in answered.items() if k in wanted}
    return {key: answered, "errors": wire_errors}
