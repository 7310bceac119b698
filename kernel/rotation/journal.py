"""The rotation journal: the durable record of every rotation, written before each step.

Three places under ``state/``, so that a step costs the same whatever the history holds:

- ``rotations.d/<id>.json``: one file per rotation not finished for good (``in_progress``,
  ``failed``, ``critical_error``), ``{"schema": 2, "rotation": <entry>}``, replaced atomically and
  durably (:class:`kernel.state.StateFile`) at every step. No lock: only the process holding the
  rotation's target lock writes it.
- ``rotations.log``: finished entries appended one JSON line each (header line
  ``{"schema": 2, "log": <generation>}``), fsynced, under an flock on ``rotations.json.lock``;
  a later line for the same id replaces an earlier one (``resumed`` is set after the finish).
- ``rotations.json``: the compacted history, ``{"schema": 2, "log": <generation>,
  "rotations": [<entry>, ...]}`` (a :class:`~kernel.state.StateFile`), rewritten only by
  :meth:`Journal.prune` (which folds the log into it and starts a new log generation) and when
  a schema-1 journal (every entry in ``rotations.json``) is migrated.

Finishing writes the finished entry into its ``rotations.d`` file first, then appends it to the
log, then removes the file: a crash at any point leaves the entry findable and never an
unfinished copy of a finished rotation. Readers take ``rotations.d`` before the history, so an
entry moving between them is never missed. Each entry (:class:`RotationEntry`) carries ids,
names, references and version fingerprints, never a secret value.

A long-lived reader (the agent) keeps finished entries as summaries (a few fields and the
document packed: :mod:`kernel.rotation.history`), not parsed, and reads ``rotations.json`` and
the log one entry at a time: 10,000 finished rotations cost it a few MB.

Finished entries are kept for 7 days (:data:`RETENTION`); an unfinished one that has not moved
for 24 hours is *stale* (:data:`STALE_AFTER`) and is flagged for an operator.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import os
import re
import secrets
import shutil
import socket
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from kernel.atomic_write import atomic_write, fsync_directory
from kernel.errors import StorageError
from kernel.log import get_logger
from kernel.rotation import history
from kernel.rotation.history import Summary
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
from kernel.state import Signature, StateFile, signature

SCHEMA = 2
FILE_NAME = "rotations.json"
LOG_NAME = "rotations.log"
INFLIGHT_DIR = "rotations.d"
#: Seconds finished entries are kept.
RETENTION = 7 * 86400.0
#: Seconds past :data:`RETENTION` an entry may linger before :meth:`Journal.prune` rewrites the
#: history for it: the rewrite costs the whole history, so it happens about once an hour, not
#: at every rotation.
PRUNE_SLACK = 3600.0
#: Seconds without progress after which an unfinished entry is stale.
STALE_AFTER = 24 * 3600.0
#: Causes after which ``recover`` rolls the change out again (:attr:`RotationEntry.cause`).
RESUMABLE_CAUSES = frozenset({"crash", "docker", "stopped"})
#: Rotation ids name files in ``rotations.d``.
_SAFE_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")

#: An entry as JSON data (validated by :meth:`Journal._parse` before it is kept).
Doc = dict[str, Any]

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
    #: Strategy ``swarm`` only (kernel.swarm.rotation): ``{"service_id": ..., "stack": ...,
    #: "secrets": {target path: {"from": old secret name, "to": new secret name}},
    #: "update_state": the engine's last UpdateStatus state}``. Names, never a value.
    swarm: dict[str, Any] | None = None
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
        """Undone because it was interrupted (a crash, a lost daemon, a stop), not because its
        health gate failed or an extension vetoed it: the change it carried is still to roll
        out."""
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
        return cls(**{k: v for k, v in doc.items() if k in _FIELDS})


class Journal:
    """The rotation journal of one installation (``Layout.state``); see the module docstring.

    One object may be shared by threads; it keeps the history in memory (summaries) and reads
    only what changed on disk since (another process's appends, a compaction).
    """

    def __init__(self, state_dir: Path, *, clock: Callable[[], float] = time.time) -> None:
        self.path = state_dir / FILE_NAME
        self.clock = clock
        self._dir = state_dir / INFLIGHT_DIR
        self._log_path = state_dir / LOG_NAME
        self._history_file = StateFile(self.path, schema=SCHEMA, migrate=self._migrate, clock=clock)
        self._ready = False
        # The history as last read (touched only under the flock): the compacted file's
        # signature, log generation and entries (None: read for its generation only), then
        # the log lines read so far.
        self._base_at: tuple[Signature | None, str] | None = None
        self._base_entries: dict[str, Summary] | None = None
        self._finished: dict[str, Summary] = {}
        self._ordered: list[Summary] | None = None  # _finished oldest first, once asked
        self._log_at: tuple[int, int, str, int] | None = None  # (dev, ino, generation, offset)

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
        """Every entry, oldest (earliest started) first, each parsed anew (a copy to change).
        Costs the whole history: readers of many entries use :meth:`summaries`."""
        return [_entry(summary.document()) for summary in self.summaries()]

    def summaries(self) -> list[Summary]:
        """Every entry as a :class:`Summary`, oldest (earliest started) first: what readers of
        the whole history (``status``) count and filter on, without parsing it; an entry's
        ``document()`` for the few they show. 10,000 entries in a millisecond or two."""
        unfinished = self._unfinished()  # before the history: see the module docstring
        with self._locked():
            finished = self._history()
            if self._ordered is None:
                self._ordered = history.ordered(finished.values())
            merged = self._ordered
            extra = [summary_of(e) for rid, e in unfinished.items() if rid not in finished]
        return history.ordered([*merged, *extra]) if extra else list(merged)

    def get(self, rotation_id: str) -> RotationEntry | None:
        found = None
        if _SAFE_ID.fullmatch(rotation_id):
            self._ensure_ready()
            found = self._read_unfinished(self._dir / f"{rotation_id}.json")
            if found is not None and RotationStatus(found.status) not in TERMINAL:
                return found
        with self._locked():
            finished = self._history().get(rotation_id)
        return _entry(finished.document()) if finished is not None else found

    def needing_recovery(self) -> list[RotationEntry]:
        """Unfinished entries (they all live in ``rotations.d``: no history read)."""
        return [e for e in self._unfinished().values() if e.needs_recovery]

    def needing_resuming(self) -> list[RotationEntry]:
        """Entries whose change is still to roll out (:attr:`RotationEntry.needs_resuming`),
        oldest first; only those are parsed."""
        return [_entry(s.document()) for s in self.summaries() if s.resumable]

    def stale(self, *, after: float = STALE_AFTER) -> list[RotationEntry]:
        now = self.clock()
        return [e for e in self._unfinished().values() if e.is_stale(now, after=after)]

    # -- writing ----------------------------------------------------------------------------

    def save(self, entry: RotationEntry) -> None:
        """Insert or replace ``entry`` (by id), durably, before the caller goes on.

        Costs one small file write whatever the history holds (plus one appended line when
        the entry is finished for good).
        """
        if not _SAFE_ID.fullmatch(entry.id):
            raise ValueError(f"rotation id {entry.id!r} is not a safe file name")
        self._ensure_ready()
        unfinished = self._dir / f"{entry.id}.json"
        if RotationStatus(entry.status) not in TERMINAL:
            self._inflight_file(unfinished).write({"rotation": entry.to_dict()})
            return
        was_unfinished = unfinished.exists()
        if was_unfinished:  # a crash below leaves a finished file, never an unfinished one
            self._inflight_file(unfinished).write({"rotation": entry.to_dict()})
        with self._locked():
            self._append(entry)
        if was_unfinished:
            self._remove([unfinished])

    def prune(self, *, retention: float = RETENTION) -> int:
        """Drop finished entries older than ``retention``; returns how many were dropped.

        Nothing is rewritten until the oldest is :data:`PRUNE_SLACK` past ``retention``.
        """
        now = self.clock()
        self._ensure_ready()
        leftovers = {
            rid: e for rid, e in self._unfinished().items() if RotationStatus(e.status) in TERMINAL
        }
        with self._locked():
            finished = {**{rid: summary_of(e) for rid, e in leftovers.items()}, **self._history()}
            ages = {rid: now - (s.finished_at or s.updated_at) for rid, s in finished.items()}
            expired = {rid for rid, age in ages.items() if age > retention}
            if not expired or max(ages.values()) <= retention + PRUNE_SLACK:
                return 0
            kept = history.ordered(s for rid, s in finished.items() if rid not in expired)
            self._compact(kept)
        self._remove([self._dir / f"{rid}.json" for rid in leftovers])
        log.info("pruned %d finished rotations from the journal", len(expired))
        return len(expired)

    # -- unfinished entries: rotations.d ----------------------------------------------------

    def _inflight_file(self, path: Path) -> StateFile:
        return StateFile(path, schema=SCHEMA, clock=self.clock)

    def _unfinished(self) -> dict[str, RotationEntry]:
        self._ensure_ready()
        try:
            names = sorted(os.listdir(self._dir))
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise StorageError(f"cannot read {self._dir}: {exc.strerror}") from None
        found: dict[str, RotationEntry] = {}
        for name in names:
            if name.endswith(".json") and not name.startswith("."):
                entry = self._read_unfinished(self._dir / name)
                if entry is not None:
                    found[entry.id] = entry
        return dict(sorted(found.items(), key=lambda item: item[1].started_at))

    def _read_unfinished(self, path: Path) -> RotationEntry | None:
        body = self._inflight_file(path).snapshot()  # unusable files are moved aside there
        if not body:
            return None
        return self._parse(body.get("rotation"), path.name, where=path)

    def _remove(self, paths: Iterable[Path]) -> None:
        removed = False
        for path in paths:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed = True
        if removed:
            with contextlib.suppress(OSError):
                fsync_directory(self._dir)

    # -- finished entries: rotations.json + rotations.log (under the flock) -----------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with self._history_file.locked():
            yield

    def _history_state(self) -> StateFile:
        """``rotations.json`` as a :class:`StateFile`, for what is rare (a migration, a file to
        move aside, one without a log generation): a new object each time, so that the whole
        history it parses is not kept (the agent keeps summaries)."""
        return StateFile(self.path, schema=SCHEMA, migrate=self._migrate, clock=self.clock)

    def _ensure_ready(self) -> None:
        """Migrate a schema-1 journal (no ``rotations.d`` yet) before anything reads it."""
        if self._ready:
            return
        if not self._dir.is_dir():
            with self._locked():
                self._history_state().snapshot()  # migrates (creating rotations.d) if needed
                self._dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._ready = True

    def _history(self) -> dict[str, Summary]:
        """Finished entries by id: the compacted file, then the log lines not read yet."""
        generation = self._read_base(entries=True)
        self._read_log(generation)
        return self._finished

    def _read_base(self, *, entries: bool) -> str:
        """Read ``rotations.json`` again if it changed (with its ``entries``, or only for its
        log generation); returns the generation ("" when it has none)."""
        try:
            handle = open(self.path, encoding="utf-8", newline="")  # noqa: SIM115 - closed below
        except FileNotFoundError:
            self._set_base(None, "", {})
            return ""
        except OSError as exc:
            raise StorageError(f"cannot read {self.path}: {exc.strerror}") from None
        with handle:
            sig = signature(os.fstat(handle.fileno()))
            base = self._base_at
            if (
                base is not None
                and base[0] == sig
                and (self._base_entries is not None or not entries)
            ):
                return base[1]
            found: dict[str, Summary] | None = {} if entries else None
            unreadable: list[tuple[int, object]] = []

            def add(index: int, item: object, source: str) -> None:
                if found is not None:
                    entry = _validated(item)
                    if entry is None:
                        unreadable.append((index, item))
                    else:
                        found[entry.id] = summary_of(entry, item, source.encode())

            try:
                members = history.scan(handle.read, add)
            except ValueError:  # UnicodeDecodeError too
                members = {}
            except OSError as exc:
                raise StorageError(f"cannot read {self.path}: {exc.strerror}") from None
        if members.get("schema") != SCHEMA:  # not a plain schema-2 file: as StateFile reads it
            return self._read_base_slowly(entries)
        for index, item in unreadable:
            self._report_unreadable(index, item, where=self.path)
        generation = members.get("log")
        generation = generation if isinstance(generation, str) else ""
        self._set_base(sig, generation, found)
        return generation

    def _read_base_slowly(self, entries: bool) -> str:
        body = self._history_state().snapshot()  # migrates, or moves the file aside
        found: dict[str, Summary] | None = None
        if entries:
            found = {}
            rotations = body.get("rotations")
            for index, item in enumerate(rotations if isinstance(rotations, list) else []):
                entry = self._parse(item, index, where=self.path)
                if entry is not None:
                    found[entry.id] = summary_of(entry, item)
        try:
            sig: Signature | None = signature(os.stat(self.path))
        except FileNotFoundError:
            sig = None
        except OSError as exc:
            raise StorageError(f"cannot read {self.path}: {exc.strerror}") from None
        generation = body.get("log")
        generation = generation if isinstance(generation, str) else ""
        self._set_base(sig, generation, found)
        return generation

    def _set_base(
        self, sig: Signature | None, generation: str, entries: dict[str, Summary] | None
    ) -> None:
        """Remember the compacted file read (``entries`` None: read for its generation only);
        the log is read again from its start."""
        if self._base_at == (sig, generation) and self._base_entries is not None:
            return  # the same file, its entries known already
        self._base_at = (sig, generation)
        self._base_entries = entries
        self._finished = dict(entries or {})
        self._ordered = None
        self._log_at = None

    def _read_log(self, generation: str) -> None:
        try:
            handle = open(self._log_path, "rb")  # noqa: SIM115 - closed below
        except FileNotFoundError:
            if self._log_at is not None:
                self._restart_log()
            return
        except OSError as exc:
            raise StorageError(f"cannot read {self._log_path}: {exc.strerror}") from None
        with handle:
            st = os.fstat(handle.fileno())
            at = self._log_at
            if at is None or at[:3] != (st.st_dev, st.st_ino, generation) or st.st_size < at[3]:
                if at is not None:  # another log than the one read so far: start over
                    self._restart_log()
                header = handle.readline()
                if not header.endswith(b"\n") or _log_generation(header) != generation:
                    # Not the log continuing this history (folded into it by a compaction
                    # that was interrupted): ignored, and replaced at the next append.
                    self._log_at = (st.st_dev, st.st_ino, generation, st.st_size)
                    return
                offset = len(header)
            else:
                offset = at[3]
            if offset > st.st_size:
                return
            handle.seek(offset)
            # Line by line, not read whole: no peak of the whole log in memory at a start.
            for line in handle:
                if not line.endswith(b"\n"):
                    break  # a torn last line is read once it is terminated
                self._add_line(line[:-1], offset)
                offset += len(line)
        self._log_at = (st.st_dev, st.st_ino, generation, offset)

    def _add_line(self, line: bytes, offset: int) -> None:
        try:
            item: object = json.loads(line)
        except ValueError:
            item = line
        entry = self._parse(item, f"line at byte {offset}", where=self._log_path)
        if entry is not None:
            self._finished[entry.id] = summary_of(entry, item, line)
            self._ordered = None

    def _restart_log(self) -> None:
        self._finished = dict(self._base_entries or {})
        self._ordered = None
        self._log_at = None

    def _append(self, entry: RotationEntry) -> None:
        generation = self._read_base(entries=False)
        if not generation:
            generation = _new_generation()
            state = self._history_state()
            state.write({**state.snapshot(), "log": generation})
        line = json.dumps(_as_dict(entry), sort_keys=True, separators=(",", ":")).encode()
        try:
            fd = os.open(self._log_path, os.O_RDWR | os.O_APPEND | os.O_CLOEXEC)
        except FileNotFoundError:
            fd = -1
        except OSError as exc:
            raise StorageError(f"cannot open {self._log_path}: {exc.strerror}") from None
        try:
            if fd < 0 or _log_generation(os.pread(fd, 256, 0).split(b"\n")[0]) != generation:
                if fd >= 0:
                    os.close(fd)
                atomic_write(self._log_path, _log_header(generation))
                fd = os.open(self._log_path, os.O_RDWR | os.O_APPEND | os.O_CLOEXEC)
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                line = b"\n" + line  # end a line torn by a crash: it stays unreadable alone
            view = memoryview(line + b"\n")
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        except OSError as exc:
            raise StorageError(f"cannot append to {self._log_path}: {exc.strerror}") from None
        finally:
            if fd >= 0:
                os.close(fd)

    def _compact(self, kept: list[Summary]) -> None:
        """Fold everything into a new ``rotations.json`` and start a new log generation.

        Written one entry at a time (:func:`~kernel.rotation.history.dump`); what it holds is
        known already, so it is not read back.
        """
        generation = _new_generation()
        docs = (summary.document() for summary in kept)
        atomic_write(self.path, history.dump(generation, docs, schema=SCHEMA))  # chunks
        atomic_write(self._log_path, _log_header(generation))
        try:
            sig: Signature | None = signature(os.stat(self.path))
        except OSError:
            sig = None  # read again at the next look
        self._base_at = (sig, generation) if sig is not None else None
        self._base_entries = {summary.id: summary for summary in kept}
        self._finished = dict(self._base_entries)
        self._ordered = kept
        self._log_at = None

    def _migrate(self, schema: int, body: dict[str, Any]) -> dict[str, Any]:
        """Schema 1 kept every entry in ``rotations.json``: unfinished ones move to
        ``rotations.d`` (written in a staging directory renamed into place, so a crash
        re-migrates from the untouched old file), finished ones stay."""
        rotations = body.get("rotations")
        if schema != 1 or not isinstance(rotations, list):
            raise ValueError("not a schema-1 rotations document")
        finished: list[Doc] = []
        unfinished: list[RotationEntry] = []
        for index, item in enumerate(rotations):
            entry = self._parse(item, index, where=self.path)
            if entry is None:
                continue
            if not _SAFE_ID.fullmatch(entry.id):
                self._report_unreadable(index, item)
            elif RotationStatus(entry.status) in TERMINAL:
                finished.append(item)
            else:
                unfinished.append(entry)
        staging = None if self._dir.is_dir() else self._dir.with_name(INFLIGHT_DIR + ".migrating")
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir(parents=True, mode=0o700)
        for entry in unfinished:
            path = (staging or self._dir) / f"{entry.id}.json"
            if not path.exists():  # written by an interrupted migration, or since: newer
                self._inflight_file(path).write({"rotation": entry.to_dict()})
        if staging is not None:
            os.replace(staging, self._dir)
            fsync_directory(self._dir.parent)
        return {"rotations": finished, "log": _new_generation()}

    # -- unreadable entries -----------------------------------------------------------------

    def _parse(self, item: object, index: int | str, *, where: Path) -> RotationEntry | None:
        entry = _validated(item)
        if entry is None:
            self._report_unreadable(index, item, where=where)
        return entry

    def _report_unreadable(
        self, index: int | str, item: object, *, where: Path | None = None
    ) -> None:
        """Log an entry that cannot be read, once per process (every read would repeat it)."""
        digest = hashlib.sha256(repr(item).encode()).hexdigest()[:16]
        key = (os.path.realpath(self.path), digest)
        if key in _REPORTED:
            return
        _REPORTED.add(key)
        log.error(
            "ignoring unreadable entry %s of the rotation journal (%s)",
            index,
            (where or self.path).name,
            extra={"file": str(where or self.path)},
        )


def _new_generation() -> str:
    return secrets.token_hex(8)


def _log_header(generation: str) -> bytes:
    return json.dumps({"log": generation, "schema": SCHEMA}, sort_keys=True).encode() + b"\n"


def _log_generation(header: bytes) -> str | None:
    """The generation a log header names, or None if it is not a header of this schema."""
    try:
        doc = json.loads(header)
    except ValueError:
        return None
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        return None
    generation = doc.get("log")
    return generation if isinstance(generation, str) else None


_FIELDS = frozenset(f.name for f in fields(RotationEntry))


def _as_dict(entry: RotationEntry) -> Doc:
    """The entry's fields without copying (for serialising only)."""
    return {name: getattr(entry, name) for name in _FIELDS}


def summary_of(entry: RotationEntry, doc: object = None, raw: bytes | None = None) -> Summary:
    """``entry`` as the history keeps it; ``doc`` is the JSON it was read from (kept as it is,
    unknown keys included) and ``raw`` that JSON's text, when the caller has them."""
    if not isinstance(doc, dict):
        doc, raw = _as_dict(entry), None
    return history.summarize(doc, resumable=entry.needs_resuming, raw=raw)


def _validated(item: object) -> RotationEntry | None:
    """``item`` as an entry, or None if it is not a readable one."""
    try:
        if not isinstance(item, dict):
            raise TypeError("not an object")
        entry = RotationEntry.from_dict(item)
        RotationStatus(entry.status)
        if not isinstance(entry.id, str):
            raise TypeError("no id")
    except (TypeError, ValueError):
        return None
    return entry


def _entry(doc: Doc) -> RotationEntry:
    """An entry from a document parsed for the caller (nothing else holds it)."""
    return RotationEntry(**{k: v for k, v in doc.items() if k in _FIELDS})
