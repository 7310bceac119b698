"""What ``docker dso status`` and ``docker dso events`` print for people: short sections of
short lines, from the status document (docs/status-json.md) and the agent's events.

``docker dso status | grep -i cache`` (the spec's) finds one line with the cache's entries,
bytes, ``max_size`` and hit ratio. Names, versions, counts and diagnostics only, never a value.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

from kernel.cli.progress import plural

#: Managed containers listed before "… and N more".
CONTAINERS_SHOWN = 20
#: Swarm services listed before "… and N more".
SERVICES_SHOWN = 20
#: Finished rotations listed under "recent".
RECENT_SHOWN = 5


def render(doc: Mapping[str, Any]) -> list[str]:
    """The status document as lines."""
    return [
        *_agent(doc),
        *_providers(doc.get("providers"), doc),
        _cache(doc.get("cache")),
        *_containers(doc.get("containers") or []),
        *_rotations(doc.get("rotations") or {}),
        _queue(doc.get("queue")),
        *_swarm(doc),
        *_observability(doc.get("observability") or {}),
    ]


def event_line(event: Mapping[str, Any]) -> str:
    """One event on one line: time, type, then its fields as ``key=value``."""
    ts = event.get("ts")
    when = time.strftime("%H:%M:%S", time.localtime(ts)) if isinstance(ts, int | float) else "-"
    fields = " ".join(
        f"{key}={_value(value)}"
        for key, value in event.items()
        if key not in ("type", "ts") and value not in (None, "", [], {})
    )
    return f"{when} {event.get('type', '?')} {fields}".rstrip()


# -- sections -----------------------------------------------------------------------------------


def _agent(doc: Mapping[str, Any]) -> list[str]:
    agent = doc.get("agent") or {}
    runtime = doc.get("runtime") or {}
    mode = f"{runtime.get('mode')} mode"
    if agent.get("running"):
        health = agent.get("health") or {}
        live = "live" if health.get("live") else "NOT LIVE"
        up = duration(runtime.get("uptime_seconds"))
        lines = [
            f"agent: running, {live} (pid {runtime.get('pid')}, version {runtime.get('version')}, "
            f"{mode}, up {up})"
        ]
        lines += [f"  problem: {problem}" for problem in health.get("problems") or []]
    else:
        lines = [f"agent: NOT RUNNING ({agent.get('reason')}); from the state files, {mode}"]
        if runtime.get("pid"):
            stopped = runtime.get("stopped_at")
            end = f"stopped {_when(stopped)}" if stopped else "did not stop cleanly"
            lines.append(
                f"  last agent: pid {runtime.get('pid')}, version {runtime.get('version')}, "
                f"started {_when(runtime.get('started_at'))}, {end}"
            )
    lines.append(f"  socket: {runtime.get('socket') or '-'}")
    lines.append(f"  config: {runtime.get('config') or 'built-in defaults'}")
    lines.append(f"  state: {runtime.get('state_dir')}")
    return lines


def _providers(providers: Mapping[str, Any] | None, doc: Mapping[str, Any]) -> list[str]:
    if providers is None:
        return [f"providers: {_unknown(doc, 'providers')}"]
    if not providers:
        return ["providers: none started"]
    lines = ["providers:"]
    for name, item in providers.items():
        parts = [f"  {name}: {item.get('state')}"]
        if item.get("pid"):
            parts.append(f"pid {item['pid']}")
        breaker = item.get("breaker") or {}
        if breaker:
            text = f"breaker {breaker.get('state')}"
            if breaker.get("consecutive_failures"):
                text += f" ({plural(int(breaker['consecutive_failures']), 'failure')})"
            if breaker.get("retry_in") is not None:
                text += f", next trial in {duration(breaker['retry_in'])}"
            parts.append(text)
        if item.get("restarts"):
            parts.append(plural(int(item["restarts"]), "restart"))
        for method, stats in (item.get("latency") or {}).items():
            parts.append(
                f"{method} {stats.get('count')}x avg {stats.get('avg_ms')} ms "
                f"p95 {stats.get('p95_ms')} ms"
            )
        lines.append(", ".join(parts))
    return lines


def _cache(cache: Mapping[str, Any] | None) -> str:
    if cache is None:
        return "cache: unknown (held in the running agent's memory only)"
    off = "" if cache.get("enabled", True) else " (disabled)"
    return (
        f"cache{off}: {cache.get('entries')} entries, {cache.get('bytes')} bytes "
        f"({_size(cache.get('bytes'))}) of max_size {_size(cache.get('max_size'))}, "
        f"hit ratio {float(cache.get('hit_ratio') or 0.0):.2f} "
        f"({cache.get('hits')} hits, {cache.get('misses')} misses), "
        f"ttl {duration(cache.get('ttl_seconds'))}"
    )


def _containers(containers: list[Mapping[str, Any]]) -> list[str]:
    lines = [f"containers: {len(containers)} managed"]
    for item in containers[:CONTAINERS_SHOWN]:
        refs = item.get("references") or {}
        held = ", ".join(
            f"{variable}={ref.get('reference')}@{ref.get('version') or '?'}"
            for variable, ref in refs.items()
        )
        where = f"{item.get('project')}/{item.get('service')}" if item.get("service") else "-"
        lines.append(f"  {item.get('name')} ({where}): {held or 'no references'}")
    if len(containers) > CONTAINERS_SHOWN:
        lines.append(f"  … and {len(containers) - CONTAINERS_SHOWN} more (--json lists all)")
    return lines


def _rotations(rotations: Mapping[str, Any]) -> list[str]:
    counts = ", ".join(f"{n} {state}" for state, n in (rotations.get("by_status") or {}).items())
    total = f"rotations: {rotations.get('total', 0)} in the journal"
    lines = [f"{total} ({counts})" if counts else total]
    running = rotations.get("in_progress") or []
    lines.append(f"  in progress: {len(running) or 'none'}")
    lines += [f"    {_rotation(item)}" for item in running]
    review = rotations.get("awaiting_review") or []
    lines.append(f"  awaiting operator review: {len(review) or 'none'}")
    for item in review:
        lines.append(f"    {_rotation(item)}")
        lines.append(f"      {item.get('review')}")
    recent = (rotations.get("recent") or [])[:RECENT_SHOWN]
    if recent:
        lines.append("  recent:")
        lines += [f"    {_rotation(item)}" for item in recent]
    return lines


def _rotation(item: Mapping[str, Any]) -> str:
    took = item.get("duration_seconds")
    parts = [
        _when(item.get("started_at")),
        str(item.get("target")),
        str(item.get("status")),
        str(item.get("strategy")),
    ]
    if took is not None:
        parts.append(duration(took))
    if item.get("cause"):
        parts.append(f"cause {item['cause']}")
    parts.append(f"trace {item.get('trace_id')}")
    return "  ".join(parts)


def _queue(queue: Mapping[str, Any] | None) -> str:
    if queue is None:
        return "queue: unknown (the agent is not running)"
    if not queue.get("busy"):
        return "queue: idle"
    parts = [
        f"{len(queue.get(key) or [])} {key}"
        for key in ("waiting", "rotating", "again")
        if queue.get(key)
    ]
    return "queue: " + ", ".join(parts)


def _swarm(doc: Mapping[str, Any]) -> list[str]:
    """One line off a manager (``swarm: none …``); on one, a line per dso Swarm service."""
    swarm = doc.get("swarm")
    if not isinstance(swarm, Mapping):
        return []  # an agent older than the section
    role = swarm.get("role")
    if role == "none":
        return ["swarm: none (this Docker daemon is not in a swarm)"]
    if role == "worker":
        return ["swarm: worker node (dso's Swarm services are listed and rotated on a manager)"]
    if role != "manager":
        state = swarm.get("state")
        return [
            f"swarm: state {state}, role unknown" if state else f"swarm: {_unknown(doc, 'swarm')}"
        ]
    services = swarm.get("services") or []
    node = str(swarm.get("node_id") or "?")[:12]
    lines = [
        f"swarm: manager (node {node}), {plural(len(services), 'dso service')}, "
        f"as of {_when(swarm.get('checked_at'))}"
    ]
    for item in services[:SERVICES_SHOWN]:
        held = ", ".join(
            f"{target}={ref.get('reference')}@{ref.get('version') or '?'}"
            for target, ref in (item.get("secrets") or {}).items()
        )
        update = item.get("update") or {}
        parts = [f"  {item.get('name')} (stack {item.get('stack') or '-'}): {held}"]
        if update.get("state"):
            rolling = " (rolling now)" if update.get("in_progress") else ""
            parts.append(f"update {update['state']}{rolling}")
        last = item.get("last_rotation")
        if last:
            parts.append(
                f"last rotation {_when(last.get('started_at'))} {last.get('status')}, "
                f"trace {last.get('trace_id')}"
            )
        lines.append("; ".join(parts))
    if len(services) > SERVICES_SHOWN:
        lines.append(f"  … and {len(services) - SERVICES_SHOWN} more (--json lists all)")
    return lines


def _observability(obs: Mapping[str, Any]) -> list[str]:
    lines = ["observability (--json | jq .observability for every field):"]
    traces = obs.get("traces") or []
    lines.append(f"  traces: {len(traces)} recent rotations")
    contention = obs.get("lock_contention") or []
    text = f"  lock contention (> {obs.get('thresholds', {}).get('lock_contention_seconds')} s): "
    if contention:
        last = contention[0]
        text += (
            f"{len(contention)}, latest {last.get('target')} waited "
            f"{last.get('waited_seconds')} s {_when(last.get('at'))}"
        )
    lines.append(text + ("" if contention else "none"))
    checks = obs.get("health_checks") or []
    failed = sum(1 for c in checks if not c.get("healthy"))
    text = f"  health checks: {failed} failed, {len(checks) - failed} slow"
    if checks:
        last = checks[0]
        code = last.get("exit_code")
        text += f"; latest {last.get('target')}: {last.get('reason')}" + (
            f", exit code {code}" if code is not None else ""
        )
    lines.append(text)
    breakers = obs.get("circuit_breakers") or {}
    states = ", ".join(f"{name} {item.get('state')}" for name, item in breakers.items())
    notes = obs.get("notes") or {}
    if not states:
        note = notes.get("circuit_breakers")
        states = f"unknown ({note})" if note else "none started yet"
    lines.append(f"  circuit breakers: {states}")
    return lines


# -- formatting ---------------------------------------------------------------------------------


def _unknown(doc: Mapping[str, Any], section: str) -> str:
    note = (doc.get("notes") or {}).get(section)
    return f"unknown ({note})" if note else "unknown"


def _when(ts: object) -> str:
    if not isinstance(ts, int | float) or isinstance(ts, bool) or not ts:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def duration(seconds: object, *, decimals: int = 1) -> str:
    """``4.2s``, ``3m12s``, ``5h3m``, ``2d4h``; ``-`` for a missing value."""
    if not isinstance(seconds, int | float) or isinstance(seconds, bool):
        return "-"
    if seconds < 60:
        return f"{seconds:.{decimals}f}s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days}d{hours}h"
    if hours:
        return f"{hours}h{minutes}m"
    return f"{minutes}m{secs}s"


def _size(count: object) -> str:
    if not isinstance(count, int | float) or isinstance(count, bool):
        return "-"
    size = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


def _value(value: object) -> str:
    if isinstance(value, str):
        return value if value and " " not in value else json.dumps(value)
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return json.dumps(value, separators=(",", ":"), default=str)
