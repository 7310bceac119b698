"""Compose projects for the service-rotation tests: an httpd service behind its service alias,
a client looping on it, and helpers to read replicas, counts and the journal.

Projects come from the ``project`` fixture of compose_support (unique ``dsotest<hex>`` name,
private DSO_HOME and tmpfs secrets directory; ``docker compose down`` and removal of the
directory afterwards). Every container a rotation creates carries the project's compose labels
(clones copy them), so the teardown's ``down`` removes leftovers too.
"""

from __future__ import annotations

import json
from typing import Any

from kernel.rotation.journal import Journal
from tests.integration.compose_support import ComposeProject, docker, project
from tests.integration.rotation_support import LOOPING_CLIENT, wait_for

__all__ = ["project", "wait_for"]

#: Serves $MSG (the test's secret) at /; also "version <n>" at /version from the file secret.
WEB_SH = r"""
mkdir -p /www
echo "$MSG" > /www/index.html
exec httpd -f -p 80 -h /www
"""

#: Waits for the service, then the looping client of rotation_support.
CLIENT_SH = (
    r"""
until wget -q -O- http://web/ >/dev/null 2>&1; do usleep 100000; done"""
    + LOOPING_CLIENT
)

#: A service serving $MSG, healthy when it answers (Docker's 30 s interval: dso's fast probe).
WEB_SERVICE = """
    image: dso-test/busybox:1
    init: true
    stop_grace_period: 2s
    command: ["sh", "/scripts/web.sh"]
    volumes: ["./web.sh:/scripts/web.sh:ro"]
    healthcheck:
      test: ["CMD", "wget", "-q", "-O-", "http://127.0.0.1/"]
      interval: 30s
"""

CLIENT_SERVICE = """
  client:
    image: dso-test/busybox:1
    init: true
    stop_grace_period: 1s
    command: ["sh", "/scripts/client.sh"]
    volumes: ["./client.sh:/scripts/client.sh:ro"]
"""


def write_scripts(project: ComposeProject) -> None:
    project.write("web.sh", WEB_SH)
    project.write("client.sh", CLIENT_SH)


def replicas(project: ComposeProject, service: str) -> list[str]:
    """Names of the service's containers (temporary rotation containers excluded), in order."""
    done = docker(
        "ps",
        "-a",
        f"--filter=label=com.docker.compose.project={project.name}",
        f"--filter=label=com.docker.compose.service={service}",
        "--format={{.Names}}",
    )
    names = [n for n in done.stdout.split() if "_dso_" not in n]
    return sorted(names, key=lambda n: int(n.rsplit("-", 1)[-1]))


def all_containers(project: ComposeProject) -> list[str]:
    done = docker(
        "ps",
        "-a",
        f"--filter=label=com.docker.compose.project={project.name}",
        "--format={{.Names}}",
    )
    return sorted(done.stdout.split())


def container_id(name: str) -> str:
    return docker("inspect", "--format={{.Id}}", name).stdout.strip()


def inspect(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(docker("inspect", name).stdout)[0]
    return doc


def exec_in(name: str, *command: str) -> str | None:
    done = docker("exec", name, *command)
    return done.stdout if done.returncode == 0 else None


def counts(client: str) -> tuple[int, int, str]:
    text = exec_in(client, "cat", "/tmp/counts") or "0 0 none"
    ok, fail, last = text.split(maxsplit=2)
    return int(ok), int(fail), last.strip()


def stop_client(client: str) -> tuple[int, int, str]:
    exec_in(client, "touch", "/tmp/stop")
    wait_for(lambda: exec_in(client, "pidof", "sleep"))
    return counts(client)


def journal(project: ComposeProject) -> list[dict[str, Any]]:
    """Every journal entry of the project's dso home as a dict, oldest first."""
    state = project.dir.parent / "dso-home" / "state"
    return [entry.to_dict() for entry in Journal(state).entries()]


def rotation_dirs(project: ComposeProject) -> list[str]:
    """The ``<service>@<rotation>`` directories of the project on the tmpfs."""
    base = project.secrets_base / project.name
    return sorted(p.name for p in base.iterdir() if "@" in p.name) if base.is_dir() else []
