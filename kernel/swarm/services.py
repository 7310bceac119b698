"""A Swarm service as a rotation sees it: its spec, version index, update status, dso's secrets.

    service = load_service(client, "shop_web")     # -> SwarmService | None
    [m.target for m in service.mounted]            # paths of dso's secrets in its containers

Only the secrets dso created (labels ``dso.*``, :mod:`kernel.swarm.secret_versions`) count as
mounted; the service's other secrets are the operator's and stay as they are.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kernel.containers.swarm import inspect_service
from kernel.swarm.secret_versions import SwarmSecret, dso_secrets

if TYPE_CHECKING:
    import docker

#: The label ``docker stack deploy`` puts on a stack's services.
STACK_NAMESPACE_LABEL = "com.docker.stack.namespace"


@dataclass(frozen=True, slots=True)
class Mounted:
    """One of dso's secrets mounted into a service (its ``ContainerSpec.Secrets`` entry)."""

    #: The path in the container (``File.Name``).
    target: str
    secret: SwarmSecret


@dataclass(frozen=True, slots=True)
class SwarmService:
    """A service as inspected: its spec, version index, update status, dso's secrets in it."""

    id: str
    name: str
    stack: str | None
    version: int
    spec: Mapping[str, Any] = field(repr=False)
    update_state: str | None
    update_message: str | None
    update_started: str | None
    mounted: tuple[Mounted, ...]

    @classmethod
    def from_api(cls, doc: Mapping[str, Any], known: Mapping[str, SwarmSecret]) -> SwarmService:
        spec = doc.get("Spec") or {}
        status = doc.get("UpdateStatus") or {}
        mounted = []
        for item in spec_secrets(spec):
            found = known.get(str(item.get("SecretName", "")))
            file = item.get("File") or {}
            if found is not None and file.get("Name"):
                mounted.append(Mounted(str(file["Name"]), found))
        return cls(
            id=str(doc.get("ID", "")),
            name=str(spec.get("Name", "")),
            stack=(spec.get("Labels") or {}).get(STACK_NAMESPACE_LABEL),
            version=int((doc.get("Version") or {}).get("Index", 0)),
            spec=spec,
            update_state=status.get("State"),
            update_message=status.get("Message"),
            update_started=status.get("StartedAt"),
            mounted=tuple(mounted),
        )

    @property
    def replicas(self) -> int:
        mode = self.spec.get("Mode") or {}
        return int((mode.get("Replicated") or {}).get("Replicas", 1) or 1)

    @property
    def update_config(self) -> dict[str, Any]:
        return dict(self.spec.get("UpdateConfig") or {})

    def secret_names(self) -> set[str]:
        return {str(s.get("SecretName", "")) for s in spec_secrets(self.spec)}


def spec_secrets(spec: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """The ``ContainerSpec.Secrets`` entries of a service spec (all of them, dso's or not)."""
    container = ((spec or {}).get("TaskTemplate") or {}).get("ContainerSpec") or {}
    return [dict(s) for s in container.get("Secrets") or ()]


def load_service(client: docker.DockerClient, name: str) -> SwarmService | None:
    """The service ``name`` (or id) with dso's secrets it mounts; None if there is none."""
    doc = inspect_service(client, name)
    if doc is None:
        return None
    return SwarmService.from_api(doc, {s.name: s for s in dso_secrets(client)})


__all__ = ["STACK_NAMESPACE_LABEL", "Mounted", "SwarmService", "load_service", "spec_secrets"]
