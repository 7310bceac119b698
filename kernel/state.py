"""One JSON state file of the agent or the CLI (``state/*.json``): schema, durability, snapshot.

A :class:`StateFile` holds one document ``{"schema": N, ...}``. Writes replace the file
atomically and durably (:func:`kernel.atomic_write.atomic_write`: temporary sibling, fsync,
rename, fsync of the directory), so a reader sees the old document or the new one, never a mix,
and a failed write leaves the old one. Reads keep an in-memory snapshot keyed by the file's
``(st_dev, st_ino, st_mtime_ns, st_ctime_ns, st_size)``: a process that wrote last, or reads a
file nobody changed, parses nothing. A file that cannot be parsed, or whose schema this dso does
not know, is moved aside (``<name>.corrupt-<time>``, ``<name>.unknown-schema-<time>``) with one
ERROR line naming both files, and the document starts empty.

A state file stores exactly what its caller gives it, and dso callers give it metadata only
(references, versions, ids, names, times): **never a secret value**.

    runtime = StateFile(layout.state / "runtime.json", schema=1)
    runtime.write({"pid": os.getpid(), "mode": "agent"})
    runtime.update(lambda doc: {**doc, "last_rotation": rotation_id})
"""

from __future__ import annotations

import contextlib
import copy
import fcntl
import json
import os
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from kernel.atomic_write import atomic_write
from kernel.errors import StorageError
from kernel.log import get_logger

log = get_logger("state")

#: ``(schema found, body)`` → body in the current schema. Raise ``ValueError`` if impossible.
Migrate = Callable[[int, dict[str, Any]], dict[str, Any]]
#: What identifies one version of a file on disk without reading it.
Signature = tuple[int, int, int, int, int]


def signature(st: os.stat_result) -> Signature:
    return (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_ctime_ns, st.st_size)


class StateFile:
    """The JSON document at ``path`` with a ``schema`` version; see the module docstring.

    ``migrate`` turns an older schema's body into the current one; the file is then rewritten
    at once in the current schema. Without it, an older schema is as unknown as a newer one.
    Callers sharing the file between processes wrap read-change-write in :meth:`locked` (or
    use :meth:`update`, which does).
    """

    def __init__(
        self,
        path: Path,
        *,
        schema: int,
        migrate: Migrate | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = path
        self.schema = schema
        self.migrate = migrate
        self.clock = clock
        self._snapshot: dict[str, Any] = {}
        self._signature: Signature | None = None

    def __repr__(self) -> str:
        return f"StateFile({str(self.path)!r}, schema={self.schema})"

    # -- reading ----------------------------------------------------------------------------

    def snapshot(self) -> Mapping[str, Any]:
        """The document's body (without ``schema``), shared: do not modify it.

        The same object is returned as long as the file is unchanged on disk, so callers may
        cache what they derive from it by identity. ``{}`` when the file does not exist.
        """
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            if self._signature is not None or self._snapshot:
                self._remember({}, None)  # keep the same empty object while it stays absent
            return self._snapshot
        except OSError as exc:
            raise StorageError(f"cannot read {self.path}: {exc.strerror}") from None
        if signature(st) != self._signature:
            self._load()
        return self._snapshot

    def read(self) -> dict[str, Any]:
        """A copy of the document's body (without ``schema``) that the caller may modify."""
        return copy.deepcopy(dict(self.snapshot()))

    # -- writing ----------------------------------------------------------------------------

    def write(self, body: Mapping[str, Any]) -> None:
        """Replace the file with ``body`` (plus ``schema``), atomically and durably."""
        doc = {**body, "schema": self.schema}
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        atomic_write(self.path, json.dumps(doc, indent=1, sort_keys=True).encode() + b"\n")
        kept = copy.deepcopy(dict(body))
        kept.pop("schema", None)
        try:
            self._remember(kept, signature(os.stat(self.path)))
        except OSError:
            self._remember({}, None)

    def update(self, change: Callable[[dict[str, Any]], dict[str, Any]]) -> dict[str, Any]:
        """Under :meth:`locked`: read, ``change`` a copy, write the result; returns it."""
        with self.locked():
            body = change(self.read())
            self.write(body)
            return body

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold an exclusive flock on ``<name>.lock`` (other processes using it wait)."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(
                self.path.with_name(self.path.name + ".lock"),
                os.O_RDWR | os.O_CREAT | os.O_CLOEXEC,
                0o600,
            )
        except OSError as exc:
            where = self.path.parent
            raise StorageError(
                f"cannot open the lock of {self.path.name} in {where}: {exc}"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    # -- file -------------------------------------------------------------------------------

    def _remember(self, body: dict[str, Any], sig: Signature | None) -> None:
        self._snapshot = body
        self._signature = sig

    def _load(self) -> None:
        try:
            with open(self.path, "rb") as handle:
                sig = signature(os.fstat(handle.fileno()))
                raw = handle.read()
        except FileNotFoundError:
            self._remember({}, None)
            return
        except OSError as exc:
            raise StorageError(f"cannot read {self.path}: {exc.strerror}") from None
        try:
            doc = json.loads(raw)
            if not isinstance(doc, dict):
                raise ValueError("not a JSON object")
        except ValueError as exc:
            self._set_aside(sig, "corrupt", f"it is not valid JSON ({exc})")
            return
        schema = doc.pop("schema", None)
        if schema == self.schema:
            self._remember(doc, sig)
            return
        if isinstance(schema, int) and schema < self.schema and self.migrate is not None:
            try:
                migrated = self.migrate(schema, doc)
            except (TypeError, ValueError) as exc:
                self._set_aside(sig, "unknown-schema", f"schema {schema} did not migrate: {exc}")
                return
            log.info(
                "migrated %s from schema %d to %d",
                self.path.name,
                schema,
                self.schema,
                extra={"file": str(self.path)},
            )
            self.write(migrated)
            return
        self._set_aside(
            sig, "unknown-schema", f"it has schema {schema!r}; this dso reads schema {self.schema}"
        )

    def _set_aside(self, sig: Signature, kind: str, reason: str) -> None:
        """Move the unusable file aside (kept for an operator) and start empty; one ERROR line."""
        aside = self.path.with_name(f"{self.path.name}.{kind}-{int(self.clock())}")
        try:
            if signature(os.stat(self.path)) != sig:
                self._remember({}, None)  # replaced meanwhile by a writer: read that one
                return
            os.replace(self.path, aside)
        except FileNotFoundError:
            self._remember({}, None)
            return
        except OSError as exc:
            log.error(
                "%s is unusable (%s) and could not be moved aside (%s); ignoring it",
                self.path,
                reason,
                exc.strerror,
                extra={"file": str(self.path)},
            )
            self._remember({}, sig)  # once per process, not at every read
            return
        log.error(
            "%s was unusable (%s): moved aside to %s; starting with an empty one",
            self.path,
            reason,
            aside.name,
            extra={"file": str(self.path), "moved_to": str(aside)},
        )
        self._remember({}, None)
