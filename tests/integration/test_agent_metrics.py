"""The agent's Prometheus metrics on a real scenario: every family registered is fed by what the
real ``dso agent`` does, read over its TCP listener (``agent.metrics.listen``) and its socket.

One compose service, the local provider, and the things an operator graphs: an interrupted
rotation recovered at start, changes rolled out, a rotation waiting on a lock another process
holds, a new container failing its health gate (rolled back), webhook calls, a socket request,
and a provider outage (the vault file gone) that opens the breaker until it is back.
"""

from __future__ import annotations

import http.client
import math
import re
import socket
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from kernel.paths import local_layout
from kernel.rotation.locks import TargetLocks
from kernel.rotation.targets import service_lock_key
from tests.integration.agent_support import AgentProcess, agent, serving, wait_until
from tests.integration.compose_support import ComposeProject, project
from tests.integration.rotation_compose_support import WEB_SERVICE, all_containers, replicas
from tests.integration.rotation_support import free_port

pytestmark = pytest.mark.integration
__all__ = ["agent", "project"]

CANARY = "CANARY-metrics-5e1b"
TOKEN = "hook-token-metrics-77a2"
#: Serves $MSG; a container whose MSG is "crash" exits at once (its health gate fails).
WEB_SH = r"""
[ "$MSG" = crash ] && exit 3
mkdir -p /www
echo "$MSG" > /www/index.html
exec httpd -f -p 80 -h /www
"""
#: Counter families a scenario with one real agent cannot feed, and why.
UNFED = {
    # A caller refused by its peer credentials is another user:
    # tests/integration/test_agent_api_peers.py checks dso_api_denied_total.
    "dso_api_denied": "needs a second uid",
}


def configure(project: ComposeProject, *, metrics_port: int, hook_port: int) -> None:
    config = Path(project.env["DSO_HOME"]) / "config.yaml"
    config.write_text(
        f"""\
version: 1
default_provider: local
providers:
  local:
    type: local
    breaker:
      failure_threshold: 2
      cooldown: 1s
agent:
  watch:
    polling_interval: 1s
    debounce_window: 1s
  rotation:
    timeout: 30s
  webhook:
    enabled: true
    listen: 127.0.0.1:{hook_port}
    token: {TOKEN}
  metrics:
    listen: 127.0.0.1:{metrics_port}
"""
    )
    config.chmod(0o600)


def scrape(port: int) -> dict[str, list[Sample]]:
    """Family name → samples, from GET /metrics on the TCP listener."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", "/metrics")
        answer = connection.getresponse()
        text = answer.read().decode()
        assert answer.status == 200, text
    finally:
        connection.close()
    assert CANARY not in text and TOKEN not in text
    return {f.name: f.samples for f in text_string_to_metric_families(text)}


def sample(families: dict[str, list[Sample]], name: str, **labels: str) -> float:
    """The sum of ``name``'s samples carrying ``labels`` (0 when there is none)."""
    family = re.sub(r"(_total|_count|_sum|_bucket)$", "", name)
    return sum(
        s.value
        for s in families.get(family, [])
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    )


