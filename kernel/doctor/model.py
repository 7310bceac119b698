"""What a doctor check is and what it reports: status, one-line finding, root cause, fix.

A :class:`Check` has a stable id (``docker.reachable``, ``agent.health``…: scripts and
docs/doctor.md rely on it), says in one line what it looks at, and is a function of the
:class:`~kernel.doctor.context.Context` returning a :class:`Finding`. The runner times it and
makes it a :class:`Result`. A check that cannot run because another one found the cause
(Docker down, configuration invalid) raises :class:`NotChecked`: a warning that names the
check to look at, not a second failure for the same cause.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kernel.doctor.context import Context


class Status(StrEnum):
    """How one check came out; ``doctor`` exits 1 when any is :attr:`FAIL`."""

    #: Nothing to do.
    OK = "ok"
    #: dso works, but something deserves a look (no systemd, an orphan, a rotation to review).
    WARN = "warn"
    #: Broken: dso cannot do this part of its job until it is fixed.
    FAIL = "fail"


class Level(StrEnum):
    """How far ``doctor`` goes."""

    #: Local checks only: files, Docker, the agent's socket, systemd. Seconds at most.
    BASIC = "basic"
    #: Also contacts every provider (handshake, configure, a ``versions`` read of each secret
    #: the managed containers use); reports the root cause and the fix of every finding.
    FULL = "full"


@dataclass(frozen=True, slots=True)
class Finding:
    """What a check found: ``finding`` is one line; ``detail`` (the root cause, or what was
    looked at) and ``fix`` (what to type) may span lines. Never a secret value."""

    status: Status
    finding: str
    detail: str = ""
    fix: str = ""


def ok(finding: str, detail: str = "") -> Finding:
    return Finding(Status.OK, finding, detail)


def warn(finding: str, detail: str = "", fix: str = "") -> Finding:
    return Finding(Status.WARN, finding, detail, fix)


def fail(finding: str, detail: str = "", fix: str = "") -> Finding:
    return Finding(Status.FAIL, finding, detail, fix)


class NotChecked(Exception):
    """Raised by a check that depends on another one that failed (``see`` names it)."""

    def __init__(self, reason: str, *, see: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.see = see


@dataclass(frozen=True, slots=True)
class Check:
    """One check of the registry (:data:`kernel.doctor.registry.CHECKS`)."""

    id: str
    #: What it looks at, one line (``docs/doctor.md`` explains each id at length).
    summary: str
    run: Callable[[Context], Finding]
    #: Only at ``--level full`` (it contacts the providers).
    full_only: bool = False


@dataclass(frozen=True, slots=True)
class Result:
    """A check's finding as reported: its id and how long it took."""

    id: str
    status: Status
    finding: str
    detail: str
    fix: str
    seconds: float

    def to_dict(self, level: Level) -> dict[str, Any]:
        """The ``--json`` form; ``detail`` and ``fix`` are null below ``--level full``."""
        full = level is Level.FULL
        return {
            "id": self.id,
            "status": self.status.value,
            "finding": self.finding,
            "detail": (self.detail or None) if full else None,
            "fix": (self.fix or None) if full else None,
            "seconds": round(self.seconds, 3),
        }
