"""The agent's Prometheus metrics on a stand-in agent: every bus event and telemetry measurement
moves the sample a user would graph, the state gauges read the agent when scraped, label values
from outside are bounded, the TCP listener serves /metrics only on the address configured, and
docs/agent.md lists every family with its type and labels."""

from __future__ import annotations

import http.client
import re
import socket
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from kernel import __version__, telemetry
from kernel.agent.bus import EventBus
from kernel.agent.cache import ValueCache
from kernel.agent.metrics import CONTENT_TYPE, MAX_LABEL_VALUES, AgentMetrics
from kernel.agent.metrics_listener import MetricsListener
from kernel.agent.scheduler import Reason, Scheduler
from kernel.config import Config, check_config
from kernel.config.model import AgentConfig, AgentMetricsConfig
from kernel.errors import ConfigError, ProviderUnavailableError
from kernel.injection.resolver import Resolved
from kernel.secret_value import SecretValue

DOC = (Path(__file__).resolve().parents[2] / "docs" / "agent.md").read_text()


class Host:
    """The provider host's ``status()`` as the registry answers it."""

    def __init__(self) -> None:
        self.breakers: dict[str, str | None] = {"local": "closed"}
        self.closed = False

    def status(self) -> dict[str, Any]:
        if self.closed:
            raise ProviderUnavailableError("the runtime is closed")
        providers: dict[str, Any] = {}
        for name, state in self.breakers.items():
            doc: dict[str, Any] = {"name": name, "state": "running", "latency": {}}
            if state is not None:
                doc["breaker"] = {"state": state}
            providers[name] = doc
        return {"providers": providers}


@dataclass
class FakeAgent:
    """What AgentMetrics reads of an Agent (daemon.Agent needs Docker)."""

    listen: str | None = None
    bus: EventBus = field(default_factory=EventBus)
    host: Host = field(default_factory=Host)
    cache: ValueCache = field(default_factory=lambda: ValueCache(3600, 1000))
    managed: list[object] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    scheduler: Scheduler = field(default_factory=lambda: Scheduler(lambda t, r: None, window=60))

    @property
    def runtime(self) -> Any:
        agent = AgentConfig(metrics=AgentMetricsConfig(listen=self.listen))
        config = SimpleNamespace(agent=agent)
        return SimpleNamespace(config=config, layout=SimpleNamespace(mode="local"), host=self.host)

    def health(self) -> list[str]:
        return list(self.problems)


@pytest.fixture
def agent() -> FakeAgent:
    return FakeAgent()


@pytest.fixture
def metrics(agent: FakeAgent) -> Iterator[AgentMetrics]:
    made = AgentMetrics(agent)  # type: ignore[arg-type]
    try:
        yield made
    finally:
        made.close()


