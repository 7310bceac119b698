"""What the agent manages: every container its installation's ``docker dso up`` or rotations
gave references (label ``dso.rotation.owner``: another dso home's containers on the same daemon
are not ours to rotate).

The labels are the truth (``dso.refs``: variable → reference; ``dso.versions``: variable →
``provider:version`` delivered), so the set is rebuilt from them at start, after every reconnect
to the daemon and whenever a container starts, dies or goes away. ``state/containers.json`` is
a snapshot of it for operators and ``status`` (container → references → versions): nothing in
it is needed to recover, and never a value.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kernel.containers.listing import list_containers
from kernel.containers.view import TEMP_NAME
from kernel.labels import (
    COMPOSE_ONEOFF_LABEL,
    COMPOSE_PROJECT_LABEL,
    COMPOSE_SERVICE_LABEL,
    OWNER_LABEL,
    REFS_LABEL,
    VERSIONS_LABEL,
)
from kernel.rotation.targets import Target, container_lock_key, service_lock_key
from kernel.state import StateFile

if TYPE_CHECKING:
    import docker

#: ``state/containers.json``.
FILE_NAME = "containers.json"
SCHEMA = 1


@dataclass(frozen=True, slots=True)
class Managed:
    """One container dso gave references: what it holds, and what rotates it."""

    id: str
    name: str
    #: Its compose service (all replicas rotate together), or the container itself.
    target: Target
    #: Variable → reference as written (``dso://app/db``).
    references: Mapping[str, str]
    #: Variable → ``provider:version`` it was given.
    versions: Mapping[str, str]
    #: Host paths of its bind mounts (its secrets directory among them), as listed.
    bind_sources: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "project": self.target.project,
            "service": self.target.service,
            "lock": self.target.lock_key,
            "references": {
                variable: {"reference": text, "version": self.versions.get(variable)}
                for variable, text in sorted(self.references.items())
            },
        }


def scan_managed(client: docker.DockerClient, owner: str) -> list[Managed]:
    """Every container of installation ``owner`` with a ``dso.refs`` label, a rotation's
    temporary containers excepted."""
    found = []
    wanted = [REFS_LABEL, f"{OWNER_LABEL}={owner}"]
    for item in list_containers(client, labels=wanted, action="listing managed containers"):
        name = next(iter(item.names), item.id[:12])
        if TEMP_NAME.match(name):
            continue
        labels = item.labels
        project, service = labels.get(COMPOSE_PROJECT_LABEL), labels.get(COMPOSE_SERVICE_LABEL)
        if project and service and labels.get(COMPOSE_ONEOFF_LABEL, "False") != "True":
            target = Target(service, service_lock_key(project, service), project, service)
        else:
            target = Target(name, container_lock_key(name), containers=(name,))
        found.append(
            Managed(
                id=item.id,
                name=name,
                target=target,
                references=_json_map(labels.get(REFS_LABEL)),
                versions=_json_map(labels.get(VERSIONS_LABEL)),
                bind_sources=item.bind_sources,
            )
        )
    return sorted(found, key=lambda m: m.name)


class ManagedFile:
    """``state/containers.json``: the last scan, for operators and ``status``."""

    def __init__(self, state_dir: Path) -> None:
        self.file = StateFile(state_dir / FILE_NAME, schema=SCHEMA)
        # Read once: a corrupt or unknown file is set aside (one ERROR line), not overwritten
        # unseen. Its content is not needed: the labels are the truth.
        self.file.snapshot()

    def write(self, managed: Iterable[Managed], *, now: float | None = None) -> None:
        self.file.write(
            {
                "updated_at": round(time.time() if now is None else now, 3),
                "containers": {m.id: m.to_dict() for m in managed},
            }
        )


def _json_map(text: str | None) -> dict[str, str]:
    try:
        parsed = json.loads(text or "{}")
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in parsed.items()} if isinstance(parsed, dict) else {}
