"""The Docker Swarm API calls of dso: the node's role, secrets, services and tasks.

:mod:`kernel.swarm` holds the model (names, labels, which versions are in use) and calls these
functions, so ``docker.errors.*`` are translated here like every other Docker call. Objects come
back as the daemon's JSON (``attrs``); secret values only ever go *to* the engine
(:func:`create_secret`), as a :class:`~kernel.secret_value.SecretValue` until the request.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kernel.containers.client import docker_errors, is_not_found
from kernel.errors import DockerConflictError, DockerError

if TYPE_CHECKING:
    import docker

    from kernel.secret_value import SecretValue

__all__ = [
    "SwarmNode",
    "create_secret",
    "inspect_service",
    "list_secrets",
    "list_services",
    "list_tasks",
    "remove_secret",
    "swarm_node",
]


@dataclass(frozen=True, slots=True)
class SwarmNode:
    """What the daemon says about its place in a swarm (``docker info``'s ``Swarm``)."""

    #: ``inactive``, ``pending``, ``active``, ``error`` or ``locked``.
    state: str
    #: True on a manager: only managers create secrets and update services.
    manager: bool
    node_id: str

    @property
    def active(self) -> bool:
        return self.state == "active"


def swarm_node(client: docker.DockerClient) -> SwarmNode:
    """This daemon's swarm state and role."""
    with docker_errors("asking the Docker daemon about its swarm"):
        info = client.info()
    swarm = info.get("Swarm") or {}
    return SwarmNode(
        state=str(swarm.get("LocalNodeState") or "inactive"),
        manager=bool(swarm.get("ControlAvailable")),
        node_id=str(swarm.get("NodeID") or ""),
    )


def create_secret(
    client: docker.DockerClient, name: str, value: SecretValue, labels: Mapping[str, str]
) -> str | None:
    """Create Swarm secret ``name`` holding ``value``; its id, or None when the name exists.

    The value travels in the request body only (never argv, never a file). An existing name is
    not an error: versioned names make creation idempotent, the caller looks the secret up.
    """
    try:
        with docker_errors(f"creating the swarm secret {name}"):
            created = client.api.create_secret(name, value.reveal(), labels=dict(labels))
    except DockerConflictError:
        return None
    except DockerError as exc:
        # Older engines answer an existing name with 500 "... already exists".
        if "already exists" in exc.message:
            return None
        raise
    return str(created["ID"])


def list_secrets(
    client: docker.DockerClient, labels: Mapping[str, str | None] | None = None
) -> list[dict[str, Any]]:
    """The secrets (metadata only: the engine never returns data) matching every label.

    ``labels`` maps a label to a value, or to None for "has the label".
    """
    wanted = [k if v is None else f"{k}={v}" for k, v in (labels or {}).items()]
    with docker_errors("listing swarm secrets"):
        found = client.api.secrets(filters={"label": wanted} if wanted else None)
    return [dict(s) for s in found or ()]


def remove_secret(client: docker.DockerClient, name_or_id: str) -> bool:
    """Remove a secret; False when it is already gone.

    :class:`DockerError` when the engine refuses (a service still references it).
    """
    try:
        with docker_errors(f"removing the swarm secret {name_or_id}"):
            client.api.remove_secret(name_or_id)
    except DockerError as exc:
        if is_not_found(exc):
            return False
        raise
    return True


def list_services(
    client: docker.DockerClient, labels: Mapping[str, str | None] | None = None
) -> list[dict[str, Any]]:
    """The services (``docker service inspect`` JSON) matching every label."""
    wanted = [k if v is None else f"{k}={v}" for k, v in (labels or {}).items()]
    with docker_errors("listing swarm services"):
        found = client.api.services(filters={"label": wanted} if wanted else None)
    return [dict(s) for s in found or ()]


def inspect_service(client: docker.DockerClient, name_or_id: str) -> dict[str, Any] | None:
    """One service's JSON, or None when there is no such service."""
    try:
        with docker_errors(f"inspecting the swarm service {name_or_id}"):
            return dict(client.api.inspect_service(name_or_id))
    except DockerError as exc:
        if is_not_found(exc):
            return None
        raise


def list_tasks(
    client: docker.DockerClient, filters: Mapping[str, Any] | None = None
) -> list[dict[str, Any]]:
    """The tasks (``docker service ps`` JSON) matching ``filters`` (e.g. ``{"service": id}``)."""
    with docker_errors("listing swarm tasks"):
        found = client.api.tasks(filters=dict(filters) if filters else None)
    return [dict(t) for t in found or ()]
