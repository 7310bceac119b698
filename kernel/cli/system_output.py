"""What ``docker dso system status`` prints for people: the service, the agent's last activity and
the recent logs, from the document of :mod:`kernel.system.status`."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from kernel.cli.status_output import duration


def render(doc: Mapping[str, Any], *, now: float | None = None) -> list[str]:
    now = time.time() if now is None else now
    return [*_service(doc, now), *_agent(doc.get("agent") or {}, now), *_logs(doc)]


def _service(doc: Mapping[str, Any], now: float) -> list[str]:
    unit = doc.get("unit")
    systemd = doc.get("systemd") or {}
    if not doc.get("installed"):
        return [
            f"{unit}: NOT INSTALLED (sudo docker dso bootstrap agent, then sudo docker dso "
            "system enable)"
        ]
    running = "running" if doc.get("running") else "STOPPED"
    enabled = "enabled" if doc.get("enabled") else "disabled"
    lines = [f"{unit}: {running}, {enabled}"]
    state = f"{systemd.get('active_state')} ({systemd.get('sub_state')})"
    since = systemd.get("since")
    if since:
        state += f" since {_when(since)} ({_span(now - since)} ago)"
    if doc.get("running") and systemd.get("main_pid"):
        state += f", main pid {systemd['main_pid']}"
    elif systemd.get("result") not in (None, "", "success"):
        state += f", result {systemd['result']}"
    lines.append(f"  state: {state}")
    boot = "starts at boot" if doc.get("enabled") else "does not start at boot"
    lines.append(f"  enabled: {systemd.get('unit_file_state') or '-'} ({boot})")
    where = systemd.get("fragment_path") or "-"
    drop_ins = systemd.get("drop_ins") or []
    if drop_ins:
        where += f" + drop-ins {', '.join(drop_ins)}"
    lines.append(f"  unit file: {where}")
    if systemd.get("restarts"):
        lines.append(f"  automatic restarts: {systemd['restarts']}")
    return lines


def _agent(agent: Mapping[str, Any], now: float) -> list[str]:
    if agent.get("answers"):
        live = "live" if agent.get("live") else "NOT LIVE"
        lines = [
            f"agent: {live}, version {agent.get('version')}, pid {agent.get('pid')}, up "
            f"{_span(agent.get('uptime_seconds'))} (socket {agent.get('socket')})"
        ]
        lines += [f"  problem: {problem}" for problem in agent.get("problems") or []]
    else:
        lines = [f"agent: does not answer ({agent.get('reason')})"]
        if agent.get("stopped_at"):
            lines.append(f"  last agent stopped {_when(agent['stopped_at'])}")
    lines.append("last activity:")
    rotation = agent.get("last_rotation")
    if isinstance(rotation, Mapping):
        containers = ", ".join(rotation.get("containers") or []) or "-"
        lines.append(
            f"  rotation: {rotation.get('target')} {rotation.get('status')} "
            f"{_ago(rotation.get('at'), now)} (trace {rotation.get('trace_id')}, "
            f"containers {containers})"
        )
    else:
        since = "since the agent started" if agent.get("answers") else "recorded"
        lines.append(f"  rotation: none {since}")
    events = agent.get("last_event") or {}
    for source, event in sorted(events.items()):
        if isinstance(event, Mapping):
            detail = f" ({event['detail']})" if event.get("detail") else ""
            lines.append(f"  {source}: {_ago(event.get('at'), now)}{detail}")
    if not events:
        lines.append("  events: none seen yet")
    waiting = agent.get("rotations_in_progress"), agent.get("rotations_awaiting_review")
    if any(waiting):
        lines.append(
            f"  rotations: {waiting[0]} in progress, {waiting[1]} awaiting review "
            "(docker dso status)"
        )
    return lines


def _logs(doc: Mapping[str, Any]) -> list[str]:
    logs = doc.get("logs") or {}
    entries = logs.get("lines") or []
    if not logs.get("readable"):
        return [f"recent logs: not readable ({logs.get('note')})"]
    if not entries:
        note = f" ({logs['note']})" if logs.get("note") else ""
        return [f"recent logs: none{note}"]
    lines = [f"recent logs (journalctl -u {doc.get('unit')} -n {len(entries)}):"]
    for entry in entries:
        stamp = time.strftime("%b %d %H:%M:%S", time.localtime(float(entry.get("ts") or 0)))
        pid = entry.get("pid")
        who = f"{entry.get('identifier')}[{pid}]" if pid else str(entry.get("identifier"))
        lines.append(f"  {stamp} {who}: {entry.get('message')}")
    return lines


def _when(ts: object) -> str:
    if not isinstance(ts, int | float) or isinstance(ts, bool) or not ts:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def _ago(ts: object, now: float) -> str:
    if not isinstance(ts, int | float) or isinstance(ts, bool) or not ts:
        return "at an unknown time"
    return f"{_span(now - ts)} ago"


def _span(seconds: object) -> str:
    if isinstance(seconds, int | float) and not isinstance(seconds, bool):
        seconds = max(0.0, float(seconds))
    return duration(seconds, decimals=0)
