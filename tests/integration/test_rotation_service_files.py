"""File secrets of compose services during rotations: a multi-key update is seen all-or-nothing
inside the container (reload), and a rolling rotation gives the new container its own directory
so the old one keeps reading its old files until it stops (and keeps them on a rollback)."""

from __future__ import annotations

import pytest

from kernel.injection.atomic_dir import current_files
from tests.integration.compose_support import ComposeProject
from tests.integration.rotation_compose_support import (
    container_id,
    exec_in,
    inspect,
    journal,
    project,
    replicas,
    rotation_dirs,
    wait_for,
)

pytestmark = pytest.mark.integration
__all__ = ["project"]

#: Reads A and B through one resolution of ..data (how a reader gets all-or-nothing); a pair from
#: two versions goes to /tmp/mixed, every version seen to /tmp/seen, SIGHUPs to /tmp/hups.
READER = r"""
mkdir -p /tmp; trap 'echo hup >> /tmp/hups' HUP
s=/run/secrets/dso
while true; do
  d=$(readlink $s/..data)
  if a=$(cat $s/$d/A 2>/dev/null) && b=$(cat $s/$d/B 2>/dev/null); then
    [ "${a%%-*}" = "${b%%-*}" ] || echo "$a $b" >> /tmp/mixed
    grep -qx "${a%%-*}" /tmp/seen 2>/dev/null || echo "${a%%-*}" >> /tmp/seen
    echo "$a" > /tmp/last
  fi
  usleep 2000
done
"""


def service(labels: str, health: str) -> str:
    return f"""services:
  web:
    image: dso-test/busybox:1
    init: true
    stop_grace_period: 1s
    command: ["sh", "/scripts/reader.sh"]
    volumes: ["./reader.sh:/scripts/reader.sh:ro"]
    environment:
      A: dsofile://app/a
      B: dsofile://app/b
    healthcheck:
      test: ["CMD-SHELL", "{health}"]
      interval: 30s
{labels}"""


def set_pair(project: ComposeProject, version: int) -> None:
    project.set_secret("app/a", f"v{version}-a")
    project.set_secret("app/b", f"v{version}-b")


def test_multi_key_reload_is_all_or_nothing_inside_the_container(project: ComposeProject) -> None:
    project.write("reader.sh", READER)
    labels = "    labels:\n      dso.reload.signal: SIGHUP\n"
    project.write("compose.yaml", service(labels, "test -s /tmp/last"))
    set_pair(project, 1)
    project.dso("up", "-d")
    (web,) = replicas(project, "web")
    web_id = container_id(web)
    wait_for(lambda: exec_in(web, "cat", "/tmp/last") == "v1-a\n")

    for version in range(2, 7):
        set_pair(project, version)
        done = project.dso("rotate", "web")
        assert f"{web}: rotated with reload" in done.stdout

    wait_for(lambda: exec_in(web, "cat", "/tmp/last") == "v6-a\n")
    wait_for(lambda: (exec_in(web, "cat", "/tmp/hups") or "").count("hup") == 5)
    assert exec_in(web, "cat", "/tmp/mixed") is None, "a reader saw a mix of versions"
    assert container_id(web) == web_id
    assert [e["strategy"] for e in journal(project)] == ["reload"] * 5
    assert rotation_dirs(project) == []


def test_rolling_gives_the_new_container_its_own_files(project: ComposeProject) -> None:
    project.write("reader.sh", READER)
    # The health check refuses version 2: that rotation rolls back.
    project.write("compose.yaml", service("", "! grep -q v2 /run/secrets/dso/A"))
    set_pair(project, 1)
    project.dso("up", "-d")
    (web,) = replicas(project, "web")
    web_id = container_id(web)
    shared = project.secrets_base / project.name / "web"
    wait_for(lambda: exec_in(web, "cat", "/tmp/last") == "v1-a\n")

    set_pair(project, 2)
    failed = project.dso("rotate", "web", "--timeout", "2", ok=False)

    assert failed.returncode == 9 and "rolled back" in failed.stdout
    # The old container never saw version 2, and the rotation's directory is gone.
    assert container_id(web) == web_id
    assert exec_in(web, "cat", "/tmp/seen") == "v1\n"
    assert rotation_dirs(project) == []

    set_pair(project, 3)
    project.dso("rotate", "web")

    (entry,) = [e for e in journal(project) if e["status"] == "completed"]
    assert rotation_dirs(project) == [f"web@{entry['id']}"]
    mounts = {m["Destination"]: m["Source"] for m in inspect(web)["Mounts"]}
    assert mounts["/run/secrets/dso"] == entry["files_dir"] == str(shared) + f"@{entry['id']}"
    wait_for(lambda: exec_in(web, "cat", "/tmp/last") == "v3-a\n")
    assert exec_in(web, "cat", "/tmp/seen") == "v3\n"  # the new container only ever saw v3
    assert exec_in(web, "cat", "/tmp/mixed") is None
    # The directory the old container read was never switched.
    assert current_files(shared) == {"A": b"v1-a", "B": b"v1-b"}
