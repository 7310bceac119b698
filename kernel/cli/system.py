"""``docker dso system enable|disable|restart|status|logs``: the host agent as a systemd service.

Thin over :mod:`kernel.system`: ``systemctl`` on the dso-agent unit (:mod:`kernel.system.service`),
the startup check (:mod:`kernel.system.startup`: the agent answers ``health`` on its socket) and
``journalctl`` (:mod:`kernel.system.journal`, run by :mod:`kernel.cli.system_logs`). What each
verifies, and what to do on a host without systemd: docs/service-management.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from kernel.cli.app import Application, pass_app
from kernel.errors import AgentError, ExitCode
from kernel.system.journal import JOURNAL_OUTPUTS

if TYPE_CHECKING:
    from pathlib import Path

    from kernel.cli.progress import Progress
    from kernel.system.service import Systemctl, UnitState
    from kernel.system.startup import Startup

#: Seconds ``enable`` and ``restart`` wait for the agent to be healthy.
START_TIMEOUT = 60.0
#: Seconds ``disable`` waits for the agent to stop (the unit's TimeoutStopSec is 90).
STOP_TIMEOUT = 120.0

_timeout_option = click.option(
    "--timeout",
    type=click.FloatRange(min=1),
    default=START_TIMEOUT,
    show_default=True,
    help="Seconds to wait for the agent to answer healthy on its socket.",
)


@click.group("system")
def system() -> None:
    """The host agent as a systemd service (dso-agent.service).

    enable, disable and restart need root and a unit written by `sudo docker dso bootstrap
    agent`; status and logs work for members of group dso (the journal needs group
    systemd-journal or adm). Without systemd (a container, a host with another init) every
    command says so and what to do instead; logs then shows the local agent's log.
    Details: docs/service-management.md.

    \b
    Examples:
      docker dso system status
      sudo docker dso system enable
      sudo docker dso system disable
      sudo docker dso system restart
      docker dso system logs
      docker dso system logs -f
      docker dso system logs -n 100
      docker dso system logs -p err
      docker dso system logs --since 1h
    """


@system.command("enable")
@_timeout_option
@pass_app
def enable(app: Application, timeout: float) -> None:
    """Enable the agent at boot and start it, then verify that it answers healthy.

    Runs `systemctl enable dso-agent` and `systemctl start dso-agent`, then waits until the
    agent answers `health` on its socket (/run/dso/agent.sock) and is live, and prints how
    long that took. Fails (exit 10) with the journal's error lines of this start when the
    unit fails, the agent exits, or it is not healthy within --timeout.

    \b
    Examples:
      sudo docker dso system enable
      sudo docker dso system enable --timeout 120
    """
    progress, systemctl, unit = _prepare(app, "enable")
    systemctl.enable()
    if unit.enabled:
        progress.line(f"{systemctl.unit} was already enabled ({unit.unit_file_state})")
    else:
        progress.line(f"enabled {systemctl.unit}: it starts at boot")
    _start(app, progress, systemctl, "start", timeout)


@system.command("disable")
@click.option(
    "--timeout",
    type=click.FloatRange(min=1),
    default=STOP_TIMEOUT,
    show_default=True,
    help="Seconds to wait for the agent to stop (it lets a rotation in flight reach a safe "
    "point first).",
)
@pass_app
def disable(app: Application, timeout: float) -> None:
    """Disable the agent at boot and stop it.

    Runs `systemctl disable dso-agent` and `systemctl stop dso-agent`. Running containers
    keep running with their secret files: the unit keeps /run/dso (RuntimeDirectoryPreserve),
    where the files are. Secret changes are not rolled out until the agent runs again.

    \b
    Examples:
      sudo docker dso system disable
    """
    progress, systemctl, unit = _prepare(app, "disable")
    systemctl.disable()
    if unit.enabled:
        progress.line(f"disabled {systemctl.unit}: it does not start at boot")
    else:
        progress.line(f"{systemctl.unit} was already disabled ({unit.unit_file_state})")
    if unit.active_state not in ("inactive", "failed"):
        with progress.step(f"stopping {systemctl.unit}") as timer:
            progress.line(f"stopping {systemctl.unit} (pid {unit.main_pid or '-'})")
            systemctl.stop(timeout)
        progress.line(f"stopped in {timer}")
    after = systemctl.show()
    if after.running or after.enabled:
        raise AgentError(f"{systemctl.unit} is still {after.state}, {after.unit_file_state}")
    app.out(f"{systemctl.unit}: stopped and disabled ({after.state}, {after.unit_file_state})")
    app.info(
        "Containers keep running with their secret files (/run/dso is kept: "
        "RuntimeDirectoryPreserve=yes); secret changes are not rolled out until "
        "`sudo docker dso system enable`."
    )


@system.command("restart")
@_timeout_option
@click.option(
    "--force",
    is_flag=True,
    help="Restart even when the configuration does not validate (the agent will refuse to "
    "start: this command then shows the journal's error lines).",
)
@pass_app
def restart(app: Application, timeout: float, force: bool) -> None:
    """Restart the agent (after a configuration change), then verify that it answers healthy.

    Checks the agent's configuration first (/etc/dso/dso.yaml, as `docker dso config
    validate` does without contacting providers): an invalid one is reported with its file and
    line and the running agent is left alone, since it would refuse to start. Then runs
    `systemctl restart dso-agent` and waits as `enable` does; if the agent does not come up,
    shows the journal's error lines.

    \b
    Examples:
      sudo docker dso system restart
      docker dso config validate && sudo docker dso system restart
    """
    progress, systemctl, unit = _prepare(app, "restart")
    _check_configuration(progress, force=force, running=unit.running)
    if not unit.enabled:
        progress.warn(
            f"{systemctl.unit} is not enabled ({unit.unit_file_state}): it will not start at "
            "boot (sudo docker dso system enable)"
        )
    _start(app, progress, systemctl, "restart", timeout)


@system.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON (stdout only).")
@click.option(
    "-n",
    "--lines",
    type=click.IntRange(min=0),
    default=10,
    show_default=True,
    help="Recent journal lines shown.",
)
@pass_app
def status(app: Application, as_json: bool, lines: int) -> None:
    """Show the service: running or stopped, enabled or disabled, recent logs, last activity.

    The unit's state comes from systemd (`systemctl show`), the last activity from the agent
    on its socket (version, uptime, last rotation, last events; from its state files when it
    does not answer), the recent logs from the journal. Exits 0 when the service runs and the
    agent is live, 10 otherwise. The full picture of what the agent knows: `docker dso status`.

    \b
    Examples:
      docker dso system status
      docker dso system status --json | jq '.agent.last_rotation'
    """
    from kernel.cli.system_output import render
    from kernel.system.service import Systemctl
    from kernel.system.status import collect

    _require_systemd("status")
    doc = collect(Systemctl(), _socket(app), lines=lines)
    if as_json:
        app.out_json(doc)
    else:
        for line in render(doc):
            app.out(line)
    if not (doc["running"] and doc["agent"]["live"]):
        raise click.exceptions.Exit(ExitCode.AGENT)


@system.command("logs")
@click.option("-f", "--follow", is_flag=True, help="Follow: print new lines as they come.")
@click.option(
    "-n",
    "--lines",
    type=click.IntRange(min=0),
    default=20,
    show_default=True,
    help="Show the last N lines.",
)
@click.option(
    "-p",
    "--priority",
    "level",
    metavar="PRIORITY",
    help="Only lines of this priority or more severe: emerg, alert, crit, err, warning, "
    "notice, info, debug (also error, warn), 0-7, or a range such as err..warning.",
)
@click.option(
    "--since",
    metavar="TIME",
    help="Lines since TIME: a span ago (1h, 5m, 2d, 1h30m) or anything journalctl takes "
    '("1 hour ago", yesterday, "2024-05-01 10:00").',
)
@click.option("--until", metavar="TIME", help="Lines until TIME (as --since).")
@click.option(
    "-o",
    "--output",
    type=click.Choice(JOURNAL_OUTPUTS),
    help="journalctl's output format; json carries the DSO_* fields of each line.",
)
@click.option(
    "--trace",
    metavar="TRACE_ID",
    help="Only the lines of one rotation (journal field DSO_TRACE_ID).",
)
@click.argument("matches", nargs=-1, metavar="[FIELD=VALUE]...")
@pass_app
def logs(
    app: Application,
    follow: bool,
    lines: int,
    level: str | None,
    since: str | None,
    until: str | None,
    output: str | None,
    trace: str | None,
    matches: tuple[str, ...],
) -> int:
    """Show the agent's log from the journal (journalctl -u dso-agent).

    FIELD=VALUE matches a journal field of the agent's lines (DSO_SERVICE=web,
    DSO_CONTAINER=…, DSO_PROVIDER=vault). Without systemd, shows the local agent's log file
    (~/.dso/logs/dso.log, $DSO_HOME/logs) with -n and -f only.

    \b
    Examples:
      docker dso system logs
      docker dso system logs -f
      docker dso system logs -n 100
      docker dso system logs -p err
      docker dso system logs --since 1h
      docker dso system logs --since 5m | grep recovery
      docker dso system logs --trace 4bf92f3577b34da6a3ce929d0e0e4736 -o json
      docker dso system logs DSO_SERVICE=web -p warning
    """
    from kernel.cli.system_logs import local_logs, run_foreground
    from kernel.system import journal
    from kernel.system.service import systemd_booted

    filters = {"-p": level, "--since": since, "--until": until, "-o": output, "--trace": trace}
    if not systemd_booted():
        used = [name for name, value in filters.items() if value] + (
            ["FIELD=VALUE"] * bool(matches)
        )
        return local_logs(app, lines, follow, used)
    fields = [journal.field_match(m) for m in matches]
    if trace:
        fields.append(journal.trace_match(trace))
    argv = journal.journal_argv(
        lines=lines,
        follow=follow,
        priority_=journal.priority(level) if level else None,
        since=since,
        until=until,
        output=output,
        matches=fields,
    )
    if not journal.journal_allowed():
        app.warn(f"you may see none of the agent's lines: {journal.JOURNAL_GROUPS_HINT}")
    return run_foreground(argv, follow=follow)


# -- helpers ------------------------------------------------------------------------------------


def _prepare(app: Application, command: str) -> tuple[Progress, Systemctl, UnitState]:
    """systemd is here, we are root, the unit is installed: its state."""
    import os

    from kernel.cli.progress import Progress
    from kernel.system.service import Systemctl

    _require_systemd(command)
    if os.geteuid() != 0:
        raise AgentError(
            f"`system {command}` changes a system service: it needs root",
            hint=f"sudo docker dso system {command}",
        )
    systemctl = Systemctl()
    return Progress(), systemctl, _installed(systemctl)


def _require_systemd(command: str) -> None:
    from kernel.system.service import no_systemd_detail, systemd_booted

    if systemd_booted():
        return
    instead = {
        "enable": "run the agent in the foreground with `docker dso agent` (this user's) or "
        "`sudo dso agent --mode agent` under this host's supervisor; `docker dso up -d` "
        "starts a local agent by itself",
        "disable": "stop a local agent with `docker dso agent stop` (`--mode agent` for the "
        "host's)",
        "restart": "stop it with `docker dso agent stop`, then start it again (`docker dso "
        "agent`, or `docker dso up -d` for a local one); SIGHUP re-reads the configuration",
        "status": "`docker dso status` shows the agent (local: ~/.dso; `--mode agent`: the host's)",
    }[command]
    raise AgentError(f"no systemd on this host: {no_systemd_detail()}", hint=instead)


