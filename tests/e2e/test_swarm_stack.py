"""``docker dso stack deploy|rm|secrets`` on a one-node swarm inside the systemd test host (whose
own Docker Engine runs ``docker swarm init``: the shared test daemon never joins a swarm).

One scenario, one test function: deploy a two-service stack sharing one ``dsofile://`` secret →
every task reads it at its target path with its service user's uid/gid and mode 0400 → the
value changes → a second deploy creates the next version and both services roll to it → the
version no task uses any more is removed → ``dso://`` is refused with file and line → ``stack
rm`` removes the stack and its secret versions. ``doctor`` names the version nothing uses
until a deploy removes it. The canary values never reach the host's disk,
``docker service inspect``, dso's output or the rewritten stack file.

Run with ``-s`` to see the figures.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from tests.systemd_host import TestHost, source_test_host_fixture  # noqa: F401

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

IMAGE = "dso-test/busybox:1"
CANARY_V1 = "canary-swarm-v1-5d2e81"
CANARY_V2 = "canary-swarm-v2-b7c430"

STACK = """\
services:
  web:
    image: dso-test/busybox:1
    init: true
    command: ["sh", "-c", "exec httpd -f -p 80 -h /run/secrets/dso"]
    environment:
      SITE_FILE: dsofile://shop/site
    healthcheck:
      test: ["CMD-SHELL", "test -s $$SITE_FILE"]
      interval: 1s
    deploy:
      replicas: 2
  api:
    image: dso-test/busybox:1
    init: true
    user: "1000:1000"
    command: ["sh", "-c", "exec httpd -f -p 80 -h /run/app"]
    environment:
      - SITE_FILE=dsofile://shop/site
    labels:
      dso.secrets.path: /run/app
      dso.health.exec: test -s $$SITE_FILE
    deploy:
      replicas: 2
"""

ENV_STACK = """\
services:
  web:
    image: dso-test/busybox:1
    environment:
      PLAIN: hello
      TOKEN: dso://shop/site
"""


@pytest.fixture(scope="module")
def host(source_test_host: TestHost) -> Iterator[TestHost]:
    h = source_test_host
    h.load_image(IMAGE)
    h.sh("docker swarm init --advertise-addr 127.0.0.1 >/dev/null && docker dso init >/dev/null")
    h.sh("mkdir -p /srv/shop && cat > /srv/shop/stack.yaml", input=STACK)
    h.sh("cat > /srv/shop/env-stack.yaml", input=ENV_STACK)
    yield h


def _set(host: TestHost, value: str) -> None:
    host.sh("docker dso secret set shop/site >/dev/null", input=value + "\n")


def _deploy(host: TestHost, *extra: str) -> dict[str, object]:
    done = host.sh(
        "cd /srv/shop && docker dso stack deploy -c stack.yaml shop --json "
        "--resolve-image never " + " ".join(extra)
    )
    doc: dict[str, object] = json.loads(done.stdout)
    return doc


def _tasks(host: TestHost) -> dict[str, list[str]]:
    """Service → one ``uid:gid mode value`` line per running task."""
    script = r"""
    for c in $(docker ps -q --filter label=com.docker.stack.namespace=shop); do
      svc=$(docker inspect -f '{{index .Config.Labels "com.docker.swarm.service.name"}}' "$c")
      echo "$svc $(docker exec "$c" sh -c 'stat -c "%u:%g %a" "$SITE_FILE"; cat "$SITE_FILE"' \
        | tr '\n' ' ')"
    done
    """
    found: dict[str, list[str]] = {}
    for line in host.sh(script).stdout.splitlines():
        service, _, rest = line.partition(" ")
        found.setdefault(service, []).append(rest.strip())
    return found


def _wait_all(host: TestHost, expected: dict[str, str], timeout: float = 90.0) -> float:
    """Seconds until every task of each service (2 each, no others) shows ``expected``."""
    began = time.monotonic()
    while True:
        tasks = _tasks(host)
        if all(sorted(tasks.get(s, [])) == [line, line] for s, line in expected.items()):
            return time.monotonic() - began
        if time.monotonic() - began > timeout:
            raise AssertionError(f"tasks never converged to {expected}: {tasks}")
        time.sleep(0.5)


def _doctor(host: TestHost) -> dict[str, dict[str, str]]:
    """The doctor's checks by id (it fails here anyway: no agent runs)."""
    done = host.exec("docker", "dso", "doctor", "--json", check=False)
    return {c["id"]: c for c in json.loads(done.stdout)["checks"]}


def _secrets(host: TestHost) -> list[dict[str, object]]:
    doc = json.loads(host.exec("docker", "dso", "stack", "secrets", "shop", "--json").stdout)
    return list(doc["secrets"])


