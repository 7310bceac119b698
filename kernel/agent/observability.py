"""``status --json`` ``.observability``: the spec's five views of what dso measured.

- ``traces``: each recent rotation with its trace id and the seconds spent in each step;
- ``provider_latency``: per provider and method, count, errors, min, max, avg and p95 (ms);
- ``lock_contention``: rotation locks acquired after more than 1 s of waiting
  (:data:`kernel.rotation.locks.CONTENTION_THRESHOLD`; each also a WARNING log line);
- ``health_checks``: health gates that failed or took more than :data:`SLOW_HEALTH_GATE`
  seconds, with the probe's exit code and output (cut to :data:`OUTPUT_BYTES`);
- ``circuit_breakers``: per provider, state, failures, last transition and next trial.

Three sources. The rotation journal survives restarts and holds the rotations of every process
of the installation (``docker dso rotate`` too): traces, contended locks, health gates. The
event bus rings (:class:`Observability`, fed as events happen, :data:`RING` of each kind) hold
what this agent measured since it started, a failed gate not journaled yet included. The
provider host, alive only in the agent, holds latency and breakers: with the agent stopped
those two sections are empty and ``notes`` says why. Names, numbers and diagnostics only,
never a value.
"""

from __future__ import annotations

import collections
import os
import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from kernel.errors import DSOError
from kernel.rotation.history import Summary
from kernel.rotation.journal import RotationEntry
from kernel.rotation.locks import CONTENTION_THRESHOLD

if TYPE_CHECKING:
    from kernel.agent.bus import Event, EventBus
    from kernel.agent.daemon import Agent

#: Events of each kind kept in memory.
RING = 100
#: Rotations listed in ``traces``, and items in ``lock_contention`` and ``health_checks``.
LISTED = 50
#: Seconds after which a health gate that passed is listed as slow.
SLOW_HEALTH_GATE = 5.0
#: Bytes of a probe's output kept in ``health_checks``.
OUTPUT_BYTES = 300
#: Bus events recorded in the rings.
KINDS = ("lock_contention", "health_gate", "breaker")
#: Why two sections are empty when the agent does not answer.
OFFLINE_NOTE = "measured by the running agent's provider host only"

Doc = dict[str, Any]


class Observability:
    """Rings of the bus's ``lock_contention``, ``health_gate`` and ``breaker`` events (from
    construction on), and :meth:`doc`, the ``.observability`` section of the live status."""

    def __init__(self, bus: EventBus) -> None:
        self.bus = bus
        self._lock = threading.Lock()
        self._rings: dict[str, collections.deque[Event]] = {
            kind: collections.deque(maxlen=RING) for kind in KINDS
        }
        bus.listen(self._record)

    def _record(self, event: Event) -> None:
        ring = self._rings.get(event["type"])
        if ring is not None:
            with self._lock:
                ring.append(event)

    def recent(self, kind: str) -> list[Event]:
        """The ring of ``kind`` (one of :data:`KINDS`), oldest first."""
        with self._lock:
            return list(self._rings[kind])

    def doc(
        self,
        agent: Agent,
        *,
        history: Sequence[Summary] | None = None,
        providers: Mapping[str, Any] | None = None,
    ) -> Doc:
        """The section; ``history`` (the journal's summaries) and ``providers`` (the host's
        status) when the caller already read them (``status`` reads each once)."""
        if history is None:
            history = agent.runtime.journal.summaries()
        notes: dict[str, str] = {}
        if providers is None:
            providers, note = provider_status(agent)
            if note:
                notes["provider_latency"] = notes["circuit_breakers"] = note
        return build(
            history,
            providers=providers,
            contention=self.recent("lock_contention"),
            gates=self.recent("health_gate"),
            transitions=self.recent("breaker"),
            pid=os.getpid(),
            notes=notes,
        )


def provider_status(agent: Agent) -> tuple[dict[str, Any], str | None]:
    """``{provider: status}`` of the agent's provider host, and why it is empty if it is."""
    try:
        providers = agent.runtime.host.status().get("providers") or {}
    except DSOError as exc:  # the runtime is closing (the agent stops)
        return {}, f"the provider host cannot be asked: {exc.message}"
    return dict(providers), None


