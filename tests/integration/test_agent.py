"""The agent on real compose projects: it notices secret changes and rolls them out by itself.

Real dockerd, real compose, the real local provider process (its inotify ``watch``), the real
``dso agent`` program, stopped with SIGTERM.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.integration.agent_support import AgentProcess, agent, configure, serving, wait_until
from tests.integration.compose_support import ComposeProject, project
from tests.integration.rotation_compose_support import (
    WEB_SERVICE,
    container_id,
    exec_in,
    replicas,
    write_scripts,
)

pytestmark = pytest.mark.integration
__all__ = ["agent", "project"]

CANARY = "CANARY-agent-7f3a"


def two_services(project: ComposeProject) -> None:
    """web (2 replicas) and api share app/msg; api also has app/token as a file."""
    write_scripts(project)
    project.write(
        "compose.yaml",
        "services:\n  web:"
        + WEB_SERVICE
        + "    scale: 2\n    environment:\n      MSG: dso://app/msg\n"
        + "  api:"
        + WEB_SERVICE
        + "    environment:\n      MSG: dso://app/msg\n      TOKEN_FILE: dsofile://app/token\n",
    )


def journal(project: ComposeProject) -> list[dict[str, object]]:
    from kernel.rotation.journal import Journal

    return [e.to_dict() for e in Journal(Path(project.env["DSO_HOME"]) / "state").entries()]


def test_a_changed_secret_is_rolled_out_by_the_agent(
    project: ComposeProject, agent: Callable[..., AgentProcess]
) -> None:
    two_services(project)
    configure(project)
    project.set_secret("app/msg", "v1")
    project.set_secret("app/token", "t1")
    project.dso("up", "-d")
    web = replicas(project, "web")
    (api,) = replicas(project, "api")
    before = {name: container_id(name) for name in [*web, api]}
    running = agent()
    running.start()
    running.wait_for("recovery: no interrupted rotation")

    project.set_secret("app/msg", f"{CANARY}-2")
    # Shared secret: both services rotate; the two replicas of web one after another.
    first = wait_until(lambda: serving(api) == f"{CANARY}-2\n")
    every = first + wait_until(lambda: all(serving(n) == f"{CANARY}-2\n" for n in web))
    running.wait_for("Rotation complete: dso://app/msg", count=2)
    # Figures only (bench/agent.py measures them): the window is 1 s here.
    print(f"change -> api serving it: {first:.2f}s; every replica: {every:.2f}s")
    assert all(container_id(n) != before[n] for n in [*web, api])
    entries = journal(project)
    assert {e["trace_id"] for e in entries if e["old_name"] in web} != set()
    assert len(entries) == 3 and all(e["status"] == "completed" for e in entries)

    # No spurious rotation: a restart with unchanged secrets rotates nothing. (A wider window
    # from now on, so the three changes below surely fall in one even on a loaded machine.)
    assert running.stop() == 0
    configure(project, debounce="4s")
    running.start()
    running.wait_for("recovery: no interrupted rotation")
    time.sleep(3)
    assert len(journal(project)) == 3

    # Three changes within the window: one rotation per service, with all of them.
    project.set_secret("app/msg", "v3")
    project.set_secret("app/token", "t3")
    project.set_secret("app/msg", "v4")
    wait_until(lambda: serving(api) == "v4\n" and all(serving(n) == "v4\n" for n in web))
    wait_until(lambda: exec_in(api, "cat", "/run/secrets/dso/TOKEN_FILE") == "t3")
    time.sleep(3)  # nothing more comes
    later = journal(project)[3:]
    assert sorted(str(e["old_name"]) for e in later) == sorted([*web, api])
    (api_entry,) = [e for e in later if e["old_name"] == api]
    assert set(api_entry["references"]) == {"MSG", "TOKEN_FILE"}

    assert running.stop() == 0
    log = running.text()
    for line in (
        "Agent started, version",
        "Configuration loaded from",
        "Docker socket connected",
        "Secret backend connected: local",
        "Event watcher started",
        "Agent stopped",
    ):
        assert line in log
    # The canary never reaches logs or state files.
    assert CANARY not in log
    state = Path(project.env["DSO_HOME"]) / "state"
    for path in state.iterdir():
        if path.is_file():
            assert CANARY.encode() not in path.read_bytes(), path
    runtime = json.loads((state / "runtime.json").read_text())
    assert runtime["running"] is False and runtime["last_rotation"]["status"] == "completed"
    containers = json.loads((state / "containers.json").read_text())["containers"]
    assert {c["name"] for c in containers.values()} == {*web, api}


def test_a_change_while_the_agent_is_down_is_rolled_out_once_at_start(
    project: ComposeProject, agent: Callable[..., AgentProcess]
) -> None:
    two_services(project)
    configure(project)
    project.set_secret("app/msg", "v1")
    project.set_secret("app/token", "t1")
    project.dso("up", "-d")
    web = replicas(project, "web")
    project.set_secret("app/msg", "v2")  # no agent running

    running = agent()
    running.start()
    wait_until(lambda: all(serving(n) == "v2\n" for n in web))
    running.wait_for("Rotation complete", count=2)
    time.sleep(3)
    assert len(journal(project)) == 3  # web x2, api x1: exactly one rotation each
    assert running.stop() == 0


def test_a_second_agent_refuses_and_names_the_first(
    project: ComposeProject, agent: Callable[..., AgentProcess]
) -> None:
    configure(project)
    first = agent()
    first.start()
    assert first.proc is not None
    second = project.dso("agent", ok=False)
    assert second.returncode == 10
    assert (
        f"an agent is already running for this installation (pid {first.proc.pid}" in second.stderr
    )
    stopped = project.dso("agent", "stop")
    assert f"agent (pid {first.proc.pid}) stopped" in stopped.stderr
    first.proc.wait(timeout=5)
    assert first.proc.returncode == 0
    first.proc = None


def test_the_spec_form_agent_config_file_reads_that_file(
    project: ComposeProject, agent: Callable[..., AgentProcess]
) -> None:
    """``dso agent --config FILE`` (the spec's ExecStart) reads FILE, as the global -c does."""
    configure(project)
    config = Path(project.env["DSO_HOME"]) / "config.yaml"
    moved = project.dir / "elsewhere.yaml"
    config.rename(moved)
    process = agent("--config", str(moved))
    process.start()
    assert f"Configuration loaded from {moved}" in process.text()
    missing = project.dso("agent", "--config", str(project.dir / "absent.yaml"), ok=False)
    assert missing.returncode != 0 and "absent.yaml" in missing.stderr


def test_up_starts_a_local_agent_that_rolls_changes_out(project: ComposeProject) -> None:
    two_services(project)
    configure(project)
    project.set_secret("app/msg", "v1")
    project.set_secret("app/token", "t1")
    env = {k: v for k, v in project.env.items() if k != "DSO_NO_AGENT"}
    home = Path(project.env["DSO_HOME"])
    try:
        up = project.dso("up", "-d", env=env)
        assert "started a local agent (pid " in up.stderr, up.stderr
        pid = int(up.stderr.split("started a local agent (pid ")[1].split(")")[0])
        again = project.dso("up", "-d", env=env)
        assert "started a local agent" not in again.stderr  # one is running already
        (api,) = replicas(project, "api")
        project.set_secret("app/msg", "v2")
        wait_until(lambda: serving(api) == "v2\n")
        log = home / "logs" / "dso.log"
        wait_until(lambda: "Rotation complete: dso://app/msg" in log.read_text())
    finally:
        stopped = project.dso("agent", "stop", ok=False)
    assert stopped.returncode == 0 and f"agent (pid {pid}) stopped" in stopped.stderr
    assert "Agent stopped" in log.read_text()
