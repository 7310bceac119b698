"""One agent per installation: an flock on ``state/agent.lock`` holding the agent's pid.

The kernel drops the lock when its process dies (even by ``kill -9``), so a held lock always
means a live agent, and a stale file from a crash never blocks a new one. A second agent reads
the pid in the file and refuses to start, naming it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from kernel.errors import AgentError, StorageError

FILE_NAME = "agent.lock"


class InstanceLock:
    """Held for the agent's whole life; :meth:`holder` tells who holds it."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / FILE_NAME
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise :class:`AgentError` naming the pid that holds it."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        except OSError as exc:
            raise StorageError(f"cannot open {self.path}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            pid = self.holder()
            who = f"pid {pid}" if pid else "another process"
            raise AgentError(
                f"an agent is already running for this installation ({who}, lock {self.path})",
                hint="`docker dso agent stop` stops it; one agent per dso home (or per host in "
                "agent mode)",
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def holder(self) -> int | None:
        """The pid written by the agent holding the lock, or None when none does."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        except OSError:
            return None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                text = os.read(fd, 32).decode(errors="replace").strip()
                return int(text) if text.isdigit() else None
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None  # nobody holds it: a leftover of a stopped agent
        finally:
            os.close(fd)

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            os.close(self._fd)
            self._fd = None
