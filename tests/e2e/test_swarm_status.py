"""``docker dso status`` on a swarm manager, inside the systemd test host (its own Docker Engine
runs ``docker swarm init``; the shared test daemon never joins a swarm).

One test function: a two-service stack sharing one ``dsofile://`` secret is deployed with
``docker dso stack deploy``; ``status --json`` without an agent (exit 10, Docker asked once) and
then from a running local agent's socket (its last look at the swarm) names this node a manager
and lists both services with the version their spec mounts, valid against docs/status-json.md's
schema; the text output has the swarm lines. The canary value appears in none of it.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from tests.status_schema import validate_status
from tests.systemd_host import TestHost, source_test_host_fixture  # noqa: F401

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

IMAGE = "dso-test/busybox:1"
CANARY = "canary-swarm-status-8e41c2"
STACK = """\
services:
  web:
    image: dso-test/busybox:1
    command: ["sleep", "3600"]
    environment:
      SITE_FILE: dsofile://shop/site
  api:
    image: dso-test/busybox:1
    command: ["sleep", "3600"]
    environment:
      SITE_FILE: dsofile://shop/site
"""


def _status(host: TestHost) -> tuple[int, dict[str, Any]]:
    done = host.exec("docker", "dso", "status", "--json", check=False)
    return done.returncode, json.loads(done.stdout)


def test_status_on_a_manager_lists_dsos_services_and_their_versions(
    source_test_host: TestHost,
) -> None:
    host = source_test_host
    host.load_image(IMAGE)
    host.sh("docker swarm init --advertise-addr 127.0.0.1 >/dev/null && docker dso init >/dev/null")
    host.sh("docker dso secret set shop/site >/dev/null", input=CANARY + "\n")
    host.sh("mkdir -p /srv/shop && cat > /srv/shop/stack.yaml", input=STACK)
    host.sh("cd /srv/shop && docker dso stack deploy -c stack.yaml shop --resolve-image never")
    [version] = json.loads(host.exec("docker", "dso", "stack", "secrets", "shop", "--json").stdout)[
        "secrets"
    ]
    outputs: list[str] = []

    def check(doc: dict[str, Any]) -> None:
        validate_status(doc)
        swarm = doc["swarm"]
        assert swarm["role"] == "manager" and swarm["state"] == "active", swarm
        assert [s["name"] for s in swarm["services"]] == ["shop_api", "shop_web"]
        for service in swarm["services"]:
            assert service["stack"] == "shop" and service["lock"] == f"swarm-{service['name']}"
            [mounted] = service["secrets"].values()
            assert mounted["secret"] == version["name"]
            assert mounted["reference"] == "dsofile://shop/site"
            assert mounted["version"] == version["version"]
        outputs.append(json.dumps(doc))

    # -- no agent: the state files, and Docker asked once -----------------------------------
    code, offline = _status(host)
    assert code == 10 and offline["source"] == "state_files"
    check(offline)

    # -- a local agent: its last look at the swarm, from the socket --------------------------
    host.sh("nohup docker dso agent >/tmp/agent.log 2>&1 &")
    try:
        deadline = time.monotonic() + 60
        while True:
            code, live = _status(host)
            if code == 0 and live["swarm"]["services"]:
                break
            assert time.monotonic() < deadline, host.sh("cat /tmp/agent.log").stdout
            time.sleep(0.5)
        assert live["source"] == "agent"
        check(live)
        text = host.exec("docker", "dso", "status").stdout
        outputs.append(text)
        assert "swarm: manager (node " in text and "2 dso services" in text
        assert "  shop_web (stack shop): " in text
    finally:
        host.exec("docker", "dso", "agent", "stop", check=False)
    assert all(CANARY not in output for output in outputs)
