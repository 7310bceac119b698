"""``.observability`` (kernel/agent/observability.py): the bus rings and the five views."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace

from kernel.agent.bus import EventBus
from kernel.agent.observability import (
    LISTED,
    OUTPUT_BYTES,
    RING,
    Observability,
    cut,
    offline,
)
from kernel.rotation.journal import Journal, summary_of
from tests.unit.status_fixtures import FakeHost, provider, rotation

GATE = {
    "target": "app-web-1",
    "trace_id": "t-gate",
    "healthy": False,
    "seconds": 2.0,
    "attempts": 3,
    "exit_code": 1,
    "output": "connection refused",
    "reason": "exit 1",
    "probe": 'exec ["wget", "-q", "http://127.0.0.1/"]',
}


def fake_agent(tmp_path: Path, host: FakeHost | None = None) -> SimpleNamespace:
    """What ``Observability.doc`` reads: the runtime's journal and provider host."""
    journal = Journal(tmp_path / "state")
    runtime = SimpleNamespace(journal=journal, host=host or FakeHost())
    return SimpleNamespace(runtime=runtime)


def test_the_rings_keep_the_last_events_of_three_kinds_only() -> None:
    bus = EventBus()
    obs = Observability(bus)
    for n in range(RING + 5):
        bus.publish("lock_contention", target="service-app.web", waited=1.0 + n, subject="web")
    bus.publish("rotation", target="service-app.web", status="completed")
    bus.publish("health_gate", **GATE)
    bus.publish("breaker", provider="vault", state="open", previous="closed")

    contention = obs.recent("lock_contention")
    assert len(contention) == RING
    assert contention[0]["waited"] == 6.0 and contention[-1]["waited"] == RING + 5.0
    assert [e["type"] for e in obs.recent("health_gate")] == ["health_gate"]
    assert [e["state"] for e in obs.recent("breaker")] == ["open"]


def test_traces_give_each_rotations_phases_newest_first(tmp_path: Path) -> None:
    now = time.time()
    agent = fake_agent(tmp_path)
    agent.runtime.journal.save(rotation("old", at=now - 100, seconds_per_step=2.0))
    agent.runtime.journal.save(
        rotation(
            "new",
            at=now - 10,
            status="rolled_back",
            cause="health_gate",
            steps=("plan", "create", "health_gate", "rollback"),
            trace_id="abc123",
        )
    )

    traces = Observability(EventBus()).doc(agent)["traces"]  # type: ignore[arg-type]

    assert [t["rotation_id"] for t in traces] == ["new", "old"]
    new = traces[0]
    assert new["trace_id"] == "abc123" and new["status"] == "rolled_back"
    assert new["cause"] == "health_gate" and new["strategy"] == "rolling"
    assert new["phases"] == {"plan": 1.0, "create": 1.0, "health_gate": 1.0, "rollback": 1.0}
    assert new["duration_seconds"] == 4.0
    assert traces[1]["phases"]["cleanup"] == 2.0 and traces[1]["duration_seconds"] == 12.0


def test_traces_are_the_latest_fifty(tmp_path: Path) -> None:
    now = time.time()
    history = [summary_of(rotation(f"r{n:03d}", at=now - 1000 + n)) for n in range(LISTED + 10)]

    traces = offline(history)["traces"]

    assert len(traces) == LISTED
    assert traces[0]["rotation_id"] == f"r{LISTED + 9:03d}"


def test_lock_contention_from_the_agent_and_from_the_journal_each_once(tmp_path: Path) -> None:
    now = time.time()
    bus = EventBus()
    obs = Observability(bus)
    agent = fake_agent(tmp_path)
    journal = agent.runtime.journal
    # Measured by this agent, then journaled with each of the service's two replicas.
    bus.publish(
        "lock_contention", target="service-app.web", waited=3.2504, subject="web", note="rotate web"
    )
    for name in ("app-web-1", "app-web-2"):
        journal.save(
            rotation(
                f"w-{name}",
                at=now - 50,
                target=name,
                trace_id="t-web",
                lock={"waited": 3.25, "contended": True},
            )
        )
    # Another process (docker dso rotate) waited for the api's lock: journal only.
    journal.save(
        rotation(
            "api",
            at=now - 20,
            target="app-api-1",
            lock_key="service-app.api",
            trace_id="t-api",
            lock={"waited": 1.7, "contended": True},
        )
    )
    # Quick acquisitions are not contention.
    journal.save(rotation("quick", at=now - 10))

    contention = obs.doc(agent)["lock_contention"]  # type: ignore[arg-type]

    assert [(c["target"], c["source"]) for c in contention] == [
        ("service-app.web", "agent"),
        ("service-app.api", "journal"),
    ]
    web, api = contention
    assert web["waited_seconds"] == 3.25 and web["subject"] == "web" and web["pid"] > 0
    assert web["note"] == "rotate web"
    assert api["trace_id"] == "t-api" and api["pid"] == 4242 and api["waited_seconds"] == 1.7


def test_lock_contention_survives_a_restart_through_the_journal(tmp_path: Path) -> None:
    now = time.time()
    agent = fake_agent(tmp_path)
    for name in ("app-web-1", "app-web-2"):
        agent.runtime.journal.save(
            rotation(
                f"w-{name}",
                at=now - 50,
                target=name,
                trace_id="t-web",
                lock={"waited": 3.25, "contended": True},
            )
        )

    contention = Observability(EventBus()).doc(agent)["lock_contention"]  # type: ignore[arg-type]

    # One acquisition of the service's lock, journaled with each replica: listed once.
    assert [(c["target"], c["trace_id"]) for c in contention] == [("service-app.web", "t-web")]