def offline(history: Sequence[Summary]) -> Doc:
    """The section from the journal alone (the agent is not running)."""
    return build(
        history,
        providers={},
        notes={"provider_latency": OFFLINE_NOTE, "circuit_breakers": OFFLINE_NOTE},
    )


def build(
    history: Sequence[Summary],
    *,
    providers: Mapping[str, Any],
    contention: Sequence[Event] = (),
    gates: Sequence[Event] = (),
    transitions: Iterable[Event] = (),
    pid: int | None = None,
    notes: Mapping[str, str] | None = None,
) -> Doc:
    """The ``.observability`` document (schema: docs/status-json.md) from the journal's
    ``history`` (oldest first) and what the agent measured."""
    return {
        "thresholds": {
            "lock_contention_seconds": CONTENTION_THRESHOLD,
            "slow_health_gate_seconds": SLOW_HEALTH_GATE,
        },
        "traces": [trace(entry.document()) for entry in reversed(history[-LISTED:])],
        "provider_latency": {
            name: dict(status.get("latency") or {}) for name, status in sorted(providers.items())
        },
        "lock_contention": lock_contention(history, contention, pid),
        "health_checks": health_checks(history, gates),
        "circuit_breakers": circuit_breakers(providers, transitions),
        "notes": dict(notes or {}),
    }


def trace(doc: Mapping[str, Any]) -> Doc:
    """One journal entry as a trace: who, what, how it ended, seconds per step."""
    started = _number(doc.get("started_at"))
    ended = _number(doc.get("finished_at")) or _number(doc.get("updated_at"))
    try:
        phases = RotationEntry.from_dict(dict(doc)).step_times()
    except (TypeError, ValueError, KeyError):  # a hand-edited entry: no phases rather than none
        phases = {}
    return {
        "trace_id": doc.get("trace_id"),
        "rotation_id": doc.get("id"),
        "target": doc.get("target"),
        "lock": doc.get("lock_key"),
        "strategy": doc.get("strategy"),
        "status": doc.get("status"),
        "cause": doc.get("cause"),
        "started_at": _time(started),
        "finished_at": _time(doc.get("finished_at")),
        "duration_seconds": round(max(0.0, ended - started), 3) if started and ended else None,
        "phases": {step: round(seconds, 3) for step, seconds in phases.items()},
    }


def lock_contention(
    history: Sequence[Summary], events: Sequence[Event], pid: int | None
) -> list[Doc]:
    """This agent's contended acquisitions, then the journal's (other processes, earlier
    agents) not already listed; newest first."""
    found = [
        {
            "target": event.get("target"),
            "subject": event.get("subject"),
            "waited_seconds": round(_number(event.get("waited")), 3),
            "at": event.get("ts"),
            "trace_id": None,
            "note": event.get("note") or None,
            "pid": pid,
            "source": "agent",
        }
        for event in reversed(events)
    ]
    # This agent measured it just before journaling it: same lock, same wait to the ms.
    measured = {(item["target"], item["waited_seconds"]) for item in found}
    seen: set[tuple[Any, ...]] = set()
    for entry in reversed(history):
        if not entry.contended:
            continue
        doc = entry.document()
        lock = doc["lock"]
        key = (doc.get("lock_key") or doc.get("target"), round(_number(lock.get("waited")), 3))
        # One acquisition of a service's lock is journaled with each replica (one trace).
        if key in measured or (*key, doc.get("trace_id")) in seen:
            continue
        seen.add((*key, doc.get("trace_id")))
        found.append(
            {
                "target": key[0],
                "subject": doc.get("target"),
                "waited_seconds": key[1],
                "at": _time(doc.get("started_at")),
                "trace_id": doc.get("trace_id"),
                "note": f"rotation {doc.get('id')}",
                "pid": doc.get("pid") or None,
                "source": "journal",
            }
        )
        if len(found) >= 2 * LISTED:
            break
    return _latest(found)


