"""A minimal, fast ``GET /version`` against the Docker daemon.

``docker dso version`` must answer in well under 150 ms and docker runs the plugin twice per call;
importing the docker SDK alone costs ~110 ms, so this one read speaks HTTP/1.1 directly over the
daemon socket with the standard library.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
from typing import Any
from urllib.parse import urlparse

from kernel.errors import DockerUnavailableError

DEFAULT_HOST = "unix:///var/run/docker.sock"


def docker_host() -> str:
    return os.environ.get("DOCKER_HOST") or DEFAULT_HOST


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


def daemon_version(host: str | None = None, *, timeout: float = 2.0) -> dict[str, Any]:
    """The daemon's ``/version`` document; raises :class:`DockerUnavailableError`."""
    host = host or docker_host()
    url = urlparse(host)
    conn: http.client.HTTPConnection
    if url.scheme == "unix":
        conn = _UnixHTTPConnection(url.path, timeout)
    elif url.scheme in ("tcp", "http"):
        conn = http.client.HTTPConnection(
            url.hostname or "localhost", url.port or 2375, timeout=timeout
        )
    else:
        raise DockerUnavailableError(
            f"Docker host {host!r} uses the unsupported scheme {url.scheme!r}",
            hint="use unix:///var/run/docker.sock or tcp://HOST:PORT in DOCKER_HOST",
        )
    try:
        conn.request("GET", "/version", headers={"Host": "docker"})
        response = conn.getresponse()
        body = response.read()
    except (OSError, http.client.HTTPException) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise DockerUnavailableError(
            f"Docker daemon unreachable at {host}: {reason or type(exc).__name__}",
            hint="start Docker (e.g. `systemctl start docker`) or set DOCKER_HOST",
        ) from None
    finally:
        conn.close()
    if response.status != 200:
        raise DockerUnavailableError(f"Docker daemon at {host} answered HTTP {response.status}")
    doc = json.loads(body)
    assert isinstance(doc, dict)
    return doc
