"""Listing containers (``docker ps -a``), for the callers that must not hold the Docker client's
API: the rotation layer finds a service's replicas, the services dso manages, a rotation's
leftovers and the host paths containers mount through :func:`list_containers`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kernel.containers.client import docker_errors

if TYPE_CHECKING:
    import docker


@dataclass(frozen=True, slots=True)
class Listed:
    """One container as the daemon lists it (no inspect: ``find`` gives the full view)."""

    id: str
    #: Its names, without the leading ``/``.
    names: tuple[str, ...]
    labels: Mapping[str, str]
    #: Host paths of its bind mounts.
    bind_sources: tuple[str, ...]

    @classmethod
    def from_api(cls, item: Mapping[str, Any]) -> Listed:
        mounts = item.get("Mounts") or ()
        return cls(
            id=str(item["Id"]),
            names=tuple(str(n).lstrip("/") for n in item.get("Names") or ()),
            labels={str(k): str(v) for k, v in (item.get("Labels") or {}).items()},
            bind_sources=tuple(
                str(m["Source"]) for m in mounts if m.get("Type") == "bind" and m.get("Source")
            ),
        )


def list_containers(
    client: docker.DockerClient,
    *,
    labels: Sequence[str] = (),
    name: str | None = None,
    action: str = "listing containers",
) -> list[Listed]:
    """Every container, running or not, that has all ``labels`` (``key`` or ``key=value``)
    and, with ``name``, a name containing it. ``action`` starts the message of a Docker error."""
    filters: dict[str, list[str] | str] = {}
    if labels:
        filters["label"] = list(labels)
    if name is not None:
        filters["name"] = name
    with docker_errors(action):
        if filters:
            listed = client.api.containers(all=True, filters=filters)
        else:
            listed = client.api.containers(all=True)
    return [Listed.from_api(item) for item in listed]
