"""`docker dso rotate <service>` on real compose projects: zero downtime behind the service
alias, replicas one after another, `docker dso up` keeping what was rotated, dry runs."""

from __future__ import annotations

import json

import pytest

from tests.integration.compose_support import ComposeProject
from tests.integration.rotation_compose_support import (
    CLIENT_SERVICE,
    WEB_SERVICE,
    all_containers,
    container_id,
    counts,
    exec_in,
    inspect,
    journal,
    project,
    replicas,
    rotation_dirs,
    stop_client,
    wait_for,
    write_scripts,
)
from tests.integration.rotation_support import assert_always_served

pytestmark = pytest.mark.integration
__all__ = ["project"]


def test_service_rotates_replica_by_replica_always_served(
    project: ComposeProject,
) -> None:
    write_scripts(project)
    project.write(
        "compose.yaml",
        "services:\n  web:"
        + WEB_SERVICE
        + "    scale: 2\n    environment:\n      MSG: dso://app/msg\n"
        + CLIENT_SERVICE,
    )
    project.set_secret("app/msg", "old")
    project.dso("up", "-d")
    web1, web2 = replicas(project, "web")
    before = {name: container_id(name) for name in (web1, web2)}
    (client,) = replicas(project, "client")
    wait_for(lambda: counts(client)[0] >= 20)

    project.set_secret("app/msg", "new")
    done = project.dso("rotate", "web")

    assert f"service web (project {project.name}): 2 containers, one after another" in done.stdout
    assert f"{web1}: rotated with rolling" in done.stdout
    assert f"{web2}: rotated with rolling" in done.stdout
    assert "phases: plan" in done.stdout and "health_gate" in done.stdout
    wait_for(lambda: counts(client)[2] == "new")
    ok_at_swap = counts(client)[0]
    wait_for(lambda: counts(client)[0] >= ok_at_swap + 20)
    ok, fail, last = stop_client(client)
    assert_always_served(exec_in(client, "cat", "/tmp/failures") if fail else "", 2)
    assert ok > 40 and last == "new"
    # Both replicas were replaced, under their names, and serve the new value.
    assert replicas(project, "web") == [web1, web2]
    for name in (web1, web2):
        assert container_id(name) != before[name]
        assert exec_in(name, "wget", "-q", "-O-", "http://127.0.0.1/") == "new\n"
    assert not [n for n in all_containers(project) if "_dso_" in n]
    # One after another: the second replica's rotation began after the first one ended.
    first, second = journal(project)
    assert [first["old_name"], second["old_name"]] == [web1, web2]
    assert first["status"] == second["status"] == "completed"
    assert second["started_at"] >= first["finished_at"]
    assert first["lock_key"] == second["lock_key"] == f"service-{project.name}.web"
    # Extensions (here the built-in audit log) see each replica's rotation, with its service.
    audit = project.dir.parent / "dso-home" / "logs" / "audit.jsonl"
    done_events = [
        e
        for e in map(json.loads, audit.read_text().splitlines())
        if e["event"] == "rotation_completed"
    ]
    assert [(e["target"], e["project"], e["service"]) for e in done_events] == [
        (web1, project.name, "web"),
        (web2, project.name, "web"),
    ]


def test_up_after_rotate_keeps_the_rotated_container(project: ComposeProject) -> None:
    write_scripts(project)
    compose = (
        "services:\n  web:"
        + WEB_SERVICE
        + "    environment:\n      MSG: dso://app/msg\n      TOKEN_FILE: dsofile://app/token\n"
    )
    project.write("compose.yaml", compose)
    project.set_secret("app/msg", "v1")
    project.set_secret("app/token", "t1")
    project.dso("up", "-d")
    (web,) = replicas(project, "web")
    project.set_secret("app/msg", "v2")
    project.set_secret("app/token", "t2")

    rotated = project.dso("rotate", "web")
    assert "config hash renewed; `docker dso up` will keep the new container" in rotated.stdout
    rotated_id = container_id(web)

    again = project.dso("up", "-d")
    # Compose compares the config hash label with the model's hash: the rotated container
    # already carries the hash of the model holding the new values and versions.
    assert f"Container {web}  Running" in again.stderr, again.stderr
    assert "Recreate" not in again.stderr
    assert container_id(web) == rotated_id
    assert exec_in(web, "wget", "-q", "-O-", "http://127.0.0.1/") == "v2\n"
    assert exec_in(web, "cat", "/run/secrets/dso/TOKEN_FILE") == "t2"
    versions = json.loads(inspect(web)["Config"]["Labels"]["dso.versions"])
    assert versions == {"MSG": "local:2", "TOKEN_FILE": "local:2"}

    # The hash still moves with the secrets: a new version is picked up by `up` as before.
    project.set_secret("app/msg", "v3")
    project.dso("up", "-d")
    assert container_id(web) != rotated_id
    assert exec_in(web, "wget", "-q", "-O-", "http://127.0.0.1/") == "v3\n"
    assert rotation_dirs(project) == ["web@" + journal(project)[0]["id"]]  # until swept