def _installed(systemctl: Systemctl) -> UnitState:
    unit = systemctl.show()
    if not unit.installed:
        raise AgentError(
            f"{systemctl.unit} is not installed (LoadState={unit.load_state or '?'})",
            hint="sudo docker dso bootstrap agent (directories, configuration, group and unit), "
            "then sudo docker dso system enable",
        )
    if unit.load_state != "loaded":
        raise AgentError(
            f"{systemctl.unit} does not load (LoadState={unit.load_state})",
            hint=f"systemd-analyze verify {unit.fragment_path or systemctl.unit}; "
            "sudo systemctl daemon-reload",
        )
    return unit


def _socket(app: Application) -> Path:
    """The host agent's socket: ``agent.socket`` of its configuration, else /run/dso/agent.sock."""
    from pathlib import Path

    from kernel.config.agent_socket import configured_socket
    from kernel.errors import DSOError
    from kernel.paths import agent_layout
    from kernel.system.unit import DEFAULT_CONFIG

    layout = agent_layout()
    config = app.config_path or Path(DEFAULT_CONFIG)
    try:
        if not config.exists():
            return layout.socket
        return configured_socket(config, layout.cache) or layout.socket
    except OSError as exc:
        why = f"{config}: {exc.strerror}"
    except DSOError as exc:
        why = exc.message
    app.warn(f"configuration not read ({why}); asking {layout.socket}")
    return layout.socket


