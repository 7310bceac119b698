"""Docker checks: the daemon answers (``docker.reachable``), speaks an API dso uses
(``docker.version``), and ``docker compose`` is Compose v2 (``compose.v2``)."""

from __future__ import annotations

import re
import subprocess
from typing import TYPE_CHECKING

from kernel.doctor.model import Check, Finding, NotChecked, fail, ok
from kernel.errors import DSOError

if TYPE_CHECKING:
    from kernel.doctor.context import Context

#: The oldest Docker Engine API dso is built and tested against (Engine 20.10).
MIN_API = (1, 41)
#: Seconds ``docker compose version`` may take.
COMPOSE_TIMEOUT = 15.0

_START_DOCKER = (
    "start Docker (`sudo systemctl start docker`), or point dso at the daemon you mean: "
    "DOCKER_HOST, or `docker context use NAME`"
)


def docker_reachable(ctx: Context) -> Finding:
    try:
        host, doc = ctx.daemon()
    except DSOError as exc:
        return fail(
            exc.message,
            detail="dso talks to the daemon docker would: DOCKER_HOST, else DOCKER_CONTEXT, else "
            "the context chosen with `docker context use`, else /var/run/docker.sock",
            fix=exc.hint or _START_DOCKER,
        )
    where = f"{doc.get('Os', '?')}/{doc.get('Arch', '?')}, kernel {doc.get('KernelVersion', '?')}"
    return ok(f"the Docker daemon answers at {host}", detail=where)


def docker_version(ctx: Context) -> Finding:
    try:
        _, doc = ctx.daemon()
    except DSOError:
        raise NotChecked("Docker is not reachable", see="docker.reachable") from None
    engine = str(doc.get("Version") or "?")
    api_text = str(doc.get("ApiVersion") or "")
    api = _version_tuple(api_text)
    needed = ".".join(map(str, MIN_API))
    if api is None:
        return fail(
            f"Docker Engine {engine} reports no usable API version ({api_text or 'none'})",
            detail="GET /version answered without ApiVersion: not a Docker Engine?",
            fix="point DOCKER_HOST at a Docker Engine",
        )
    if api < MIN_API:
        return fail(
            f"Docker Engine {engine} speaks API {api_text}; dso needs {needed} (Engine 20.10) "
            "or later",
            detail="dso creates, renames and health-gates containers with API "
            f"{needed} requests; older daemons refuse some of them",
            fix="upgrade Docker Engine to 20.10 or later",
        )
    return ok(
        f"Docker Engine {engine}, API {api_text} (dso needs {needed} or later)",
        detail=f"minimum API the daemon accepts: {doc.get('MinAPIVersion', '?')}",
    )


def compose_v2(ctx: Context) -> Finding:
    argv = ("docker", "compose", "version", "--short")
    install = (
        "install the Compose v2 plugin: the docker-compose-plugin package, or the "
        "docker-compose binary in ~/.docker/cli-plugins/ (or /usr/local/lib/docker/cli-plugins/)"
    )
    try:
        done = ctx.run(argv, COMPOSE_TIMEOUT)
    except FileNotFoundError:
        return fail(
            "the docker CLI is not installed (no `docker` on PATH)",
            detail="`docker dso up` runs `docker compose`",
            fix="install the Docker CLI and its Compose v2 plugin",
        )
    except subprocess.TimeoutExpired:
        return fail(f"`{' '.join(argv)}` did not answer in {COMPOSE_TIMEOUT:g} s", fix=install)
    output = (done.stdout or "").strip()
    if done.returncode != 0:
        said = (done.stderr or output).strip().splitlines()
        reason = said[-1] if said else f"exit status {done.returncode}"
        return fail(
            "Docker Compose v2 is not installed (`docker compose` failed)",
            detail=f"`{' '.join(argv)}`: {reason}",
            fix=install,
        )
    version = output.splitlines()[0].lstrip("v") if output else ""
    parsed = _version_tuple(version)
    if parsed is None or parsed[0] < 2:
        return fail(
            f"`docker compose` is version {version or '?'}, not Compose v2",
            detail="dso feeds the project to `docker compose -f -` and reads `docker compose "
            "config`, which need Compose v2",
            fix=install,
        )
    return ok(f"Docker Compose {version}")


def _version_tuple(text: str) -> tuple[int, ...] | None:
    match = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", text.strip())
    if match is None:
        return None
    return tuple(int(part) for part in match.groups() if part is not None)


CHECKS = (
    Check("docker.reachable", "the Docker daemon answers", docker_reachable),
    Check("docker.version", "the daemon's API version is one dso uses (1.41+)", docker_version),
    Check("compose.v2", "`docker compose` is Compose v2", compose_v2),
)
