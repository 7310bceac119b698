"""``systemd.unit``: the agent's unit is installed, enabled and active (spec: "Systemd Service
Configuration"), asked of ``systemctl show`` when systemd is PID 1.

Without systemd (a container, WSL, a host with another init) there is no unit to check: a
warning that says what supervises the agent instead. In local mode the unit is the host
agent's, not this installation's: whatever its state, never a failure.
"""

from __future__ import annotations

import subprocess
from typing import TYPE_CHECKING

from kernel.doctor.model import Check, Finding, fail, ok, warn
from kernel.system.service import (
    QUERY_TIMEOUT,
    STATE_PROPERTIES,
    no_systemd_detail,
    parse_properties,
    show_argv,
    systemd_booted,
)
from kernel.system.unit import UNIT_NAME

if TYPE_CHECKING:
    from kernel.doctor.context import Context

#: The agent's unit (spec: /etc/systemd/system/dso-agent.service).
UNIT = UNIT_NAME
#: Seconds ``systemctl show`` may take.
SYSTEMCTL_TIMEOUT = QUERY_TIMEOUT


def systemd_unit(ctx: Context) -> Finding:
    if not systemd_booted(ctx.systemd_dir):
        return _no_systemd(ctx)
    argv = tuple(show_argv(UNIT, STATE_PROPERTIES))
    try:
        done = ctx.run(argv, SYSTEMCTL_TIMEOUT)
    except FileNotFoundError:
        return warn(
            "systemd runs, but there is no systemctl on PATH", fix="install systemd's tools"
        )
    except subprocess.TimeoutExpired:
        return warn(f"`{' '.join(argv)}` did not answer in {SYSTEMCTL_TIMEOUT:g} s")
    if done.returncode != 0:
        reason = (done.stderr or done.stdout).strip().splitlines()
        return warn(
            "systemctl could not show the unit",
            detail=reason[-1] if reason else f"exit status {done.returncode}",
        )
    return _judge(ctx, parse_properties(done.stdout))


def _judge(ctx: Context, props: dict[str, str]) -> Finding:
    agent_mode = ctx.mode == "agent"
    loaded = props.get("LoadState", "")
    enabled = props.get("UnitFileState", "")
    active = props.get("ActiveState", "")
    sub = props.get("SubState", "")
    where = props.get("FragmentPath") or f"/etc/systemd/system/{UNIT}"
    state = f"{active} ({sub}), {enabled or 'no unit file state'}"
    if loaded == "not-found":
        finding = f"{UNIT} is not installed"
        if not agent_mode:
            return warn(
                f"{finding} (local mode: this installation's agent runs as you, not under systemd)",
                detail="the unit runs the host agent (/etc/dso, /var/lib/dso, /run/dso)",
                fix="for a host agent: sudo docker dso bootstrap agent, then sudo docker dso "
                "system enable",
            )
        return fail(
            finding,
            detail="the host agent runs as a systemd service",
            fix="sudo docker dso bootstrap agent (writes the unit), then sudo docker dso system "
            "enable",
        )
    if loaded != "loaded":
        finding = f"{UNIT} does not load: LoadState={loaded or '?'}"
        fix = f"systemd-analyze verify {where}; sudo systemctl daemon-reload"
        return fail(finding, fix=fix) if agent_mode else warn(finding, fix=fix)
    if active == "failed":
        result = props.get("Result", "")
        finding = f"{UNIT} failed ({result or sub})"
        fix = "docker dso system logs -p err (journalctl -u dso-agent -n 50); fix the cause, "
        fix += "then sudo docker dso system restart"
        return fail(finding, fix=fix) if agent_mode else warn(finding, fix=fix)
    if agent_mode and active not in ("active", "activating", "reloading"):
        return fail(
            f"{UNIT} is not running: {state}",
            fix="sudo docker dso system enable (enables and starts it, and verifies startup)",
        )
    if agent_mode and enabled not in ("enabled", "enabled-runtime", "static", "linked"):
        return warn(
            f"{UNIT} runs but is not enabled: it will not start at boot ({state})",
            fix="sudo docker dso system enable",
        )
    if active in ("activating", "reloading"):
        return warn(f"{UNIT} is {active}: {state}", fix="run doctor again in a few seconds")
    return ok(f"{UNIT}: {state}", detail=f"unit file {where}")


def _no_systemd(ctx: Context) -> Finding:
    detail = no_systemd_detail(ctx.systemd_dir)
    if ctx.mode == "agent":
        fix = (
            "run `dso agent --mode agent` under what supervises services here (a container "
            "restart policy, supervisord, s6, …) so that it restarts when it stops"
        )
    else:
        fix = (
            "local mode needs no unit: `docker dso up -d` starts the agent when none runs, "
            "`docker dso agent` runs it in the foreground"
        )
    return warn("no systemd on this host: the agent is not a systemd service", detail, fix)


CHECKS = (
    Check("systemd.unit", "the dso-agent unit is installed, enabled and active", systemd_unit),
)
