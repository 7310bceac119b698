"""``docker dso status`` against the real ``dso agent`` on a compose project: live through its
socket while it runs (every ``.observability`` section filled by a scenario: rotations, a lock
another process holds, a failed health gate, the provider's back end gone), then from the state
files once it stopped (exit 10, the same schema).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from kernel.paths import local_layout
from kernel.rotation.locks import TargetLocks
from kernel.rotation.targets import service_lock_key
from tests.integration.agent_support import AgentProcess, agent, serving, wait_until
from tests.integration.compose_support import ComposeProject, project
from tests.integration.rotation_compose_support import WEB_SERVICE, replicas
from tests.status_schema import validate_status

pytestmark = pytest.mark.integration
__all__ = ["agent", "project"]

CANARY = "CANARY-status-3c9d"
CRASH_CANARY = "CANARY-crash-77e1"
#: Serves $MSG; a container whose MSG starts with "crash" prints it and exits at once (its
#: health gate fails, and the logs it quotes hold the secret: dso must mask it).
WEB_SH = r"""
case "$MSG" in crash*) echo "config: MSG=$MSG"; exit 3;; esac
mkdir -p /www
echo "$MSG" > /www/index.html
exec httpd -f -p 80 -h /www
"""
CONFIG = """\
version: 1
default_provider: local
providers:
  local:
    type: local
    breaker:
      failure_threshold: 2
      cooldown: 30s
agent:
  watch:
    polling_interval: 1s
    debounce_window: 1s
  rotation:
    timeout: 30s
