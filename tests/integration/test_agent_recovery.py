"""The agent survives what an unattended process meets: killed mid-rotation, its provider killed,
a broken configuration on SIGHUP, corrupt state files."""

from __future__ import annotations

import os
import shutil
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.integration.agent_support import AgentProcess, agent, configure, serving, wait_until
from tests.integration.compose_support import ComposeProject, docker, project
from tests.integration.docker_proxy import UnixProxy, upstream_socket
from tests.integration.rotation_compose_support import (
    WEB_SERVICE,
    all_containers,
    exec_in,
    inspect,
    replicas,
    write_scripts,
)

pytestmark = pytest.mark.integration
__all__ = ["agent", "project"]


def one_web(project: ComposeProject) -> str:
    write_scripts(project)
    project.write(
        "compose.yaml",
        "services:\n  web:" + WEB_SERVICE + "    environment:\n      MSG: dso://app/msg\n",
    )
    project.set_secret("app/msg", "v1")
    project.dso("up", "-d")
    (web,) = replicas(project, "web")
    return web


def test_killed_mid_rotation_the_agent_recovers_at_start(
    project: ComposeProject, agent: Callable[..., AgentProcess]
) -> None:
    configure(project)
    web = one_web(project)
    crashing = agent()
    crashing.project.env = {
        **project.env,
        "DSO_TEST_MODE": "1",
        "DSO_FAULT_KILL_AFTER_STEP": "health_gate",
    }
    crashing.start()
    project.set_secret("app/msg", "v2")
    assert crashing.proc is not None
    assert crashing.proc.wait(timeout=60) == -signal.SIGKILL
    crashing.proc = None
    assert any("_dso_new_" in name for name in all_containers(project))

    project.env = {k: v for k, v in project.env.items() if not k.startswith("DSO_FAULT")}
    running = agent()
    running.start()
    running.wait_for("recovery: ")
    wait_until(lambda: serving(web) == "v2\n")
    running.wait_for("Rotation complete: dso://app/msg")
    log = running.since_start()
    assert "will be rotated again (crash)" in log
    assert all(line.count("recovery") for line in log.splitlines() if "rolled_back" in line)
    assert all_containers(project) == [web]  # one serving container, no leftover
    assert running.stop() == 0


def test_a_killed_provider_is_restarted_and_the_agent_goes_on(
    project: ComposeProject, agent: Callable[..., AgentProcess]
) -> None:
    configure(project)
    web = one_web(project)
    running = agent()
    running.start()
    running.wait_for("Secret backend connected: local")
    assert running.proc is not None
    tasks = Path(f"/proc/{running.proc.pid}/task").iterdir()
    (provider,) = [int(pid) for task in tasks for pid in (task / "children").read_text().split()]
    os.kill(provider, signal.SIGKILL)

    project.set_secret("app/msg", "v2")
    wait_until(lambda: serving(web) == "v2\n", timeout=45)
    running.wait_for("Rotation complete: dso://app/msg")
    assert running.proc.poll() is None
    assert running.stop() == 0


def test_sighup_applies_a_valid_config_and_keeps_the_old_one_when_broken(
    project: ComposeProject, agent: Callable[..., AgentProcess]
) -> None:
    configure(project)
    web = one_web(project)
    running = agent()
    running.start()
    running.wait_for("Secret backend connected: local")
    assert running.proc is not None
    config = Path(project.env["DSO_HOME"]) / "config.yaml"

    good = config.read_text()
    config.write_text(good + "agnet:\n  nope: 1\n")
    running.proc.send_signal(signal.SIGHUP)
    running.wait_for("configuration not reloaded, the running one is kept")
    bad_line = len(good.splitlines()) + 1
    assert f"config.yaml:{bad_line}: agnet: unknown key" in running.since_start()
    project.set_secret("app/msg", "v2")  # the old configuration still rolls changes out
    wait_until(lambda: serving(web) == "v2\n")

    configure(project, debounce="2s")
    running.proc.send_signal(signal.SIGHUP)
    running.wait_for("Configuration loaded from", count=2)
    project.set_secret("app/msg", "v3")
    wait_until(lambda: serving(web) == "v3\n")
    assert running.proc.poll() is None
    assert running.stop() == 0


