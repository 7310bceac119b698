"""The ``docker dso status`` document: one schema whether the agent answers or not.

:func:`live_status` is what the running agent knows (the socket's ``status`` action);
:func:`offline_status` is the same document from the state files alone, for when no agent
answers: ``agent.running`` is false with the reason, and what only a running agent knows
(providers, cache, queue, provider latency, breakers) is ``null`` or empty, with a note in
``notes`` — never invented. Field meanings and the JSON Schema: docs/status-json.md (a test
validates both documents against it).

Each source is read once per document: the journal through :meth:`Journal.summaries` (the few
fields counted and filtered on, kept by the journal; an entry's whole document is parsed only
when it is listed), the managed containers from memory or one file; lists of history are cut to
the latest :data:`RECENT`, so 1,000 containers and 10,000 rotations render in milliseconds.
Metadata only: references are names (``dso://app/db``), versions are fingerprints, never a value.

``swarm`` (:func:`swarm_doc`) is this Docker daemon's place in a swarm and, on a manager, dso's
Swarm services: the live document takes the agent's last look (its change check scans them
anyway), the offline one asks Docker once when the caller gives a way to reach it.
"""

from __future__ import annotations

import collections
import json
import os
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kernel import __version__
from kernel.agent import observability
from kernel.errors import DSOError
from kernel.rotation.history import Summary
from kernel.rotation.journal import STALE_AFTER, Journal

if TYPE_CHECKING:
    import docker

    from kernel.agent.cache import ValueCache
    from kernel.agent.daemon import Agent
    from kernel.agent.swarm_services import SwarmScan
    from kernel.config.model import Config
    from kernel.paths import Layout

#: Version of the document's shape (``schema``); docs/status-json.md describes it.
SCHEMA = 1
#: Finished rotations in ``rotations.recent``.
RECENT = 20
NOT_RUNNING = "no agent is running for this installation"
#: Why a section is null when the agent does not answer.
AGENT_ONLY = "only the running agent knows it"
#: Statuses of rotations not finished for good.
_UNFINISHED = frozenset({"in_progress", "failed", "critical_error"})
#: A service's ``UpdateStatus.State`` while the engine replaces tasks.
_ROLLING = frozenset({"updating", "rollback_started"})

Doc = dict[str, Any]


# -- the two documents ----------------------------------------------------------------------


def live_status(agent: Agent, *, now: float | None = None) -> Doc:
    """The whole document from the running ``agent``."""
    now = time.time() if now is None else now
    runtime = agent.runtime
    history, journal_note = _history(runtime.journal.summaries)
    providers, providers_note = observability.provider_status(agent)
    problems = list(agent.health())
    notes = {}
    if journal_note:
        notes["rotations"] = journal_note
    obs = agent.observability.doc(agent, history=history, providers=providers)
    if providers_note:
        notes["providers"] = providers_note
        obs["notes"].update(provider_latency=providers_note, circuit_breakers=providers_note)
    last = agent.runtime_file.document()
    socket = agent.api_path
    swarm, swarm_note = swarm_doc(agent.swarm, history)
    if swarm_note:
        notes["swarm"] = swarm_note
    return {
        "schema": SCHEMA,
        "source": "agent",
        "generated_at": round(now, 3),
        "agent": {
            "running": True,
            "reason": None,
            "health": {"live": not problems, "problems": problems},
        },
        "runtime": {
            "mode": runtime.layout.mode,
            "version": __version__,
            "pid": os.getpid(),
            "started_at": round(agent.started_at, 3),
            "uptime_seconds": round(max(0.0, now - agent.started_at), 3),
            "stopped_at": None,
            "config": str(runtime.config_path) if runtime.config_path else None,
            "socket": str(socket) if socket is not None else None,
            "state_dir": str(runtime.layout.state),
            "last_event": dict(last.get("last_event") or {}),
            "last_rotation": last.get("last_rotation"),
        },
        "providers": _providers(providers, _types(runtime.config)),
        "cache": cache_doc(agent.cache),
        "containers": containers_doc(agent),
        "rotations": _rotations(history, now),
        "queue": queue_doc(agent),
        "swarm": swarm,
        "observability": obs,
        "notes": notes,
    }


