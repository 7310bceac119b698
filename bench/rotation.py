"""Rotation wall time by phase, and dso's overhead over the bare Docker operations it performs.

A busybox httpd service (healthy within ~100 ms; its image-level HEALTHCHECK interval is 30 s,
so waiting for Docker's ``healthy`` would take 30 s) sits behind a network alias on a
user-defined network. Each round:

- ``dso``: one rolling rotation through the engine (journal, lock, clone, health gate, swap);
- ``bare``: the same Docker calls alone, back to back on the same client: create the copy
  (without the alias), start it, run the health command through exec until it passes, re-attach
  it with the alias, rename both, disconnect, stop and remove the old container.

The overhead is dso minus bare (journal writes, inspections, planning). Targets (DESIGN.md §9):
overhead ≤ 1 s, and the whole rotation ≤ 1.5 s. Needs Docker and the dso-test/busybox:1 image.

    .venv/bin/python bench/rotation.py [-n 5]
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import docker.types

from kernel.config.model import RotationConfig
from kernel.containers.client import connect
from kernel.containers.clone import clone_spec, create
from kernel.containers.clone import connect as join_network
from kernel.containers.health import probe_for, wait_healthy
from kernel.containers.view import ContainerView
from kernel.rotation import Journal, RotationEngine, TargetLocks
from kernel.rotation.model import ChangedReference, Changes
from kernel.secret_value import SecretValue

IMAGE = "dso-test/busybox:1"
HTTPD = [
    "sh",
    "-c",
    'mkdir -p /www && echo "$MSG" > /www/index.html && exec httpd -f -p 80 -h /www',
]
HEALTH = {
    "test": ["CMD-SHELL", "wget -q -O- http://127.0.0.1/ >/dev/null"],
    "interval": 30 * 10**9,
}
PHASES = (
    "plan",
    "create_new",
    "deliver_files",
    "start_new",
    "health_gate",
    "attach_aliases",
    "rename_old",
    "rename_new",
    "restart_policy",
    "disconnect_old",
    "stop_old",
    "remove_old",
)


def fetch_for(value: str) -> Callable[[ContainerView], Changes]:
    def fetch(view: ContainerView) -> Changes:
        ref = ChangedReference("MSG", "dso://bench/msg", "env", None, f"local:{value}")
        return Changes(env={"MSG": SecretValue(value)}, references=(ref,))

    return fetch


def bare_rotation(client: docker.DockerClient, name: str, value: str) -> dict[str, float]:
    """The Docker operations of a rolling rotation, with nothing of dso's around them."""
    times: dict[str, float] = {}
    mark = time.perf_counter()

    def lap(phase: str) -> None:
        nonlocal mark
        now = time.perf_counter()
        times[phase] = now - mark
        mark = now

    old = ContainerView(client.api.inspect_container(name))
    spec = clone_spec(old, name=f"{name}_bare", env={"MSG": SecretValue(value)}, defer_aliases=True)
    new_id = create(client, spec)
    lap("create")
    client.api.start(new_id)
    lap("start")
    report = wait_healthy(client, new_id, probe_for(old), timeout=30)
    assert report.healthy, report
    lap("health")
    for network in old.networks:
        client.api.disconnect_container_from_network(new_id, network.network_id)
        join_network(client, new_id, network)
    lap("attach")
    client.api.rename(old.id, f"{name}_bare_old")
    client.api.rename(new_id, name)
    lap("rename")
    for network in old.networks:
        client.api.disconnect_container_from_network(old.id, network.network_id)
    client.api.stop(old.id, timeout=old.stop_timeout)
    client.api.remove_container(old.id)
    lap("stop+remove")
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=5, help="rounds (default 5)")
    args = parser.parse_args()
    client = connect()
    tag = secrets.token_hex(4)
    label = {"dso.bench": tag}
    name = f"dsobench{tag}-web"
    network = client.networks.create(f"dsobench{tag}", labels=label)
    state = Path(tempfile.mkdtemp(prefix="dso-bench-rotation-"))
    try:
        client.containers.run(
            IMAGE,
            HTTPD,
            name=name,
            detach=True,
            init=True,
            labels=label,
            environment={"MSG": "v0"},
            healthcheck=HEALTH,
            network=network.name,
            networking_config={network.name: client.api.create_endpoint_config(aliases=["web"])},
        )
        wait_healthy(
            client, name, probe_for(ContainerView(client.api.inspect_container(name))), timeout=30
        )
        engine = RotationEngine(
            client,
            journal=Journal(state / "state"),
            locks=TargetLocks(state / "locks"),
            config=RotationConfig(strategy="rolling", timeout=30.0, rollback_on_failure=True),
        )
        totals: list[float] = []
        bares: list[float] = []
        phases: dict[str, list[float]] = defaultdict(list)
        bare_phases: dict[str, list[float]] = defaultdict(list)
        for round_ in range(args.n):
            started = time.perf_counter()
            outcome = engine.rotate(name, fetch_for(f"dso{round_}"))
            totals.append(time.perf_counter() - started)
            assert outcome.status == "completed", outcome.error
            for phase, seconds in outcome.phases.items():
                phases[phase].append(seconds)
            started = time.perf_counter()
            for phase, seconds in bare_rotation(client, name, f"bare{round_}").items():
                bare_phases[phase].append(seconds)
            bares.append(time.perf_counter() - started)
        report(args.n, totals, bares, phases, bare_phases)
    finally:
        for container in client.containers.list(all=True, filters={"label": f"dso.bench={tag}"}):
            container.remove(force=True)
        network.remove()


def ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:7.1f} ms"


def report(
    rounds: int,
    totals: list[float],
    bares: list[float],
    phases: dict[str, list[float]],
    bare_phases: dict[str, list[float]],
) -> None:
    print(f"rolling rotation of a busybox httpd (HEALTHCHECK interval 30 s), median of {rounds}")
    print("\ndso rotation by phase (journaled step → next step):")
    for phase in PHASES:
        if phase in phases:
            print(f"  {phase:16} {ms(phases[phase])}")
    print("\nbare Docker operations:")
    for phase, values in bare_phases.items():
        print(f"  {phase:16} {ms(values)}")
    total, bare = statistics.median(totals), statistics.median(bares)
    overhead = total - bare
    print(f"\n  dso rotation     {total * 1000:7.1f} ms   (max {max(totals) * 1000:.1f} ms)")
    print(f"  bare operations  {bare * 1000:7.1f} ms")
    print(f"  overhead         {overhead * 1000:7.1f} ms   ratio {total / bare:.2f}x")
    print(
        f"\ntargets: overhead ≤ 1000 ms: {'ok' if overhead <= 1.0 else 'MISSED'}; "
        f"whole rotation ≤ 1500 ms: {'ok' if total <= 1.5 else 'MISSED'} "
        "(vs ≥ 30000 ms waiting for Docker's own healthy)"
    )


if __name__ == "__main__":
    main()
