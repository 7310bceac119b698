"""Waiting for the engine's outcome of a service update, and reading why it rolled back.

    done = wait_converged(client, service.id, since_version=service.version,
                          prior_started=service.update_started, timeout=90.0)
    done.state          # "completed", "rollback_completed", "paused", … ; None: out of time

The engine rolls a service's tasks by itself (its ``UpdateConfig``); dso only polls the
service's ``UpdateStatus``. A rollback is final when a new task failed its healthcheck or exited
(:func:`rollback_cause`: ``health_gate``), and rotated again when the task could not start for
the engine's own reasons (``docker``).
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kernel.containers.swarm import inspect_service, list_tasks
from kernel.errors import RotationError

if TYPE_CHECKING:
    import docker

#: :class:`Converged` state when dso stopped waiting (the agent stopping): the entry stays
#: unfinished at ``converge`` for recovery.
STOPPED = "stopped"
#: ``UpdateStatus.State`` values that end an update.
DONE_STATES = frozenset({"completed", "rollback_completed", "paused", "rollback_paused"})
#: Seconds between two looks at a service's ``UpdateStatus``.
POLL = 0.2


@dataclass(frozen=True, slots=True)
class Converged:
    """How the engine's update ended (``state`` None: it did not end within the time)."""

    state: str | None
    message: str | None
    seconds: float


def wait_converged(
    client: docker.DockerClient,
    service_id: str,
    *,
    since_version: int,
    prior_started: str | None,
    timeout: float,
    poll: float = POLL,
    stop: threading.Event | None = None,
) -> Converged:
    """Poll the service until the update made after ``since_version`` ends (``DONE_STATES``),
    or ``timeout`` seconds pass (state None), or ``stop`` is set (state ``stopped``).
    ``prior_started`` is the ``StartedAt`` of the update status before ours: until the engine
    starts our update, that one is still shown."""
    began = time.monotonic()
    while True:
        if stop is not None and stop.is_set():
            return Converged(STOPPED, None, time.monotonic() - began)
        doc = inspect_service(client, service_id)
        if doc is None:
            raise RotationError(f"the swarm service {service_id[:12]} disappeared mid-update")
        version = int((doc.get("Version") or {}).get("Index", 0))
        status = doc.get("UpdateStatus") or {}
        state = status.get("State")
        # The status of the previous update stays until the engine starts ours.
        ours = version > since_version and status.get("StartedAt") != prior_started
        if ours and state in DONE_STATES:
            return Converged(str(state), status.get("Message"), time.monotonic() - began)
        if time.monotonic() - began > timeout:
            return Converged(None, status.get("Message"), time.monotonic() - began)
        time.sleep(poll)


def rollback_cause(task_error: str | None) -> str:
    """Why the engine rolled back, as a journal cause: ``health_gate`` when a new task failed
    its healthcheck or exited (the new value is refused: not retried), ``docker`` when it could
    not start for the engine's own reasons (``network sandbox does not exist``, no suitable
    node: the change is rotated again, like after a lost daemon)."""
    if task_error is None or re.search(r"unhealthy|non-zero exit", task_error):
        return "health_gate"
    return "docker"


def last_task_error(client: docker.DockerClient, service_id: str) -> str | None:
    """The error of the service's most recent failed or rejected task (why the engine rolled
    back or paused: ``task: non-zero exit (1)``, ``unhealthy container``)."""
    failed = [
        t
        for t in list_tasks(client, {"service": service_id})
        if (t.get("Status") or {}).get("State") in ("failed", "rejected")
    ]
    if not failed:
        return None
    last = max(failed, key=lambda t: str((t.get("Status") or {}).get("Timestamp", "")))
    status = last.get("Status") or {}
    return str(status.get("Err") or status.get("Message") or "") or None


__all__ = [
    "DONE_STATES",
    "POLL",
    "STOPPED",
    "Converged",
    "last_task_error",
    "rollback_cause",
    "wait_converged",
]
