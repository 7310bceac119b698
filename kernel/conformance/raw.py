"""A provider process driven frame by frame, for the checks the provider host hides on purpose:
the raw handshake frame, requests the host would never send (no deadline, unknown method,
malformed params, an expired deadline), and how the process stops (end of stdin, SIGTERM).

Every process runs in its own session and is always killed and reaped by :meth:`close`.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any

from kernel.errors import ProtocolError
from kernel.protocol import (
    FrameDecoder,
    Message,
    MessageWriter,
    Notification,
    Response,
    decode_message,
)

#: How much of the provider's stderr a failure detail may quote (logs never carry values).
STDERR_TAIL = 400


class RawProvider:
    """One provider process with a blocking frame reader on its stdout."""

    def __init__(self, argv: Sequence[str], env: Mapping[str, str], cwd: str | None = None) -> None:
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed in close()
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=dict(env),
            cwd=cwd,
            start_new_session=True,
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self._writer = MessageWriter(self.proc.stdin.fileno())
        self._out = self.proc.stdout.fileno()
        self._decoder = FrameDecoder()
        self._frames: list[bytes] = []
        self._next_id = 1
        self.notifications: list[Notification] = []

    # -- frames ---------------------------------------------------------------------------------

    def recv(self, timeout: float) -> Message:
        """The next message. TimeoutError if none comes in time, EOFError if stdout closed;
        ProtocolError (from kernel.protocol) if the stream is not valid frames."""
        end = time.monotonic() + timeout
        while not self._frames:
            left = end - time.monotonic()
            if left <= 0 or not select.select([self._out], [], [], left)[0]:
                raise TimeoutError(f"no frame within {timeout:g} s")
            data = os.read(self._out, 1 << 18)
            if not data:
                self._decoder.close()
                raise EOFError("the provider closed its stdout")
            self._frames.extend(self._decoder.feed(data))
        return decode_message(self._frames.pop(0))

    def send(self, method: str, params: dict[str, Any]) -> int:
        """Send a request; returns its id."""
        msg_id = self._next_id
        self._next_id += 1
        self._writer.send([0, msg_id, method, params])
        return msg_id

    def call(self, method: str, params: dict[str, Any], timeout: float = 10.0) -> Response:
        """Send a request and wait for its response; notifications meanwhile are kept."""
        msg_id = self.send(method, params)
        end = time.monotonic() + timeout
        while True:
            message = self.recv(max(0.0, end - time.monotonic()))
            if isinstance(message, Notification):
                self.notifications.append(message)
                continue
            if isinstance(message, Response) and message.id == msg_id:
                return message
            # Never the message's repr: a stray response may carry a secret value.
            raise ProtocolError(
                f"expected the response to request {msg_id}, got a {type(message).__name__.lower()}"
            )

    # -- process --------------------------------------------------------------------------------

    def close_stdin(self) -> None:
        assert self.proc.stdin is not None
        with contextlib.suppress(OSError):
            self.proc.stdin.close()

    def signal(self, signum: signal.Signals) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signum)

    def wait(self, timeout: float) -> int | None:
        """The exit status, or None if still running after ``timeout`` seconds."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stderr_tail(self) -> str:
        """The end of what the provider wrote on stderr, on one line."""
        self._stderr.flush()
        self._stderr.seek(0, os.SEEK_END)
        size = self._stderr.tell()
        self._stderr.seek(max(0, size - STDERR_TAIL))
        text = self._stderr.read().decode("utf-8", "replace")
        return " ".join(text.split())

    def close(self) -> None:
        """Kill the whole process group if still running, reap it, release the pipes."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        self._stderr.close()

    def __enter__(self) -> RawProvider:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
