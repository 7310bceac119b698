"""Which Swarm services ``rotate`` means, and their locks.

    chosen, swarm = split_targets(client, ["web", "shop"], project=..., services=...)
    swarm_targets(client, ["shop"])                # a stack: its services mounting dso's secrets

A name is a compose service or a container first; only the names that are neither are looked up,
on an active swarm, as a service or a stack. A service's lock is ``swarm-<service>``
(:func:`swarm_lock_key`), shared by every rotation of it across processes.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from kernel.containers.swarm import list_services, swarm_node
from kernel.errors import DockerNotFoundError, UsageError
from kernel.rotation.targets import Target, resolve_targets
from kernel.swarm.secret_versions import dso_secrets
from kernel.swarm.services import STACK_NAMESPACE_LABEL, spec_secrets

if TYPE_CHECKING:
    import docker

LOCK_PREFIX = "swarm-"


def swarm_lock_key(service: str) -> str:
    """The lock of a Swarm service (every rotation of it, across processes)."""
    return f"{LOCK_PREFIX}{service}"


def service_of_swarm_lock(key: str) -> str | None:
    """The service whose lock ``key`` is; None for another target's lock (a container's)."""
    return key.removeprefix(LOCK_PREFIX) if key.startswith(LOCK_PREFIX) else None


def swarm_targets(client: docker.DockerClient, names: Iterable[str]) -> list[Target]:
    """The Swarm services ``names`` designate: a service's name, or a stack's name (its
    services mounting one of dso's secrets). :class:`DockerNotFoundError` for a name that is
    neither; :class:`UsageError` on a node that is not a manager."""
    node = swarm_node(client)
    if not node.manager:
        raise UsageError(
            "this Docker node is not a swarm manager: only a manager updates services",
            hint="run it on a manager node (`docker node ls` lists them)",
        )
    services = list_services(client)
    by_name = {str((s.get("Spec") or {}).get("Name", "")): s for s in services}
    dso_names = {s.name for s in dso_secrets(client)}
    found: dict[str, Target] = {}
    for name in dict.fromkeys(names):
        if name in by_name:
            chosen = [by_name[name]]
        else:
            chosen = [
                s
                for s in services
                if ((s.get("Spec") or {}).get("Labels") or {}).get(STACK_NAMESPACE_LABEL) == name
                and {str(x.get("SecretName")) for x in spec_secrets(s.get("Spec"))} & dso_names
            ]
        if not chosen:
            raise DockerNotFoundError(
                f"no swarm service or stack named {name!r} with secrets of dso",
                hint="`docker service ls` lists the services; `docker dso stack deploy` "
                "deploys a stack with dso's secrets",
            )
        for service in chosen:
            spec = service.get("Spec") or {}
            sname = str(spec.get("Name", ""))
            stack = (spec.get("Labels") or {}).get(STACK_NAMESPACE_LABEL)
            found.setdefault(sname, Target(sname, swarm_lock_key(sname), stack, sname))
    return list(found.values())


def split_targets(
    client: docker.DockerClient,
    names: Iterable[str],
    *,
    project: str | None = None,
    services: Iterable[str] = (),
) -> tuple[list[Target], list[Target]]:
    """``rotate``'s names as (container/compose targets, Swarm service targets).

    Names are looked up as compose services and containers first (no extra call when all are
    found); the ones that are neither, on an active swarm, as Swarm services or stacks. The
    error for a name found nowhere is the container lookup's.
    """
    wanted = list(dict.fromkeys(names))
    known = list(services)
    try:
        return resolve_targets(client, wanted, project=project, services=known), []
    except DockerNotFoundError as first:
        missing: list[str] = []
        local: list[str] = []
        for name in wanted:
            try:
                resolve_targets(client, [name], project=project, services=known)
                local.append(name)
            except DockerNotFoundError:
                missing.append(name)
        if not swarm_node(client).active:
            raise first from None
        try:
            swarm = swarm_targets(client, missing)
        except DockerNotFoundError:
            raise first from None
        chosen = resolve_targets(client, local, project=project, services=known) if local else []
        return chosen, swarm


__all__ = [
    "LOCK_PREFIX",
    "service_of_swarm_lock",
    "split_targets",
    "swarm_lock_key",
    "swarm_targets",
]
