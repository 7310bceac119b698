"""``state/runtime.json``: what the running (or last) agent is, and what it last saw.

Version, pid, start time, mode, configuration file, boot id, the last event of each source
(``docker``, ``poll``, ``watch``, ``webhook``) and the last rotation. Read by ``status`` when the
agent does not answer. Metadata only, never a value.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

from kernel.state import StateFile

FILE_NAME = "runtime.json"
SCHEMA = 1
#: Seconds between two writes caused by events alone (a busy daemon must not mean busy disk).
MIN_INTERVAL = 5.0


def boot_id() -> str | None:
    """The kernel's boot id: tells a reboot from an agent restart."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip() or None
    except OSError:
        return None


class RuntimeFile:
    """Writes ``runtime.json`` at start and stop, after each rotation, and at most every
    :data:`MIN_INTERVAL` seconds for events."""

    def __init__(self, state_dir: Path) -> None:
        self.file = StateFile(state_dir / FILE_NAME, schema=SCHEMA)
        self._lock = threading.Lock()
        self._doc: dict[str, Any] = {}
        self._written = 0.0

    def started(self, *, version: str, mode: str, config: Path | None) -> dict[str, Any]:
        """Record this start; returns what the previous agent left (``{}`` if nothing, or if
        the file was unreadable: then it is set aside with an ERROR line)."""
        previous = dict(self.file.snapshot())
        self._doc = {
            "version": version,
            "pid": os.getpid(),
            "started_at": round(time.time(), 3),
            "mode": mode,
            "config": str(config) if config else None,
            "boot_id": boot_id(),
            "running": True,
            "last_event": {},
            "last_rotation": None,
        }
        self._flush()
        return previous

    def event(self, source: str, detail: str = "") -> None:
        with self._lock:
            self._doc.setdefault("last_event", {})[source] = {
                "at": round(time.time(), 3),
                "detail": detail,
            }
            due = time.monotonic() - self._written >= MIN_INTERVAL
        if due:
            self._flush()

    def document(self) -> dict[str, Any]:
        """What the file says, as of now (events not yet flushed included)."""
        with self._lock:
            copy: dict[str, Any] = json.loads(json.dumps(self._doc))
        return copy

    def rotation(self, summary: dict[str, Any]) -> None:
        with self._lock:
            self._doc["last_rotation"] = {"at": round(time.time(), 3), **summary}
        self._flush()

    def stopped(self) -> None:
        with self._lock:
            self._doc["running"] = False
            self._doc["stopped_at"] = round(time.time(), 3)
        self._flush()

    def _flush(self) -> None:
        with self._lock:  # one writer at a time, so an older document never lands last
            self._written = time.monotonic()
            self.file.write(dict(self._doc))
