"""Rotating Swarm services, on a one-node swarm inside a systemd test host (its own Docker
Engine: the shared test daemon never enters swarm mode).

A stack of two services (``web``, ``api``: 2 replicas each, an app that listens 2 s after it
starts, a healthcheck, ``endpoint_mode: dnsrr``) shares one ``dsofile://`` secret, deployed with
``docker dso stack deploy``; a looping client on the stack's overlay network asks both all the
time. The nested engine has no IPVS (the service VIP does not route here), so the services use
DNS round robin; the engine takes a task out of DNS before it stops it either way.

- ``test_a_changed_secret_rolls_both_services_and_a_failing_one_rolls_back`` (the CLI, local
  mode): the secret changes → ``docker dso rotate shop`` → both services on the new value, no
  failed request, the old version removed; a value the healthcheck refuses → the engine rolls
  back, dso says so (exit 9), the refused version is removed and the services keep serving;
  the canary is never on disk, in any argv seen while rotating, or in ``docker service inspect``;
- ``test_a_killed_rotation_converges_when_the_agent_starts_and_restarts`` (the host agent under
  systemd): ``rotate`` killed between "secret created" and "service updated" → the agent's
  start-up recovery removes the new version and rotates again; then the agent itself rotates a
  change, is SIGKILLed while the engine rolls the tasks, systemd restarts it and its recovery
  finishes the rotation: no version leaked, no service without its secret, no failed request.

Run with ``-s`` for the figures.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.systemd_host import TestHost, build_image

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

IMAGE = "dso-test/busybox:1"
STACK = "shop"
SERVICES = ("web", "api")

#: Two services sharing one secret, and a client asking both in a loop (failures one per line).
STACK_FILE = """\
version: "3.8"
services:
{apps}
  client:
    image: dso-test/busybox:1
    init: true
    command:
      - sh
      - -c
      - |
        mkdir -p /tmp; ok=0; fail=0
        while [ ! -f /tmp/stop ]; do
          for svc in web api; do
            if timeout 2 wget -q -O /dev/null http://$$svc/SITE_FILE 2>/tmp/err; then
              ok=$$((ok+1))
            else
              rc=$$?; fail=$$((fail+1))
              echo "$$svc rc=$$rc after $$ok ok: $$(cat /tmp/err)" >> /tmp/failures
            fi
          done
          echo "$$ok $$fail" > /tmp/counts.tmp && mv /tmp/counts.tmp /tmp/counts
        done
        exec sleep 600
"""
#: An app that listens 2 s after it starts and serves its secret file; the healthcheck refuses
#: a value containing "bad". Neither the healthcheck nor the client keeps what it was served:
#: Docker stores a healthcheck's output (config.v2.json, `docker inspect`) and a container's
#: files are on disk.
APP = """\
  {name}:
    image: dso-test/busybox:1
    init: true
    stop_grace_period: 2s
    command: ["sh", "-c", "sleep 2; exec httpd -f -p 80 -h /run/secrets/dso"]
    environment:
      SITE_FILE: dsofile://shop/site
    healthcheck:
      test: ["CMD-SHELL", "! grep -q bad \\"$$SITE_FILE\\" && wget -q -O /dev/null http://127.0.0.1/SITE_FILE"]
      interval: 1s
      timeout: 2s
      retries: 2
    deploy:
      replicas: 2
      endpoint_mode: dnsrr
      update_config:
        monitor: 2s
