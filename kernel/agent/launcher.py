"""Local mode without systemd: start a detached agent when none watches this installation.

``docker dso up -d`` calls :func:`ensure_agent` after compose succeeded: if no agent holds the
installation's lock, it starts ``dso agent`` in its own session (no terminal, stdin closed,
output appended to ``<home>/logs/dso.log``) and waits until it holds the lock. ``docker dso
agent stop`` stops it. The agent's own pid is in ``state/agent.lock``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from kernel.agent.instance import InstanceLock
from kernel.errors import AgentError

if TYPE_CHECKING:
    from kernel.paths import Layout

#: Seconds to wait for a new agent to take its lock.
START_TIMEOUT = 20.0


def agent_command() -> list[str]:
    """How to run this very dso: the frozen program itself, or this Python with dso's CLI."""
    if getattr(sys, "frozen", False):
        return [sys.executable]
    return [sys.executable, "-c", "from kernel.cli.main import main; main()"]


def ensure_agent(
    layout: Layout, config_path: Path | None = None, *, timeout: float = START_TIMEOUT
) -> tuple[int, bool]:
    """``(pid, started)``: the agent watching ``layout``, started now if none was running."""
    lock = InstanceLock(layout.state)
    running = lock.holder()
    if running is not None:
        return running, False
    log_path = layout.logs / "dso.log"
    log_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    args = [*agent_command()]
    if config_path is not None:
        args += ["--config", str(config_path)]
    args += ["--log-level", os.environ.get("DSO_LOG_LEVEL", "info"), "agent"]
    env = {k: v for k, v in os.environ.items() if k != "DOCKER_CLI_PLUGIN_SOCKET"}
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
    try:
        process = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=fd,
            stderr=fd,
            env=env,
            cwd="/",
            start_new_session=True,
            close_fds=True,
        )
    finally:
        os.close(fd)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if lock.holder() == process.pid:
            return process.pid, True
        if process.poll() is not None:
            raise AgentError(
                f"the local agent exited at start (code {process.returncode})",
                hint=f"see {log_path}",
            )
        time.sleep(0.05)
    raise AgentError(
        f"the local agent (pid {process.pid}) did not start within {timeout:g}s",
        hint=f"see {log_path}",
    )
