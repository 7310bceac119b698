"""The agent on a Swarm manager: dso's Swarm services checked and rotated like containers.

A service that mounts dso's versioned secrets (``docker dso stack deploy``) is a
:class:`~kernel.agent.managed.Managed` for the change check: its references are the secrets'
``dso.reference`` labels by target path, and what it holds their ``dso.version`` labels, so the
same one ``versions`` call per provider finds it lagging (no value fetched to compare). Its
target's lock is ``swarm-<service>``; the scheduler hands it back to :func:`rotate_swarm`, which
runs :class:`kernel.swarm.rotation.SwarmRotator` (journal, locks, extensions, trace id of the
change). On a node that is not an active manager there is nothing to scan (one ``info`` call).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from kernel.agent.managed import Managed
from kernel.containers.swarm import list_services, swarm_node
from kernel.errors import DSOError
from kernel.log import get_logger
from kernel.rotation.targets import Target
from kernel.swarm.rotation import (
    LOCK_PREFIX,
    STACK_NAMESPACE_LABEL,
    SwarmRotator,
    SwarmService,
    swarm_lock_key,
)
from kernel.swarm.secret_versions import dso_secrets

if TYPE_CHECKING:
    import docker

    from kernel.rotation.batch import TargetResult
    from kernel.runtime import Runtime

log = get_logger("agent.swarm")


def is_swarm_target(target: Target) -> bool:
    return target.lock_key.startswith(LOCK_PREFIX)


def scan_swarm(client: docker.DockerClient) -> list[Managed]:
    """dso's Swarm services on this manager (none when it is not one, or when Docker does not
    answer: the container check handles a daemon that is away), by name."""
    try:
        if not swarm_node(client).manager:
            return []
        known = {s.name: s for s in dso_secrets(client)}
        services = list_services(client) if known else []
    except DSOError as exc:
        log.debug("swarm services not scanned: %s", exc.message)
        return []
    found = []
    for doc in services:
        service = SwarmService.from_api(doc, known)
        if not service.mounted:
            continue
        stack = ((doc.get("Spec") or {}).get("Labels") or {}).get(STACK_NAMESPACE_LABEL)
        found.append(
            Managed(
                id=service.id,
                name=service.name,
                target=Target(service.name, swarm_lock_key(service.name), stack, service.name),
                references={m.target: m.secret.reference for m in service.mounted},
                versions={m.target: m.secret.version for m in service.mounted},
            )
        )
    return sorted(found, key=lambda m: m.name)


def rotate_swarm(
    runtime: Runtime,
    connect: Callable[[], docker.DockerClient],
    target: Target,
    *,
    trigger: str,
    trace_id: str,
    stop: threading.Event,
    force: bool = False,
) -> TargetResult:
    """Rotate one Swarm service for the agent (its own Docker client)."""
    rotation = runtime.config.agent.rotation
    rotator = SwarmRotator(
        connect(),
        journal=runtime.journal,
        locks=runtime.locks,
        resolver=runtime.rollout_resolver,
        config=rotation,
        observer=runtime.extensions,
        trigger=trigger,
        stop=stop,
    )
    try:
        return rotator.rotate(target, force=force, wait=rotation.timeout, trace_id=trace_id)
    finally:
        rotator.client.close()
