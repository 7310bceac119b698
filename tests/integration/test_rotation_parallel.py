"""`docker dso rotate <service> --parallel N` on real compose projects: the first replica rotates
alone (the canary), then up to N at a time, always served; a failing canary touches nothing else."""

from __future__ import annotations

import itertools
import json
import signal
import subprocess

import pytest

from tests.integration.compose_support import DSO, ComposeProject
from tests.integration.rotation_compose_support import (
    CLIENT_SERVICE,
    WEB_SERVICE,
    WEB_SH,
    all_containers,
    container_id,
    counts,
    exec_in,
    inspect,
    journal,
    project,
    replicas,
    stop_client,
    wait_for,
    write_scripts,
)
from tests.integration.rotation_support import assert_always_served

pytestmark = pytest.mark.integration
__all__ = ["project"]

REPLICAS = 8

#: A service whose health check refuses any value but v1, three at a time by its label.
PICKY = """
  picky:
    image: dso-test/busybox:1
    init: true
    stop_grace_period: 1s
    command: ["sleep", "3600"]
    scale: 4
    labels:
      dso.parallel: "3"
    environment:
      MSG: dso://app/msg
    healthcheck:
      test: ["CMD-SHELL", "[ \\"$$MSG\\" = v1 ]"]
      interval: 30s
"""


def address_of(name: str) -> str:
    (network,) = inspect(name)["NetworkSettings"]["Networks"].values()
    return str(network["IPAddress"])


def swapped_at(entry: dict[str, object]) -> float:
    """When the copy began taking the name (``rename_new`` journaled; its slot is freed once
    that rename is done)."""
    (at,) = [step["at"] for step in entry["steps"] if step["step"] == "rename_new"]  # type: ignore[attr-defined]
    return float(at)


def test_replicas_rotate_three_at_a_time_after_the_canary_always_served(
    project: ComposeProject,
) -> None:
    write_scripts(project)
    project.write(
        "compose.yaml",
        "services:\n  web:"
        + WEB_SERVICE
        + f"    scale: {REPLICAS}\n    environment:\n      MSG: dso://app/msg\n"
        + CLIENT_SERVICE,
    )
    project.set_secret("app/msg", "old")
    project.dso("up", "-d")
    names = replicas(project, "web")
    assert len(names) == REPLICAS
    before = {name: container_id(name) for name in names}
    (client,) = replicas(project, "client")
    wait_for(lambda: counts(client)[0] >= 20)

    # A request in flight to an old replica when it leaves the network is cut; its SYN's
    # retransmission may reach a copy Docker gave the freed address to (refused): that is the
    # same cut request (rotation_support.assert_always_served), from a retired address only.
    retired = {address_of(name): 0 for name in names}
    # Replicas that were not listening yet while the client started (compose starts 8 at once)
    # refused it before the rotation: those failures are not the rotation's.
    failed_before = exec_in(client, "cat", "/tmp/failures") or ""
    project.set_secret("app/msg", "new")
    retired = dict.fromkeys(retired, counts(client)[0])
    done = project.dso("rotate", "web", "--parallel", "3", "--json")

    doc = json.loads(done.stdout)
    assert doc["targets"][0]["parallel"] == 3
    assert [r["status"] for r in doc["rotations"]] == ["completed"] * REPLICAS
    wait_for(lambda: counts(client)[2] == "new")
    ok_at_swap = counts(client)[0]
    wait_for(lambda: counts(client)[0] >= ok_at_swap + 20)
    ok, fail, last = stop_client(client)
    print(f"requests: {ok} served, {fail} cut")  # shown by `pytest -rP`
    failures = (exec_in(client, "cat", "/tmp/failures") or "") if fail else ""
    assert failures.startswith(failed_before)
    assert_always_served(failures[len(failed_before) :], REPLICAS, retired)
    assert last == "new"
    # Every replica was replaced under its name and serves the new value; no leftovers.
    assert replicas(project, "web") == names
    for name in names:
        assert container_id(name) != before[name]
        assert exec_in(name, "wget", "-q", "-O-", "http://127.0.0.1/") == "new\n"
    assert not [n for n in all_containers(project) if "_dso_" in n]
    # The canary went alone: every other rotation began after it ended.
    entries = sorted(journal(project), key=lambda e: e["started_at"])
    assert len(entries) == REPLICAS
    assert {e["status"] for e in entries} == {"completed"}
    canary, rest = entries[0], entries[1:]
    assert canary["old_name"] == names[0]
    assert all(e["started_at"] >= canary["finished_at"] for e in rest)
    # After it, the others overlapped, never more than three at a time before their swap (an
    # old container's exit, after the swap, overlaps the next copy's start).
    spans = [(e["started_at"], swapped_at(e)) for e in rest]
    in_flight = [sum(1 for s, f in spans if s <= start < f) for start, _ in spans]
    assert max(in_flight) == 3, in_flight

    # By default, four at a time.
    text = project.dso("rotate", "web", "--force")
    assert f"{REPLICAS} containers, the first alone, then up to 4 at a time" in text.stdout