def value(metrics: AgentMetrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


ROTATION = {
    "target": "shop/web",
    "status": "failed",
    "trace_id": "t1",
    "containers": ["shop-web-1", "shop-web-2"],
    "strategy": "rolling",
    "seconds": 3.2,
    "outcomes": {"shop-web-1": "completed", "shop-web-2": "rolled_back"},
}

#: (event type, fields, sample name, labels, value after one such event)
EVENTS: list[tuple[str, dict[str, Any], str, dict[str, str], float]] = [
    (
        "rotation",
        ROTATION,
        "dso_rotation_duration_seconds_count",
        {"strategy": "rolling", "outcome": "failed"},
        1,
    ),
    (
        "rotation",
        ROTATION,
        "dso_rotation_duration_seconds_sum",
        {"strategy": "rolling", "outcome": "failed"},
        3.2,
    ),
    (
        "rotation",
        ROTATION,
        "dso_rotation_duration_seconds_bucket",
        {"strategy": "rolling", "outcome": "failed", "le": "5.0"},
        1,
    ),
    (
        "rotation",
        ROTATION,
        "dso_container_rotations_total",
        {"outcome": "rolled_back"},
        1,
    ),
    (
        "rotation",
        {**ROTATION, "strategy": None, "status": "error", "outcomes": {}},
        "dso_rotation_duration_seconds_count",
        {"strategy": "unknown", "outcome": "error"},
        1,
    ),
    (
        "recovery",
        {"target": "shop/web", "action": "rolled_back", "ok": True, "reason": "crash"},
        "dso_recoveries_total",
        {"action": "rolled_back", "result": "ok"},
        1,
    ),
    (
        "recovery",
        {"target": "shop/web", "action": "forward", "ok": False, "reason": "gone"},
        "dso_recoveries_total",
        {"action": "forward", "result": "failed"},
        1,
    ),
    (
        "health_gate",
        {"target": "shop/web", "healthy": False, "seconds": 0.7, "exit_code": 1},
        "dso_health_gates_total",
        {"outcome": "unhealthy"},
        1,
    ),
    (
        "health_gate",
        {"target": "shop/web", "healthy": True, "seconds": 0.3},
        "dso_health_gate_duration_seconds_sum",
        {"outcome": "healthy"},
        0.3,
    ),
    (
        "lock_contention",
        {"target": "shop/web", "waited": 1.5, "subject": "web", "note": ""},
        "dso_lock_contentions_total",
        {},
        1,
    ),
    (
        "breaker",
        {"provider": "vault", "state": "open", "previous": "closed"},
        "dso_breaker_transitions_total",
        {"provider": "vault", "state": "open"},
        1,
    ),
    (
        "check",
        {"source": "poll", "secrets": 3, "moved": 1},
        "dso_checks_total",
        {"source": "poll"},
        1,
    ),
    (
        "docker",
        {"object": "container", "action": "die", "name": "shop-web-1"},
        "dso_docker_events_total",
        {"object": "container", "action": "die"},
        1,
    ),
    (
        "webhook",
        {"outcome": "rejected", "reason": "bad_token"},
        "dso_webhook_requests_total",
        {"outcome": "rejected"},
        1,
    ),
    (
        "request",
        {"action": "status", "uid": 0, "pid": 42, "mutating": False, "status": 200},
        "dso_api_requests_total",
        {"action": "status", "status": "200"},
        1,
    ),
    ("denied", {"uid": 1234, "pid": 99, "gid": 1234}, "dso_api_denied_total", {}, 1),
]


@pytest.mark.parametrize(
    ("kind", "fields", "name", "labels", "expected"),
    EVENTS,
    ids=[f"{kind}-{name}" for kind, _, name, _, _ in EVENTS],
)
def test_each_event_moves_its_sample(
    agent: FakeAgent,
    metrics: AgentMetrics,
    kind: str,
    fields: dict[str, Any],
    name: str,
    labels: dict[str, str],
    expected: float,
) -> None:
    before = value(metrics, name, **labels) or 0.0
    agent.bus.publish(kind, **fields)
    assert value(metrics, name, **labels) == pytest.approx(before + expected)
    agent.bus.publish(kind, **fields)
    assert value(metrics, name, **labels) == pytest.approx(before + 2 * expected)


def test_events_the_metrics_do_not_count_change_nothing(
    agent: FakeAgent, metrics: AgentMetrics
) -> None:
    before = metrics.render()
    agent.bus.publish("started", version="1", pid=1, mode="local")
    agent.bus.publish("rotation_queued", target="shop/web", source="poll", references=[])
    after = metrics.render()
    # Only the process figures (CPU, memory) may differ between two scrapes.
    strip = re.compile(rb"^dso_process_.*$", re.MULTILINE)
    assert strip.sub(b"", before) == strip.sub(b"", after)


def test_provider_calls_are_counted_from_telemetry_until_closed(
    agent: FakeAgent, metrics: AgentMetrics
) -> None:
    labels = {"provider": "vault", "method": "versions"}
    telemetry.emit("provider_call", provider="vault", method="versions", seconds=0.02, ok=True)
    telemetry.emit("provider_call", provider="vault", method="versions", seconds=4.0, ok=False)
    telemetry.emit("breaker", provider="vault", state="open", previous="closed")  # bus's job
    assert value(metrics, "dso_provider_call_duration_seconds_count", **labels) == 2
    assert value(metrics, "dso_provider_call_duration_seconds_sum", **labels) == pytest.approx(4.02)
    assert value(metrics, "dso_provider_call_duration_seconds_bucket", le="0.025", **labels) == 1
    assert value(metrics, "dso_provider_call_errors_total", **labels) == 1
    assert value(metrics, "dso_breaker_transitions_total", provider="vault", state="open") is None

    metrics.close()
    telemetry.emit("provider_call", provider="vault", method="versions", seconds=0.1, ok=False)
    assert value(metrics, "dso_provider_call_duration_seconds_count", **labels) == 2
    assert value(metrics, "dso_provider_call_errors_total", **labels) == 1


def test_two_agents_keep_their_own_figures() -> None:
    first, second = FakeAgent(), FakeAgent()
    one, two = AgentMetrics(first), AgentMetrics(second)  # type: ignore[arg-type]
    try:
        first.bus.publish("webhook", outcome="accepted", reason=None)
        assert value(one, "dso_webhook_requests_total", outcome="accepted") == 1
        assert value(two, "dso_webhook_requests_total", outcome="accepted") is None
    finally:
        one.close()
        two.close()


def test_state_gauges_read_the_agent_when_scraped(agent: FakeAgent, metrics: AgentMetrics) -> None:
    assert value(metrics, "dso_agent_info", version=__version__, mode="local") == 1
    assert value(metrics, "dso_agent_live") == 1
    assert value(metrics, "dso_provider_breaker_state", provider="local") == 0
    assert value(metrics, "dso_cache_entries") == 0
    assert value(metrics, "dso_cache_max_bytes") == 1000
    assert value(metrics, "dso_managed_containers") == 0
    assert value(metrics, "dso_rotation_queue_depth") == 0
    assert value(metrics, "dso_rotations_in_progress") == 0

    agent.problems.append("the Docker event watcher is not running")
    agent.host.breakers = {"local": "half_open", "vault": "open", "aws": None}
    agent.cache.put("dso://app/msg", Resolved(SecretValue("12345"), "3", "local"))
    agent.managed += [object(), object()]
    for key in ("shop/web", "shop/api"):
        agent.scheduler.submit(SimpleNamespace(lock_key=key), Reason("poll"))  # type: ignore[arg-type]

    assert value(metrics, "dso_agent_live") == 0
    assert value(metrics, "dso_provider_breaker_state", provider="local") == 1
    assert value(metrics, "dso_provider_breaker_state", provider="vault") == 2
    assert value(metrics, "dso_provider_breaker_state", provider="aws") is None  # not started
    assert value(metrics, "dso_cache_entries") == 1
    assert value(metrics, "dso_cache_bytes") == 5
    assert value(metrics, "dso_managed_containers") == 2
    assert value(metrics, "dso_rotation_queue_depth") == 2


def test_a_part_that_cannot_be_read_leaves_only_its_family_empty(
    agent: FakeAgent, metrics: AgentMetrics
) -> None:
    agent.host.closed = True  # the runtime closed while the agent stops
    text = metrics.render().decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert families["dso_provider_breaker_state"].samples == []
    assert families["dso_managed_containers"].samples[0].value == 0


def test_label_values_from_outside_are_bounded(agent: FakeAgent, metrics: AgentMetrics) -> None:
    for index in range(MAX_LABEL_VALUES + 10):
        agent.bus.publish("request", action=f"made-up-{index}", status=404)
    families = {f.name: f for f in text_string_to_metric_families(metrics.render().decode())}
    actions = {s.labels["action"] for s in families["dso_api_requests"].samples}
    assert len(actions) == MAX_LABEL_VALUES + 1
    assert value(metrics, "dso_api_requests_total", action="other", status="404") == 10
    agent.bus.publish("request", action="made-up-0", status=404)  # seen before: still its own
    assert value(metrics, "dso_api_requests_total", action="made-up-0", status="404") == 2


def test_render_is_the_prometheus_text_format(agent: FakeAgent, metrics: AgentMetrics) -> None:
    agent.bus.publish("webhook", outcome="accepted", reason=None)
    text = metrics.render().decode()
    assert CONTENT_TYPE == "text/plain; version=0.0.4; charset=utf-8"
    assert "# TYPE dso_webhook_requests_total counter" in text
    assert 'dso_webhook_requests_total{outcome="accepted"} 1.0' in text
    names = {f.name for f in text_string_to_metric_families(text)}
    assert all(name.startswith("dso_") for name in names), names


# -- the TCP listener -------------------------------------------------------------------------


def get(address: tuple[str, int], path: str, method: str = "GET") -> tuple[int, str, bytes]:
    connection = http.client.HTTPConnection(*address, timeout=10)
    try:
        connection.request(method, path)
        answer = connection.getresponse()
        return answer.status, answer.getheader("Content-Type") or "", answer.read()
    finally:
        connection.close()


def test_no_listener_unless_configured(agent: FakeAgent, metrics: AgentMetrics) -> None:
    metrics.start()
    assert metrics.address is None


def test_the_listener_serves_metrics_on_the_configured_address() -> None:
    agent = FakeAgent(listen="127.0.0.1:0")
    metrics = AgentMetrics(agent)  # type: ignore[arg-type]
    try:
        metrics.start()
        address = metrics.address
        assert address is not None and address[0] == "127.0.0.1" and address[1] > 0
        agent.bus.publish("docker", object="container", action="start", name="web-1")
        status, kind, body = get(address, "/metrics")
        assert status == 200 and kind.startswith("text/plain")
        assert b'dso_docker_events_total{action="start",object="container"} 1.0' in body
        assert get(address, "/")[0] == 404
        assert get(address, "/metrics", method="POST")[0] == 405
    finally:
        metrics.close()
    with pytest.raises(OSError), socket.create_connection(address, timeout=2):
        pass


def test_an_address_in_use_is_a_configuration_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        listener = MetricsListener(f"127.0.0.1:{port}", CollectorRegistry())
        with pytest.raises(ConfigError) as raised:
            listener.start()
    assert raised.value.key == "agent.metrics.listen"
    assert f"cannot listen on 127.0.0.1:{port}" in raised.value.message


# -- configuration ----------------------------------------------------------------------------


def check(tmp_path: Path, text: str) -> Any:
    path = tmp_path / "dso.yaml"
    path.write_text(textwrap.dedent(text))
    path.chmod(0o600)
    return check_config(path, candidates=[], env={})


def test_the_tcp_listener_is_off_by_default() -> None:
    assert Config.default().agent.metrics.listen is None


def test_a_listen_address_is_read_and_a_bad_one_reported_at_its_line(tmp_path: Path) -> None:
    good = check(tmp_path, "version: 1\nagent:\n  metrics:\n    listen: '[::1]:9464'\n")
    assert good.valid and good.config.agent.metrics.listen == "[::1]:9464"
    bad = check(tmp_path, "version: 1\nagent:\n  metrics:\n    listen: 9464\n")
    assert [(e.line, e.key) for e in bad.errors] == [(4, "agent.metrics.listen")]
    worse = check(tmp_path, "version: 1\nagent:\n  metrics:\n    listen: localhost\n")
    ((line, key, reason),) = [(e.line, e.key, e.reason) for e in worse.errors]
    assert (line, key) == (4, "agent.metrics.listen") and "expected host:port" in reason


# -- docs -------------------------------------------------------------------------------------


def documented() -> dict[str, tuple[str, set[str]]]:
    """docs/agent.md's metrics table: family → (type, labels)."""
    section = DOC[DOC.index("## Metrics") :]
    section = section[: section.find("\n## ", 3) % len(section)]
    rows = re.findall(r"^\| `(dso_[a-z_]+)` \| (\w+) \| ([^|]*) \|", section, flags=re.MULTILINE)
    return {
        name: (kind, set(re.findall(r"`(\w+)`", labels)) if labels.strip() != "—" else set())
        for name, kind, labels in rows
    }


def test_every_family_is_documented_with_its_type_and_labels(agent: FakeAgent) -> None:
    metrics = AgentMetrics(agent)  # type: ignore[arg-type]
    try:
        for kind, fields, *_ in EVENTS:  # every family gets samples, so its labels show
            agent.bus.publish(kind, **fields)
        telemetry.emit("provider_call", provider="local", method="get", seconds=0.01, ok=False)
        families = list(text_string_to_metric_families(metrics.render().decode()))
    finally:
        metrics.close()
    docs = documented()
    exposed = {}
    for family in families:
        assert family.samples, f"{family.name} has no sample"
        name = family.name + ("_total" if family.type == "counter" else "")
        labels = {k for s in family.samples for k in s.labels} - {"le"}
        exposed[name] = (family.type, labels)
    for name, (kind, labels) in exposed.items():
        assert name in docs, f"docs/agent.md#metrics does not list {name}"
        assert docs[name] == (kind, labels), name
    assert set(docs) == set(exposed), set(docs) - set(exposed)
