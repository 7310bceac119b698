"""The daemon's event stream (``GET /events``), with Docker's exceptions translated here.

The agent's watcher (:mod:`kernel.agent.docker_events`) owns reconnection, replay and
deduplication; this module only subscribes and reads.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from kernel.containers.client import docker_errors

if TYPE_CHECKING:
    import docker


def open_client(connect: Callable[[], docker.DockerClient]) -> docker.DockerClient:
    """``connect()``, with a daemon that does not answer translated like every Docker error."""
    with docker_errors("connecting to the Docker daemon for events"):
        return connect()


def subscribe(client: docker.DockerClient, *, types: Collection[str], since: str | None) -> Any:
    """A decoded event stream of ``types`` (container, network, volume…) from ``since``
    (``<seconds>.<nanoseconds>``, None: from now). Close it to end a blocked read."""
    with docker_errors("subscribing to Docker events"):
        return client.events(decode=True, filters={"type": list(types)}, since=since)


def each_event(stream: Any) -> Iterator[Mapping[str, Any]]:
    """The events of ``stream`` until it ends; a lost daemon raises a DockerError."""
    with docker_errors("reading Docker events"):
        for raw in stream:
            if isinstance(raw, Mapping):
                yield raw
