"""The Docker SDK client of the rotation machinery, and the one place its exceptions are mapped.

Everything under :mod:`kernel.containers` talks to the daemon inside :func:`docker_errors`, so
``docker.errors.*`` and ``requests`` exceptions never cross into the rotation engine: they become
:class:`~kernel.errors.DockerError` and its subclasses, with the daemon's own explanation and the
action that failed (httpx's ``map_exceptions`` pattern).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from kernel.containers.daemon_info import docker_host
from kernel.errors import (
    DockerConflictError,
    DockerError,
    DockerNotFoundError,
    DockerUnavailableError,
)

if TYPE_CHECKING:
    import docker

#: Seconds a single API call may take (stop adds the container's grace period on top).
DEFAULT_TIMEOUT = 60.0
_HINT_UNAVAILABLE = (
    "start Docker (e.g. `systemctl start docker`), "
    "or choose another daemon with DOCKER_HOST or `docker context use`"
)


def connect(host: str | None = None, *, timeout: float = DEFAULT_TIMEOUT) -> docker.DockerClient:
    """A Docker SDK client for ``host`` (default: ``DOCKER_HOST`` or the local socket).

    The API version is negotiated (``auto``): the daemon here speaks 1.41, newer SDK defaults
    would be refused. Raises :class:`DockerUnavailableError` when nothing answers.
    """
    import docker

    host = host or docker_host()
    with docker_errors(f"connecting to the Docker daemon at {host}"):
        return docker.DockerClient(base_url=host, version="auto", timeout=int(timeout))


@contextlib.contextmanager
def docker_errors(action: str) -> Iterator[None]:
    """Translate Docker SDK and HTTP exceptions raised inside the block into dso's tree.

    ``action`` says what was being done (``renaming web to web_dso_backup_1a2b``); it starts
    every message. The daemon's explanation follows; tracebacks are not chained (the SDK's
    exceptions carry request objects, never shown to users).
    """
    try:
        yield
    except Exception as exc:
        mapped = translate(exc, action)
        if mapped is None:
            raise
        raise mapped from None


def translate(exc: BaseException, action: str) -> DockerError | None:
    """The :class:`DockerError` for ``exc``, or None when it is not a Docker/HTTP exception."""
    import docker.errors
    import requests.exceptions

    if isinstance(exc, docker.errors.APIError):
        status = exc.status_code
        reason = _explanation(exc)
        message = f"{action}: {reason}"
        if status == 404:
            return DockerNotFoundError(message)
        if status == 409:
            return DockerConflictError(message)
        return DockerError(message)
    if isinstance(exc, requests.exceptions.ConnectionError | ConnectionError | FileNotFoundError):
        return DockerUnavailableError(
            f"{action}: the Docker daemon does not answer", hint=_HINT_UNAVAILABLE
        )
    if isinstance(exc, requests.exceptions.Timeout | TimeoutError):
        return DockerError(f"{action}: the Docker daemon did not answer in time")
    if isinstance(exc, requests.exceptions.RequestException):
        return DockerError(f"{action}: {type(exc).__name__}")
    if isinstance(exc, docker.errors.DockerException):
        text = str(exc)
        if "Connection" in text or "No such file" in text or "Errno" in text:
            return DockerUnavailableError(
                f"{action}: the Docker daemon does not answer", hint=_HINT_UNAVAILABLE
            )
        return DockerError(f"{action}: {text}")
    return None


def _explanation(exc: Any) -> str:
    explanation = getattr(exc, "explanation", None)
    if isinstance(explanation, bytes):
        explanation = explanation.decode("utf-8", "replace")
    if explanation:
        return str(explanation).strip()
    status = getattr(exc, "status_code", None)
    return f"HTTP {status}" if status else type(exc).__name__


def is_not_found(exc: BaseException) -> bool:
    """True for a translated 404 (the object is gone), for idempotent clean-up code."""
    return isinstance(exc, DockerNotFoundError)


class SharedConnection:
    """Docker connections of one command, negotiated once.

    ``connect()`` hands out ``client`` (already connected, e.g. to resolve the targets) the first
    time, then new clients on the API version it negotiated: no ``GET /version`` round trip per
    target. Each client goes to one user (the batch closes it after its target); :meth:`close`
    closes the first one if nobody took it.
    """

    def __init__(self, client: docker.DockerClient, host: str | None = None) -> None:
        self._client: docker.DockerClient | None = client
        #: The address ``client`` was made for (default: as :func:`connect` finds it).
        self._host = host or docker_host()
        self._version = str(client.api.api_version)
        self._timeout = client.api.timeout
        self._lock = threading.Lock()

    def connect(self) -> docker.DockerClient:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            return client
        import docker

        with docker_errors(f"connecting to the Docker daemon at {self._host}"):
            return docker.DockerClient(
                base_url=self._host, version=self._version, timeout=self._timeout
            )

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()
