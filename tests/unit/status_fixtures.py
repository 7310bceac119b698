"""An agent that is built but not started (no Docker), with a journal, managed containers and a
provider host that reports what a test says: for the status document's unit tests."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from kernel.agent.daemon import Agent
from kernel.agent.managed import Managed
from kernel.config.model import Config
from kernel.paths import local_layout
from kernel.rotation.journal import RotationEntry
from kernel.rotation.targets import Target, container_lock_key, service_lock_key
from kernel.runtime import Runtime

NOW = 1_800_000_000.0
STEPS = ("plan", "create", "health_gate", "rename_old", "rename_new", "cleanup")


def rotation(
    rotation_id: str,
    *,
    at: float = NOW - 600,
    status: str = "completed",
    target: str = "app-web-1",
    lock_key: str = "service-app.web",
    trace_id: str | None = None,
    steps: Iterable[str] = STEPS,
    seconds_per_step: float = 1.0,
    **fields: Any,
) -> RotationEntry:
    """A journal entry started at ``at`` that spent ``seconds_per_step`` in each step."""
    marks = [{"step": step, "at": at + i * seconds_per_step} for i, step in enumerate(steps)]
    end = at + len(marks) * seconds_per_step
    unfinished = status == "in_progress"
    doc: dict[str, Any] = {
        "id": rotation_id,
        "trace_id": trace_id or f"trace-{rotation_id}",
        "target": target,
        "lock_key": lock_key,
        "strategy": "rolling",
        "status": status,
        "step": marks[-1]["step"] if marks else "plan",
        "steps": marks,
        "references": {"MSG": "dso://app/msg"},
        "versions": {"MSG": {"from": "local:1", "to": "local:2"}},
        "started_at": at,
        "updated_at": end,
        "finished_at": None if unfinished else end,
        "lock": {"waited": 0.01, "contended": False},
        "pid": 4242,
        "host": "test",
        **fields,
    }
    return RotationEntry.from_dict(doc)


class FakeHost:
    """The provider host's ``status()``, as a test sets it."""

    def __init__(self, providers: Mapping[str, Any] | None = None) -> None:
        self.providers = dict(providers or {})

    def status(self) -> dict[str, Any]:
        return {"plugins_dir": "/nowhere", "providers": self.providers}

    def close(self) -> None:
        return None


def provider(
    name: str,
    *,
    state: str = "running",
    breaker: str = "closed",
    failures: int = 0,
    changed_at: float | None = None,
    latency: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """One provider as the supervisor reports it."""
    return {
        "name": name,
        "type": name,
        "state": state,
        "pid": 999 if state == "running" else None,
        "version": "1.0",
        "starts": 2,
        "crashes": 1,
        "breaker": {
            "state": breaker,
            "consecutive_failures": failures,
            "failure_threshold": 5,
            "cooldown": 30.0,
            "trips": 1 if breaker != "closed" else 0,
            "retry_in": 12.5 if breaker == "open" else None,
            "last_failure": "connection refused" if failures else None,
            "changed_at": changed_at,
        },
        "latency": dict(latency or {}),
    }


def managed(name: str, *, project: str | None = "app", service: str | None = "web") -> Managed:
    if project and service:
        target = Target(service, service_lock_key(project, service), project, service)
    else:
        target = Target(name, container_lock_key(name), containers=(name,))
    return Managed(
        id=(name.encode().hex() + "0" * 64)[:64],
        name=name,
        target=target,
        references={"MSG": "dso://app/msg", "TOKEN_FILE": "dsofile://app/token"},
        versions={"MSG": "local:3", "TOKEN_FILE": "local:1"},
    )


def make_agent(home: Path, *, host: FakeHost | None = None) -> Agent:
    """An :class:`Agent` on ``home`` (a local-mode dso home), not started."""
    runtime = Runtime(local_layout(home), Config.default())
    runtime._host = host or FakeHost()
    return Agent(runtime)


def seed_journal(state: Path, entries: Iterable[Mapping[str, Any]]) -> None:
    """A schema-1 ``rotations.json`` (every entry in one file): the journal migrates it on
    first read. Thousands of entries in one write, where ``Journal.save`` fsyncs each."""
    state.mkdir(parents=True, exist_ok=True)
    (state / "rotations.json").write_text(json.dumps({"schema": 1, "rotations": list(entries)}))
