"""Removing the secret versions a rotation left behind once nothing uses them.

    remove_when_unused(client, ["shop_site_3f2a…"])    # -> the names removed

After a completed update the old versions go, after a rollback the new ones; a version a service
spec, an update that may roll back, or a task meant to run still holds stays for the rotation
that moves it (or the next clean-up). The engine itself refuses to remove a secret a service
references, so a service never points at a removed secret.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

from kernel.containers.swarm import list_tasks, remove_secret
from kernel.errors import DockerError, DockerUnavailableError
from kernel.log import get_logger
from kernel.swarm.convergence import POLL
from kernel.swarm.secret_versions import secret_uses

if TYPE_CHECKING:
    import docker

log = get_logger("swarm.rotation")

#: Seconds to wait for tasks meant to run that still mount an old version (an update still
#: rolling) before leaving its removal to the next clean-up.
TASK_DRAIN = 30.0


def remove_when_unused(
    client: docker.DockerClient,
    names: Iterable[str],
    *,
    wait: float = TASK_DRAIN,
    poll: float = POLL,
) -> list[str]:
    """Remove those of ``names`` no service and no task meant to run uses; the names removed.

    A service's spec, or an update that may still roll back to its previous spec, holds a
    version: it is left to the rotation that moves that service (another service sharing the
    secret). A task the engine is shutting down (desired state ``shutdown``: the old tasks of a
    completed update, taken out of DNS, then stopped within their grace period) does not: it
    never starts again, and its file stays on its own tmpfs until it stops (measured: removing
    the secret leaves a stopping task's file readable). A task meant to run (an old task of an
    update still rolling) is waited for, up to ``wait`` seconds.
    """
    pending = set(names)
    removed: list[str] = []
    deadline = time.monotonic() + wait
    while pending:
        held = {u.secret for u in secret_uses(client) if u.via != "task" and u.secret in pending}
        running = _running_task_secrets(client) & pending
        for name in sorted(pending - held - running):
            try:
                remove_secret(client, name)
            except DockerUnavailableError:
                raise
            except DockerError as exc:  # a task started in between: the next clean-up
                log.debug("secret %s kept: %s", name, exc.message)
                continue
            removed.append(name)
        pending = running - held
        if not pending or time.monotonic() > deadline:
            break
        time.sleep(poll)
    return removed


def _running_task_secrets(client: docker.DockerClient) -> set[str]:
    """Secrets mounted by tasks the engine means to keep running (not shutting down)."""
    names: set[str] = set()
    for task in list_tasks(client):
        if task.get("DesiredState") not in ("running", "ready", "accepted", "new", "pending"):
            continue
        if (task.get("Status") or {}).get("State") in _TERMINAL_TASK_STATES:
            continue
        container = (task.get("Spec") or {}).get("ContainerSpec") or {}
        names |= {str(x.get("SecretName")) for x in container.get("Secrets") or ()}
    return names


#: Task states after which a task holds nothing any more.
_TERMINAL_TASK_STATES = frozenset(
    {"complete", "failed", "shutdown", "rejected", "orphaned", "remove"}
)

__all__ = ["TASK_DRAIN", "remove_when_unused"]
