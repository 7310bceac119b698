"""What a ``rotate`` argument names: a compose service (all its replicas) or one container.

A compose service is found by the labels compose puts on its containers
(``com.docker.compose.project`` and ``com.docker.compose.service``), never by name patterns;
one-off containers (``docker compose run``) and a rotation's temporary containers (which carry
the labels too: they are clones) are not replicas.

Every target has one **lock key**, held for its whole rotation across processes: a compose
container always locks its *service* (``service-<project>.<service>``: project names have no
dot, so the key is unambiguous), whether it was named as the service or as the container, so a
rotation of ``web`` and one of ``shop-web-1`` exclude each other. A container outside compose
locks itself (``container-<name>``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kernel.containers.listing import list_containers
from kernel.containers.swap import find
from kernel.containers.view import TEMP_NAME, ContainerView
from kernel.errors import DockerNotFoundError
from kernel.labels import (
    COMPOSE_NUMBER_LABEL,
    COMPOSE_ONEOFF_LABEL,
    COMPOSE_PROJECT_LABEL,
    COMPOSE_SERVICE_LABEL,
    VERSIONS_LABEL,
)

if TYPE_CHECKING:
    import docker


def container_lock_key(name: str) -> str:
    """The lock of a container outside compose."""
    return f"container-{name}"


def service_lock_key(project: str, service: str) -> str:
    """The lock of a compose service (all its replicas)."""
    return f"service-{project}.{service}"


def service_of_lock_key(key: str) -> tuple[str, str] | None:
    """``(project, service)`` of a service lock key, None for a container's."""
    if not key.startswith("service-"):
        return None
    project, dot, service = key.removeprefix("service-").partition(".")
    return (project, service) if dot and project and service else None


def log_context(container: str | None, lock_key: str | None) -> dict[str, str]:
    """The ``extra=`` context that names what a log line is about: ``container``, and the
    compose ``project`` and ``service`` its lock key names (journald: ``DSO_CONTAINER``,
    ``DSO_PROJECT``, ``DSO_SERVICE``)."""
    context = {"container": container} if container else {}
    identity = service_of_lock_key(lock_key) if lock_key else None
    if identity is not None:
        context["project"], context["service"] = identity
    return context


def compose_identity(view: ContainerView) -> tuple[str, str] | None:
    """``(project, service)`` of a compose container, None for any other container."""
    labels = view.labels
    project, service = labels.get(COMPOSE_PROJECT_LABEL), labels.get(COMPOSE_SERVICE_LABEL)
    if project and service and labels.get(COMPOSE_ONEOFF_LABEL, "False") != "True":
        return project, service
    return None


def lock_key_of(view: ContainerView, name: str | None = None) -> str:
    """The lock guarding ``view``: its service's, else its own (``name``: its canonical name,
    when ``view`` is a rotation's temporary container)."""
    identity = compose_identity(view)
    if identity is not None:
        return service_lock_key(*identity)
    return container_lock_key(name or view.name)


@dataclass(frozen=True, slots=True)
class Target:
    """One unit of ``rotate``: its lock and the containers it covers."""

    #: As the user named it (``web``, ``shop-web-1``).
    name: str
    lock_key: str
    #: Set for a compose service or a compose container.
    project: str | None = None
    service: str | None = None
    #: Explicit container names; empty for a service: all its replicas, listed under the lock.
    containers: tuple[str, ...] = ()

    @property
    def is_service(self) -> bool:
        return not self.containers

    def describe(self) -> str:
        if self.is_service:
            return f"service {self.service} (project {self.project})"
        names = ", ".join(self.containers)
        if self.service is not None:
            return f"{names} (service {self.service} of project {self.project})"
        return names

    def to_dict(self) -> dict[str, object]:
        return {
            "target": self.name,
            "kind": "service" if self.is_service else "container",
            "project": self.project,
            "service": self.service,
        }


def service_containers(
    client: docker.DockerClient, project: str, service: str
) -> list[ContainerView]:
    """The replicas of ``service``, by container number (rotated in that order)."""
    listed = list_containers(
        client,
        labels=(f"{COMPOSE_PROJECT_LABEL}={project}", f"{COMPOSE_SERVICE_LABEL}={service}"),
        action=f"listing the containers of service {service}",
    )
    views = []
    for item in listed:
        if any(TEMP_NAME.match(n) for n in item.names):
            continue
        view = find(client, item.id)
        if view is not None and compose_identity(view) == (project, service):
            views.append(view)
    return sorted(views, key=_number)