def test_a_failing_canary_touches_no_other_replica(project: ComposeProject) -> None:
    project.write("compose.yaml", "services:" + PICKY)
    project.set_secret("app/msg", "v1")
    project.dso("up", "-d")
    names = replicas(project, "picky")
    before = {name: container_id(name) for name in names}
    project.set_secret("app/msg", "v2")

    done = project.dso("rotate", "picky", "--timeout", "2", "--json", ok=False)

    assert done.returncode == 9, done.stderr
    doc = json.loads(done.stdout)
    assert doc["targets"][0]["parallel"] == 3  # from the label
    statuses = [r["status"] for r in doc["rotations"]]
    assert statuses == ["rolled_back", "skipped", "skipped", "skipped"]
    assert f"the rotation of {names[0]} did not complete" in doc["rotations"][1]["error"]
    # One rotation was journaled (the canary's); every replica is the one it was.
    (entry,) = journal(project)
    assert entry["old_name"] == names[0] and entry["status"] == "rolled_back"
    assert {name: container_id(name) for name in replicas(project, "picky")} == before
    assert not [n for n in all_containers(project) if "_dso_" in n]


def test_a_bad_parallel_label_is_refused_before_anything_is_touched(
    project: ComposeProject,
) -> None:
    project.write("compose.yaml", "services:" + PICKY.replace('"3"', '"many"'))
    project.set_secret("app/msg", "v1")
    project.dso("up", "-d")
    before = {name: container_id(name) for name in replicas(project, "picky")}
    project.set_secret("app/msg", "v2")

    done = project.dso("rotate", "picky", ok=False)

    assert done.returncode == 2, done.stderr
    assert "label dso.parallel='many' is not a whole number from 1 to 32" in done.stderr
    assert {name: container_id(name) for name in replicas(project, "picky")} == before
    assert journal(project) == []