"""


def stack_file() -> str:
    return STACK_FILE.format(apps="".join(APP.format(name=name) for name in SERVICES))


class Swarm:
    """The test host's one-node swarm and the looping client's view of the stack."""

    def __init__(self, host: TestHost) -> None:
        self.host = host
        self.figures: dict[str, float] = {}
        self.argv_log = "/dev/shm/dso-test-argv.log"

    def dso(self, *args: str, input: str | None = None, check: bool = True, env: str = "") -> Any:
        command = " ".join(["docker", "dso", *args])
        return self.host.sh(f"cd /srv/shop && {env} {command}", input=input, check=check)

    def set_secret(self, value: str) -> None:
        self.host.exec("docker", "dso", "secret", "set", "shop/site", input=value)

    def client(self) -> str:
        return self.host.sh(
            "docker ps -q --filter label=com.docker.swarm.service.name=shop_client"
        ).stdout.strip()

    def counts(self) -> tuple[int, int]:
        done = self.host.exec("docker", "exec", self.client(), "cat", "/tmp/counts", check=False)
        if done.returncode != 0 or not done.stdout.strip():
            return 0, 0
        ok, failed = done.stdout.split()
        return int(ok), int(failed)

    def failures(self) -> list[str]:
        done = self.host.exec(
            "docker", "exec", self.client(), "cat", "/tmp/failures", check=False
        )  # fmt: skip
        return [line for line in done.stdout.splitlines() if line.strip()]

    def serving(self) -> set[str]:
        """What every task of web and api meant to run serves (asked inside each task; the old
        tasks of a finished update, still stopping, are not asked)."""
        answers = set()
        for service in SERVICES:
            wanted = set(
                self.host.sh(
                    f"docker service ps -q --no-trunc --filter desired-state=running "
                    f"{STACK}_{service}"
                ).stdout.split()
            )
            listed = self.host.sh(
                f"docker ps --filter label=com.docker.swarm.service.name={STACK}_{service} "
                "--format '{{.ID}} {{.Label \"com.docker.swarm.task.id\"}}'"
            ).stdout.splitlines()
            ids = [line.split()[0] for line in listed if line.split()[-1] in wanted]
            for cid in ids:
                got = self.host.exec(
                    "docker", "exec", cid, "wget", "-q", "-O-", "http://127.0.0.1/SITE_FILE",
                    check=False,
                )  # fmt: skip
                answers.add(got.stdout.strip() if got.returncode == 0 else f"<{cid} down>")
        return answers

    def tasks_settled(self) -> bool:
        """Two running tasks per service and no other task still running."""
        out = self.host.sh(
            "docker ps --format '{{.Label \"com.docker.swarm.service.name\"}}'"
        ).stdout.split()
        return all(out.count(f"{STACK}_{s}") == 2 for s in SERVICES)

    def dso_secrets(self) -> list[str]:
        return sorted(
            self.host.sh(
                "docker secret ls --filter label=dso.managed=true --format '{{.Name}}'"
            ).stdout.split()
        )

    def mounted(self) -> dict[str, set[str]]:
        """Service → the secret names its spec mounts."""
        found = {}
        for service in SERVICES:
            spec = json.loads(
                self.host.exec("docker", "service", "inspect", f"{STACK}_{service}").stdout
            )[0]["Spec"]
            secrets_ = spec["TaskTemplate"]["ContainerSpec"].get("Secrets") or []
            found[service] = {s["SecretName"] for s in secrets_}
        return found

    def wait(self, what: str, check: Callable[[], bool], timeout: float = 120.0) -> float:
        began = time.monotonic()
        while not check():
            if time.monotonic() - began > timeout:
                pytest.fail(
                    f"timed out after {timeout:.0f} s waiting for {what}\n{self.diagnose()}"
                )
            time.sleep(0.25)
        return time.monotonic() - began

    def diagnose(self) -> str:
        return self.host.sh(
            "docker service ls; docker service ps shop_web shop_api --no-trunc | head -20; "
            "docker secret ls; journalctl -u dso-agent -n 60 --no-pager || true",
            check=False,
        ).stdout

    def start_argv_watch(self) -> None:
        """Record every process's argv, 20 times a second, on the host's tmpfs."""
        self.host.sh(
            f"nohup sh -c 'while :; do ps -eo args >> {self.argv_log}; sleep 0.05; done' "
            ">/dev/null 2>&1 & echo $! > /dev/shm/dso-test-argv.pid"
        )

    def stop_argv_watch(self) -> str:
        self.host.sh("kill $(cat /dev/shm/dso-test-argv.pid)", check=False)
        return self.host.exec("cat", self.argv_log).stdout

    def assert_never_on_disk(self, *canaries: str) -> None:
        """Not in any file on the host's disk: dso's state and logs, the engine's raft store,
        containers' files (the tasks' secret tmpfs mounts excepted)."""
        for canary in canaries:
            found = self.host.sh(
                'grep -rlaF --exclude-dir=mounts -e "$(cat)" /root /etc /srv /var/lib /var/log '
                "/tmp 2>/dev/null || true",
                input=canary,
                timeout=300,
            ).stdout.strip()
            assert not found, f"the canary is on disk in: {found}"


def new_host() -> TestHost:
    host = TestHost(build_image(), source=True)
    host.start()
    host.load_image(IMAGE)
    host.exec("docker", "swarm", "init", "--advertise-addr", "127.0.0.1")
    host.sh("mkdir -p /srv/shop && cat > /srv/shop/stack.yaml", input=stack_file())
    return host


@pytest.fixture
def swarm() -> Iterator[Swarm]:
    host = new_host()
    try:
        yield Swarm(host)
    finally:
        host.stop()


def rotate(swarm: Swarm, *args: str) -> tuple[list[dict[str, Any]], str]:
    """``docker dso rotate ARGS --json``: the rotations and the output. A rotation the engine
    rolled back because a task could not start for the engine's own reasons (``network sandbox
    does not exist`` on a loaded machine: not a health check) is rotated again, once."""
    done = swarm.dso("rotate", *args, "--json", check=False)
    rotations = json.loads(done.stdout)["rotations"]
    output = done.stdout + done.stderr
    engine = [
        r for r in rotations
        if r["status"] == "rolled_back" and "unhealthy" not in (r["error"] or "")
    ]  # fmt: skip
    if engine:
        swarm.figures["engine rollbacks retried"] = len(engine)
        again = swarm.dso("rotate", *args, "--json", check=False)
        output += again.stdout + again.stderr
        retried = {r["target"]: r for r in json.loads(again.stdout)["rotations"]}
        rotations = [retried.get(r["target"], r) if r in engine else r for r in rotations]
    return rotations, output


def deploy(swarm: Swarm) -> None:
    swarm.dso("stack", "deploy", "-c", "stack.yaml", STACK)
    swarm.wait("the client to be served by both services", lambda: swarm.counts()[0] > 40, 180)


def test_a_changed_secret_rolls_both_services_and_a_failing_one_rolls_back(swarm: Swarm) -> None:
    v1, v2 = f"canary-swarm-v1-{secrets.token_hex(6)}", f"canary-swarm-v2-{secrets.token_hex(6)}"
    bad = f"bad-canary-swarm-{secrets.token_hex(6)}"
    swarm.host.exec("docker", "dso", "init")
    swarm.set_secret(v1)
    deploy(swarm)
    assert swarm.serving() == {v1}
    [first] = swarm.dso_secrets()

    # -- the secret changes: a dry run says what would happen, then both services roll ------
    swarm.set_secret(v2)
    plan = json.loads(swarm.dso("rotate", STACK, "--dry-run", "--json").stdout)
    assert {t["target"] for t in plan["targets"]} == {"shop_web", "shop_api"}
    assert {r["status"] for r in plan["rotations"]} == {"planned"}
    assert {r["plan"]["strategy"] for r in plan["rotations"]} == {"swarm"}
    assert swarm.dso_secrets() == [first]  # a dry run creates nothing

    swarm.start_argv_watch()
    before = swarm.failures()
    served_before = swarm.counts()[0]
    began = time.monotonic()
    rotations, outputs = rotate(swarm, STACK)
    swarm.figures["rotate shop (2 services x 2 replicas), s"] = time.monotonic() - began
    assert {r["status"] for r in rotations} == {"completed"}, outputs
    for rotation in rotations:
        assert set(rotation["phases"]) == {
            "plan", "create_secret", "update_service", "converge", "remove_secrets",
        }  # fmt: skip
    assert swarm.serving() == {v2}
    swarm.wait("the client to be served again", lambda: swarm.counts()[0] > served_before + 40)
    assert swarm.failures() == before, "requests failed while the services rolled"
    [second] = swarm.dso_secrets()  # the old version is gone, the new one is mounted
    assert second != first
    assert swarm.mounted() == {"web": {second}, "api": {second}}

    # The journal has both rotations with strategy swarm, and status lists them.
    status = json.loads(swarm.dso("status", "--json", check=False).stdout)  # no agent: exit 10
    recent = [r for r in status["rotations"]["recent"] if r.get("strategy") == "swarm"]
    assert {r["target"] for r in recent} >= {"shop_web", "shop_api"}

    # -- a value the healthcheck refuses: the engine rolls back, dso reports it -------------
    swarm.set_secret(bad)
    failed = swarm.dso("rotate", "shop_web", "--json", check=False)
    assert failed.returncode == 9, failed.stdout + failed.stderr
    [rotation] = json.loads(failed.stdout)["rotations"]
    assert rotation["status"] == "rolled_back"
    assert "rolled the update back" in rotation["error"]
    assert "unhealthy container" in rotation["health"]["last_output"]
    assert swarm.dso_secrets() == [second]  # the refused version is removed
    assert swarm.mounted() == {"web": {second}, "api": {second}}
    swarm.wait("the tasks to settle", swarm.tasks_settled)
    assert swarm.serving() == {v2}
    assert swarm.failures() == before, "requests failed during the rollback"
    # The agent would not try that version again; rotating a good value works again.
    swarm.set_secret(v1)
    again, more = rotate(swarm, "shop_web")
    assert [r["status"] for r in again] == ["completed"], more

    # -- the canary: never in argv, in the engine's service documents, on disk --------------
    argv = swarm.stop_argv_watch()
    inspected = swarm.host.exec("docker", "service", "inspect", "shop_web", "shop_api").stdout
    outputs += more + failed.stdout + failed.stderr + json.dumps(status)
    for canary in (v1, v2, bad):
        assert canary not in argv
        assert canary not in inspected
        assert canary not in outputs
    swarm.assert_never_on_disk(v2, bad)
    print(f"\nswarm rotation figures: {swarm.figures}")


def test_a_killed_rotation_converges_when_the_agent_starts_and_restarts(swarm: Swarm) -> None:
    v1, v2, v3 = (f"canary-swarm-k{i}-{secrets.token_hex(6)}" for i in (1, 2, 3))
    host = swarm.host
    host.exec("docker", "dso", "bootstrap", "agent")
    # Poll every 10 s (docs/operations.md's runbook edit): a change the engine could not roll
    # out for its own reasons (cause docker, not final) is tried again soon.
    host.sh(r"sed -i 's/^\(\s*polling_interval:\).*/\1 10s/' /etc/dso/dso.yaml")
    swarm.set_secret(v1)  # root works on the host agent's installation now
    deploy(swarm)
    [first] = swarm.dso_secrets()
    before = swarm.failures()
    inflight = "/var/lib/dso/state/rotations.d"

    # -- killed between "secret created" and "service updated" (the agent not running) ------
    swarm.set_secret(v2)
    killed = swarm.dso(
        "rotate", "shop_web", check=False,
        env="DSO_TEST_MODE=1 DSO_FAULT_KILL_AFTER_STEP=update_service",
    )  # fmt: skip
    assert killed.returncode != 0  # SIGKILLed right after journaling the update step
    assert len(swarm.dso_secrets()) == 2  # the new version exists, no service mounts it
    assert swarm.mounted()["web"] == {first}

    # The agent starts: its recovery removes that version, then rotates the change again (and
    # the api service, which lags too).
    swarm.dso("system", "enable")
    swarm.wait(
        "the agent to roll both services to the new value",
        lambda: swarm.serving() == {v2} and len(swarm.dso_secrets()) == 1,
        180,
    )
    log = host.journal("dso-agent")
    assert re.search(r"recovery of swarm rotation \w+ \(shop_web\): rolled_back", log), log

    # -- the agent is SIGKILLed while the engine rolls the tasks ------------------------------
    pid = int(host.exec("systemctl", "show", "-p", "MainPID", "--value", "dso-agent").stdout)
    swarm.set_secret(v3)

    def converging() -> bool:
        return "converge" in host.sh(f"cat {inflight}/*.json 2>/dev/null || true").stdout

    swarm.wait("the agent to submit a service update", converging, 120)
    host.exec("kill", "-9", str(pid))
    began = time.monotonic()
    swarm.wait(
        "systemd to restart the agent",
        lambda: (
            host.exec("systemctl", "show", "-p", "MainPID", "--value", "dso-agent").stdout.strip()
            not in ("", "0", str(pid))
        ),
        60,
    )
    swarm.wait(
        "the restarted agent to finish the rotations",
        lambda: swarm.serving() == {v3} and len(swarm.dso_secrets()) == 1
        and not host.sh(f"ls {inflight}").stdout.strip(),
        180,
    )  # fmt: skip
    swarm.figures["SIGKILL mid-update -> all tasks on the new value, s"] = time.monotonic() - began
    log = host.journal("dso-agent")
    assert re.search(r"recovery of swarm rotation \w+ \(shop_\w+\): forward", log), log
    [last] = swarm.dso_secrets()
    assert swarm.mounted() == {"web": {last}, "api": {last}}
    assert swarm.failures() == before, "requests failed while the agent was killed mid-update"
    for canary in (v1, v2, v3):
        assert canary not in log
    swarm.assert_never_on_disk(v2, v3)
    print(f"\nswarm crash figures: {swarm.figures}")