def _check_configuration(progress: Progress, *, force: bool, running: bool) -> None:
    """Refuse to restart into a configuration the agent would refuse (the ConfigError, with
    its file and line), unless ``force``."""
    from pathlib import Path

    from kernel.config import load_config
    from kernel.errors import ConfigError
    from kernel.system.unit import DEFAULT_CONFIG

    try:
        load_config(Path(DEFAULT_CONFIG))
    except ConfigError as exc:
        if force:
            progress.warn(f"the configuration does not validate (--force): {exc}")
            return
        kept = "the running agent is left as it is" if running else "nothing was started"
        exc.hint = (
            f"{kept}; fix the file (`docker dso config validate` lists every problem), then "
            "run this again (--force restarts anyway)"
        )
        raise


def _start(
    app: Application, progress: Progress, systemctl: Systemctl, action: str, timeout: float
) -> None:
    """Start or restart, wait for health, and report; a failure shows the journal's lines."""
    import time

    from kernel.system.startup import start_and_verify

    began = time.time()
    result = start_and_verify(
        systemctl, action, socket=_socket(app), timeout=timeout, progress=progress.line
    )
    if result.ok:
        _healthy(app, systemctl, result)
        return
    _show_journal(app, result, since=began)
    raise AgentError(
        f"{systemctl.unit} did not start: {result.reason}",
        hint="fix the cause above (`docker dso config validate` checks the configuration), "
        "then sudo docker dso system restart; more: docker dso system logs -n 100",
    )


def _healthy(app: Application, systemctl: Systemctl, result: Startup) -> None:
    health = result.health
    if result.already_running:
        app.out(
            f"{systemctl.unit} was already running and is healthy (pid {health.get('pid')}, "
            f"version {health.get('version')}, up {health.get('uptime_seconds')} s)"
        )
        return
    app.out(
        f"{systemctl.unit} is running and healthy after {result.seconds:.1f} s "
        f"(pid {health.get('pid')}, version {health.get('version')})"
    )


def _show_journal(app: Application, result: Startup, *, since: float) -> None:
    from kernel.system.journal import invocation_matches
    from kernel.system.startup import startup_lines

    entries, note = startup_lines(result.invocations, since=since)
    where = " ".join(["journalctl -u dso-agent", *invocation_matches(result.invocations[-1:])])
    if entries:
        app.info(f"the journal of this start ({where}):")
        for entry in entries:
            app.info(f"  {entry.line()}")
    elif note:
        app.info(f"the journal could not be read: {note}")
    else:
        app.info(f"the journal has no lines of this start ({where})")
