"""docs/agent-api.md cannot drift: every action has its section with an example in each dialect,
and every event type the agent publishes is listed."""

from __future__ import annotations

import re
from pathlib import Path

from kernel.agent.api.actions import ACTIONS
from kernel.agent.api.wire import HEADER_TIMEOUT, LINGER, MAX_REQUEST

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "agent-api.md").read_text()


def _section(name: str) -> str:
    match = re.search(rf"^### {name}\b.*?$(.*?)(?=^### |\Z)", DOC, re.M | re.S)
    assert match, f"docs/agent-api.md has no '### {name}' section"
    return match.group(1)


def test_every_action_has_a_section_with_an_example_in_both_dialects() -> None:
    for name, action in ACTIONS.items():
        text = _section(name)
        assert "curl" in text and "--unix-socket" in text, f"{name}: no HTTP example"
        assert f'"action":"{name}"' in text and "nc -U" in text, f"{name}: no JSON-lines example"
        if action.mutating:
            assert "-X POST" in text, f"{name} changes things: its HTTP example must POST"


def test_the_documented_sections_are_the_actions() -> None:
    sections = set(re.findall(r"^### (\w+)", DOC, re.M))
    assert sections == set(ACTIONS)


def test_every_published_event_type_is_documented() -> None:
    published: set[str] = set()
    for path in (ROOT / "kernel" / "agent").rglob("*.py"):
        published.update(re.findall(r'publish\(\s*"(\w+)"', path.read_text()))
    daemon = (ROOT / "kernel" / "agent" / "daemon.py").read_text()
    forwarded = re.search(r"_FORWARDED = frozenset\(\{(.*?)\}\)", daemon, re.S)
    assert forwarded
    published.update(re.findall(r'"(\w+)"', forwarded.group(1)))
    published.add("dropped")
    assert published >= {"rotation", "denied", "request", "health_gate"}
    events = _section("events")
    missing = sorted(t for t in published if f"`{t}`" not in events)
    assert not missing, f"event types not in docs/agent-api.md: {missing}"


def test_the_limits_table_states_the_code() -> None:
    assert f"| {MAX_REQUEST // 1024} KiB |" in DOC
    assert f"| {HEADER_TIMEOUT:g} s |" in DOC
    assert f"| {LINGER:g} s |" in DOC


def test_the_metrics_named_here_exist() -> None:
    metrics = (ROOT / "kernel" / "agent" / "metrics.py").read_text()
    named = set(re.findall(r"\bdso_[a-z_]+", DOC))
    assert named
    for name in named:
        assert f'"{name}"' in metrics, f"docs/agent-api.md names {name}: no such metric"
