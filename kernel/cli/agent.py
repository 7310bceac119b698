"""``docker dso agent``: run the agent in the foreground (what systemd runs), or stop it."""

from __future__ import annotations

from pathlib import Path
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
@click.option(
    "-c",
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Configuration file, as the global -c (the spec's unit writes `dso agent --config "
    "/etc/dso/dso.yaml`; that file means --mode agent unless --mode says otherwise).",
)
@click.pass_context
def agent(ctx: click.Context, mode: str | None, config_path: Path | None) -> None:
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
      sudo dso agent --config /etc/dso/dso.yaml   the same, as the spec's unit writes it
      docker dso agent stop
    """
    if config_path is not None:
        from kernel.paths import installation_mode

        app = ctx.find_object(Application)
        assert app is not None
        app.config_path = config_path
        mode = mode or installation_mode(config_path)
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


def _run(app: Application, mode: str | None) -> None:
    import signal

    from kernel.agent.daemon import Agent
    from kernel.errors import DSOError
    from kernel.runtime import Runtime

    # Before the configuration is read, so that a refused one reaches the journal as an error.
    _configure_logging(app, None)
    try:
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
    except DSOError as exc:
        _log_failure(exc)
        raise


#: Test-only (with DSO_TEST_MODE=1): a SIGHUP reload waits while this file exists, as a read
#: of the configuration on a hung file system would (tests/integration/test_agent_notify.py:
#: the watchdog is not fed while the main loop is stuck).
STALL_RELOAD_ENV = "DSO_FAULT_STALL_RELOAD_WHILE"


def _reload(daemon: Agent, app: Application) -> None:
    import os
    import time
    from pathlib import Path

    from kernel.errors import ConfigError
    from kernel.rotation.fault import TEST_MODE_ENV
    from kernel.runtime import Runtime

    stall = os.environ.get(STALL_RELOAD_ENV) if os.environ.get(TEST_MODE_ENV) == "1" else None
    while stall and Path(stall).exists():
        time.sleep(0.05)
    try:
        fresh = Runtime.load(daemon.runtime.layout, app.config_path)
    except ConfigError as exc:
        daemon.reload_failed(str(exc))
        return
    daemon.reload(fresh)


#: The agent's ``SYSLOG_IDENTIFIER`` in the journal (the unit's ``SyslogIdentifier=``).
SYSLOG_IDENTIFIER = "dso-agent"


def _configure_logging(app: Application, runtime: Runtime | None) -> None:
    """The agent logs at the configuration's level and format (``--log-level`` given on the
    command line or in DSO_LOG_LEVEL wins; ``None``: before the configuration is read):
    through journald's native protocol under systemd, else to stderr; and to ``logging.file``,
    rotated by size."""
    import logging
    import os

    from kernel.config.model import LoggingConfig
    from kernel.log import configure, log_file

    settings = runtime.config.logging if runtime is not None else LoggingConfig()
    explicit = app.log_level != "warning" or "DSO_LOG_LEVEL" in os.environ
    level = app.log_level if explicit else settings.level
    configure(level, fmt=settings.format, journald=SYSLOG_IDENTIFIER)
    if runtime is not None and settings.file is not None:
        handler = log_file(
            settings.file.expanduser(),
            max_bytes=settings.max_size,
            backups=settings.backups,
            fmt=settings.format,
            mode=0o640 if runtime.layout.mode == "agent" else 0o600,
        )
        logging.getLogger("dso").addHandler(handler)


def _log_failure(exc: Exception) -> None:
    """Under journald, the reason the agent stops goes to the journal at priority err too
    (the CLI's own ``dso: error: …`` line on stderr is stored at priority info)."""
    import logging

    from kernel.journald import JournaldHandler
    from kernel.log import get_logger

    if any(isinstance(h, JournaldHandler) for h in logging.getLogger("dso").handlers):
        get_logger("agent").error("Agent stopped: %s", exc)
