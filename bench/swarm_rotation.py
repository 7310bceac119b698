"""Swarm rotation: change → every task serving the new value, and dso's overhead over bare Docker.

Issue 14's figures. In a systemd test host (tests/systemd_host.py; its own engine, a one-node
swarm), two stacks of the same two services (``web``, ``api``: 2 replicas each, 4 tasks; the
e2e test's app: listens 2 s after it starts, healthcheck every 1 s, ``order: start-first``,
``monitor: 2s``, DNS round robin) share one secret per stack:

- ``shop``, deployed with ``docker dso stack deploy``: a new value (``docker dso secret set``),
  then ``docker dso rotate shop`` (new versioned secret, one service update per service side by
  side, wait for the engine, remove the old version), timed end to end as a user runs it;
- ``bare``, deployed with ``docker stack deploy`` and an external secret: the same change done
  by hand, ``docker secret create`` (value on stdin) then ``docker service update --secret-rm
  OLD --secret-add source=NEW,target=…,mode=0400`` of both services side by side (the CLI waits
  for the update to converge and verifies it), then ``docker secret rm OLD``.

Rounds alternate dso and bare; on a loaded machine the engine's own update time varies more
than dso adds, so the figures also subtract each run's engine time (the services'
``UpdateStatus`` StartedAt → CompletedAt) from its command time. After each, every task is
asked what it serves ("change → all serving" stops when all 4 serve the new value). Prints
the medians and dso - bare (goal ≤ 1 s), for the CLI end to end and for the rotations alone
(what the agent spends: no process start).

    .venv/bin/python bench/swarm_rotation.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import sys
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.e2e.test_swarm_rotation import IMAGE, stack_file
from tests.systemd_host import TestHost, build_image

TARGET = "/run/secrets/dso/SITE_FILE"
BARE_APP = """\
  {name}:
    image: dso-test/busybox:1
    init: true
    stop_grace_period: 2s
    command: ["sh", "-c", "sleep 2; exec httpd -f -p 80 -h /run/secrets/dso"]
    environment:
      SITE_FILE: {target}
    secrets:
      - source: site
        target: {target}
        mode: 0400
    healthcheck:
      test: ["CMD-SHELL", "! grep -q bad \\"$$SITE_FILE\\" && wget -q -O /dev/null http://127.0.0.1/SITE_FILE"]
      interval: 1s
      timeout: 2s
      retries: 2
    deploy:
      replicas: 2
      endpoint_mode: dnsrr
      update_config:
        order: start-first
        failure_action: rollback
        monitor: 2s
"""
BARE = """\
version: "3.8"
secrets:
  site:
    external: true
    name: {secret}