def offline_status(
    layout: Layout,
    config_path: Path | None = None,
    *,
    socket: Path | None = None,
    reason: str | None = None,
    now: float | None = None,
    connect_docker: Callable[[], docker.DockerClient] | None = None,
) -> Doc:
    """The document from ``layout``'s state files (no agent answers on ``socket``).

    Read-only: unreadable files are reported in ``notes``, never moved or rewritten. ``swarm``
    is asked of the Docker daemon ``connect_docker`` connects to (None: not asked, a note says so).
    """
    now = time.time() if now is None else now
    notes: dict[str, str] = {}
    last = _read_state(layout.state / "runtime.json", notes, "runtime")
    managed = _read_state(layout.state / "containers.json", notes, "containers")
    history: Sequence[Summary] = []
    if layout.state.is_dir():
        history, journal_note = _history(Journal(layout.state).summaries)
        if journal_note:
            notes["rotations"] = journal_note
    else:
        notes["rotations"] = f"no state directory {layout.state}: nothing ran here yet"
    for section in ("providers", "cache", "queue"):
        notes[section] = AGENT_ONLY
    swarm, swarm_note = swarm_doc(_scan_swarm(connect_docker), history)
    if swarm_note:
        notes["swarm"] = swarm_note
    reason = reason or NOT_RUNNING
    config = last.get("config") or (str(config_path) if config_path else None)
    return {
        "schema": SCHEMA,
        "source": "state_files",
        "generated_at": round(now, 3),
        "agent": {"running": False, "reason": reason, "health": {"live": False, "problems": []}},
        "runtime": {
            "mode": layout.mode,
            "version": last.get("version"),
            "pid": last.get("pid"),
            "started_at": last.get("started_at"),
            "uptime_seconds": None,
            "stopped_at": last.get("stopped_at"),
            "config": config,
            "socket": str(socket) if socket is not None else None,
            "state_dir": str(layout.state),
            "last_event": dict(last.get("last_event") or {}),
            "last_rotation": last.get("last_rotation"),
        },
        "providers": None,
        "cache": None,
        "containers": _containers_from_file(managed),
        "rotations": _rotations(history, now),
        "queue": None,
        "swarm": swarm,
        "observability": observability.offline(history),
        "notes": notes,
    }


# -- sections -------------------------------------------------------------------------------


def providers_doc(agent: Agent) -> Doc:
    """``{provider: {state up/down/stopped, pid, restarts, breaker, latency, …}}``."""
    providers, _ = observability.provider_status(agent)
    return _providers(providers, _types(agent.runtime.config))


def containers_doc(agent: Agent) -> list[Doc]:
    """The managed containers, by name: references (names) and the versions delivered."""
    return [{"id": m.id[:12], **m.to_dict()} for m in agent.managed]


def cache_doc(cache: ValueCache) -> Doc:
    """Counts of the value cache (never a reference or a value)."""
    return {**cache.stats(), "ttl_seconds": cache.ttl, "enabled": cache.enabled}


def queue_doc(agent: Agent) -> Doc:
    """Targets waiting for their debounce window, rotating, and due again."""
    queued = agent.scheduler.queued()
    depth = sum(len(keys) for keys in queued.values())
    return {"busy": depth > 0, "depth": depth, **queued}


def rotations_doc(
    journal: Journal | Sequence[Summary],
    *,
    status: str | Collection[str] | None = None,
    target: str | None = None,
    since: float | None = None,
    trace_id: str | None = None,
    limit: int = 50,
) -> list[Doc]:
    """The journal's rotations, newest first, that match every filter given: ``status``
    (one or several), ``target`` (a container name, either name of the swap, or the lock key
    such as ``service-app.web``), ``since`` (started at or after, Unix seconds), ``trace_id``;
    at most ``limit`` (0: no limit)."""
    history = journal if isinstance(journal, Sequence) else journal.summaries()
    statuses = {status} if isinstance(status, str) else set(status or ())
    found = []
    for entry in reversed(history):
        if statuses and entry.status not in statuses:
            continue
        if trace_id is not None and entry.trace_id != trace_id:
            continue
        if since is not None and entry.started_at < since:
            continue
        names = (entry.target, entry.lock_key, entry.old_name, entry.new_name)
        if target is not None and target not in names:
            continue
        found.append(rotation_summary(entry.document()))
        if limit and len(found) >= limit:
            break
    return found