def test_corrupt_state_files_are_set_aside_and_the_agent_starts(
    project: ComposeProject, agent: Callable[..., AgentProcess]
) -> None:
    configure(project)
    web = one_web(project)
    state = Path(project.env["DSO_HOME"]) / "state"
    state.mkdir(exist_ok=True)
    for name in ("runtime.json", "containers.json"):
        (state / name).write_text("{not json")
    running = agent()
    running.start()
    running.wait_for("Secret backend connected: local")
    log = running.since_start()
    assert log.count("[ERROR]") >= 2 and "corrupt" in log
    project.set_secret("app/msg", "v2")
    wait_until(lambda: serving(web) == "v2\n")
    assert running.stop() == 0
    assert list(state.glob("runtime.json.corrupt-*")) and list(
        state.glob("containers.json.corrupt-*")
    )


def test_after_a_reboot_the_files_come_back_and_the_container_starts(
    project: ComposeProject, agent: Callable[..., AgentProcess]
) -> None:
    """A reboot, simulated: the tmpfs secrets directory is wiped and Docker restarts the
    container, which cannot start without its bind-mounted directory; the agent writes the
    files again at the recorded versions and starts it."""
    configure(project)
    write_scripts(project)
    project.write(
        "compose.yaml",
        "services:\n  api:"
        + WEB_SERVICE
        + "    restart: unless-stopped\n"
        + "    environment:\n      MSG: dso://app/msg\n      TOKEN_FILE: dsofile://app/token\n",
    )
    project.set_secret("app/msg", "v1")
    project.set_secret("app/token", "t1")
    project.set_secret("app/token", "t2")
    project.dso("up", "-d")
    (api,) = replicas(project, "api")
    project.set_secret("app/token", "t3")  # newer than what the container was given

    shutil.rmtree(project.secrets_base)
    restarted = docker("restart", "-t", "1", api)
    assert restarted.returncode != 0 and "no such file or directory" in restarted.stderr
    assert not inspect(api)["State"]["Running"]

    running = agent()
    running.start()
    running.wait_for("had lost its secret files")
    wait_until(lambda: inspect(api)["State"]["Running"])
    # The local vault keeps only the current version, so the files come back at t3 (said in
    # the log), and the first check rotates the container so its labels say so too.
    wait_until(lambda: exec_in(api, "cat", "/run/secrets/dso/TOKEN_FILE") == "t3", timeout=45)
    versions = '"TOKEN_FILE":"local:3"'
    wait_until(lambda: versions in inspect(api)["Config"]["Labels"]["dso.versions"], timeout=45)
    log = running.since_start()
    assert "recovery: started" in log and "at version 2 is no longer kept" in log
    assert running.stop() == 0


def test_a_lost_docker_daemon_is_reconnected_and_nothing_is_lost(
    project: ComposeProject, agent: Callable[..., AgentProcess], tmp_path: Path
) -> None:
    """The agent talks to Docker through a proxy; killing the proxy is the daemon going away
    (a dockerd restart, without restarting the daemon the other tests share). A secret changed
    meanwhile is rolled out once the daemon is back."""
    configure(project, poll="2s")
    web = one_web(project)
    socket_path = tmp_path / "docker.sock"
    proxy = UnixProxy(socket_path, upstream_socket())
    running = agent()
    running.project.env = {**project.env, "DOCKER_HOST": f"unix://{socket_path}"}
    try:
        running.start()
        proxy.kill()
        running.wait_for("Docker event stream lost, reconnecting...")
        project.set_secret("app/msg", "v2")
        time.sleep(3)
        assert serving(web) == "v1\n"  # nothing can be rotated without the daemon
        proxy = UnixProxy(socket_path, upstream_socket())
        running.wait_for("Event watcher started", count=2, timeout=60)
        wait_until(lambda: serving(web) == "v2\n", timeout=60)
        running.wait_for("Rotation complete: dso://app/msg")
        assert running.since_start().count("Docker event stream lost, reconnecting...") == 1
        assert all_containers(project) == [web]
        assert running.stop() == 0
    finally:
        proxy.kill()