#: Five replicas serving a file secret, three at a time after the canary.
CRASH_COMPOSE = """services:
  web:
    image: dso-test/busybox:1
    init: true
    stop_grace_period: 1s
    scale: 5
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


@pytest.mark.parametrize("step", ["start_new@3", "rename_old@3", "disconnect_old@3"])
def test_recover_converges_several_replicas_killed_mid_rotation(
    project: ComposeProject, step: str
) -> None:
    project.write("compose.yaml", CRASH_COMPOSE)
    project.set_secret("app/token", "t1")
    project.dso("up", "-d")
    names = replicas(project, "web")
    project.set_secret("app/token", "t2")

    killed = subprocess.run(
        [DSO, "rotate", "web", "--parallel", "3"],
        cwd=project.dir,
        env={**project.env, "DSO_TEST_MODE": "1", "DSO_FAULT_KILL_AFTER_STEP": step},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert killed.returncode == -9, killed.stderr
    entries = journal(project)
    in_progress = [e for e in entries if e["status"] == "in_progress"]
    assert len(in_progress) >= 2, [(e["old_name"], e["step"], e["status"]) for e in entries]

    recovered = json.loads(project.dso("recover", "--json").stdout)
    assert [r["status"] for r in recovered["recovered"]] == ["recovered"] * len(in_progress)

    # One running container per replica name, nothing else, each serving t1 or t2.
    assert all_containers(project) == sorted(names)
    for name in names:
        assert inspect(name)["State"]["Running"]
        assert exec_in(name, "wget", "-q", "-O-", "http://127.0.0.1/") in ("t1", "t2")
    project.dso("rotate", "web", "--parallel", "3")
    for name in names:
        assert exec_in(name, "wget", "-q", "-O-", "http://127.0.0.1/") == "t2"
    assert all_containers(project) == sorted(names)


def test_restart_rotations_stay_one_after_another(project: ComposeProject) -> None:
    write_scripts(project)
    project.write(
        "compose.yaml",
        "services:\n  web:"
        + WEB_SERVICE
        + "    scale: 3\n    environment:\n      MSG: dso://app/msg\n",
    )
    project.set_secret("app/msg", "old")
    project.dso("up", "-d")
    names = replicas(project, "web")
    project.set_secret("app/msg", "new")

    done = project.dso("rotate", "web", "--strategy", "restart", "--parallel", "3")

    # Two restarts at once would take two replicas out of service: the canary's strategy
    # (restart) keeps the rest one after another.
    assert f"service web (project {project.name}): 3 containers, one after another" in done.stdout
    entries = sorted(journal(project), key=lambda e: e["started_at"])
    assert [e["old_name"] for e in entries] == names
    assert {e["strategy"] for e in entries} == {"restart"}
    for earlier, later in itertools.pairwise(entries):
        assert later["started_at"] >= earlier["finished_at"]
    for name in names:
        assert exec_in(name, "wget", "-q", "-O-", "http://127.0.0.1/") == "new\n"


#: Listens two seconds after it starts: a copy stays in flight long enough to be interrupted.
SLOW_WEB_SH = "sleep 2\n" + WEB_SH


def test_ctrl_c_during_parallel_replicas_rolls_back_those_in_flight_always_served(
    project: ComposeProject,
) -> None:
    write_scripts(project)
    project.write("web.sh", SLOW_WEB_SH)
    project.write(
        "compose.yaml",
        "services:\n  web:"
        + WEB_SERVICE
        + "    scale: 6\n    environment:\n      MSG: dso://app/msg\n"
        + CLIENT_SERVICE,
    )
    project.set_secret("app/msg", "old")
    project.dso("up", "-d")
    names = replicas(project, "web")
    (client,) = replicas(project, "client")
    for name in names:  # every replica listens (refusals before that are not the rotation's)
        wait_for(lambda n=name: exec_in(n, "wget", "-q", "-O-", "http://127.0.0.1/"))
    wait_for(lambda: counts(client)[0] >= 20)
    failed_before = exec_in(client, "cat", "/tmp/failures") or ""
    project.set_secret("app/msg", "new")

    rotate = subprocess.Popen(
        [DSO, "rotate", "web", "--parallel", "3"],
        cwd=project.dir,
        env=project.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # The canary has completed and copies of the next replicas are starting.
        wait_for(
            lambda: (
                sum(e["status"] == "completed" for e in journal(project)) >= 1
                and sum(e["status"] == "in_progress" for e in journal(project)) >= 2
            ),
            timeout=60,
        )
        rotate.send_signal(signal.SIGINT)
        _, stderr = rotate.communicate(timeout=60)
    finally:
        if rotate.poll() is None:
            rotate.kill()
            rotate.wait()
    assert rotate.returncode == 130, stderr
    assert "Interrupted." in stderr

    # Nothing is left half-done: every rotation completed or was rolled back, every replica
    # name is one running container, no copy is left behind, and the service was always served.
    entries = journal(project)
    statuses = [e["status"] for e in entries]
    assert "in_progress" not in statuses, statuses
    assert "rolled_back" in statuses, statuses
    assert set(statuses) <= {"completed", "rolled_back"}, statuses
    assert all_containers(project) == sorted([*names, client])
    for name in names:
        assert inspect(name)["State"]["Running"]
        assert exec_in(name, "wget", "-q", "-O-", "http://127.0.0.1/") in ("old\n", "new\n")
    wait_for(lambda: counts(client)[0] >= 20)
    ok, _, _ = stop_client(client)
    failures = exec_in(client, "cat", "/tmp/failures") or ""
    assert failures.startswith(failed_before)
    assert_always_served(failures[len(failed_before) :], len(entries))
    assert ok > 20

    # A second rotate finishes the job.
    project.dso("rotate", "web")
    for name in names:
        assert exec_in(name, "wget", "-q", "-O-", "http://127.0.0.1/") == "new\n"
