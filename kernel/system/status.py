"""The document of ``docker dso system status``: the unit, the agent's last activity, the journal.

Three sources, each asked once: systemd (``systemctl show``: running or stopped, enabled or
disabled, since when, main pid), the agent on its socket (its ``status`` action: version,
uptime, health, last rotation, last events — from its state files when it does not answer, as
``docker dso status`` does) and the journal (the unit's last lines; a user who may not read the
system journal gets ``logs.readable`` false and why). Names, versions and counts only, never a
secret value. The fields: docs/service-management.md.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from kernel.agent.api.client import AgentClient
from kernel.errors import AgentError, DSOError
from kernel.system.journal import JOURNAL_GROUPS_HINT, read_journal
from kernel.system.service import Systemctl

__all__ = ["SCHEMA", "agent_activity", "collect", "recent_logs"]

#: Version of the document's shape.
SCHEMA = 1


def collect(systemctl: Systemctl, socket: Path, *, lines: int = 10) -> dict[str, Any]:
    """The whole document."""
    unit = systemctl.show()
    return {
        "schema": SCHEMA,
        "generated_at": round(time.time(), 3),
        "unit": systemctl.unit,
        "installed": unit.installed,
        "running": unit.running,
        "enabled": unit.enabled,
        "systemd": unit.as_dict(),
        "agent": agent_activity(socket),
        "logs": recent_logs(systemctl.unit, lines) if unit.installed else _no_logs(),
    }


def agent_activity(socket: Path) -> dict[str, Any]:
    """What the agent on ``socket`` says of itself, or its state files when it does not answer."""
    client = AgentClient(socket)
    reason = None
    try:
        doc = client.call("status")
    except AgentError as exc:
        reason = exc.message
        doc = _offline(socket, reason)
    agent = doc.get("agent") or {}
    runtime = doc.get("runtime") or {}
    health = agent.get("health") or {}
    rotations = doc.get("rotations") or {}
    return {
        "answers": reason is None,
        "socket": str(socket),
        "source": doc.get("source"),
        "reason": reason,
        "live": reason is None and bool(health.get("live")),
        "problems": list(health.get("problems") or []),
        "version": runtime.get("version"),
        "pid": runtime.get("pid"),
        "started_at": runtime.get("started_at"),
        "uptime_seconds": runtime.get("uptime_seconds"),
        "stopped_at": runtime.get("stopped_at"),
        "last_rotation": runtime.get("last_rotation"),
        "last_event": dict(runtime.get("last_event") or {}),
        "rotations_in_progress": len(rotations.get("in_progress") or []),
        "rotations_awaiting_review": len(rotations.get("awaiting_review") or []),
        "notes": dict(doc.get("notes") or {}) if reason is not None else {},
    }


def _offline(socket: Path, reason: str) -> dict[str, Any]:
    from kernel.agent.status_doc import offline_status
    from kernel.containers.client import connect
    from kernel.paths import agent_layout

    try:
        return offline_status(agent_layout(), socket=socket, reason=reason, connect_docker=connect)
    except (DSOError, OSError) as exc:
        return {"source": "state_files", "notes": {"runtime": str(exc)}}


def recent_logs(unit: str, lines: int) -> dict[str, Any]:
    """The unit's last ``lines`` journal lines, or why they cannot be read."""
    if lines <= 0:
        return {"readable": True, "note": None, "lines": []}
    read = read_journal(unit, lines=lines)
    return {
        "readable": read.readable,
        "note": None if read.readable else f"{read.note}; {JOURNAL_GROUPS_HINT}",
        "lines": [entry.as_dict() for entry in read.entries],
    }


def _no_logs() -> dict[str, Any]:
    return {"readable": True, "note": "the unit is not installed", "lines": []}
