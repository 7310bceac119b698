"""One provider process: spawn, frame transport over its pipes, stderr logs, stop and reap.

- **Environment**: only :func:`kernel.protocol.provider_environment` (the base allow-list, the
  provider's configured ``env`` names, the cookie, the offered versions, the log level) plus
  what the command itself sets (``PYTHONPATH`` for a provider run from source).
- **No orphans**: the provider gets its own process group (``start_new_session``), so a stop
  reaches anything it started, and ``prctl(PR_SET_PDEATHSIG, SIGKILL)``, so it dies with the
  kernel even on ``kill -9``. Linux sends that signal when the *thread* that forked exits, so
  every spawn runs on one long-lived thread (:class:`_Spawner`), whichever thread asked.
- **Reading**: a thread does ``os.read`` on the raw stdout fd into a
  :class:`~kernel.protocol.FrameDecoder` (a buffered reader would block waiting to fill its
  buffer); another drains stderr and re-logs each JSON line under ``dso.provider.<name>`` at
  its level (other lines as warnings), cutting lines at :data:`MAX_LOG_LINE` bytes.
- **Stopping**: ``shutdown`` request → grace → SIGTERM to the group → grace → SIGKILL; the
  group is swept with SIGKILL while the leader is still an unreaped zombie (so its id cannot
  have been reused), then the leader is reaped. Always.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import logging
import os
import queue
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import msgpack

from kernel.errors import ProtocolError, ProviderStartError
from kernel.protocol import READ_SIZE, FrameDecoder, provider_environment
from kernel.protocol.framing import HEADER, MAX_FRAME_SIZE, check_length, write_all
from kernel.provider_host.relog import StderrRelog

#: Where a command came from (``docker dso providers list`` shows it).
ORIGIN_PLUGINS_DIR = "plugins-dir"
#: Bundled with the release of a frozen dso (``<release>/plugins``).
ORIGIN_RELEASE = "release"
ORIGIN_SOURCE = "source"
ORIGIN_PATH = "path"

_PR_SET_PDEATHSIG = 1
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class ProviderCommand:
    """How to launch one provider."""

    #: The provider's name: its key in dso.yaml, or the program name (``local``).
    name: str
    #: The executable and its arguments, e.g. ``(sys.executable, "-m", "providers.local")``.
    argv: tuple[str, ...]
    #: ``plugins-dir`` (a ``dso-provider-*`` executable), ``release`` (one bundled with a frozen
    #: dso), ``source`` or ``path`` (given as is).
    origin: str
    #: Names of extra variables passed from the kernel's environment (the config's ``env``).
    env_allow: tuple[str, ...] = ()
    #: Variables the kernel sets itself, e.g. ``PYTHONPATH`` for a provider run from source.
    env_set: tuple[tuple[str, str], ...] = ()
    #: SHA-256 the executable (``argv[0]``) must have at exec time (from SHA256SUMS).
    sha256: str | None = None

    def verify(self) -> None:
        """Check the executable against its SHA256SUMS digest; call right before every exec.
        Raises :class:`~kernel.errors.ProviderStartError` when it no longer matches."""
        if self.sha256 is not None:
            from kernel.provider_host.verify import ensure_digest

            ensure_digest(Path(self.argv[0]), self.sha256, self.name)

    def environment(
        self, environ: Mapping[str, str], log_level: str | None = None
    ) -> dict[str, str]:
        """The whole environment the provider is exec'd with."""
        env = provider_environment(environ, self.env_allow, log_level=log_level)
        env.update(dict(self.env_set))
        return env


class _Spawner:
    """Runs fork/exec on one thread that lives as long as the process (see module doc)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def run(self, fn: Callable[[], _T]) -> _T:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._loop, name="dso-provider-spawner", daemon=True
                )
                self._thread.start()
        future: Future[_T] = Future()
        self._queue.put((fn, future))
        return future.result()

    def _loop(self) -> None:
        while True:
            fn, future = self._queue.get()
            try:
                future.set_result(fn())
            except BaseException as exc:
                future.set_exception(exc)

    def _after_fork(self) -> None:
        self._lock = threading.Lock()
        self._queue = queue.SimpleQueue()
        self._thread = None


_spawner = _Spawner()
os.register_at_fork(after_in_child=_spawner._after_fork)


@functools.cache
def _prctl() -> Any:
    # Resolved once, before any fork: the child must not load libraries between fork and exec.
    return ctypes.CDLL(None, use_errno=True).prctl


def _death_signal_hook(parent_pid: int) -> Callable[[], None] | None:
    """A ``preexec_fn`` arming SIGKILL on the parent's death (Linux only)."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = _prctl()

    def arm() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent_pid:  # the kernel died before the signal was armed
            os.kill(os.getpid(), signal.SIGKILL)

    return arm