"""


def idle(doc: Any) -> bool:
    return not doc["rotations"]["in_progress"] and not doc["queue"]["busy"]


def status(project: ComposeProject, *args: str) -> tuple[int, Any, str]:
    """``dso status --json``: exit code, document, stderr."""
    done = project.dso("status", "--json", *args, ok=False)
    return done.returncode, json.loads(done.stdout), done.stderr


@pytest.mark.timeout(300)
def test_status_live_from_the_agent_then_from_the_state_files_once_it_stopped(
    project: ComposeProject, agent: Callable[..., AgentProcess]
) -> None:
    home = Path(project.env["DSO_HOME"])
    (home / "config.yaml").write_text(CONFIG)
    (home / "config.yaml").chmod(0o600)
    project.write("web.sh", WEB_SH)
    project.write(
        "compose.yaml",
        "services:\n  web:" + WEB_SERVICE + "    environment:\n      MSG: dso://app/msg\n",
    )
    project.set_secret("app/msg", "v1")
    project.dso("up", "-d")
    (web,) = replicas(project, "web")
    running = agent()
    running.start()
    running.wait_for("recovery: no interrupted rotation")
    assert running.proc is not None
    pid = running.proc.pid

    # A change rolled out while another process holds the service's lock: contention.
    locks = TargetLocks(local_layout(home).locks)
    with locks.hold(service_lock_key(project.name, "web"), wait=5, note="test"):
        project.set_secret("app/msg", CANARY)
        running.wait_for("Rotation debounce")
        time.sleep(2.5)
    wait_until(lambda: serving(web) == f"{CANARY}\n", timeout=60)
    running.wait_for("Rotation complete: dso://app/msg")
    # A new container that exits at once: its health gate fails, it is rolled back.
    project.set_secret("app/msg", f"crash-{CRASH_CANARY}")
    running.wait_for("Rotation failed", timeout=60)
    # Three more checks (1 s polling): the versions that failed are not tried again.
    time.sleep(3.5)
    assert running.since_start().count("Rotation failed") == 1
    # A good value again: that is a move, rolled out.
    project.set_secret("app/msg", "v4")
    wait_until(lambda: serving(web) == "v4\n", timeout=60)
    wait_until(lambda: idle(status(project)[1]), timeout=60)

    code, doc, stderr = status(project)

    assert code == 0, stderr
    validate_status(doc)
    assert doc["source"] == "agent" and doc["agent"]["health"]["live"] is True
    assert doc["runtime"]["pid"] == pid and doc["runtime"]["mode"] == "local"
    assert doc["runtime"]["socket"] == str(home / "agent.sock")
    assert doc["providers"]["local"]["state"] == "up"
    assert doc["cache"]["entries"] >= 1 and doc["cache"]["bytes"] > 0
    assert [c["name"] for c in doc["containers"]] == [web]
    assert doc["containers"][0]["references"]["MSG"]["reference"] == "dso://app/msg"
    recent = doc["rotations"]["recent"]
    assert recent[0]["status"] == "completed" and recent[-1]["status"] == "completed"
    assert [(r["status"], r["cause"]) for r in recent[1:-1]] == [("rolled_back", "health_gate")]
    obs = doc["observability"]
    assert [t["trace_id"] for t in obs["traces"]] == [r["trace_id"] for r in recent]
    assert obs["traces"][-1]["phases"]["health_gate"] > 0
    assert obs["provider_latency"]["local"]["get"]["count"] >= 2
    (contended,) = obs["lock_contention"]
    assert contended["target"] == service_lock_key(project.name, "web")
    assert contended["waited_seconds"] > 1.0 and contended["source"] == "agent"
    failed = obs["health_checks"][0]
    assert failed["healthy"] is False and failed["target"] == web
    assert obs["circuit_breakers"]["local"]["state"] == "closed"

    # The back end goes away: the breaker opens (two failed polls) and status says so.
    vault = home / "vault.enc"
    away = vault.with_name("vault.enc.away")
    vault.rename(away)
    try:
        wait_until(
            lambda: (
                status(project)[1]["observability"]["circuit_breakers"]["local"]["state"] == "open"
            ),
            timeout=30,
        )
        code, doc, _ = status(project)
        validate_status(doc)
        breaker = doc["observability"]["circuit_breakers"]["local"]
        assert breaker["last_transition"]["to"] == "open" and breaker["failures"] >= 2
        assert breaker["next_trial_in"] is not None
        assert doc["providers"]["local"]["state"] == "down"
    finally:
        away.rename(vault)

    human = project.dso("status")
    cache = [line for line in human.stdout.splitlines() if "cache" in line.lower()]
    assert len(cache) == 1 and "max_size" in cache[0] and "hit ratio" in cache[0]

    started = time.perf_counter()
    project.dso("status", "--json")
    print(f"docker dso status --json, live: {(time.perf_counter() - started) * 1000:.0f} ms")

    # Stopped: the same document from the state files, and exit 10 saying so.
    code, doc, _ = status(project)
    assert idle(doc)
    assert running.stop() == 0
    code, offline, stderr = status(project)

    assert code == 10
    assert "the agent is not running" in stderr
    validate_status(offline)
    assert offline["source"] == "state_files" and offline["agent"]["running"] is False
    assert offline["runtime"]["pid"] == pid and offline["runtime"]["stopped_at"] is not None
    assert offline["providers"] is None and offline["cache"] is None
    assert [c["name"] for c in offline["containers"]] == [web]
    assert offline["rotations"]["recent"] == doc["rotations"]["recent"]
    assert [t["trace_id"] for t in offline["observability"]["traces"]] == [
        t["trace_id"] for t in doc["observability"]["traces"]
    ]
    assert offline["observability"]["health_checks"][0]["source"] == "journal"
    assert offline["observability"]["lock_contention"][0]["source"] == "journal"
    assert offline["observability"]["circuit_breakers"] == {}

    human = project.dso("status", ok=False)
    assert human.returncode == 10 and "agent: NOT RUNNING" in human.stdout
    for text in [*project.outputs, running.text()]:
        assert CANARY not in text
        assert CRASH_CANARY not in text
    failed_gate = doc["observability"]["health_checks"][0]
    assert "config: MSG=***" in failed_gate["output"]  # the app's words, its secret masked
    state = home / "state"
    for path in state.rglob("*"):
        if path.is_file():
            assert CRASH_CANARY.encode() not in path.read_bytes(), path
