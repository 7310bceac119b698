"""Which Docker daemon to talk to, chosen the way the docker CLI chooses it.

``docker context use rootless`` or ``docker --context rootless dso …`` must reach the same daemon
that ``docker ps`` reaches, or dso would inject into and rotate containers of another daemon. The
order is docker/cli's (``resolveContextName``):

1. ``DOCKER_HOST`` (``docker -H`` arrives here as that variable, see ``cli/docker_plugin.py``);
2. ``DOCKER_CONTEXT``;
3. ``currentContext`` in ``$DOCKER_CONFIG/config.json`` (``~/.docker`` by default);
4. the local socket.

A named context's endpoint is ``Endpoints.docker.Host`` in
``$DOCKER_CONFIG/contexts/meta/<sha256 of the name>/meta.json``. Standard library only: this runs
on the path of ``docker dso version``, which must stay fast (no pathlib, typing or urllib there:
paths are strings, ``Endpoint`` a small class).
"""

from __future__ import annotations

import json
import os

from kernel.errors import DockerUnavailableError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

DEFAULT_HOST = "unix:///var/run/docker.sock"
DEFAULT_CONTEXT = "default"


class Endpoint:
    """The daemon address and where it came from (for messages and ``version``)."""

    __slots__ = ("context", "host")

    def __init__(self, host: str, context: str = DEFAULT_CONTEXT) -> None:
        self.host = host
        #: ``default`` when the address comes from DOCKER_HOST or the local socket.
        self.context = context

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Endpoint):
            return NotImplemented
        return (self.host, self.context) == (other.host, other.context)

    def __hash__(self) -> int:
        return hash((self.host, self.context))

    def __repr__(self) -> str:
        return f"Endpoint(host={self.host!r}, context={self.context!r})"

    @property
    def is_local(self) -> bool:
        """The daemon runs on this machine (a unix socket, or TCP to a loopback address): only
        then do files dso writes here reach its containers as bind mounts."""
        from urllib.parse import urlsplit

        url = urlsplit(self.host)
        if url.scheme == "unix":
            return True
        host = url.hostname or ""
        return url.scheme in ("tcp", "http") and (
            host in ("localhost", "::1") or host.startswith("127.")
        )


def config_dir(environ: Mapping[str, str]) -> Path:
    """The docker CLI's configuration directory (``DOCKER_CONFIG`` or ``~/.docker``)."""
    from pathlib import Path

    return Path(_config_dir(environ))


def _config_dir(environ: Mapping[str, str]) -> str:
    configured = environ.get("DOCKER_CONFIG")
    if configured:
        return configured
    return os.path.join(environ.get("HOME") or os.path.expanduser("~"), ".docker")


def resolve_endpoint(environ: Mapping[str, str] | None = None) -> Endpoint:
    """The daemon ``environ`` designates; raises :class:`DockerUnavailableError` for a context
    that does not exist, cannot be read, or needs TLS (not supported)."""
    env = os.environ if environ is None else environ
    host = env.get("DOCKER_HOST")
    if host:
        return Endpoint(host)
    name = env.get("DOCKER_CONTEXT") or _current_context(_config_dir(env))
    if not name or name == DEFAULT_CONTEXT:
        return Endpoint(DEFAULT_HOST)
    return Endpoint(_context_host(_config_dir(env), name), name)


def _read(path: str) -> str:
    with open(path, encoding="utf-8") as handle:
        return handle.read()


def _current_context(directory: str) -> str | None:
    path = os.path.join(directory, "config.json")
    try:
        doc = json.loads(_read(path))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise DockerUnavailableError(
            f"cannot read the docker CLI configuration {path}: {_reason(exc)}",
            hint="fix the file, or set DOCKER_HOST to choose the daemon",
        ) from None
    current = doc.get("currentContext") if isinstance(doc, dict) else None
    return current if isinstance(current, str) and current else None


def _context_host(directory: str, name: str) -> str:
    import hashlib  # only for named contexts: its import costs ~3 ms on every `docker dso …`

    digest = hashlib.sha256(name.encode()).hexdigest()
    meta = os.path.join(directory, "contexts", "meta", digest, "meta.json")
    try:
        doc = json.loads(_read(meta))
    except FileNotFoundError:
        raise DockerUnavailableError(
            f"Docker context {name!r} does not exist (no {meta})",
            hint="`docker context ls` lists the contexts; `docker context use default` resets",
        ) from None
    except (OSError, ValueError) as exc:
        raise DockerUnavailableError(
            f"cannot read Docker context {name!r} ({meta}): {_reason(exc)}"
        ) from None
    endpoint = (doc.get("Endpoints") or {}).get("docker") if isinstance(doc, dict) else None
    host = endpoint.get("Host") if isinstance(endpoint, dict) else None
    if not isinstance(host, str) or not host:
        raise DockerUnavailableError(f"Docker context {name!r} has no docker endpoint ({meta})")
    if os.path.exists(os.path.join(directory, "contexts", "tls", digest, "docker")):
        raise DockerUnavailableError(
            f"Docker context {name!r} connects with TLS ({host}), which dso does not support",
            hint="run dso on the daemon's host: file secrets are written to that host's tmpfs",
        )
    return host


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError):
        return exc.strerror or type(exc).__name__
    if isinstance(exc, json.JSONDecodeError):
        return f"not valid JSON (line {exc.lineno})"
    return "not valid JSON"