def health_checks(history: Sequence[Summary], events: Sequence[Event]) -> list[Doc]:
    """Failed or slow health gates: this agent's, then the journal's not already listed;
    newest first."""
    found = [
        _gate(
            event,
            seconds=event.get("seconds"),
            exit_code=event.get("exit_code"),
            output=event.get("output"),
            at=event.get("ts"),
            source="agent",
        )
        for event in reversed(events)
        if _worth_listing(event.get("healthy"), event.get("seconds"))
    ]
    seen = {(item["trace_id"], item["target"]) for item in found}
    for entry in reversed(history):
        if entry.gate_seconds is None or not _worth_listing(entry.healthy, entry.gate_seconds):
            continue
        key = (entry.trace_id, entry.target)
        if key in seen:
            continue
        seen.add(key)
        doc = entry.document()
        health = doc["health"]
        gate = _gate(
            {**health, "target": doc.get("target"), "trace_id": doc.get("trace_id")},
            seconds=health.get("elapsed"),
            exit_code=health.get("last_exit_code"),
            output=health.get("last_output"),
            at=_gate_end(doc, health),
            source="journal",
        )
        gate["rotation_id"] = doc.get("id")
        found.append(gate)
        if len(found) >= 2 * LISTED:
            break
    return _latest(found)


def circuit_breakers(providers: Mapping[str, Any], transitions: Iterable[Event]) -> Doc:
    """Each started provider's breaker; the last transition from the ring when it saw one."""
    last: dict[str, Event] = {}
    for event in transitions:
        last[str(event.get("provider"))] = event
    doc: Doc = {}
    for name, status in sorted(providers.items()):
        breaker = status.get("breaker")
        if not isinstance(breaker, Mapping):
            continue  # never started: no breaker yet
        changed_at = breaker.get("changed_at")
        seen = last.get(name)
        transition = None
        if seen is not None:
            transition = {"from": seen.get("previous"), "to": seen.get("state"), "at": seen["ts"]}
        elif changed_at is not None:
            transition = {"from": None, "to": breaker.get("state"), "at": changed_at}
        doc[name] = {
            "state": breaker.get("state"),
            "failures": breaker.get("consecutive_failures", 0),
            "threshold": breaker.get("failure_threshold"),
            "cooldown_seconds": breaker.get("cooldown"),
            "trips": breaker.get("trips", 0),
            "last_failure": breaker.get("last_failure"),
            "last_transition": transition,
            "next_trial_in": breaker.get("retry_in"),
        }
    return doc


# -- helpers ----------------------------------------------------------------------------------


def _gate(
    fields: Mapping[str, Any],
    *,
    seconds: object,
    exit_code: object,
    output: object,
    at: object,
    source: str,
) -> Doc:
    healthy = bool(fields.get("healthy"))
    duration = round(_number(seconds), 3)
    return {
        "target": fields.get("target"),
        "trace_id": fields.get("trace_id"),
        "healthy": healthy,
        "slow": duration > SLOW_HEALTH_GATE,
        "probe": fields.get("probe"),
        "reason": fields.get("reason"),
        "attempts": fields.get("attempts"),
        "exit_code": exit_code if isinstance(exit_code, int) else None,
        "output": cut(output if isinstance(output, str) else ""),
        "duration_seconds": duration,
        "at": _time(at),
        "source": source,
    }


def _worth_listing(healthy: object, seconds: object) -> bool:
    return healthy is not True or _number(seconds) > SLOW_HEALTH_GATE


def _gate_end(doc: Mapping[str, Any], health: Mapping[str, Any]) -> float | None:
    """When the entry's last health gate ended: its step's time plus its duration."""
    steps = doc.get("steps")
    for step in reversed(steps if isinstance(steps, list) else []):
        if isinstance(step, Mapping) and step.get("step") == "health_gate":
            return round(_number(step.get("at")) + _number(health.get("elapsed")), 3)
    return _time(doc.get("updated_at"))


def cut(text: str, limit: int = OUTPUT_BYTES) -> str:
    """``text`` cut to ``limit`` UTF-8 bytes (never inside a character), marked when cut."""
    data = text.encode("utf-8", "replace")
    if len(data) <= limit:
        return text
    return data[:limit].decode("utf-8", "ignore") + "…"


def _latest(items: list[Doc]) -> list[Doc]:
    items.sort(key=lambda item: _number(item.get("at")), reverse=True)
    return items[:LISTED]


def _time(value: object) -> float | None:
    """A time for display: milliseconds are enough; 0 or missing is None."""
    seconds = _number(value)
    return round(seconds, 3) if seconds else None


def _number(value: object) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0
