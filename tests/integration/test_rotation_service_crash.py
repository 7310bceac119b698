"""kill -9 during the rotation of a compose service with a file secret, at every rolling step:
`docker dso recover` tests the *service's* lock, converges to one serving container under the
replica's name, and leaves no rotation directory that no container mounts."""

from __future__ import annotations

import json
import subprocess

import pytest

from kernel.rotation.states import SEQUENCES, Strategy
from tests.integration.compose_support import DSO, ComposeProject
from tests.integration.rotation_compose_support import (
    all_containers,
    exec_in,
    inspect,
    journal,
    project,
    replicas,
    rotation_dirs,
)

pytestmark = pytest.mark.integration
__all__ = ["project"]

COMPOSE = """services:
  web:
    image: dso-test/busybox:1
    init: true
    stop_grace_period: 1s
    command:
      - sh
      - -c
      - mkdir -p /www && cp $$TOKEN_FILE /www/index.html && exec httpd -f -p 80 -h /www
    environment:
      TOKEN_FILE: dsofile://app/token
    healthcheck:
      test: ["CMD", "wget", "-q", "-O-", "http://127.0.0.1/"]
      interval: 30s
"""

STEPS = [step.value for step in SEQUENCES[Strategy.ROLLING]]


@pytest.mark.parametrize("step", STEPS)
def test_recover_converges_a_killed_service_rotation(project: ComposeProject, step: str) -> None:
    project.write("compose.yaml", COMPOSE)
    project.set_secret("app/token", "t1")
    project.dso("up", "-d")
    (web,) = replicas(project, "web")
    project.set_secret("app/token", "t2")

    killed = subprocess.run(
        [DSO, "rotate", "web"],
        cwd=project.dir,
        env={**project.env, "DSO_TEST_MODE": "1", "DSO_FAULT_KILL_AFTER_STEP": step},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert killed.returncode == -9, killed.stderr
    (entry,) = journal(project)
    assert entry["status"] == "in_progress" and entry["lock_key"] == f"service-{project.name}.web"

    recovered = project.dso("recover", "--json")
    report = json.loads(recovered.stdout)
    assert [r["status"] for r in report["recovered"]] == ["recovered"]

    assert all_containers(project) == [web]
    assert inspect(web)["State"]["Running"]
    served = exec_in(web, "wget", "-q", "-O-", "http://127.0.0.1/")
    assert served in ("t1", "t2")
    mounted = {m["Source"] for m in inspect(web)["Mounts"]}
    assert all(
        str(project.secrets_base / project.name / d) in mounted for d in rotation_dirs(project)
    )

    again = project.dso("rotate", "web")
    assert ("up to date" in again.stdout) == (served == "t2")
    assert exec_in(web, "wget", "-q", "-O-", "http://127.0.0.1/") == "t2"
    assert all_containers(project) == [web]