def test_rotate_does_not_hide_an_edited_compose_file_from_up(project: ComposeProject) -> None:
    write_scripts(project)
    compose = "services:\n  web:" + WEB_SERVICE + "    environment:\n      MSG: dso://app/msg\n"
    project.write("compose.yaml", compose)
    project.set_secret("app/msg", "v1")
    project.dso("up", "-d")
    (web,) = replicas(project, "web")
    # The project changes after `up`: the next `up` must still apply it.
    project.write("compose.yaml", compose + "    labels:\n      team: blue\n")
    project.set_secret("app/msg", "v2")

    rotated = project.dso("rotate", "web")

    assert "the next `docker dso up` will recreate the new container" in rotated.stdout
    assert "configuration of service web is not the one" in rotated.stdout
    rotated_id = container_id(web)
    again = project.dso("up", "-d")
    assert "Recreate" in again.stderr and container_id(web) != rotated_id
    assert inspect(web)["Config"]["Labels"]["team"] == "blue"


def test_dry_run_plans_each_replica_and_touches_nothing(project: ComposeProject) -> None:
    write_scripts(project)
    project.write(
        "compose.yaml",
        "services:\n  web:"
        + WEB_SERVICE
        + "    scale: 2\n    environment:\n      MSG: dso://app/msg\n"
        + "      TOKEN_FILE: dsofile://app/token\n",
    )
    project.set_secret("app/msg", "v1")
    project.set_secret("app/token", "t1")
    project.dso("up", "-d")
    names = replicas(project, "web")
    ids = [container_id(n) for n in names]
    project.set_secret("app/msg", "v2")

    plan = project.dso("rotate", "web", "--dry-run")
    as_json = json.loads(project.dso("rotate", "web", "--dry-run", "--json").stdout)

    for name in names:
        assert f"{name} (" in plan.stdout and "): would rotate with rolling" in plan.stdout
    assert plan.stdout.count("MSG                  dso://app/msg  local:1 -> local:2  (env)") == 2
    assert plan.stdout.count("unchanged: dsofile://app/token") == 2
    assert "why: auto: no fixed host ports" in plan.stdout
    (target,) = as_json["targets"]
    assert target["kind"] == "service" and target["status"] == "planned"
    assert [r["target"] for r in as_json["rotations"]] == names
    assert all(r["plan"]["changed"][0]["to"] == "local:2" for r in as_json["rotations"])
    assert all("v2" not in json.dumps(r) for r in as_json["rotations"])
    # Nothing touched: same containers, no journal entry, no directory, no temporary container.
    assert [container_id(n) for n in names] == ids
    assert journal(project) == []
    assert rotation_dirs(project) == []
    assert all_containers(project) == sorted(names)


def test_replicas_on_different_versions_are_reported(project: ComposeProject) -> None:
    """A rollout that stopped part-way leaves replicas on different versions: dry runs and
    recover say so (versions only), and rotating the service aligns them."""
    write_scripts(project)
    project.write(
        "compose.yaml",
        "services:\n  web:"
        + WEB_SERVICE
        + "    scale: 2\n    environment:\n      MSG: dso://app/msg\n",
    )
    project.set_secret("app/msg", "v1")
    project.dso("up", "-d")
    web1, web2 = replicas(project, "web")
    project.set_secret("app/msg", "v2")
    project.dso("rotate", web1)  # one replica only, as a stopped rollout leaves it

    plan = project.dso("rotate", "web", "--dry-run")
    as_json = json.loads(project.dso("rotate", "web", "--dry-run", "--json").stdout)
    recovered = project.dso("recover")
    recovered_json = json.loads(project.dso("recover", "--json").stdout)

    spread = f"{web1} MSG=local:2; {web2} MSG=local:1"
    assert f"replicas hold different versions: {spread}" in plan.stdout
    assert as_json["targets"][0]["mixed_versions"] == {
        web1: {"MSG": "local:2"},
        web2: {"MSG": "local:1"},
    }
    assert f"service web (project {project.name}): replicas hold different versions: {spread}" in (
        recovered.stdout
    )
    (mixed,) = recovered_json["mixed_versions"]
    assert (mixed["service"], mixed["containers"][web2]) == ("web", {"MSG": "local:1"})
    assert "v1" not in recovered.stdout + plan.stdout and "v2" not in recovered.stdout
    # Rotating the service brings the lagging replica along; then nothing is reported.
    project.dso("rotate", "web")
    assert "different versions" not in project.dso("rotate", "web", "--dry-run").stdout
    assert json.loads(project.dso("recover", "--json").stdout)["mixed_versions"] == []