def has_service(client: docker.DockerClient, project: str, service: str) -> bool:
    return bool(service_containers(client, project, service))


def resolve_targets(
    client: docker.DockerClient,
    names: Iterable[str],
    *,
    project: str | None = None,
    services: Iterable[str] = (),
) -> list[Target]:
    """The targets ``names`` designate, merged by lock (each lock is one unit of work).

    With a compose ``project`` (from ``-p``/``-f`` or the current directory), a name that is one
    of its ``services`` (or has containers labelled with it) is that service; any other name
    must be a container's exact name. Raises :class:`DockerNotFoundError` naming what was
    looked for.
    """
    known = set(services)
    found: dict[str, Target] = {}
    for name in dict.fromkeys(names):
        target = _target(client, name, project, known)
        current = found.get(target.lock_key)
        if current is None:
            found[target.lock_key] = target
        elif current.is_service or target.is_service:
            service = current if current.is_service else target
            found[target.lock_key] = service  # the whole service covers its containers
        else:
            merged = (*current.containers, *target.containers)
            found[target.lock_key] = Target(
                f"{current.name} {target.name}",
                current.lock_key,
                current.project,
                current.service,
                tuple(dict.fromkeys(merged)),
            )
    return list(found.values())


def _target(
    client: docker.DockerClient, name: str, project: str | None, services: set[str]
) -> Target:
    if project is not None and (name in services or has_service(client, project, name)):
        return Target(name, service_lock_key(project, name), project, name)
    view = find(client, name)
    if view is None or view.name != name or TEMP_NAME.match(view.name):
        where = f"no service {name!r} in project {project} and " if project else ""
        hint = (
            "`docker dso compose ps` lists the services' containers, `docker ps -a` all"
            if project
            else "`docker ps -a` lists containers; for a compose service run it in the "
            "project's directory or pass -f/-p"
        )
        raise DockerNotFoundError(f"{where}no container named {name!r}", hint=hint)
    identity = compose_identity(view)
    if identity is not None:
        return Target(name, service_lock_key(*identity), *identity, containers=(view.name,))
    return Target(name, container_lock_key(view.name), containers=(view.name,))


def version_spread(views: Iterable[ContainerView]) -> dict[str, dict[str, str]]:
    """Container name → variable → version delivered (label ``dso.versions``), when the
    ``views`` (replicas of one service) do not all hold the same versions; ``{}`` when they do.

    A service is left like this when its rollout stopped part-way (a replica failed its health
    gate, so the following ones kept the old values) or was interrupted.
    """
    held = {view.name: _versions(view) for view in views}
    distinct = {json.dumps(v, sort_keys=True) for v in held.values()}
    return held if len(distinct) > 1 else {}


def mixed_services(client: docker.DockerClient) -> list[tuple[Target, dict[str, dict[str, str]]]]:
    """Every compose service with dso-managed replicas on different versions."""
    listed = list_containers(
        client, labels=(VERSIONS_LABEL,), action="listing the containers dso manages"
    )
    services: dict[tuple[str, str], None] = {}
    for item in listed:
        labels = item.labels
        project, service = labels.get(COMPOSE_PROJECT_LABEL), labels.get(COMPOSE_SERVICE_LABEL)
        if project and service and labels.get(COMPOSE_ONEOFF_LABEL, "False") != "True":
            services[(project, service)] = None
    found = []
    for project, service in services:
        spread = version_spread(service_containers(client, project, service))
        if spread:
            target = Target(service, service_lock_key(project, service), project, service)
            found.append((target, spread))
    return found


def describe_spread(spread: dict[str, dict[str, str]]) -> str:
    """``shop-web-1 DB_PASSWORD=local:3; shop-web-2 DB_PASSWORD=local:2`` (versions only)."""
    parts = []
    for name, versions in spread.items():
        held = " ".join(f"{k}={v}" for k, v in sorted(versions.items())) or "no versions"
        parts.append(f"{name} {held}")
    return "; ".join(parts)


def _versions(view: ContainerView) -> dict[str, str]:
    try:
        parsed = json.loads(view.labels.get(VERSIONS_LABEL) or "{}")
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in parsed.items()} if isinstance(parsed, dict) else {}


def _number(view: ContainerView) -> tuple[int, str]:
    raw = view.labels.get(COMPOSE_NUMBER_LABEL, "")
    return (int(raw) if raw.isdigit() else 1 << 30, view.name)
