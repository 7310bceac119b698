"""The agent on a Swarm manager: dso's Swarm services checked and rotated like containers.

A service that mounts dso's versioned secrets (``docker dso stack deploy``) is a
:class:`~kernel.agent.managed.Managed` for the change check: its references are the secrets'
``dso.reference`` labels by target path, and what it holds their ``dso.version`` labels, so the
same one ``versions`` call per provider finds it lagging (no value fetched to compare). Its
target's lock is ``swarm-<service>``; the scheduler hands it back to :func:`rotate_swarm`, which
runs :class:`kernel.swarm.rotation.SwarmRotator` (journal, locks, extensions, trace id of the
change). On a node that is not an active manager there is nothing to scan (one ``info`` call).

:func:`swarm_scan` is that one look at the swarm, kept whole (:class:`SwarmScan`: the node's
role, each service's update status and the versions it mounts): the agent holds its latest for
``status`` (:func:`kernel.agent.status_doc.swarm_doc`), so ``status`` asks Docker nothing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kernel.agent.managed import Managed
from kernel.containers.swarm import SwarmNode, list_services, swarm_node
from kernel.errors import DSOError
from kernel.log import get_logger
from kernel.rotation.targets import Target
from kernel.swarm.rotation import SwarmRotator
from kernel.swarm.secret_versions import dso_secrets
from kernel.swarm.services import SwarmService
from kernel.swarm.targets import LOCK_PREFIX, swarm_lock_key

if TYPE_CHECKING:
    import docker

    from kernel.rotation.batch import TargetResult
    from kernel.runtime import Runtime

log = get_logger("agent.swarm")


def is_swarm_target(target: Target) -> bool:
    return target.lock_key.startswith(LOCK_PREFIX)


@dataclass(frozen=True, slots=True)
class SwarmScan:
    """One look at the swarm: this daemon's place in it and, on a manager, dso's services."""

    #: None when Docker did not answer (``error`` says why).
    node: SwarmNode | None
    #: The services mounting at least one of dso's versioned secrets, by name.
    services: tuple[SwarmService, ...] = ()
    error: str | None = None
    #: When it was taken (Unix seconds).
    at: float = 0.0

    @property
    def managed(self) -> list[Managed]:
        """The services as targets of the change check."""
        return [
            Managed(
                id=service.id,
                name=service.name,
                target=Target(
                    service.name, swarm_lock_key(service.name), service.stack, service.name
                ),
                references={m.target: m.secret.reference for m in service.mounted},
                versions={m.target: m.secret.version for m in service.mounted},
            )
            for service in self.services
        ]


def swarm_scan(client: docker.DockerClient) -> SwarmScan:
    """This daemon's swarm role and, on a manager, dso's Swarm services: one ``info`` call, and
    on a manager one list of dso's secrets and, when there are some, one of the services."""
    at = time.time()
    try:
        node = swarm_node(client)
        if not node.manager:
            return SwarmScan(node, at=at)
        known = {s.name: s for s in dso_secrets(client)}
        docs = list_services(client) if known else []
    except DSOError as exc:
        log.debug("swarm services not scanned: %s", exc.message)
        return SwarmScan(None, error=exc.message, at=at)
    services = [SwarmService.from_api(doc, known) for doc in docs]
    found = sorted((s for s in services if s.mounted), key=lambda s: s.name)
    return SwarmScan(node, tuple(found), at=at)


def scan_swarm(client: docker.DockerClient) -> list[Managed]:
    """dso's Swarm services on this manager (none when it is not one, or when Docker does not
    answer: the container check handles a daemon that is away), by name."""
    return swarm_scan(client).managed


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
