"""The built-in ``audit`` extension: one JSON line per rotation event, never a secret value.

Each line says who (uid, user, pid, host, and the requesting actor), what (the event), when
(UTC), why (the trigger), the outcome, the target and its containers, and which versions and
fingerprints were rolled out, with the trace id that ties it to logs, the journal and webhook
notifications. Lines are appended to ``audit.jsonl`` in the logs directory (mode 0600) and
fsynced one by one, so an audit line survives a crash of the process that wrote it. Past
``max_size`` the file is renamed to ``audit.jsonl.1`` (older copies shift up to ``.3``).

Several processes (the agent, a CLI command) may append at once: an exclusive ``flock`` on
the file serialises writers, and a writer that finds the file rotated under it reopens it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pwd
import socket
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kernel.errors import StorageError
from kernel.extensions.events import RotationEvent
from kernel.extensions.hookspecs import hookimpl

#: Rotated copies kept beside the live file (``audit.jsonl.1`` … ``.3``).
KEEP = 3

#: Event name → the ``outcome`` written for it.
_OUTCOMES = {
    "rotation_planned": "planned",
    "rotation_started": "in_progress",
    "after_swap": "swapped",
    "rotation_failed": "failed",
    "rotation_rolled_back": "rolled_back",
    "rotation_completed": "completed",
}


def _user(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


class AuditLog:
    """Appends audit lines for every lifecycle event except the ``before_swap`` decision."""

    def __init__(self, path: Path, *, max_size: int = 10 * 1024 * 1024) -> None:
        self.path = path
        self.max_size = max_size
        self._lock = threading.Lock()
        uid = os.getuid()
        self._who = {"uid": uid, "user": _user(uid), "pid": os.getpid()}
        self._host = socket.gethostname()

    def __repr__(self) -> str:
        return f"AuditLog({str(self.path)!r})"

    # -- hooks ----------------------------------------------------------------------------

    @hookimpl
    def dso_rotation_planned(self, event: RotationEvent) -> None:
        self.record("rotation_planned", event)

    @hookimpl
    def dso_rotation_started(self, event: RotationEvent) -> None:
        self.record("rotation_started", event)

    @hookimpl
    def dso_after_swap(self, event: RotationEvent) -> None:
        self.record("after_swap", event)

    @hookimpl
    def dso_rotation_failed(self, event: RotationEvent) -> None:
        self.record("rotation_failed", event)

    @hookimpl
    def dso_rotation_rolled_back(self, event: RotationEvent) -> None:
        self.record("rotation_rolled_back", event)

    @hookimpl
    def dso_rotation_completed(self, event: RotationEvent) -> None:
        self.record("rotation_completed", event)

    # -- lines ----------------------------------------------------------------------------

    def line(self, name: str, event: RotationEvent) -> dict[str, Any]:
        """The audit document for event ``name`` (exposed for tests and docs)."""
        outcome = _OUTCOMES[name]
        if name == "rotation_rolled_back" and event.vetoed_by:
            outcome = "vetoed"
        when = datetime.fromtimestamp(event.occurred_at, UTC)
        return {
            "time": when.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "event": name,
            "outcome": outcome,
            "trace_id": event.trace_id,
            "rotation_id": event.rotation_id,
            "who": {**self._who, "host": self._host, "actor": event.actor},
            "why": event.trigger,
            "dry_run": event.dry_run,
            "target": event.target,
            "project": event.project,
            "service": event.service,
            "strategy": event.strategy,
            "step": event.step,
            "old_container": event.old_container,
            "new_container": event.new_container,
            "references": list(event.references),
            "versions": dict(sorted(event.versions.items())),
            "fingerprints": dict(sorted(event.fingerprints.items())),
            "error": event.error,
            "vetoed_by": event.vetoed_by,
            "duration": round(event.duration, 3),
        }

    def append_request(
        self,
        action: str,
        *,
        caller: dict[str, Any],
        params: dict[str, Any],
        outcome: str = "accepted",
        trace_id: str | None = None,
    ) -> None:
        """Append the line of a request on the agent's socket: a mutating one (``rotate``,
        ``sync``, ``reload``; outcome ``accepted``) or a refused caller (``denied``): who asked
        (the peer's uid, user and pid), what, when. Raises :class:`StorageError` when it
        cannot. ``trace_id`` is the rotation a ``rotate`` queued."""
        when = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        doc = {
            "time": when,
            "event": "socket_request",
            "outcome": outcome,
            "trace_id": trace_id,
            "action": action,
            "params": params,
            "caller": caller,
            "who": {**self._who, "host": self._host, "actor": "socket"},
        }
        self._write((json.dumps(doc, ensure_ascii=False) + "\n").encode())

    def record(self, name: str, event: RotationEvent) -> None:
        """Append the line for ``name``; raises :class:`StorageError` when it cannot."""
        self._write((json.dumps(self.line(name, event), ensure_ascii=False) + "\n").encode())

    def _write(self, data: bytes) -> None:
        with self._lock:
            try:
                self._append(data)
            except OSError as exc:
                raise StorageError(
                    f"could not append to the audit log {self.path}: {exc.strerror or exc}"
                ) from None

    # -- file handling --------------------------------------------------------------------

    def _append(self, data: bytes) -> None:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = self._open_locked()
        try:
            size = os.fstat(fd).st_size
            if size and size + len(data) > self.max_size:
                self._rotate()
                os.close(fd)
                fd = self._open_locked()
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)  # also releases the flock

    def _open_locked(self) -> int:
        """The live file, opened for append and exclusively locked (reopened if rotated)."""
        while True:
            flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
            fd = os.open(self.path, flags, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                st = os.fstat(fd)
                if st.st_mode & 0o077:
                    os.fchmod(fd, 0o600)
                with contextlib.suppress(FileNotFoundError):
                    if os.stat(self.path).st_ino == st.st_ino:
                        return fd
            except BaseException:
                os.close(fd)
                raise
            os.close(fd)  # another writer rotated the file while we waited: use the new one

    def _rotate(self) -> None:
        for index in range(KEEP - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{index}")
            if older.exists():
                os.replace(older, self.path.with_name(f"{self.path.name}.{index + 1}"))
        os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))
