"""`docker dso up` end to end on the real daemon and Compose v2: delivery and secret hygiene.

The canaries are known random values; after every run they must not appear in dso's output,
in any process's argv, in `docker inspect` (file delivery), nor in files on host disk.
"""

from __future__ import annotations

import json
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kernel.injection.tmpfs import TMPFS_MAGIC, filesystem_magic
from tests.integration.compose_support import (
    DSO,
    IMAGE,
    ArgvWatcher,
    ComposeProject,
    docker,
    host_files_containing,
    project,
)

pytestmark = pytest.mark.integration
__all__ = ["project"]

APP = f"""
services:
  app:
    image: {IMAGE}
    command: ["sh", "-c", "sleep 600"]
    stop_grace_period: 1s
    environment:
      DB_PASSWORD: dso://app/db_password
      API_KEY_FILE: dsofile://app/api_key
      PRICE: "5$$"
"""


def needle(canary: str) -> str:
    """The unique first word of a canary (JSON or shell quoting cannot disguise it)."""
    return canary.split()[0]


@pytest.fixture
def canaries() -> tuple[str, str]:
    """An env and a file secret; what must never leak is found by :func:`needle`."""
    # `$`, quotes and spaces: compose must deliver them verbatim, not interpolate them.
    env = "CANARY-env-" + secrets.token_hex(12) + " $HOME ${X:-y} $$ 'q\""
    return env, "CANARY-file-" + secrets.token_hex(12) + "\n$HOME"


def test_env_and_file_injection_end_to_end(
    project: ComposeProject, canaries: tuple[str, str]
) -> None:
    env_canary, file_canary = canaries
    project.set_secret("app/db_password", env_canary)
    project.set_secret("app/api_key", file_canary)
    project.write("compose.yaml", APP)
    with ArgvWatcher(needle(env_canary), needle(file_canary)) as argv:
        up = project.dso("up", "-d")
    assert argv.samples > 0 and argv.hits == [], "a secret value reached a command line"

    # The app reads exactly the values.
    assert project.exec("app", "sh", "-c", 'printf %s "$DB_PASSWORD"') == env_canary
    assert project.exec("app", "sh", "-c", 'cat "$API_KEY_FILE"') == file_canary
    assert project.exec("app", "sh", "-c", 'printf %s "$API_KEY_FILE"') == (
        "/run/secrets/dso/API_KEY_FILE"
    )
    assert project.exec("app", "sh", "-c", 'printf %s "$PRICE"') == "5$"
    mode = project.exec("app", "stat", "-L", "-c", "%a %u:%g", "/run/secrets/dso/API_KEY_FILE")
    assert mode.strip() == "400 0:0"

    # docker inspect: the file's value never; its host directory is a read-only tmpfs mount.
    info = project.inspect("app")
    assert needle(file_canary) not in json.dumps(info)
    assert needle(env_canary) in json.dumps(info), "dso:// is visible, as the warning says"
    (mount,) = [m for m in info["Mounts"] if m["Destination"] == "/run/secrets/dso"]
    assert mount["RW"] is False
    assert filesystem_magic(Path(mount["Source"])) == TMPFS_MAGIC
    assert mount["Source"] == str(project.secrets_base / project.name / "app")
    labels = info["Config"]["Labels"]
    assert json.loads(labels["dso.refs"]) == {
        "API_KEY_FILE": "dsofile://app/api_key",
        "DB_PASSWORD": "dso://app/db_password",
    }
    assert json.loads(labels["dso.versions"]) == {
        "API_KEY_FILE": "local:1",
        "DB_PASSWORD": "local:1",
    }

    # Nothing on host disk holds the file secret: overlay dirs, the container's own directory,
    # the project and DSO_HOME (the vault is encrypted).
    graph = info["GraphDriver"]["Data"]
    for key in ("UpperDir", "WorkDir"):
        assert host_files_containing(Path(graph[key]), needle(file_canary).encode()) == []
    container_dir = Path("/var/lib/docker/containers") / info["Id"]
    assert host_files_containing(container_dir, needle(file_canary).encode()) == []
    home = Path(project.env["DSO_HOME"])
    for canary in canaries:
        assert host_files_containing(home.parent, needle(canary).encode()) == []

    assert "warning: dso:// puts secret values" in up.stderr
    assert up.stderr.count("dso:// puts secret values") == 1
    project.assert_no_output_contains(*map(needle, canaries))


