"""The ``status`` document: the schema in docs/status-json.md, and the live and offline
documents that must match it (kernel/agent/status_doc.py)."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import jsonschema
import pytest

from kernel.agent.status_doc import live_status, offline_status, rotations_doc
from kernel.agent.swarm_services import SwarmScan
from kernel.containers.swarm import SwarmNode
from kernel.injection.resolver import Resolved
from kernel.paths import local_layout
from kernel.rotation.journal import Journal
from kernel.secret_value import SecretValue
from tests.status_schema import DOC, load_status_schema, validate_status
from tests.unit.status_fixtures import (
    FakeHost,
    make_agent,
    managed,
    provider,
    rotation,
    seed_journal,
)

LATENCY = {
    "get": {"count": 3, "errors": 1, "min_ms": 1.0, "max_ms": 9.0, "avg_ms": 4.0, "p95_ms": 9.0}
}


def prose() -> str:
    return DOC.read_text().split("## JSON Schema")[0]


# -- the schema ---------------------------------------------------------------------------------


def test_the_schema_block_is_a_valid_draft_2020_12_schema() -> None:
    schema = load_status_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)


def test_every_field_of_the_document_and_of_observability_is_described() -> None:
    schema = load_status_schema()
    top, observability = prose().split("## `.observability`")
    described = set(re.findall(r"^- \*\*`(\w+)`\*\*", top, re.MULTILINE))
    assert described == set(schema["properties"])
    inner = set(re.findall(r"^- \*\*`(\w+)`\*\*", observability, re.MULTILINE))
    assert inner == set(schema["properties"]["observability"]["properties"])
    # The spec's five views are all there.
    assert {
        "traces",
        "provider_latency",
        "lock_contention",
        "health_checks",
        "circuit_breakers",
    } <= inner


def test_the_schema_rejects_a_document_missing_a_section(tmp_path: Path) -> None:
    doc = offline_status(local_layout(tmp_path / "home"))
    del doc["cache"]
    with pytest.raises(jsonschema.ValidationError, match="cache"):
        validate_status(doc)


# -- live ---------------------------------------------------------------------------------------


def test_the_live_document_validates_and_says_what_the_agent_knows(tmp_path: Path) -> None:
    now = time.time()
    host = FakeHost(
        {
            "local": provider("local", latency=LATENCY),
            "vault": provider(
                "vault", state="running", breaker="open", failures=5, changed_at=now - 3
            ),
        }
    )
    agent = make_agent(tmp_path / "home", host=host)
    agent._set_managed(
        [managed("app-web-1"), managed("app-web-2"), managed("solo", project=None, service=None)]
    )
    journal = agent.runtime.journal
    journal.save(rotation("r1", at=now - 900))
    journal.save(
        rotation(
            "r2",
            at=now - 600,
            status="rolled_back",
            cause="health_gate",
            health={
                "healthy": False,
                "probe": 'exec ["false"]',
                "reason": "exit 1",
                "attempts": 3,
                "elapsed": 2.0,
                "last_exit_code": 1,
                "last_output": "not ready",
            },
            lock={"waited": 2.5, "contended": True},
        )
    )
    journal.save(rotation("r3", at=now - 5, status="in_progress", steps=("plan", "create")))
    agent.bus.publish("breaker", provider="vault", state="open", previous="closed")
    agent.swarm = SwarmScan(SwarmNode("inactive", manager=False, node_id=""), at=now - 1)

    doc = live_status(agent, now=now)

    validate_status(doc)
    assert doc["source"] == "agent" and doc["agent"]["running"] is True
    # Not started: the health says why it is not live.
    assert doc["agent"]["health"]["live"] is False
    assert "the rotation scheduler is not running" in doc["agent"]["health"]["problems"]
    assert doc["runtime"]["mode"] == "local"
    assert doc["runtime"]["state_dir"] == str(tmp_path / "home" / "state")
    assert doc["providers"]["local"]["state"] == "up"
    assert doc["providers"]["local"]["restarts"] == 1
    assert doc["providers"]["vault"]["state"] == "down"  # its process runs, its breaker is open
    assert {c["name"] for c in doc["containers"]} == {"app-web-1", "app-web-2", "solo"}
    solo = next(c for c in doc["containers"] if c["name"] == "solo")
    assert solo["project"] is None and solo["lock"] == "container-solo"
    assert solo["references"]["MSG"] == {"reference": "dso://app/msg", "version": "local:3"}
    assert [r["id"] for r in doc["rotations"]["in_progress"]] == ["r3"]
    assert [r["id"] for r in doc["rotations"]["recent"]] == ["r2", "r1"]
    assert doc["rotations"]["by_status"] == {"completed": 1, "in_progress": 1, "rolled_back": 1}
    assert doc["queue"] == {"busy": False, "depth": 0, "waiting": [], "rotating": [], "again": []}
    obs = doc["observability"]
    assert [t["rotation_id"] for t in obs["traces"]] == ["r3", "r2", "r1"]
    assert obs["provider_latency"]["local"] == LATENCY
    assert obs["lock_contention"][0]["waited_seconds"] == 2.5
    assert obs["health_checks"][0]["exit_code"] == 1
    assert obs["circuit_breakers"]["vault"]["state"] == "open"
    assert obs["circuit_breakers"]["vault"]["last_transition"]["from"] == "closed"
    assert doc["swarm"] == {
        "role": "none",
        "state": "inactive",
        "node_id": None,
        "checked_at": round(now - 1, 3),
        "services": [],
    }
    assert doc["notes"] == {} and obs["notes"] == {}


def test_a_provider_stopped_for_idleness_is_idle_not_down(tmp_path: Path) -> None:
    """Starting again after idling is no restart; the breaker and latency are still shown."""
    idle = {**provider("aws", state="idle", latency=LATENCY), "starts": 3, "idle_stops": 2}
    agent = make_agent(tmp_path / "home", host=FakeHost({"aws": idle}))

    doc = live_status(agent)

    validate_status(doc)
    aws = doc["providers"]["aws"]
    assert (aws["state"], aws["process"], aws["pid"]) == ("idle", "idle", None)
    assert aws["restarts"] == 0 and aws["latency"] == LATENCY
    assert aws["breaker"]["state"] == "closed"


def test_the_cache_section_counts_and_never_shows_a_value(tmp_path: Path, canary: str) -> None:
    agent = make_agent(tmp_path / "home")
    agent.cache.put("dso://app/db", Resolved(SecretValue(canary), "7", "local"))
    assert agent.cache.get("dso://app/db") is not None
    assert agent.cache.get("dso://app/other") is None

    doc = live_status(agent)

    validate_status(doc)
    cache = doc["cache"]
    assert cache["entries"] == 1 and cache["bytes"] == len(canary)
    assert cache["max_size"] == 500 * 1024 * 1024 and cache["hit_ratio"] == 0.5
    assert canary not in json.dumps(doc)


def test_a_closing_runtime_leaves_providers_unknown_with_a_note(tmp_path: Path) -> None:
    agent = make_agent(tmp_path / "home", host=FakeHost({"local": provider("local")}))
    agent.runtime.close()

    doc = live_status(agent)

    validate_status(doc)
    assert doc["providers"] == {}
    assert "closed" in doc["notes"]["providers"]
    assert "closed" in doc["observability"]["notes"]["circuit_breakers"]


# -- offline ------------------------------------------------------------------------------------


def test_with_the_agent_stopped_the_state_files_give_the_same_document(tmp_path: Path) -> None:
    now = time.time()
    home = tmp_path / "home"
    agent = make_agent(home)
    agent.runtime_file.started(version="0.1.0", mode="local", config=home / "config.yaml")
    agent._set_managed([managed("app-web-1")])
    agent.runtime.journal.save(rotation("r1", at=now - 60, lock={"waited": 1.5, "contended": True}))
    agent.runtime_file.rotation(
        {
            "target": "service-app.web",
            "status": "completed",
            "trace_id": "trace-r1",
            "containers": ["app-web-1"],
        }
    )
    agent.runtime_file.stopped()
    layout = agent.runtime.layout

    doc = offline_status(layout, socket=home / "agent.sock", now=now)

    validate_status(doc)
    assert doc["source"] == "state_files"
    assert doc["agent"] == {
        "running": False,
        "reason": "no agent is running for this installation",
        "health": {"live": False, "problems": []},
    }
    runtime = doc["runtime"]
    assert runtime["version"] == "0.1.0" and runtime["config"] == str(home / "config.yaml")
    assert runtime["uptime_seconds"] is None and runtime["stopped_at"] is not None
    assert runtime["socket"] == str(home / "agent.sock")
    assert runtime["last_rotation"]["status"] == "completed"
    assert doc["providers"] is None and doc["cache"] is None and doc["queue"] is None
    # Docker was not asked (the CLI gives offline_status a connection): the swarm is unknown.
    assert set(doc["notes"]) == {"providers", "cache", "queue", "swarm"}
    assert doc["swarm"]["role"] is None and doc["swarm"]["services"] == []
    assert [c["name"] for c in doc["containers"]] == ["app-web-1"]
    assert doc["containers"][0]["id"] == managed("app-web-1").id[:12]
    assert [r["id"] for r in doc["rotations"]["recent"]] == ["r1"]
    obs = doc["observability"]
    assert [t["trace_id"] for t in obs["traces"]] == ["trace-r1"]
    assert obs["traces"][0]["phases"]["health_gate"] == 1.0
    assert obs["lock_contention"][0]["source"] == "journal"
    assert obs["provider_latency"] == {} and obs["circuit_breakers"] == {}
    assert set(obs["notes"]) == {"provider_latency", "circuit_breakers"}


def test_an_installation_where_nothing_ran_yet(tmp_path: Path) -> None:
    layout = local_layout(tmp_path / "home")

    doc = offline_status(layout, reason="the agent (pid 7) does not answer")

    validate_status(doc)
    assert doc["agent"]["reason"] == "the agent (pid 7) does not answer"
    assert doc["containers"] == [] and doc["rotations"]["total"] == 0
    assert "nothing ran here yet" in doc["notes"]["rotations"]
    assert not layout.state.exists()  # status only reads


def test_unreadable_state_files_are_noted_and_left_in_place(tmp_path: Path) -> None:
    layout = local_layout(tmp_path / "home")
    layout.state.mkdir(parents=True)
    (layout.state / "containers.json").write_text("{not json")
    (layout.state / "runtime.json").write_text('{"schema": 99}')

    doc = offline_status(layout)

    validate_status(doc)
    assert "not valid JSON" in doc["notes"]["containers"]
    assert "schema" in doc["notes"]["runtime"]
    assert (layout.state / "containers.json").read_text() == "{not json"


# -- rotations ----------------------------------------------------------------------------------


def test_rotations_awaiting_an_operator_and_in_progress(tmp_path: Path) -> None:
    now = time.time()
    agent = make_agent(tmp_path / "home")
    journal = agent.runtime.journal
    journal.save(
        rotation("stale", at=now - 30 * 3600, status="in_progress", steps=("plan", "create"))
    )
    journal.save(rotation("running", at=now - 10, status="in_progress", steps=("plan",)))
    journal.save(
        rotation(
            "critical",
            at=now - 100,
            status="critical_error",
            recovery={"action": "none", "reason": "two containers hold the name", "at": now - 90},
        )
    )
    journal.save(rotation("failed", at=now - 200, status="failed", error="old container stuck"))
    journal.save(rotation("done", at=now - 300))

    rotations = live_status(agent, now=now)["rotations"]

    assert [r["id"] for r in rotations["in_progress"]] == ["running"]
    review = {r["id"]: r["review"] for r in rotations["awaiting_review"]}
    assert set(review) == {"stale", "critical", "failed"}
    assert "24 h" in review["stale"]
    assert "two containers hold the name" in review["critical"]
    assert "docker dso recover" in review["failed"]
    assert [r["id"] for r in rotations["recent"]] == ["done"]


def test_recent_rotations_are_the_last_twenty_finished_newest_first(tmp_path: Path) -> None:
    now = time.time()
    agent = make_agent(tmp_path / "home")
    for n in range(30):
        agent.runtime.journal.save(rotation(f"r{n:02d}", at=now - 3000 + n * 60))

    doc = live_status(agent, now=now)

    recent = doc["rotations"]["recent"]
    assert [r["id"] for r in recent] == [f"r{n:02d}" for n in range(29, 9, -1)]
    assert recent[0]["duration_seconds"] == 6.0
    assert recent[0]["references"] == {"MSG": "dso://app/msg"}
    assert doc["rotations"]["total"] == 30


def test_the_rotation_history_filters(tmp_path: Path) -> None:
    now = time.time()
    journal = Journal(tmp_path / "state")
    journal.save(rotation("a", at=now - 500, target="app-web-1", trace_id="t-1"))
    journal.save(rotation("b", at=now - 400, target="app-web-2", trace_id="t-1"))
    journal.save(
        rotation("c", at=now - 300, target="api", lock_key="service-app.api", status="rolled_back")
    )
    journal.save(rotation("d", at=now - 200, target="solo", lock_key="container-solo"))

    def ids(**filters: object) -> list[str]:
        return [r["id"] for r in rotations_doc(journal, **filters)]  # type: ignore[arg-type]

    assert ids() == ["d", "c", "b", "a"]
    assert ids(status="rolled_back") == ["c"]
    assert ids(status=["completed", "rolled_back"], limit=2) == ["d", "c"]
    assert ids(target="service-app.web") == ["b", "a"]
    assert ids(target="app-web-2") == ["b"]
    assert ids(trace_id="t-1") == ["b", "a"]
    assert ids(since=now - 300) == ["d", "c"]
    assert ids(target="nothing") == []


def test_journal_summaries_are_every_entry_oldest_first_and_documents_are_copies(
    tmp_path: Path,
) -> None:
    journal = Journal(tmp_path / "state")
    journal.save(rotation("late", at=2000.0, status="in_progress"))
    journal.save(rotation("early", at=1000.0))
    journal.save(rotation("middle", at=1500.0, status="rolled_back"))

    history = journal.summaries()

    assert [(s.id, s.status) for s in history] == [
        ("early", "completed"),
        ("middle", "rolled_back"),
        ("late", "in_progress"),
    ]
    assert [e.id for e in journal.entries()] == ["early", "middle", "late"]
    doc = history[0].document()
    assert doc == rotation("early", at=1000.0).to_dict()
    doc["steps"].clear()  # the caller's copy: the journal is unchanged
    assert journal.summaries()[0].document()["steps"] == rotation("early", at=1000.0).steps


# -- cost ---------------------------------------------------------------------------------------


def test_a_thousand_containers_and_ten_thousand_rotations_render_in_milliseconds(
    tmp_path: Path,
) -> None:
    now = time.time()
    home = tmp_path / "home"
    seed_journal(
        home / "state",
        (
            rotation(
                f"r{n:05d}",
                at=now - 6 * 86400 + n * 50,
                target=f"app-web-{n % 1000}",
                lock={"waited": 1.2 if n % 997 == 0 else 0.01, "contended": n % 997 == 0},
            ).to_dict()
            for n in range(10_000)
        ),
    )
    agent = make_agent(home, host=FakeHost({"local": provider("local", latency=LATENCY)}))
    agent._set_managed([managed(f"app-web-{n}") for n in range(1000)])
    live_status(agent)  # the first read parses the journal (the agent did that at start)

    timings = []
    for _ in range(5):
        started = time.perf_counter()
        doc = live_status(agent)
        timings.append(time.perf_counter() - started)

    validate_status(doc)
    assert len(doc["containers"]) == 1000 and doc["rotations"]["total"] == 10_000
    assert len(doc["observability"]["traces"]) == 50
    assert len(doc["observability"]["lock_contention"]) == 11
    print(f"live status, 1,000 containers and 10,000 rotations: {min(timings) * 1000:.1f} ms")
    assert min(timings) < 0.05