def rotation_summary(doc: Mapping[str, Any]) -> Doc:
    """One journal entry for ``status`` and ``rotations``: names, times, outcome."""
    started = _number(doc.get("started_at"))
    ended = _number(doc.get("finished_at"))
    return {
        "id": doc.get("id"),
        "trace_id": doc.get("trace_id"),
        "target": doc.get("target"),
        "lock": doc.get("lock_key"),
        "strategy": doc.get("strategy"),
        "status": doc.get("status"),
        "step": doc.get("step"),
        "cause": doc.get("cause"),
        "error": doc.get("error"),
        "started_at": _time(started),
        "updated_at": _time(doc.get("updated_at")),
        "finished_at": _time(ended),
        "duration_seconds": round(ended - started, 3) if started and ended else None,
        "references": dict(doc.get("references") or {}),
        "versions": dict(doc.get("versions") or {}),
        "pid": doc.get("pid") or None,
    }


def swarm_doc(scan: SwarmScan | None, history: Sequence[Summary]) -> tuple[Doc, str | None]:
    """The ``swarm`` section from one look at the swarm, and a note when it is unknown.

    ``role``: ``manager``, ``worker``, ``none`` (not in a swarm) or null (unknown, or a swarm
    state such as ``locked`` in which the node is neither); ``services`` only on a manager, each
    with the last rotation of it in ``history``.
    """
    if scan is None or scan.node is None:
        note = "the agent has not looked at the swarm yet" if scan is None else scan.error
        return {
            "role": None,
            "state": None,
            "node_id": None,
            "checked_at": _time(scan.at) if scan is not None else None,
            "services": [],
        }, f"swarm unknown: {note or 'Docker did not answer'}"
    node = scan.node
    if node.manager:
        role: str | None = "manager"
    elif node.active:
        role = "worker"
    else:
        role = "none" if node.state == "inactive" else None
    last: dict[str, Summary] = {}
    if scan.services:
        locks = {_lock(service.name) for service in scan.services}
        for summary in history:  # oldest first: the newest of each lock wins
            if summary.lock_key in locks:
                last[summary.lock_key] = summary
    services = []
    for service in scan.services:
        state = service.update_state or None
        lock = _lock(service.name)
        entry = last.get(lock)
        services.append(
            {
                "id": service.id[:12],
                "name": service.name,
                "stack": service.stack,
                "lock": lock,
                "secrets": {
                    m.target: {
                        "secret": m.secret.name,
                        "reference": m.secret.reference,
                        "version": m.secret.version or None,
                    }
                    for m in sorted(service.mounted, key=lambda m: m.target)
                },
                "update": {
                    "state": state,
                    "in_progress": state in _ROLLING,
                    "message": service.update_message or None,
                    "started_at": service.update_started or None,
                },
                "last_rotation": rotation_summary(entry.document()) if entry else None,
            }
        )
    return {
        "role": role,
        "state": node.state,
        "node_id": node.node_id or None,
        "checked_at": _time(scan.at),
        "services": services,
    }, None


def _lock(service: str) -> str:
    from kernel.swarm.targets import swarm_lock_key

    return swarm_lock_key(service)


def _scan_swarm(connect: Callable[[], docker.DockerClient] | None) -> SwarmScan:
    """One look at the swarm through ``connect`` (None: not asked)."""
    from kernel.agent.swarm_services import SwarmScan, swarm_scan

    if connect is None:
        return SwarmScan(None, error="Docker was not asked")
    try:
        client = connect()
    except DSOError as exc:
        return SwarmScan(None, error=f"Docker did not answer ({exc.message})", at=time.time())
    try:
        return swarm_scan(client)
    finally:
        client.close()