def over_socket(path: str, target: str) -> tuple[int, str]:
    """``GET target`` on the agent's unix socket (what ``curl --unix-socket`` does)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect(path)
        request = f"GET {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        sock.sendall(request.encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body.decode()


def hook(port: int, token: str, key: str) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        body = f'{{"provider": "local", "secret": "app/msg", "idempotency_key": "{key}"}}'
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
        connection.request("POST", "/hooks/secret-changed", body, headers)
        return connection.getresponse().status
    finally:
        connection.close()


@pytest.mark.timeout(300)
def test_every_metric_family_is_fed_by_a_real_agent(
    project: ComposeProject, agent: Callable[..., AgentProcess]
) -> None:
    metrics_port, hook_port = free_port(), free_port()
    configure(project, metrics_port=metrics_port, hook_port=hook_port)
    project.write("web.sh", WEB_SH)
    project.write(
        "compose.yaml",
        "services:\n  web:" + WEB_SERVICE + "    environment:\n      MSG: dso://app/msg\n",
    )
    project.set_secret("app/msg", "v1")
    project.dso("up", "-d")
    (web,) = replicas(project, "web")

    # A `docker dso rotate` killed mid-rotation: the agent recovers it when it starts.
    project.set_secret("app/msg", "v2")
    killed = project.dso(
        "rotate",
        web,
        ok=False,
        env={**project.env, "DSO_TEST_MODE": "1", "DSO_FAULT_KILL_AFTER_STEP": "health_gate"},
    )
    assert killed.returncode == -9, killed.stderr
    assert any("_dso_new_" in name for name in all_containers(project))

    running = agent()
    running.start(ready="Metrics listening on http://127.0.0.1:")
    running.wait_for("will be rotated again (crash)")
    wait_until(lambda: serving(web) == "v2\n", timeout=60)
    running.wait_for("Rotation complete: dso://app/msg")

    # A rotation waits for the lock another process (here, the test) holds: contention.
    home = Path(project.env["DSO_HOME"])
    locks = TargetLocks(local_layout(home).locks)
    with locks.hold(service_lock_key(project.name, "web"), wait=5, note="test"):
        project.set_secret("app/msg", CANARY)
        # Noticed (watch), the 1 s window, then the rotation waits for the lock.
        wait_until(lambda: sample(scrape(metrics_port), "dso_rotations_in_progress") == 1)
        time.sleep(1.5)
    wait_until(lambda: serving(web) == f"{CANARY}\n", timeout=60)
    running.wait_for("lock contention: waited")

    # A new container that exits at once fails its health gate and is rolled back.
    project.set_secret("app/msg", "crash")
    running.wait_for("Rotation failed", timeout=60)
    project.set_secret("app/msg", "v4")
    wait_until(lambda: serving(web) == "v4\n", timeout=60)

    # The inbound webhook: one accepted hint, one refused call.
    assert hook(hook_port, TOKEN, "metrics-1") == 202
    assert hook(hook_port, "wrong", "metrics-2") == 401

    # The provider's back end goes away: its breaker opens, and closes once it is back.
    vault = home / "vault.enc"
    assert vault.is_file()
    away = vault.with_name("vault.enc.away")
    vault.rename(away)
    try:
        wait_until(
            lambda: sample(scrape(metrics_port), "dso_breaker_transitions_total", state="open"),
            timeout=30,
        )
        families = scrape(metrics_port)
        assert sample(families, "dso_provider_breaker_state", provider="local") in (1, 2)
    finally:
        away.rename(vault)
    wait_until(
        lambda: (
            sample(scrape(metrics_port), "dso_provider_breaker_state", provider="local") == 0
            and sample(scrape(metrics_port), "dso_breaker_transitions_total", state="closed")
        ),
        timeout=30,
    )

    # The socket serves the same families (and counts the request).
    path = re.search(r"Listening on (\S+)", running.since_start())
    assert path is not None
    status, text = over_socket(path.group(1), "/metrics")
    assert status == 200 and "# TYPE dso_agent_info gauge" in text

    families = scrape(metrics_port)
    socket_families = {f.name for f in text_string_to_metric_families(text)}
    assert socket_families == set(families)
    fed = {}
    for name, samples in families.items():
        values = [s.value for s in samples if not s.name.endswith(("_bucket", "_sum"))]
        fed[name] = bool(samples) and any(v > 0 for v in values)
    print({name: [(s.labels, s.value) for s in samples][:4] for name, samples in families.items()})
    assert all(families.values()), [name for name, samples in families.items() if not samples]
    counted = {
        name
        for name, samples in families.items()
        if any(s.name.endswith(("_total", "_count")) for s in samples)
    }
    assert {name for name in counted if not fed[name]} == set(UNFED)

    # What an operator would read off this scenario.
    assert sample(families, "dso_recoveries_total", result="ok") >= 1
    assert sample(families, "dso_container_rotations_total", outcome="completed") >= 3
    assert sample(families, "dso_container_rotations_total", outcome="rolled_back") >= 1
    assert sample(families, "dso_rotation_duration_seconds_count", outcome="failed") >= 1
    assert sample(families, "dso_rotation_duration_seconds_count") >= 4
    assert sample(families, "dso_health_gates_total", outcome="unhealthy") >= 1
    assert sample(families, "dso_health_gates_total", outcome="healthy") >= 3
    assert sample(families, "dso_lock_contentions_total") >= 1
    assert sample(families, "dso_provider_call_errors_total", provider="local") >= 2
    assert sample(families, "dso_provider_call_duration_seconds_count", method="get") >= 3
    assert sample(families, "dso_breaker_transitions_total", state="half_open") >= 1
    assert sample(families, "dso_webhook_requests_total", outcome="accepted") == 1
    assert sample(families, "dso_webhook_requests_total", outcome="rejected") == 1
    assert sample(families, "dso_api_requests_total", action="metrics", status="200") == 1
    assert sample(families, "dso_docker_events_total", object="container", action="start") >= 3
    assert sample(families, "dso_checks_total", source="poll") >= 1
    assert sample(families, "dso_managed_containers") == 1
    assert sample(families, "dso_agent_live") == 1
    assert sample(families, "dso_cache_entries") >= 1
    assert 0 < sample(families, "dso_cache_bytes") <= sample(families, "dso_cache_max_bytes")
    assert sample(families, "dso_rotation_queue_depth") >= 0
    assert not math.isnan(sample(families, "dso_process_resident_memory_bytes"))

    assert running.stop() == 0
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", metrics_port), 2):
        pass
    assert CANARY not in running.text()
