"""``docker dso status`` and ``docker dso events`` in-process: with no agent (state files, exit
10), and against the real socket server of an agent built but not started (no Docker)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from kernel.agent.daemon import Agent
from kernel.agent.instance import InstanceLock
from kernel.injection.resolver import Resolved
from kernel.secret_value import SecretValue
from tests.conftest import RunDso
from tests.status_schema import validate_status
from tests.unit.status_fixtures import FakeHost, make_agent, managed, provider, rotation


@pytest.fixture
def serving(dso_home: Path) -> Iterator[Agent]:
    """An agent of ``dso_home`` whose socket answers (its other threads are not running)."""
    from kernel.agent.api.server import ApiServer

    agent = make_agent(dso_home, host=FakeHost({"local": provider("local")}))
    server = ApiServer.for_agent(agent)
    agent._api = server
    server.start()
    try:
        yield agent
    finally:
        server.stop()
        agent.bus.close()


def once_reading(agent: Agent, action: Callable[[], None] = lambda: None) -> None:
    """On a thread: as soon as a client follows the agent's event stream, ``action``, then
    once the stream handed every event over, the agent's end of it (the stream closes; a
    closed stream forwards nothing more, so the events must be out first)."""

    def run() -> None:
        deadline = time.monotonic() + 30
        while agent.bus.readers == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        action()
        while any(s._queue for s in agent.bus._streams) and time.monotonic() < deadline:
            time.sleep(0.01)
        agent.bus.close()

    threading.Thread(target=run, daemon=True).start()


def test_without_an_agent_status_shows_the_state_files_and_exits_10(
    run_dso: RunDso, dso_home: Path
) -> None:
    agent = make_agent(dso_home)
    agent._set_managed([managed("app-web-1")])
    agent.runtime.journal.save(rotation("r1"))

    result = run_dso("status")

    assert result.exit_code == 10
    assert "agent: NOT RUNNING (no agent is running for this installation)" in result.stdout
    assert "cache: unknown" in result.stdout
    assert "app-web-1 (app/web): MSG=dso://app/msg@local:3" in result.stdout
    assert "rotations: 1 in the journal (1 completed)" in result.stdout
    assert result.stderr.startswith(
        f"dso: error: the agent is not running (no socket at {dso_home / 'agent.sock'}); "
        "status from the state files"
    )

    result = run_dso("status", "--json")

    assert result.exit_code == 10
    doc = json.loads(result.stdout)  # stdout is the document alone
    validate_status(doc)
    assert doc["source"] == "state_files" and doc["agent"]["running"] is False
    assert [r["id"] for r in doc["rotations"]["recent"]] == ["r1"]


def test_an_agent_that_holds_the_installation_but_does_not_answer_is_named(
    run_dso: RunDso, dso_home: Path
) -> None:
    lock = InstanceLock(dso_home / "state")
    lock.acquire()
    try:
        result = run_dso("status", "--json")
    finally:
        lock.release()

    assert result.exit_code == 10
    doc = json.loads(result.stdout)
    assert doc["agent"]["running"] is False
    assert "runs but does not answer" in doc["agent"]["reason"]
    assert "runs but does not answer" in result.stderr


def test_events_without_an_agent_exit_10_saying_so(run_dso: RunDso) -> None:
    result = run_dso("events")

    assert result.exit_code == 10
    assert result.stdout == ""
    assert "the agent is not running" in result.stderr


def test_status_asks_the_running_agent(run_dso: RunDso, serving: Agent, canary: str) -> None:
    serving.cache.put("dso://app/db", Resolved(SecretValue(canary), "7", "local"))
    serving.cache.get("dso://app/db")
    serving._set_managed([managed("app-web-1")])

    result = run_dso("status", "--json")

    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    doc = json.loads(result.stdout)
    validate_status(doc)
    assert doc["source"] == "agent" and doc["agent"]["running"] is True
    assert doc["runtime"]["socket"] == str(serving.api_path)
    assert doc["providers"]["local"]["state"] == "up"

    human = run_dso("status")

    assert human.exit_code == 0
    # The spec's `docker dso status | grep -i cache`.
    (line,) = [ln for ln in human.stdout.splitlines() if "cache" in ln.lower()]
    assert line.startswith(f"cache: 1 entries, {len(canary)} bytes")
    assert "max_size 500.0 MiB" in line and "hit ratio 1.00" in line
    assert "agent: running" in human.stdout and "containers: 1 managed" in human.stdout
    assert canary not in result.stdout + human.stdout


def test_events_print_one_line_per_event_of_the_types_asked(
    run_dso: RunDso, serving: Agent
) -> None:
    serving.bus.publish(
        "rotation",
        target="service-app.web",
        status="completed",
        trace_id="abc",
        containers=["app-web-1"],
    )
    serving.bus.publish("check", source="poll", secrets=3, moved=0)
    serving.bus.publish(
        "rotation",
        target="service-app.api",
        status="rolled_back",
        trace_id="def",
        containers=["app-api-1"],
    )
    once_reading(serving)  # then the agent stops: the stream ends

    result = run_dso("events", "--since-history", "--type", "rotation")

    assert result.exit_code == 10
    assert "the agent stopped" in result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 2
    assert " rotation target=service-app.web status=completed trace_id=abc" in lines[0]
    assert "containers=app-web-1" in lines[0]
    assert "status=rolled_back" in lines[1]


def test_status_watch_json_is_one_object_per_line(run_dso: RunDso, serving: Agent) -> None:
    once_reading(serving, lambda: serving.bus.publish("check", source="poll", secrets=3, moved=1))

    result = run_dso("status", "--watch", "--json")

    assert result.exit_code == 10  # the stream ended: the agent stopped
    first, *events = [json.loads(line) for line in result.stdout.splitlines()]
    validate_status(first)
    assert [e["type"] for e in events if e["type"] == "check"] == ["check"]
