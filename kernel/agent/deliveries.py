"""Which versions each target is being given, and which it failed to take.

A check finds targets whose containers hold older versions than their providers. One already
queued (or rotating) to exactly those versions is not queued again. One whose last rotation to
exactly those versions failed its health gate or was vetoed is not retried by the checks until
a secret moves again (the journal has the reason; ``docker dso rotate`` retries by hand). A
rotation stopped by a lost daemon or a stop is retried: recovery and the reconnect see to it.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kernel.rotation.batch import TargetResult
    from kernel.rotation.journal import Journal

__all__ = ["Deliveries"]

#: Journal causes of a failure that retrying the same versions would only repeat.
_FINAL_CAUSES = frozenset({"health_gate", "vetoed"})

Versions = dict[str, str]


class Deliveries:
    """Lock key → versions queued, and lock key → versions that failed (thread-safe)."""

    def __init__(self) -> None:
        self._delivering: dict[str, Versions] = {}
        self._failed: dict[str, Versions] = {}
        self._lock = threading.Lock()

    def failed_before(self, key: str, wanted: Versions) -> bool:
        """True when the last rotation of ``key`` to exactly ``wanted`` failed for good."""
        with self._lock:
            return self._failed.get(key) == wanted

    def claim(self, key: str, wanted: Versions) -> bool:
        """Record that ``key`` is queued for ``wanted``; False when it already is."""
        with self._lock:
            if self._delivering.get(key) == wanted:
                return False
            self._failed.pop(key, None)
            self._delivering[key] = wanted
            return True

    def abandon(self, key: str) -> None:
        """The rotation of ``key`` did not run to an outcome: the next check tries again."""
        with self._lock:
            self._delivering.pop(key, None)

    def settle(self, key: str, result: TargetResult, journal: Journal) -> None:
        """The rotation of ``key`` ended with ``result``: remember a final failure."""
        causes = set()
        for outcome in result.outcomes:
            entry = journal.get(outcome.rotation_id) if outcome.rotation_id else None
            if entry is not None and entry.cause:
                causes.add(entry.cause)
        with self._lock:
            delivering = self._delivering.pop(key, None)
            if not result.ok and causes & _FINAL_CAUSES and delivering is not None:
                self._failed[key] = delivering
            elif result.ok:
                self._failed.pop(key, None)