def test_failed_and_slow_health_gates_are_diagnosed_fast_healthy_ones_are_not(
    tmp_path: Path,
) -> None:
    now = time.time()
    bus = EventBus()
    obs = Observability(bus)
    agent = fake_agent(tmp_path)
    bus.publish("health_gate", **GATE)
    bus.publish("health_gate", **{**GATE, "trace_id": "t-fast", "healthy": True, "seconds": 0.4})
    bus.publish(
        "health_gate",
        **{
            **GATE,
            "trace_id": "t-slow",
            "healthy": True,
            "seconds": 6.5,
            "exit_code": 0,
            "output": "",
        },
    )
    # The failed gate above, journaled too; and one from before the agent started.
    health = {
        "healthy": False,
        "probe": GATE["probe"],
        "reason": "exit 1",
        "attempts": 3,
        "elapsed": 2.0,
        "last_exit_code": 1,
        "last_output": "connection refused",
    }
    agent.runtime.journal.save(
        rotation("gate", at=now - 30, trace_id="t-gate", status="rolled_back", health=health)
    )
    agent.runtime.journal.save(
        rotation(
            "earlier",
            at=now - 3000,
            trace_id="t-earlier",
            target="app-api-1",
            status="rolled_back",
            health={**health, "last_exit_code": 7},
        )
    )

    checks = obs.doc(agent)["health_checks"]  # type: ignore[arg-type]

    assert [(c["trace_id"], c["source"]) for c in checks] == [
        ("t-slow", "agent"),
        ("t-gate", "agent"),
        ("t-earlier", "journal"),
    ]
    slow, failed, earlier = checks
    assert slow["healthy"] is True and slow["slow"] is True and slow["duration_seconds"] == 6.5
    assert failed["healthy"] is False and failed["slow"] is False
    assert failed["exit_code"] == 1 and failed["output"] == "connection refused"
    assert failed["attempts"] == 3 and failed["probe"].startswith("exec")
    assert earlier["exit_code"] == 7 and earlier["rotation_id"] == "earlier"
    # When the journaled gate ended: its step's time plus its duration.
    assert earlier["at"] == round(now - 3000 + 2 + 2.0, 3)


def test_probe_output_is_cut_to_a_few_hundred_bytes_never_inside_a_character() -> None:
    assert cut("short") == "short"
    text = "é" * 400  # two bytes each
    kept = cut(text)
    assert kept.endswith("…") and kept[:-1] == "é" * (OUTPUT_BYTES // 2)
    assert len(cut("x" * 10_000).encode()) <= OUTPUT_BYTES + len("…".encode())


def test_circuit_breakers_and_provider_latency_from_the_provider_host(tmp_path: Path) -> None:
    now = time.time()
    latency = {
        "get": {
            "count": 4,
            "errors": 2,
            "min_ms": 0.5,
            "max_ms": 30.0,
            "avg_ms": 9.0,
            "p95_ms": 30.0,
        }
    }
    host = FakeHost(
        {
            "vault": provider(
                "vault", breaker="open", failures=5, changed_at=now - 4, latency=latency
            ),
            "local": provider("local", changed_at=now - 100),
            "aws": {"name": "aws", "state": "stopped", "pid": None, "latency": {}},
        }
    )
    bus = EventBus()
    obs = Observability(bus)
    bus.publish("breaker", provider="vault", state="open", previous="half_open")

    doc = obs.doc(fake_agent(tmp_path, host))  # type: ignore[arg-type]

    assert doc["provider_latency"] == {"aws": {}, "local": {}, "vault": latency}
    breakers = doc["circuit_breakers"]
    assert set(breakers) == {"local", "vault"}  # aws never started: no breaker yet
    vault = breakers["vault"]
    assert vault["state"] == "open" and vault["failures"] == 5 and vault["threshold"] == 5
    assert vault["next_trial_in"] == 12.5 and vault["trips"] == 1
    assert vault["last_failure"] == "connection refused"
    assert vault["last_transition"]["from"] == "half_open"
    # No transition seen by this agent: only when the state last changed.
    assert breakers["local"]["last_transition"] == {"from": None, "to": "closed", "at": now - 100}


def test_offline_only_the_journal_speaks(tmp_path: Path) -> None:
    now = time.time()
    health = {
        "healthy": False,
        "probe": "tcp port 80",
        "reason": "timed out",
        "attempts": 5,
        "elapsed": 30.0,
        "last_exit_code": None,
        "last_output": "",
    }
    history = [
        summary_of(
            rotation(
                "r",
                at=now - 60,
                status="rolled_back",
                health=health,
                lock={"waited": 2.0, "contended": True},
            )
        )
    ]

    doc = offline(history)

    assert len(doc["traces"]) == 1 and len(doc["health_checks"]) == 1
    assert doc["health_checks"][0]["exit_code"] is None
    assert len(doc["lock_contention"]) == 1
    assert doc["provider_latency"] == {} and doc["circuit_breakers"] == {}
    assert "running agent" in doc["notes"]["provider_latency"]
    assert doc["thresholds"] == {"lock_contention_seconds": 1.0, "slow_health_gate_seconds": 5.0}
