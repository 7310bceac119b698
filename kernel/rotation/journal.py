"""``state/rotations.json``: the durable record of every rotation, written before each step.

The document is schema-versioned::

    {"schema": 1, "rotations": [<entry>, ...]}

Each entry (:class:`RotationEntry`) carries the rotation id and trace id, the target, the
strategy and why it was chosen, the status and current step with a timestamp per step, both
containers' ids and names, the references and versions involved (never values), the error,
the health-gate diagnostics and the lock wait. Writes replace the file atomically and durably
(:func:`kernel.atomic_write.atomic_write`) under an flock on ``rotations.json.lock``, so
rotations of different containers in different processes never lose each other's updates.

Finished entries are kept for 7 days (:data:`RETENTION`); an unfinished one that has not moved
for 24 hours is *stale* (:data:`STALE_AFTER`) and is flagged for an operator.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import itertools
import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from kernel.atomic_write import atomic_write
from kernel.errors import StorageError
from kernel.log import get_logger
from kernel.rotation.states import (
    NEEDS_RECOVERY,
    TERMINAL,
    RotationStatus,
    Step,
    Strategy,
    can_move,
    can_step,
    health_confirmed,
)

SCHEMA = 1
FILE_NAME = "rotations.json"
#: Seconds finished entries are kept.
RETENTION = 7 * 86400.0
#: Seconds without progress after which an unfinished entry is stale.
STALE_AFTER = 24 * 3600.0
#: Causes after which ``recover`` rolls the change out again (:attr:`RotationEntry.cause`).
RESUMABLE_CAUSES = frozenset({"crash", "docker"})

log = get_logger("rotation.journal")
#: ``(journal path, entry digest)`` of unreadable entries already logged by this process.
_REPORTED: set[tuple[str, str]] = set()


@dataclass(slots=True)
class RotationEntry:
    """One rotation as journaled. Mutated by the engine, written with :meth:`Journal.save`."""

    id: str
    trace_id: str
    target: str
    strategy: str
    strategy_reason: str = ""
    status: str = RotationStatus.IN_PROGRESS.value
    step: str = Step.PLAN.value
    #: ``[{"step": ..., "at": epoch seconds}]`` in order.
    steps: list[dict[str, Any]] = field(default_factory=list)
    old_id: str | None = None
    old_name: str | None = None
    #: Whether the old container was running when the rotation started.
    old_running: bool = True
    new_id: str | None = None
    new_name: str | None = None
    backup_name: str | None = None
    #: The lock held for the rotation (``service-<project>.<service>`` or
    #: ``container-<name>``): ``recover`` tests it to tell a live rotation from a dead one.
    lock_key: str | None = None
    #: The secrets directory the old container mounts, and the rotation's own one for the new
    #: container (``<dir>@<rotation id>``; None when no secret file changed or for ``reload``).
    old_files_dir: str | None = None
    files_dir: str | None = None
    #: Variable → reference as written (``dso://app/db``).
    references: dict[str, str] = field(default_factory=dict)
    #: Variable → ``{"from": fingerprint, "to": fingerprint}``.
    versions: dict[str, dict[str, str | None]] = field(default_factory=dict)
    started_at: float = 0.0
    updated_at: float = 0.0
    finished_at: float | None = None
    error: str | None = None
    health: dict[str, Any] | None = None
    #: ``{"waited": seconds, "contended": bool}``.
    lock: dict[str, Any] | None = None
    #: What ``recover`` did: ``{"action": ..., "reason": ..., "at": ...}``.
    recovery: dict[str, Any] | None = None
    #: The old container's ``RestartPolicy``; the new one runs with ``no`` until it holds the
    #: name, then gets this one (also when ``recover`` finishes the swap).
    restart_policy: dict[str, Any] | None = None
    #: Why it did not complete (:data:`kernel.rotation.strategies.CAUSES`): ``health_gate``,
    #: ``vetoed``, ``docker``, ``interrupted``, ``error``; ``crash`` when ``recover`` found it
    #: unfinished with no process working on it.
    cause: str | None = None
    #: Set once ``recover`` rotated the target again after an interruption:
    #: ``{"at": ..., "status": ...}`` (so it is done once).
    resumed: dict[str, Any] | None = None
    pid: int = 0
    host: str = ""

    # -- moves ------------------------------------------------------------------------------

    def advance(self, step: Step, now: float) -> None:
        """Move to ``step``; raises :class:`ValueError` for an illegal move (a bug)."""
        if not can_step(Strategy(self.strategy), Step(self.step), step):
            raise ValueError(f"rotation {self.id}: illegal step {self.step} -> {step}")
        self.step = step.value
        self.steps.append({"step": step.value, "at": round(now, 6)})
        self.updated_at = now

    def finish(self, status: RotationStatus, now: float, *, error: str | None = None) -> None:
        """Move to ``status``; raises :class:`ValueError` for an illegal move (a bug)."""
        current = RotationStatus(self.status)
        if status != current and not can_move(current, status):
            raise ValueError(f"rotation {self.id}: illegal status {current} -> {status}")
        self.status = status.value
        self.updated_at = now
        if status in TERMINAL or status in (RotationStatus.FAILED, RotationStatus.CRITICAL_ERROR):
            self.finished_at = now
        if error is not None:
            self.error = error

    # -- questions --------------------------------------------------------------------------

    @property
    def health_confirmed(self) -> bool:
        """The journal shows the new container passed its health gate."""
        return health_confirmed(Strategy(self.strategy), Step(self.step))

    @property
    def needs_recovery(self) -> bool:
        return RotationStatus(self.status) in NEEDS_RECOVERY

    @property
    def needs_resuming(self) -> bool:
        """Undone because it was interrupted (a crash, a lost daemon), not because its health
        gate failed or an extension vetoed it: the change it carried is still to roll out."""
        if self.resumed is not None or self.cause not in RESUMABLE_CAUSES:
            return False
        if self.status == RotationStatus.ROLLED_BACK:
            return True
        recovered = self.status == RotationStatus.RECOVERED
        return recovered and (self.recovery or {}).get("action") == "rolled_back"

    def is_stale(self, now: float, *, after: float = STALE_AFTER) -> bool:
        """Unfinished and without progress for ``after`` seconds."""
        return self.status == RotationStatus.IN_PROGRESS and now - self.updated_at > after

    def step_times(self) -> dict[str, float]:
        """Seconds spent in each step (until the next one or the end), for reports."""
        times: dict[str, float] = {}
        marks = [*self.steps, {"step": "end", "at": self.finished_at or self.updated_at}]
        for current, following in itertools.pairwise(marks):
            elapsed = float(following["at"]) - float(current["at"])
            times[current["step"]] = times.get(current["step"], 0.0) + max(0.0, elapsed)
        return times

    # -- (de)serialisation ------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> RotationEntry:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in doc.items() if k in known})


class Journal:
    """The rotations file of one installation (``Layout.state / rotations.json``)."""

    def __init__(self, state_dir: Path, *, clock: Callable[[], float] = time.time) -> None:
        self.path = state_dir / FILE_NAME
        self.clock = clock

    def __repr__(self) -> str:
        return f"Journal({str(self.path)!r})"

    @property
    def owner(self) -> str:
        """A stable id of this installation (host and journal path), labelled on the
        containers its rotations create, so ``recover`` tells its leftovers from another
        installation's rotation in flight on the same daemon."""
        where = f"{socket.gethostname()}:{os.path.realpath(self.path)}"
        return hashlib.sha256(where.encode()).hexdigest()[:16]

    # -- reading ----------------------------------------------------------------------------

    def entries(self) -> list[RotationEntry]:
        """Every entry, oldest first."""
        with self._locked():
            return self._read()

    def get(self, rotation_id: str) -> RotationEntry | None:
        return next((e for e in self.entries() if e.id == rotation_id), None)

    def needing_recovery(self) -> list[RotationEntry]:
        return [e for e in self.entries() if e.needs_recovery]

    def needing_resuming(self) -> list[RotationEntry]:
        return [e for e in self.entries() if e.needs_resuming]

    def stale(self, *, after: float = STALE_AFTER) -> list[RotationEntry]:
        now = self.clock()
        return [e for e in self.entries() if e.is_stale(now, after=after)]

    # -- writing ----------------------------------------------------------------------------

    def save(self, entry: RotationEntry) -> None:
        """Insert or replace ``entry`` (by id), durably, before the caller goes on."""
        with self._locked():
            entries = self._read()
            for index, existing in enumerate(entries):
                if existing.id == entry.id:
                    entries[index] = entry
                    break
            else:
                entries.append(entry)
            self._write(entries)

    def prune(self, *, retention: float = RETENTION) -> int:
        """Drop finished entries older than ``retention``; returns how many were dropped."""
        now = self.clock()
        with self._locked():
            entries = self._read()
            kept = [
                e
                for e in entries
                if RotationStatus(e.status) not in TERMINAL
                or now - (e.finished_at or e.updated_at) <= retention
            ]
            if len(kept) != len(entries):
                self._write(kept)
            return len(entries) - len(kept)

    # -- file -------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(
                self.path.with_name(FILE_NAME + ".lock"),
                os.O_RDWR | os.O_CREAT | os.O_CLOEXEC,
                0o600,
            )
        except OSError as exc:
            where = self.path.parent
            raise StorageError(f"cannot open the journal lock in {where}: {exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _read(self) -> list[RotationEntry]:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise StorageError(f"cannot read {self.path}: {exc.strerror}") from None
        try:
            doc = json.loads(raw)
            if not isinstance(doc, dict) or not isinstance(doc.get("rotations"), list):
                raise ValueError("not a rotations document")
        except ValueError as exc:
            self._quarantine(str(exc))
            return []
        schema = doc.get("schema")
        if not isinstance(schema, int) or schema > SCHEMA:
            raise StorageError(
                f"{self.path} has schema {schema!r}; this dso understands up to {SCHEMA}",
                hint="upgrade dso, or move the file away to start a new journal",
            )
        entries = []
        for index, item in enumerate(doc["rotations"]):
            try:
                entries.append(RotationEntry.from_dict(item))
            except (TypeError, ValueError):
                self._report_unreadable(index, item)
        return entries

    def _report_unreadable(self, index: int, item: object) -> None:
        """Log an entry that cannot be read, once per process (every read would repeat it)."""
        digest = hashlib.sha256(repr(item).encode()).hexdigest()[:16]
        key = (os.path.realpath(self.path), digest)
        if key in _REPORTED:
            return
        _REPORTED.add(key)
        log.error(
            "dropping unreadable entry %d of the rotation journal (the next write leaves it out)",
            index,
            extra={"file": str(self.path)},
        )

    def _write(self, entries: list[RotationEntry]) -> None:
        doc = {"schema": SCHEMA, "rotations": [e.to_dict() for e in entries]}
        atomic_write(self.path, json.dumps(doc, indent=1, sort_keys=True).encode() + b"\n")

    def _quarantine(self, reason: str) -> None:
        """Keep an unreadable journal for the operator and start a new one."""
        aside = self.path.with_name(f"{FILE_NAME}.corrupt-{int(self.clock())}")
        with contextlib.suppress(OSError):
            os.replace(self.path, aside)
        log.error(
            "the rotation journal was unreadable and was moved aside; leftovers of interrupted "
            "rotations are still found by name by `docker dso recover`",
            extra={"file": str(aside), "reason": reason},
        )
