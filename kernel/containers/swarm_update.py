"""The service update of a Swarm rotation (kernel.swarm.rotation): one API call, errors
translated like every other Docker call (the rest of the Swarm calls: kernel.containers.swarm)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from kernel.containers.client import docker_errors

if TYPE_CHECKING:
    import docker

__all__ = ["update_task_template"]


def update_task_template(
    client: docker.DockerClient,
    service: str,
    *,
    name: str,
    version: int,
    task_template: Mapping[str, Any],
) -> None:
    """Update ``service`` (id) at spec ``version`` with ``task_template``; every other field of
    its spec (update config, mode, networks, endpoint, labels) is kept as it is.

    The version index makes it fail (:class:`~kernel.errors.DockerError`, "update out of
    sequence") when someone updated the service in between, instead of undoing their change.
    """
    with docker_errors(f"updating the swarm service {name}"):
        client.api.update_service(
            service,
            version=version,
            task_template=dict(task_template),
            fetch_current_spec=True,
        )
