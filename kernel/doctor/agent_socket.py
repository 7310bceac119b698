"""Agent checks: its socket is there and accepts connections (``agent.socket``), and the agent
says it is live (``agent.health``: the socket's ``health`` action, docs/agent-api.md)."""

from __future__ import annotations

import contextlib
import os
import stat
from typing import TYPE_CHECKING

from kernel import __version__
from kernel.agent.api import unix
from kernel.agent.api.client import AgentClient
from kernel.agent.instance import InstanceLock
from kernel.doctor.files import describe
from kernel.doctor.model import Check, Finding, NotChecked, fail, ok, warn
from kernel.errors import AgentError, AgentRequestError, AgentUnavailableError

if TYPE_CHECKING:
    from kernel.doctor.context import Context

#: Seconds the doctor waits for the agent's answer.
TIMEOUT = 5.0


def start_fix(ctx: Context) -> str:
    """How to start this installation's agent."""
    if ctx.mode == "agent":
        return (
            "sudo docker dso system enable (systemd starts it and verifies startup); without "
            "systemd: sudo dso agent --mode agent, under a supervisor that restarts it\n"
            "why it stopped: docker dso system logs -p err (journalctl -u dso-agent -n 50)"
        )
    home = f"DSO_HOME={ctx.layout.root} " if "DSO_HOME" in ctx.environ else ""
    return (
        f"{home}docker dso agent (foreground), or `docker dso up -d`, which starts one "
        f"detached\nwhy it stopped: {ctx.layout.logs / 'dso.log'} or the terminal it ran in"
    )


def _holder(ctx: Context) -> int | None:
    return InstanceLock(ctx.layout.state).holder()


def agent_socket(ctx: Context) -> Finding:
    path = ctx.socket_path()
    holder = _holder(ctx)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        if holder is not None:
            return fail(
                f"the agent (pid {holder}) runs but there is no socket at {path}",
                detail="it is still starting (recovery runs before it listens), or its socket "
                "file was removed while it ran",
                fix=f"wait a few seconds and run doctor again; if it stays so, restart it "
                f"(kill -TERM {holder}, then start it)\n{start_fix(ctx)}",
            )
        return fail(
            f"no agent socket at {path}: the agent is not running",
            detail="no process holds the agent's instance lock "
            f"({ctx.layout.state / 'agent.lock'}): no agent runs for this installation",
            fix=start_fix(ctx),
        )
    except OSError as exc:
        return fail(f"cannot examine {path}: {exc.strerror}", fix="run doctor as root")
    if not stat.S_ISSOCK(st.st_mode):
        return fail(
            f"{path} is not a socket",
            detail=f"something else ({describe(st)}) sits where the agent listens",
            fix=f"look at it, move it aside (mv {path} {path}.bad), then start the agent",
        )
    try:
        sock = unix.connect(path, TIMEOUT)
    except AgentUnavailableError as exc:
        return fail(
            exc.message,
            detail=f"the socket file is {describe(st)}; agent instance lock: "
            + (f"held by pid {holder}" if holder else "free (no agent runs)"),
            fix=(exc.hint or "") + ("" if holder else f"\n{start_fix(ctx)}"),
        )
    with contextlib.suppress(OSError):
        sock.close()
    if st.st_mode & 0o006:
        return warn(
            f"{path} accepts connections from every user ({describe(st)})",
            detail="the agent still checks each caller's credentials, but the socket should "
            "be 0660 root:dso",
            fix=f"restart the agent (it creates the socket 0660); chmod 660 {path} meanwhile",
        )
    who = f", agent pid {holder}" if holder else ""
    return ok(f"{path} accepts connections ({describe(st)}{who})")


def agent_health(ctx: Context) -> Finding:
    client = AgentClient(ctx.socket_path(), timeout=TIMEOUT)
    try:
        health = client.call("health")
    except AgentUnavailableError as exc:
        if not client.path.exists() or _holder(ctx) is None:
            return fail(
                "no agent answers: it is not running",
                detail=exc.message,
                fix=start_fix(ctx),
            )
        return fail(f"the agent does not answer: {exc.message}", fix=exc.hint or start_fix(ctx))
    except AgentRequestError as exc:
        if exc.status == 503:
            problems = _problems(client)
            return fail(
                "the agent runs but is not live: " + ("; ".join(problems) or "no reason given"),
                detail="live means: Docker connected, its event watcher, the rotation "
                "scheduler and the change checks all running",
                fix="docker dso status (what it knows), docker dso events (what it does); "
                "a lost Docker daemon: start Docker, the agent reconnects by itself; else "
                "restart the agent",
            )
        return fail(f"the agent refused the health request: {exc.message}", fix=exc.hint or "")
    if not isinstance(health, dict):
        raise NotChecked("the agent's health answer is not an object")
    version, pid = health.get("version"), health.get("pid")
    uptime = float(health.get("uptime_seconds") or 0.0)
    finding = f"the agent (pid {pid}, version {version}) is live, up {_duration(uptime)}"
    if version != __version__:
        return warn(
            f"{finding}, but this dso is version {__version__}",
            detail="the agent runs the code it started with: an upgrade takes effect when it "
            "restarts",
            fix="sudo docker dso system restart"
            if ctx.mode == "agent"
            else "docker dso agent stop, then start it again",
        )
    return ok(finding)


def _problems(client: AgentClient) -> list[str]:
    """Why the agent is not live: its status document's ``agent.health.problems``."""

    try:
        doc = client.call("status")
    except AgentError:
        return []
    health = ((doc or {}).get("agent") or {}).get("health") or {}
    return [str(p) for p in health.get("problems") or []]


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


CHECKS = (
    Check("agent.socket", "the agent's socket exists and accepts connections", agent_socket),
    Check("agent.health", "the agent answers `health` and is live", agent_health),
)