services:
{apps}"""


def serving(host: TestHost, stack: str) -> set[str]:
    """What each task of the stack's web and api meant to run serves (not the old tasks of a
    finished update, which the engine is stopping)."""
    out = host.sh(
        "for s in web api; do "
        f"wanted=$(docker service ps -q --no-trunc --filter desired-state=running {stack}_$s); "
        f"docker ps --filter label=com.docker.swarm.service.name={stack}_$s "
        "--format '{{.ID}} {{.Label \"com.docker.swarm.task.id\"}}' | "
        'while read -r c t; do case "$wanted" in *$t*) '
        "docker exec $c wget -q -O- http://127.0.0.1/SITE_FILE || echo down; echo;; esac; "
        "done; done",
        check=False,
    ).stdout
    return {line.strip() for line in out.splitlines() if line.strip()}


def engine_seconds(host: TestHost, stack: str) -> float:
    """How long the engine's updates of web and api took together (first StartedAt to last
    CompletedAt of their UpdateStatus): the part neither dso nor the CLI can shorten."""
    out = (
        host.sh(
            f"docker service inspect {stack}_web {stack}_api "
            "--format '{{json .UpdateStatus.StartedAt}} {{json .UpdateStatus.CompletedAt}}'"
        )
        .stdout.replace('"', "")
        .split()
    )

    def at(text: str) -> float:
        day, _, rest = text.partition("T")
        clock = rest.rstrip("Z")
        whole, _, fraction = clock.partition(".")
        stamp = datetime.fromisoformat(f"{day}T{whole}+00:00")
        return stamp.timestamp() + float(f"0.{fraction or 0}")

    starts, ends = [at(t) for t in out[0::2]], [at(t) for t in out[1::2]]
    return max(ends) - min(starts)


def wait_serving(host: TestHost, stack: str, value: str, began: float) -> float:
    while serving(host, stack) != {value}:
        if time.monotonic() - began > 300:
            raise SystemExit(f"{stack}: not all tasks serve the new value after 300 s")
        time.sleep(0.2)
    return time.monotonic() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    host = TestHost(build_image(), source=True)
    try:
        host.start()
        host.load_image(IMAGE)
        host.exec("docker", "swarm", "init", "--advertise-addr", "127.0.0.1")
        host.exec("docker", "dso", "init")
        host.sh("mkdir -p /srv/shop /srv/bare && cat > /srv/shop/stack.yaml", input=stack_file())
        value = f"v0-{secrets.token_hex(8)}"
        host.exec("docker", "dso", "secret", "set", "shop/site", input=value)
        host.sh("cd /srv/shop && docker dso stack deploy -c stack.yaml shop")
        bare_secret = "bare_site_0"
        host.exec("docker", "secret", "create", bare_secret, "-", input=value)
        apps = "".join(BARE_APP.format(name=n, target=TARGET) for n in ("web", "api"))
        host.sh(
            "cat > /srv/bare/stack.yaml && docker stack deploy -c /srv/bare/stack.yaml bare",
            input=BARE.format(secret=bare_secret, apps=apps),
        )
        wait_serving(host, "shop", value, time.monotonic())
        wait_serving(host, "bare", value, time.monotonic())
        rows: dict[str, list[tuple[float, float]]] = {"dso": [], "bare": []}
        #: Seconds the rotations themselves took (lock to old version removed): what the agent
        #: spends, without the CLI's start (Python, imports, the provider process).
        inside: list[float] = []
        #: Seconds the engine's updates took in each run (UpdateStatus StartedAt → CompletedAt).
        engine: dict[str, list[float]] = {"dso": [], "bare": []}
        for round_ in range(1, args.rounds + 1):
            # -- dso --------------------------------------------------------------------------
            value = f"v{round_}-{secrets.token_hex(8)}"
            host.exec("docker", "dso", "secret", "set", "shop/site", input=value)
            began = time.monotonic()
            done = host.sh("cd /srv/shop && docker dso rotate shop --json", timeout=600)
            command = time.monotonic() - began
            rows["dso"].append((command, wait_serving(host, "shop", value, began)))
            engine["dso"].append(engine_seconds(host, "shop"))
            rotations = json.loads(done.stdout)["rotations"]
            assert {r["status"] for r in rotations} == {"completed"}, done.stdout
            inside.append(max(r["elapsed"] for r in rotations))
            # -- bare Docker ------------------------------------------------------------------
            new_secret = f"bare_site_{round_}"
            began = time.monotonic()
            host.exec("docker", "secret", "create", new_secret, "-", input=value)
            swap = (
                f"--secret-rm {bare_secret} "
                f"--secret-add source={new_secret},target={TARGET},mode=0400"
            )
            host.sh(
                f"docker service update --quiet {swap} bare_web >/dev/null & "
                f"docker service update --quiet {swap} bare_api >/dev/null & wait; "
                f"docker secret rm {bare_secret} >/dev/null",
                timeout=600,
            )
            command = time.monotonic() - began
            rows["bare"].append((command, wait_serving(host, "bare", value, began)))
            engine["bare"].append(engine_seconds(host, "bare"))
            bare_secret = new_secret
            print(
                f"round {round_}: dso {rows['dso'][-1][0]:.2f} s, bare {rows['bare'][-1][0]:.2f} s",
                file=sys.stderr,
            )
        left = host.sh(
            "docker secret ls --filter label=dso.managed=true --format '{{.Name}}'"
        ).stdout.split()
    finally:
        host.stop()
    print("\n2 services x 2 replicas (4 tasks), start-first, monitor 2s, app ready 2 s after start")
    print(f"{'':<6} {'command (s)':>14} {'change -> all serving (s)':>27}   runs")
    for name, runs in rows.items():
        commands = [r[0] for r in runs]
        served = [r[1] for r in runs]
        print(
            f"{name:<6} {statistics.median(commands):>14.2f} {statistics.median(served):>27.2f}"
            f"   {', '.join(f'{c:.2f}' for c in commands)}"
        )
    paired = [d[0] - b[0] for d, b in zip(rows["dso"], rows["bare"], strict=True)]
    print(
        f"dso - bare, paired rounds: median {statistics.median(paired):+.2f} s "
        f"({', '.join(f'{x:+.2f}' for x in paired)}) (goal <= 1 s)"
    )
    beyond = {
        name: [r[0] - e for r, e in zip(rows[name], engine[name], strict=True)] for name in rows
    }
    own = [i - e for i, e in zip(inside, engine["dso"], strict=True)]
    print(
        "beyond the engine's own update time (command - UpdateStatus StartedAt..CompletedAt): "
        f"dso {statistics.median(beyond['dso']):.2f} s, "
        f"bare {statistics.median(beyond['bare']):.2f} s, "
        f"dso's rotations alone (no CLI start, as the agent) {statistics.median(own):.2f} s"
    )
    print(
        f"engine update time: dso runs {statistics.median(engine['dso']):.2f} s, "
        f"bare runs {statistics.median(engine['bare']):.2f} s"
    )
    print(f"dso secret versions left after the runs: {len(left)} (expected 1)")


if __name__ == "__main__":
    main()
