"""``docker dso agent``: run the agent in the foreground (what systemd runs), or stop it."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from kernel.cli.app import Application, pass_app
from kernel.cli.modes import MODES, layout_for, mode_option
from kernel.errors import AgentError

if TYPE_CHECKING:
    from kernel.agent.daemon import Agent
    from kernel.runtime import Runtime

__all__ = ["MODES", "agent"]


@click.group("agent", invoke_without_command=True)
@mode_option(
    "local: this user's ~/.dso ($DSO_HOME); agent: the host's /etc/dso and /var/lib/dso "
    "(the systemd service, as root)."
)
@click.pass_context
def agent(ctx: click.Context, mode: str) -> None:
    """Watch the providers and Docker, and roll changed secrets out by itself.

    Without a subcommand, runs the agent in the foreground until SIGTERM or Ctrl-C (what
    systemd runs). It recovers interrupted rotations, then rotates every service whose
    containers hold older secret versions than their providers (checked every
    agent.watch.polling_interval, at once on a provider watch notification), one rotation per
    service within agent.watch.debounce_window. SIGHUP re-reads the configuration (an invalid
    one is reported and the running one kept). One agent per installation: a second one exits
    10 naming the pid of the first. How it decides what to rotate: docs/agent.md.

    \b
    Examples:
      docker dso agent                       foreground, local mode (~/.dso)
      sudo dso agent --mode agent            the host agent (/etc/dso/dso.yaml)
      docker dso agent stop
    """
    ctx.meta["dso.agent.mode"] = mode
    if ctx.invoked_subcommand is None:
        app = ctx.find_object(Application)
        assert app is not None
        _run(app, mode)


@agent.command("stop")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    default=60.0,
    show_default=True,
    help="Seconds to wait for the agent to exit (it lets a rotation in flight reach a safe "
    "point first).",
)
@pass_app
@click.pass_context
def stop(ctx: click.Context, app: Application, timeout: float) -> None:
    """Stop the running agent of this installation (SIGTERM to its pid), and wait for it.

    \b
    Examples:
      docker dso agent stop
      sudo dso agent --mode agent stop --timeout 120
    """
    import os
    import signal
    import time

    from kernel.agent.instance import InstanceLock

    layout = layout_for(app, ctx.meta.get("dso.agent.mode"))
    lock = InstanceLock(layout.state)
    pid = lock.holder()
    if pid is None:
        raise AgentError("no agent is running for this installation", hint=f"(lock {lock.path})")
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while lock.holder() is not None:
        if time.monotonic() > deadline:
            raise AgentError(f"the agent (pid {pid}) did not stop within {timeout:g}s")
        time.sleep(0.1)
    app.info(f"agent (pid {pid}) stopped")


def _run(app: Application, mode: str) -> None:
    import signal

    from kernel.agent.daemon import Agent
    from kernel.runtime import Runtime

    runtime = Runtime.load(layout_for(app, mode), app.config_path)
    _configure_logging(app, runtime)
    daemon = Agent(runtime)

    def on_stop(signum: int, _frame: object) -> None:
        daemon.stop()

    def on_hup(signum: int, _frame: object) -> None:
        daemon.request_reload()

    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    signal.signal(signal.SIGHUP, on_hup)
    daemon.run(reload=lambda: _reload(daemon, app))


def _reload(daemon: Agent, app: Application) -> None:
    from kernel.errors import ConfigError
    from kernel.runtime import Runtime

    try:
        fresh = Runtime.load(daemon.runtime.layout, app.config_path)
    except ConfigError as exc:
        daemon.reload_failed(str(exc))
        return
    daemon.reload(fresh)


def _configure_logging(app: Application, runtime: Runtime) -> None:
    """The agent logs at the configuration's level and format (``--log-level`` given on the
    command line or in DSO_LOG_LEVEL wins), to stderr (journald) and ``logging.file``."""
    import logging
    import os

    from kernel.log import JSONFormatter, TextFormatter, configure

    settings = runtime.config.logging
    explicit = app.log_level != "warning" or "DSO_LOG_LEVEL" in os.environ
    level = app.log_level if explicit else settings.level
    configure(level, fmt=settings.format)
    if settings.file is not None:
        path = settings.file.expanduser()
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        handler = logging.FileHandler(path, encoding="utf-8")
        handler.setFormatter(
            JSONFormatter() if settings.format == "json" else TextFormatter(timestamps=True)
        )
        logging.getLogger("dso").addHandler(handler)