def test_stack_deploy_rotate_by_redeploy_refuse_env_and_remove(host: TestHost) -> None:
    outputs: list[str] = []

    # -- deploy: one versioned secret shared by two services --------------------------------
    _set(host, CANARY_V1)
    dry = host.sh("cd /srv/shop && docker dso stack deploy -c stack.yaml shop --dry-run --print")
    outputs += [dry.stdout, dry.stderr]
    assert "external: true" in dry.stdout and "/run/app/SITE_FILE" in dry.stdout
    assert "warning:" not in dry.stderr, "both services have a healthcheck"
    assert "this daemon is a swarm manager" in dry.stderr
    assert host.sh("docker secret ls -q").stdout.strip() == "", "a dry run creates nothing"
    began = time.monotonic()
    first = _deploy(host)
    outputs.append(json.dumps(first))
    (entry,) = first["secrets"].values()  # type: ignore[attr-defined]
    v1 = entry["name"]
    assert v1.startswith("shop_shop_site_") and entry["created"] is True
    assert sorted(entry["services"]) == ["api", "web"]
    deployed = _wait_all(
        host, {"shop_web": f"0:0 400 {CANARY_V1}", "shop_api": f"1000:1000 400 {CANARY_V1}"}
    )
    print(f"\ndeploy → 4 tasks reading the secret: {time.monotonic() - began:.1f} s")

    # The label became api's healthcheck (what the engine gates its updates on).
    health = host.exec(
        "docker",
        "service",
        "inspect",
        "-f",
        "{{json .Spec.TaskTemplate.ContainerSpec.Healthcheck}}",
        "shop_api",
    ).stdout
    assert json.loads(health)["Test"] == ["CMD-SHELL", "test -s $SITE_FILE"]

    # Deploying again with the same value creates nothing and keeps the tasks.
    again = _deploy(host)
    assert [s["created"] for s in again["secrets"].values()] == [False]  # type: ignore[attr-defined]

    # -- a new value: the next deploy creates the next version and both services roll ------------
    _set(host, CANARY_V2)
    # Every process's argv, sampled while the deploy runs (into /dev/shm: not the disk).
    host.sh(
        "nohup sh -c 'while [ ! -f /dev/shm/stop ]; do cat /proc/[0-9]*/cmdline "
        ">> /dev/shm/argv 2>/dev/null; done' >/dev/null 2>&1 &"
    )
    began = time.monotonic()
    second = _deploy(host)
    host.sh("touch /dev/shm/stop; sleep 0.5")
    argv = host.sh("tr '\\0' '\\n' < /dev/shm/argv | sort -u; rm -f /dev/shm/argv /dev/shm/stop")
    words = set(argv.stdout.splitlines())
    assert "--compose-file" in words, "the sampler saw dso's `docker stack deploy`"
    outputs.append(argv.stdout)
    (entry,) = second["secrets"].values()  # type: ignore[attr-defined]
    v2 = entry["name"]
    assert v2 != v1 and entry["created"] is True
    rolled = _wait_all(
        host, {"shop_web": f"0:0 400 {CANARY_V2}", "shop_api": f"1000:1000 400 {CANARY_V2}"}
    )
    print(f"redeploy with a new value → 4 tasks on it: {time.monotonic() - began:.1f} s")
    listed = {s["name"]: s for s in _secrets(host)}
    assert set(listed) == {v1, v2}
    assert listed[v2]["version"] == "local:2" and listed[v1]["version"] == "local:1"
    assert {u["service"] for u in listed[v2]["used_by"] if u["via"] == "spec"} == {  # type: ignore[attr-defined]
        "shop_web",
        "shop_api",
    }
    # Once the old tasks are gone, the next deploy removes the version nobody uses.
    deadline = time.monotonic() + 60
    while any(s["used_by"] for s in _secrets(host) if s["name"] == v1):
        assert time.monotonic() < deadline, _secrets(host)
        time.sleep(0.5)
    doctor = _doctor(host)
    assert doctor["swarm.node"]["status"] == "ok" and "manager" in doctor["swarm.node"]["finding"]
    assert doctor["swarm.secrets"]["status"] == "warn" and v1 in doctor["swarm.secrets"]["finding"]
    third = _deploy(host)
    assert third["removed"] == [v1]
    assert [s["name"] for s in _secrets(host)] == [v2]
    assert _doctor(host)["swarm.secrets"]["status"] == "ok"

    # -- the canary never shows: service specs, output, disk -------------------------------------
    inspect = host.sh("docker service inspect shop_web shop_api; docker secret inspect " + v2)
    outputs += [inspect.stdout, host.exec("docker", "dso", "stack", "secrets").stdout]
    for text in outputs:
        assert CANARY_V1 not in text and CANARY_V2 not in text
    # Every file of the host's disks (its root and Docker's volume), not the tmpfs mounts where
    # the tasks' secrets live (-xdev), nor the read-only checkout of this test.
    on_disk = host.sh(
        "for d in / /var/lib/docker; do find $d -xdev -type f -size -50M -print0; done "
        f"| xargs -0 grep -l -F -e {CANARY_V1[:-1]} -e {CANARY_V2[:-1]} || true",
        timeout=300,
    ).stdout
    assert on_disk.strip() == ""

    # -- dso:// is refused for swarm, with file:line and a suggestion ----------------------------
    refused = host.sh("cd /srv/shop && docker dso stack deploy -c env-stack.yaml envy", check=False)
    assert refused.returncode == 3, refused.stderr
    assert "env-stack.yaml:6: service web, TOKEN: dso://shop/site: dso:// cannot" in refused.stderr
    assert "dsofile://shop/site" in refused.stderr
    assert "envy" not in host.sh("docker service ls --format '{{.Name}}'").stdout

    # -- stack rm: the stack, then its secret versions -------------------------------------------
    began = time.monotonic()
    removed = json.loads(host.exec("docker", "dso", "stack", "rm", "shop", "--json").stdout)
    print(f"stack rm → secrets removed: {time.monotonic() - began:.1f} s")
    assert removed == {"stack": "shop", "removed": [v2], "kept": []}
    assert host.sh("docker secret ls -q; docker service ls -q").stdout.strip() == ""
    print(f"(first deploy converged in {deployed:.1f} s, the roll in {rolled:.1f} s)")
