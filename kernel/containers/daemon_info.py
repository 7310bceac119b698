"""A minimal, fast ``GET /version`` against the Docker daemon.

``docker dso version`` must answer in well under 150 ms and docker runs the plugin twice per call;
importing the docker SDK alone costs ~110 ms (and http.client ~10 ms), so this one read speaks
HTTP/1.0 directly over the daemon socket.
"""

from __future__ import annotations

import json
import socket

from kernel.containers.docker_context import resolve_endpoint
from kernel.errors import DockerUnavailableError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

_MAX_RESPONSE = 1 << 20


def docker_host() -> str:
    """The daemon address: DOCKER_HOST, else the current docker context's, else the socket."""
    return resolve_endpoint().host


def _connect(host: str, timeout: float) -> socket.socket:
    if host.startswith("unix:///"):  # the usual case, without urllib's import (~3 ms)
        return _connect_unix(host[len("unix://") :], timeout)
    from urllib.parse import urlparse

    url = urlparse(host)
    if url.scheme == "unix":
        return _connect_unix(url.path, timeout)
    if url.scheme in ("tcp", "http"):
        return socket.create_connection((url.hostname or "localhost", url.port or 2375), timeout)
    raise DockerUnavailableError(
        f"Docker host {host!r} uses the unsupported scheme {url.scheme!r}",
        hint="use unix:///var/run/docker.sock or tcp://HOST:PORT in DOCKER_HOST",
    )


def _connect_unix(path: str, timeout: float) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect(path)
    except BaseException:
        sock.close()
        raise
    return sock


def _get(host: str, path: str, timeout: float) -> tuple[int, bytes]:
    # HTTP/1.0: the daemon closes the connection after the body, so no chunked decoding.
    with _connect(host, timeout) as sock:
        sock.sendall(f"GET {path} HTTP/1.0\r\nHost: docker\r\n\r\n".encode())
        chunks = []
        size = 0
        while size < _MAX_RESPONSE:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n", 1)[0].split()
    if len(status_line) < 2 or not status_line[1].isdigit():
        raise ValueError("not an HTTP response")
    return int(status_line[1]), body


def daemon_version(host: str | None = None, *, timeout: float = 2.0) -> dict[str, Any]:
    """The daemon's ``/version`` document; raises :class:`DockerUnavailableError`."""
    host = host or docker_host()
    try:
        status, body = _get(host, "/version", timeout)
        doc = json.loads(body) if status == 200 else None
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise DockerUnavailableError(
            f"Docker daemon unreachable at {host}: {reason}",
            hint="start Docker (e.g. `systemctl start docker`), "
            "or choose another daemon with DOCKER_HOST or `docker context use`",
        ) from None
    except ValueError:
        raise DockerUnavailableError(f"{host} did not answer like a Docker daemon") from None
    if not isinstance(doc, dict):
        raise DockerUnavailableError(f"Docker daemon at {host} answered HTTP {status}")
    return doc


def image_user(image: str, env: Mapping[str, str], *, timeout: float = 30.0) -> str | None:
    """The ``USER`` ``image`` runs as (``""`` for root by default), or None when the daemon
    ``env`` designates does not have it: ``docker image inspect --format {{.Config.User}}``
    without the docker CLI (one read on the socket instead of ~30 ms of process). Raises
    :class:`DockerUnavailableError` when the daemon cannot be asked this way (the caller may
    still ask the CLI)."""
    from urllib.parse import quote

    host = resolve_endpoint(env).host
    try:
        status, body = _get(host, f"/images/{quote(image, safe='/:@')}/json", timeout)
        doc = json.loads(body) if status == 200 else None
    except (OSError, ValueError):
        raise DockerUnavailableError(f"Docker daemon unreachable at {host}") from None
    if status == 404:
        return None
    if not isinstance(doc, dict):
        raise DockerUnavailableError(f"Docker daemon at {host} answered HTTP {status}")
    config = doc.get("Config") or {}
    user = config.get("User") if isinstance(config, dict) else None
    return user if isinstance(user, str) else ""