class ProviderProcess:
    """A running provider process and its three pipes. Not restartable: spawn a new one."""

    def __init__(
        self,
        command: ProviderCommand,
        popen: subprocess.Popen[bytes],
        logger: logging.Logger,
        on_frames: Callable[[list[bytes]], None],
        on_closed: Callable[[ProtocolError | None], None],
        max_frame_size: int,
    ) -> None:
        assert popen.stdin is not None and popen.stdout is not None and popen.stderr is not None
        self.command = command
        self.pid = popen.pid
        self.log = logger
        self._popen = popen
        self._on_frames = on_frames
        self._on_closed = on_closed
        self._max_frame = max_frame_size
        self._stdin = popen.stdin
        self._send_lock = threading.Lock()
        self._stdin_closed = False
        self._pack = msgpack.Packer(use_bin_type=True, autoreset=True, datetime=False).pack
        self._stop_lock = threading.Lock()
        self._relog = StderrRelog(logger, self.pid)
        self._pidfd: int | None = None
        with contextlib.suppress(OSError, AttributeError):
            self._pidfd = os.pidfd_open(self.pid)
        self._stdout_thread = threading.Thread(
            target=self._read_stdout, name=f"dso-provider-{command.name}-out", daemon=True
        )
        self._stderr_thread = threading.Thread(
            target=self._read_stderr, name=f"dso-provider-{command.name}-err", daemon=True
        )
        self._reading = False

    def start_reading(self) -> None:
        """Start the stdout and stderr threads. Separate from construction so the owner has
        stored this object before ``on_frames``/``on_closed`` can run (a provider may exit at
        once). Idempotent."""
        if not self._reading:
            self._reading = True
            # stderr first: the stdout thread may end at once and wait for stderr's last lines.
            self._stderr_thread.start()
            self._stdout_thread.start()

    @classmethod
    def spawn(
        cls,
        command: ProviderCommand,
        *,
        environ: Mapping[str, str],
        log_level: str | None,
        on_frames: Callable[[list[bytes]], None],
        on_closed: Callable[[ProtocolError | None], None],
        max_frame_size: int = MAX_FRAME_SIZE,
    ) -> ProviderProcess:
        """Start ``command``; raise :class:`ProviderStartError` if it cannot be executed. Call
        :meth:`start_reading` next: nothing is read from the pipes before."""
        command.verify()
        env = command.environment(environ, log_level)
        hook = _death_signal_hook(os.getpid())

        def launch() -> subprocess.Popen[bytes]:
            return subprocess.Popen(
                list(command.argv),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                bufsize=0,
                env=env,
                start_new_session=True,
                preexec_fn=hook,
            )

        try:
            popen = _spawner.run(launch)
        except OSError as exc:
            raise ProviderStartError(
                f"cannot execute {command.argv[0]}: {exc.strerror or exc}", provider=command.name
            ) from None
        logger = logging.getLogger(f"dso.provider.{command.name}")
        return cls(command, popen, logger, on_frames, on_closed, max_frame_size)

    # -- sending ------------------------------------------------------------------------------

    def send(self, wire: list[Any]) -> None:
        """Write one message (thread-safe); OSError when the provider's stdin is gone."""
        with self._send_lock:
            if self._stdin_closed:
                raise BrokenPipeError("the provider's stdin is closed")
            body = self._pack(wire)
            check_length(len(body), self._max_frame)
            write_all(self._stdin.fileno(), HEADER.pack(len(body)) + body)

    def send_many(self, wires: list[list[Any]]) -> None:
        """Write several messages with one system call (pipelining)."""
        with self._send_lock:
            if self._stdin_closed:
                raise BrokenPipeError("the provider's stdin is closed")
            parts = []
            for wire in wires:
                body = self._pack(wire)
                check_length(len(body), self._max_frame)
                parts.append(HEADER.pack(len(body)))
                parts.append(body)
            write_all(self._stdin.fileno(), b"".join(parts))

    def close_stdin(self, timeout: float = -1) -> None:
        """End of file for the provider. A writer blocked on a full pipe keeps the lock: give up
        after ``timeout`` seconds then (killing the provider unblocks it)."""
        if not self._send_lock.acquire(timeout=timeout):
            return
        try:
            if not self._stdin_closed:
                self._stdin_closed = True
                with contextlib.suppress(OSError):
                    self._stdin.close()
        finally:
            self._send_lock.release()

    # -- reading ------------------------------------------------------------------------------

    def _read_stdout(self) -> None:
        assert self._popen.stdout is not None
        fd = self._popen.stdout.fileno()
        decoder = FrameDecoder(self._max_frame)
        error: ProtocolError | None = None
        try:
            while True:
                data = os.read(fd, READ_SIZE)
                if not data:
                    decoder.close()
                    break
                bodies = decoder.feed(data)
                if bodies:
                    self._on_frames(bodies)
        except ProtocolError as exc:
            error = exc
        except OSError as exc:
            self.log.debug("reading the provider's stdout failed: %s", exc)
        finally:
            with contextlib.suppress(OSError):
                self._popen.stdout.close()
            self._on_closed(error)

    def _read_stderr(self) -> None:
        assert self._popen.stderr is not None
        try:
            self._relog.run(self._popen.stderr.fileno())
        finally:
            with contextlib.suppress(OSError):
                self._popen.stderr.close()

    def stderr_tail(self, wait: float = 0.0) -> list[str]:
        """The last messages the provider logged (after up to ``wait`` s for stderr to end)."""
        if wait > 0 and self._reading:
            self._stderr_thread.join(wait)
        return list(self._relog.tail)

    # -- lifecycle ----------------------------------------------------------------------------

    @property
    def returncode(self) -> int | None:
        """The exit status once reaped (negative: killed by that signal), else None."""
        return self._popen.returncode

    def exited(self, timeout: float | None = 0.0) -> bool:
        """Wait up to ``timeout`` seconds (None: forever) for the process to exit, *without*
        reaping it, so its pid and process group id stay reserved for :meth:`signal_group`."""
        if self._popen.returncode is not None:
            return True
        if self._pidfd is not None:
            poller = select.poll()
            poller.register(self._pidfd, select.POLLIN)
            return bool(poller.poll(None if timeout is None else max(0, int(timeout * 1000))))
        end = None if timeout is None else time.monotonic() + timeout
        while True:
            with contextlib.suppress(ChildProcessError):
                if os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOWAIT | os.WNOHANG):
                    return True
            if self._popen.returncode is not None:
                return True
            if end is not None and time.monotonic() >= end:
                return False
            time.sleep(0.005)

    def signal_group(self, sig: int) -> None:
        """Send ``sig`` to the provider's process group, while its id is still reserved."""
        if self._popen.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)

    def stop(self, grace: float, shutdown: Callable[[], None] | None = None) -> int:
        """Stop gracefully and reap: ``shutdown()`` and end of stdin → ``grace`` s → SIGTERM →
        ``grace`` s → SIGKILL. Idempotent; returns the exit status."""
        with self._stop_lock:
            if self._popen.returncode is None and not self.exited(0):
                if shutdown is not None:
                    with contextlib.suppress(Exception):
                        shutdown()
                self.close_stdin(timeout=grace)
                if not self.exited(grace):
                    self.log.debug("did not stop within %.1f s: SIGTERM", grace)
                    self.signal_group(signal.SIGTERM)
                    if not self.exited(grace):
                        self.log.warning("ignored SIGTERM for %.1f s: SIGKILL", grace)
                        self.signal_group(signal.SIGKILL)
            return self._reap()

    def kill(self) -> int:
        """SIGKILL the process group and reap; returns the exit status."""
        with self._stop_lock:
            self.signal_group(signal.SIGKILL)
            return self._reap()

    def _reap(self) -> int:
        if self._popen.returncode is None:
            if not self.exited(10.0):
                self.signal_group(signal.SIGKILL)
            # Sweep whatever the provider left in its group while the leader is a zombie.
            self.signal_group(signal.SIGKILL)
        status = self._popen.wait()
        self.close_stdin(timeout=1.0)
        if self._pidfd is not None:
            with contextlib.suppress(OSError):
                os.close(self._pidfd)
            self._pidfd = None
        return status


def describe_status(status: int | None) -> str:
    """``exited with status 3`` / ``was killed by SIGKILL`` / ``is still running``."""
    if status is None:
        return "is still running"
    if status < 0:
        try:
            name = signal.Signals(-status).name
        except ValueError:
            name = f"signal {-status}"
        return f"was killed by {name}"
    return f"exited with status {status}"
