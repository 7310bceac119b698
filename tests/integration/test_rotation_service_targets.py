"""Several targets and several secrets: services sharing a secret rotate independently and in
parallel, changed secrets are coalesced into one rotation, and one lock per service excludes
concurrent rotations from other processes, whether they name the service or its container."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.integration.compose_support import DSO, ComposeProject
from tests.integration.rotation_compose_support import (
    WEB_SERVICE,
    container_id,
    exec_in,
    inspect,
    journal,
    project,
    replicas,
    wait_for,
    write_scripts,
)

pytestmark = pytest.mark.integration
__all__ = ["project"]

#: A second service on the same secret whose health check refuses the new value.
PICKY = """
  picky:
    image: dso-test/busybox:1
    init: true
    stop_grace_period: 1s
    command: ["sleep", "3600"]
    environment:
      MSG: dso://app/msg
    healthcheck:
      test: ["CMD-SHELL", "[ \\"$$MSG\\" = v1 ]"]
      interval: 30s
"""


def test_services_sharing_a_secret_rotate_independently(project: ComposeProject) -> None:
    write_scripts(project)
    project.write(
        "compose.yaml",
        "services:\n  web:" + WEB_SERVICE + "    environment:\n      MSG: dso://app/msg\n" + PICKY,
    )
    project.set_secret("app/msg", "v1")
    project.dso("up", "-d")
    (web,) = replicas(project, "web")
    (picky,) = replicas(project, "picky")
    picky_id = container_id(picky)
    project.set_secret("app/msg", "v2")

    done = project.dso("rotate", "picky", "web", "--timeout", "3", "--json", ok=False)

    assert done.returncode == 9, done.stderr
    assert "rotation failed for picky" in done.stderr
    doc = json.loads(done.stdout)
    targets = {t["target"]: t for t in doc["targets"]}
    assert targets["web"]["status"] == "completed"
    assert targets["picky"]["status"] == "failed"
    by_service = {r["service"]: r for r in doc["rotations"]}
    assert by_service["web"]["status"] == "completed"
    assert by_service["picky"]["status"] == "rolled_back"
    assert "health check failed" in by_service["picky"]["error"]
    # web was not held up by picky's 3 s health gate: they ran side by side.
    entries = {e["target"]: e for e in journal(project)}
    assert entries[web]["finished_at"] < entries[picky]["finished_at"]
    assert entries[web]["started_at"] < entries[picky]["started_at"] + 1.0
    # web serves the new value; picky was rolled back and serves the old one, untouched.
    assert exec_in(web, "wget", "-q", "-O-", "http://127.0.0.1/") == "v2\n"
    assert container_id(picky) == picky_id
    assert "MSG=v1" in inspect(picky)["Config"]["Env"]


def test_three_changed_secrets_make_one_rotation(project: ComposeProject) -> None:
    write_scripts(project)
    project.write(
        "compose.yaml",
        "services:\n  web:"
        + WEB_SERVICE
        + "    environment:\n      MSG: dso://app/msg\n      USER_NAME: dso://app/user\n"
        + "      TOKEN_FILE: dsofile://app/token\n",
    )
    for name in ("msg", "user", "token"):
        project.set_secret(f"app/{name}", f"{name}-1")
    project.dso("up", "-d")
    (web,) = replicas(project, "web")
    old_id = container_id(web)
    for name in ("msg", "user", "token"):
        project.set_secret(f"app/{name}", f"{name}-2")

    done = project.dso("rotate", "web", "--json")

    (result,) = json.loads(done.stdout)["rotations"]
    assert result["status"] == "completed" and result["old_container"] == old_id[:12]
    assert sorted(c["variable"] for c in result["plan"]["changed"]) == [
        "MSG",
        "TOKEN_FILE",
        "USER_NAME",
    ]
    (entry,) = journal(project)
    assert entry["versions"] == {
        "MSG": {"from": "local:1", "to": "local:2"},
        "TOKEN_FILE": {"from": "local:1", "to": "local:2"},
        "USER_NAME": {"from": "local:1", "to": "local:2"},
    }
    env = inspect(web)["Config"]["Env"]
    assert "MSG=msg-2" in env and "USER_NAME=user-2" in env
    assert exec_in(web, "cat", "/run/secrets/dso/TOKEN_FILE") == "token-2"


#: Each health probe takes 1.5 s, so a rotation holds the service's lock that long.
SLOW_WEB = """
  web:
    image: dso-test/busybox:1
    init: true
    stop_grace_period: 1s
    command: ["sh", "/scripts/web.sh"]
    volumes: ["./web.sh:/scripts/web.sh:ro"]
    healthcheck:
      disable: true
    labels:
      dso.health.exec: "sleep 4"
    environment:
      MSG: dso://app/msg
"""


def test_one_lock_per_service_across_processes(project: ComposeProject) -> None:
    write_scripts(project)
    project.write("compose.yaml", "services:" + SLOW_WEB)
    project.set_secret("app/msg", "v1")
    project.dso("up", "-d")
    (web,) = replicas(project, "web")
    project.set_secret("app/msg", "v2")

    first = subprocess.Popen(
        [DSO, "rotate", "web"],
        cwd=project.dir,
        env=project.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for(lambda: journal(project) or first.poll() is not None, timeout=30)
    assert first.poll() is None, first.communicate()
    # By service name, waiting: decides on what the first rotation left.
    waiting = subprocess.Popen(
        [DSO, "rotate", "web", "--wait", "60", "--json"],
        cwd=project.dir,
        env=project.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # By container name, refused at once: the container's lock is its service's.
    by_name = project.dso("rotate", web, "--wait", "0", ok=False)
    out, err = first.communicate(timeout=60)
    waited, waited_err = waiting.communicate(timeout=60)

    assert first.returncode == 0, err
    assert f"{web}: rotated with rolling" in out
    assert by_name.returncode == 9
    assert (
        f"another rotation of {web} (service web of project {project.name}) is in progress "
        f"(pid {first.pid}" in by_name.stderr
    )
    assert "nothing was changed" in by_name.stderr and "rotated" not in by_name.stdout
    assert waiting.returncode == 0, waited_err
    (result,) = json.loads(waited)["rotations"]
    assert result["status"] == "up_to_date" and result["lock_waited"] > 0.5
    assert [e["status"] for e in journal(project)] == ["completed"]
    assert exec_in(web, "wget", "-q", "-O-", "http://127.0.0.1/") == "v2\n"
