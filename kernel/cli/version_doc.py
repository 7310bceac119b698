"""What ``docker dso version`` prints, without click: both the click command and
:mod:`kernel.cli.quick` (which answers ``version`` and ``version --json`` without importing click)
print from here, so the two cannot differ."""

from __future__ import annotations

import os
import sys

from kernel import __version__
from kernel.build_info import commit
from kernel.errors import DockerUnavailableError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from kernel.containers.docker_context import Endpoint


def python_version() -> str:
    """``platform.python_version()`` without importing platform (a few ms on every call)."""
    return sys.version.split()[0]


def version_document() -> tuple[dict[str, object], DockerUnavailableError | None]:
    """The ``--json`` document, and the error when the Docker daemon did not answer."""
    from kernel.containers.daemon_info import daemon_version
    from kernel.containers.docker_context import resolve_endpoint

    doc: dict[str, object] = {
        "version": __version__,
        "commit": commit(),
        "python": python_version(),
        "platform": f"{sys.platform}/{os.uname().machine}",
    }
    error = None
    endpoint: Endpoint | None = None
    try:
        endpoint = resolve_endpoint()
        info = daemon_version(endpoint.host)
        doc["docker"] = {
            "host": endpoint.host,
            "context": endpoint.context,
            "reachable": True,
            "version": info.get("Version"),
            "api_version": info.get("ApiVersion"),
            "os": info.get("Os"),
            "arch": info.get("Arch"),
        }
    except DockerUnavailableError as exc:
        error = exc
        doc["docker"] = {
            "host": endpoint.host if endpoint else None,
            "context": endpoint.context if endpoint else None,
            "reachable": False,
            "error": exc.message,
        }
    return doc, error


def version_lines(doc: dict[str, object]) -> list[str]:
    """The text ``docker dso version`` prints for ``doc``."""
    docker = doc["docker"]
    assert isinstance(docker, dict)
    lines = [
        f"dso:     {doc['version']} (commit {doc['commit']})",
        f"python:  {doc['python']} ({doc['platform']})",
    ]
    if docker["reachable"]:
        where = docker["host"]
        if docker["context"] != "default":
            where = f"context {docker['context']}: {where}"
        lines.append(f"docker:  {docker['version']} (API {docker['api_version']}, {where})")
    else:
        lines.append(f"docker:  unreachable: {docker['error']}")
    return lines