def test_restart_keeps_files_and_a_new_version_is_picked_up(
    project: ComposeProject, canaries: tuple[str, str]
) -> None:
    env_canary, file_canary = canaries
    project.set_secret("app/db_password", env_canary)
    project.set_secret("app/api_key", file_canary)
    project.write("compose.yaml", APP)
    project.dso("up", "-d")
    first = project.container("app")
    assert docker("restart", "-t", "1", first).returncode == 0
    assert project.exec("app", "cat", "/run/secrets/dso/API_KEY_FILE") == file_canary

    # A new value: `up` again recreates the container (its labels changed) with both values.
    project.set_secret("app/api_key", file_canary + "-v2")
    project.set_secret("app/db_password", env_canary + "-v2")
    project.dso("up", "-d")
    assert project.container("app") != first
    assert project.exec("app", "cat", "/run/secrets/dso/API_KEY_FILE") == file_canary + "-v2"
    assert project.exec("app", "sh", "-c", 'printf %s "$DB_PASSWORD"') == env_canary + "-v2"
    labels = project.inspect("app")["Config"]["Labels"]
    assert json.loads(labels["dso.versions"])["API_KEY_FILE"] == "local:2"
    # Exactly one version directory remains on the tmpfs.
    service_dir = project.secrets_base / project.name / "app"
    assert len([p for p in service_dir.iterdir() if p.name.startswith("..20")]) == 1

    # Unchanged secrets: `up` leaves the container alone.
    same = project.container("app")
    project.dso("up", "-d")
    assert project.container("app") == same

    # down removes containers and the files.
    project.dso("down")
    assert not (project.secrets_base / project.name).exists()
    assert (
        docker("ps", "-aq", f"--filter=label=com.docker.compose.project={project.name}").stdout
        == ""
    )
    project.assert_no_output_contains(*map(needle, canaries))


@pytest.fixture(scope="module")
def no_shell_image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """FROM scratch with only a static busybox at /busybox: no /bin/sh, like distroless."""
    busybox = shutil.which("busybox") or "/bin/busybox"
    context = tmp_path_factory.mktemp("noshell")
    shutil.copy(busybox, context / "busybox")
    (context / "Dockerfile").write_text(
        "FROM scratch\nCOPY busybox /busybox\n"
        'ENTRYPOINT ["/busybox", "cat", "/run/secrets/dso/DB_PASSWORD"]\n'
    )
    tag = f"dsotest-noshell:{secrets.token_hex(4)}"
    built = subprocess.run(
        ["docker", "build", "-q", "-t", tag, str(context)], capture_output=True, text=True
    )
    assert built.returncode == 0, built.stderr
    try:
        yield tag
    finally:
        docker("rmi", "-f", tag)


def test_an_image_without_a_shell_reads_its_file_at_its_first_instruction(
    project: ComposeProject, no_shell_image: str, canaries: tuple[str, str]
) -> None:
    _env, file_canary = canaries
    project.set_secret("app/db_password", file_canary)
    project.write(
        "compose.yaml",
        f"""
        services:
          distroless:
            image: {no_shell_image}
            user: "65532:65532"
            environment:
              DB_PASSWORD: dsofile://app/db_password
        """,
    )
    project.dso("up", "-d")
    container = project.container("distroless")
    assert docker("wait", container).stdout.strip() == "0"
    assert docker("logs", container).stdout == file_canary
    assert needle(file_canary) not in docker("inspect", container).stdout
    project.assert_no_output_contains(needle(file_canary))


def test_attached_up_stops_the_project_when_dso_is_told_to(
    project: ComposeProject, canaries: tuple[str, str]
) -> None:
    project.set_secret("app/db_password", canaries[0])
    project.set_secret("app/api_key", canaries[1])
    project.write("compose.yaml", APP)
    process = subprocess.Popen(
        [DSO, "up"],
        cwd=project.dir,
        env=project.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            running = docker(
                "ps", "-q", f"--filter=label=com.docker.compose.project={project.name}"
            ).stdout
            if running.strip():
                break
            time.sleep(0.2)
        else:
            pytest.fail("the attached up never started its container")
        # Not from a terminal: dso forwards the signal to compose, which stops the containers.
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert "Stopping" in output or "Stopped" in output
    state = project.inspect("app")["State"]
    assert state["Running"] is False
    for canary in canaries:
        assert needle(canary) not in output
