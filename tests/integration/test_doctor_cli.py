"""``docker dso doctor`` on a real installation: a compose project's DSO_HOME, the real Docker
daemon and the real ``dso agent``. A healthy home passes; a stopped agent, a corrupt state
file, a rotation's orphan container and a secret gone from the vault are each found, named and
given their fix; a secret value never appears in what doctor prints."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from kernel.rotation.journal import Journal
from tests.integration.agent_support import AgentProcess, agent, configure
from tests.integration.compose_support import IMAGE, ComposeProject, docker, project
from tests.integration.rotation_compose_support import WEB_SERVICE, replicas

pytestmark = pytest.mark.integration
__all__ = ["agent", "project"]


def doctor(project: ComposeProject, *args: str) -> tuple[int, dict[str, Any], str]:
    """``dso doctor --json``: exit code, document, stderr."""
    done = project.dso("doctor", "--json", *args, ok=False)
    return done.returncode, json.loads(done.stdout), done.stderr


def by_id(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["id"]: c for c in doc["checks"]}


def test_a_healthy_home_with_its_agent_passes_and_a_stopped_agent_fails_with_the_fix(
    project: ComposeProject, agent: Callable[..., AgentProcess]
) -> None:
    configure(project)
    running = agent()
    running.start()
    running.wait_for("Listening on")

    code, doc, stderr = doctor(project)
    checks = by_id(doc)
    assert code == 0, stderr
    assert doc["ok"] is True and doc["level"] == "basic" and doc["mode"] == "local"
    assert not [c for c in doc["checks"] if c["status"] == "fail"]
    # This machine has no systemd: the one warning allowed.
    assert [c["id"] for c in doc["checks"] if c["status"] == "warn"] == ["systemd.unit"]
    assert checks["agent.health"]["finding"].startswith(f"the agent (pid {running.proc.pid}, ")
    text = project.dso("doctor")
    assert "0 failure(s)" in text.stdout
    code, full, stderr = doctor(project, "--level", "full")
    assert code == 0, stderr
    assert by_id(full)["providers.reachable"]["status"] == "ok"

    assert running.stop() == 0
    code, doc, stderr = doctor(project, "--level", "full")
    checks = by_id(doc)
    assert code == 1
    assert "agent.socket, agent.health" in stderr
    home = project.env["DSO_HOME"]
    assert checks["agent.socket"]["status"] == "fail"
    assert checks["agent.socket"]["finding"] == (
        f"no agent socket at {home}/agent.sock: the agent is not running"
    )
    assert checks["agent.health"]["status"] == "fail"
    for check in ("agent.socket", "agent.health"):
        assert f"DSO_HOME={home} docker dso agent" in checks[check]["fix"]


def test_a_corrupt_state_file_fails_naming_it(project: ComposeProject) -> None:
    state = Path(project.env["DSO_HOME"]) / "state"
    state.mkdir(exist_ok=True)
    runtime = state / "runtime.json"
    runtime.write_text('{"schema": 1, "pid": ')

    code, doc, _ = doctor(project, "--level", "full")

    check = by_id(doc)["state.files"]
    assert code == 1
    assert check["status"] == "fail"
    assert check["finding"].startswith(f"{runtime} is not valid JSON")
    assert f"mv {runtime} {runtime}.bad" in check["fix"]
    assert runtime.read_text() == '{"schema": 1, "pid": '  # found, not moved aside


def test_a_rotation_orphan_is_named_and_an_only_copy_fails(
    project: ComposeProject, test_label: str
) -> None:
    home = Path(project.env["DSO_HOME"])
    owner = Journal(home / "state").owner
    target = f"{project.name}-doctor"
    orphan = f"{target}_dso_backup_1a2b3c4d"
    made: list[str] = []

    def create(name: str, *labels: str) -> None:
        args = [a for label in (f"dso-test={test_label}", *labels) for a in ("--label", label)]
        done = docker("create", "--name", name, *args, IMAGE, "true")
        assert done.returncode == 0, done.stderr
        made.append(name)

    try:
        create(orphan, f"dso.rotation.owner={owner}")
        code, doc, _ = doctor(project)
        check = by_id(doc)["containers.orphans"]
        assert code == 1 and check["status"] == "fail"
        assert check["finding"] == (
            f"1 service(s) left only as a rotation's container: {orphan} "
            f"(no container is named {target})"
        )
        create(target)
        code, doc, _ = doctor(project, "--level", "full")
        check = by_id(doc)["containers.orphans"]
        assert check["status"] == "warn"
        assert check["finding"] == f"1 orphan container(s): {orphan} ({target} exists)"
        assert "docker dso recover" in check["fix"]
    finally:
        for name in made:
            docker("rm", "-f", name)


@pytest.mark.timeout(180)
def test_full_level_reports_a_missing_secret_by_name_never_a_value(
    project: ComposeProject, canary: str
) -> None:
    configure(project)
    project.write("web.sh", "mkdir -p /www; echo hi > /www/index.html; exec httpd -f -p 80 -h /www")
    project.write(
        "compose.yaml",
        "services:\n  web:"
        + WEB_SERVICE
        + "    environment:\n      DB_PASSWORD: dso://app/db\n      API_KEY: dso://app/gone\n",
    )
    project.set_secret("app/db", canary)
    project.set_secret("app/gone", canary + "-gone")
    project.dso("up", "-d")
    (web,) = replicas(project, "web")
    project.dso("secret", "delete", "app/gone", "--yes")

    started = time.monotonic()
    code, doc, stderr = doctor(project, "--level", "full")
    took = time.monotonic() - started
    text = project.dso("doctor", "--level", "full", ok=False)

    check = by_id(doc)["providers.reachable"]
    assert code == 1 and "providers.reachable" in stderr
    assert check["status"] == "fail"
    assert check["finding"].startswith("local: app/gone: not_found: ")
    assert check["finding"].endswith(f"(used by {web} API_KEY)")
    assert (
        "local: local " in check["detail"]
        and "1 of 2 referenced secret(s) found" in check["detail"]
    )
    assert "docker dso secret set" in check["fix"]
    assert "app/gone: not_found" in text.stdout and text.returncode == 1
    assert took < 30, took
    # The doctor never read a value: neither the secret that exists nor the deleted one.
    project.assert_no_output_contains(canary)