def _rotations(history: Sequence[Summary], now: float) -> Doc:
    counts = collections.Counter(entry.status for entry in history)
    in_progress: list[Doc] = []
    review: list[Doc] = []
    recent: list[Doc] = []
    for entry in reversed(history):
        if entry.status in _UNFINISHED:
            doc = entry.document()
            why = _needs_review(doc, now)
            if why is not None:
                review.append({**rotation_summary(doc), "review": why})
            elif entry.status == "in_progress":
                in_progress.append(rotation_summary(doc))
        elif len(recent) < RECENT and entry.finished_at:
            recent.append(rotation_summary(entry.document()))
    return {
        "total": len(history),
        "by_status": {str(k): v for k, v in sorted(counts.items(), key=lambda kv: str(kv[0]))},
        "in_progress": in_progress,
        "awaiting_review": review,
        "recent": recent,
    }


def _needs_review(doc: Mapping[str, Any], now: float) -> str | None:
    """Why an entry waits for an operator (None: it does not)."""
    state = doc.get("status")
    if state == "in_progress" and now - _number(doc.get("updated_at")) > STALE_AFTER:
        return "no progress for 24 h: look at it, then `docker dso recover`"
    if state == "critical_error":
        recovery = doc.get("recovery")
        detail = recovery.get("reason") if isinstance(recovery, Mapping) else None
        return f"recover could not converge it ({detail or doc.get('error') or 'no reason'})"
    if state == "failed":
        return "failed and left as it was for an operator: `docker dso recover` converges it"
    return None


def _types(config: Config) -> dict[str, str]:
    return {name: provider.type for name, provider in config.providers.items()}


def _providers(providers: Mapping[str, Any], types: Mapping[str, str]) -> Doc:
    doc: Doc = {}
    for name, status in sorted(providers.items()):
        breaker = status.get("breaker") if isinstance(status.get("breaker"), Mapping) else None
        process = status.get("state")
        if process in ("stopped", "closed"):
            state = "stopped"
        elif process == "idle":
            state = "idle"  # stopped for idleness: the next request starts it, not an outage
        elif process == "running" and (breaker or {}).get("state") != "open":
            state = "up"
        else:
            state = "down"
        starts = status.get("starts") or 0
        woken = status.get("idle_stops") or 0
        doc[name] = {
            "type": status.get("type") or types.get(name),
            "state": state,
            "process": process,
            "pid": status.get("pid"),
            "version": status.get("version"),
            "restarts": max(0, int(starts) - 1 - int(woken)),
            "crashes": status.get("crashes") or 0,
            "breaker": dict(breaker) if breaker is not None else None,
            "latency": dict(status.get("latency") or {}),
        }
    return doc


def _containers_from_file(body: Mapping[str, Any]) -> list[Doc]:
    containers = body.get("containers")
    if not isinstance(containers, Mapping):
        return []
    found = [
        {"id": str(cid)[:12], **item}
        for cid, item in containers.items()
        if isinstance(item, Mapping)
    ]
    return sorted(found, key=lambda c: str(c.get("name")))


# -- reading --------------------------------------------------------------------------------


def _history(read: Callable[[], Sequence[Summary]]) -> tuple[Sequence[Summary], str | None]:
    try:
        history = read()
    except DSOError as exc:
        return [], f"the rotation journal could not be read: {exc.message}"
    return history, None


def _read_state(path: Path, notes: dict[str, str], section: str) -> Mapping[str, Any]:
    """A state file's body, or ``{}`` with a note (missing, unreadable, not ours)."""
    try:
        body = json.loads(path.read_bytes())
    except FileNotFoundError:
        return {}
    except OSError as exc:
        notes[section] = f"cannot read {path}: {exc.strerror}"
        return {}
    except ValueError:
        notes[section] = f"{path} is not valid JSON"
        return {}
    if not isinstance(body, dict) or body.get("schema") != 1:
        notes[section] = f"{path} has a schema this dso does not know"
        return {}
    return body


def _time(value: object) -> float | None:
    """A journal time for display: milliseconds are enough; 0 or missing is None."""
    seconds = _number(value)
    return round(seconds, 3) if seconds else None


def _number(value: object) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0
