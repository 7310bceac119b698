"""A request in flight to the old container when it leaves the network finishes (the drain of
kernel/containers/drain.py), and is cut without it (`drain_timeout: 0s`): the test would fail if
the drain did nothing. Real httpd with a CGI that answers after 6 s, a real client through the
service alias, and the host's iptables (root on the Docker host, as in CI)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from kernel.containers.drain import unavailable
from tests.integration.compose_support import ComposeProject, docker, project
from tests.integration.rotation_compose_support import replicas, wait_for

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        unavailable() is not None, reason=f"cannot drain on this host: {unavailable()}"
    ),
]
__all__ = ["project"]

#: Serves $MSG at / and, after 6 s, at /cgi-bin/slow.
SLOW_WEB_SH = r"""
mkdir -p /www/cgi-bin
echo "$MSG" > /www/index.html
printf '#!/bin/sh\nsleep 6\necho Content-Type: text/plain\necho\necho "slow $MSG"\n' \
  > /www/cgi-bin/slow
chmod +x /www/cgi-bin/slow
exec httpd -f -p 80 -h /www
"""

COMPOSE = """
services:
  web:
    image: dso-test/busybox:1
    init: true
    stop_grace_period: 1s
    command: ["sh", "/scripts/web.sh"]
    volumes: ["./web.sh:/scripts/web.sh:ro"]
    environment:
      MSG: dso://app/msg
    healthcheck:
      test: ["CMD", "wget", "-q", "-O-", "http://127.0.0.1/"]
      interval: 30s
  client:
    image: dso-test/busybox:1
    init: true
    stop_grace_period: 1s
    command: ["sleep", "3600"]
"""


def rotate_during_a_slow_request(project: ComposeProject) -> tuple[int, str, str]:
    """Start a 6 s request through the alias, rotate `web` while it is in flight; the
    request's exit status and answer, and what rotate printed."""
    project.set_secret("app/msg", "new")
    (client,) = replicas(project, "client")
    request = subprocess.Popen(
        ["docker", "exec", client, "timeout", "15", "wget", "-q", "-O-", "http://web/cgi-bin/slow"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(0.5)  # the request has reached the old container
    rotated = project.dso("--log-level", "info", "rotate", "web")
    out, err = request.communicate(timeout=30)
    return request.returncode, out + err, rotated.stdout + rotated.stderr


def up(project: ComposeProject, config_extra: str = "") -> None:
    project.write("web.sh", SLOW_WEB_SH)
    project.write("compose.yaml", COMPOSE)
    if config_extra:
        config = Path(project.env["DSO_HOME"]) / "config.yaml"
        config.write_text(config.read_text() + config_extra)
    project.set_secret("app/msg", "old")
    project.dso("up", "-d")
    (web,) = replicas(project, "web")
    wait_for(lambda: docker("exec", web, "wget", "-q", "-O-", "http://127.0.0.1/").stdout)


def drain_rules() -> str:
    listed = subprocess.run(
        ["iptables", "-w", "-t", "nat", "-S", "PREROUTING"], capture_output=True, text=True
    )
    return "\n".join(line for line in listed.stdout.splitlines() if "dso-drain:" in line)


def test_a_request_in_flight_at_the_swap_finishes_on_the_old_container(
    project: ComposeProject,
) -> None:
    up(project)
    (old,) = replicas(project, "web")
    old_id = docker("inspect", "-f", "{{.Id}}", old).stdout.strip()

    status, answer, printed = rotate_during_a_slow_request(project)

    assert status == 0, answer
    assert answer.strip() == "slow old"  # the old container answered, after the swap
    assert "drained in" in printed
    (new,) = replicas(project, "web")
    assert docker("inspect", "-f", "{{.Id}}", new).stdout.strip() != old_id
    assert docker("exec", new, "wget", "-q", "-O-", "http://127.0.0.1/").stdout == "new\n"
    assert old_id[:12] not in drain_rules()  # the forwarding rule is gone


def test_without_the_drain_the_request_in_flight_is_cut(project: ComposeProject) -> None:
    up(project, "agent:\n  rotation:\n    drain_timeout: 0s\n")

    status, answer, printed = rotate_during_a_slow_request(project)

    assert status != 0, answer
    assert "drained in" not in printed


def test_recover_removes_the_rule_of_a_drain_a_killed_process_left(
    project: ComposeProject,
) -> None:
    # What a dso killed mid-drain leaves: a rule for an old container that is gone since.
    gone = "d5" + project.name[-10:]
    rule = [
        "PREROUTING",
        *("-d", "192.0.2.7/32", "-p", "tcp", "-m", "comment", "--comment", f"dso-drain:{gone}"),
        *("-j", "DNAT", "--to-destination", "192.0.2.8"),
    ]
    subprocess.run(["iptables", "-w", "-t", "nat", "-I", *rule], check=True)
    try:
        assert gone in drain_rules()
        project.dso("recover")
        assert gone not in drain_rules()
    finally:
        subprocess.run(["iptables", "-w", "-t", "nat", "-D", *rule], capture_output=True)
