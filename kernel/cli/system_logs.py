"""``docker dso system logs``' two ways to show the agent's log: ``journalctl`` (or, without
systemd, ``tail`` of the local agent's log file) run as a child on this terminal."""

from __future__ import annotations

from collections.abc import Callable

from kernel.cli.app import Application
from kernel.errors import AgentError, ExitCode, UsageError


def local_logs(app: Application, lines: int, follow: bool, used: list[str]) -> int:
    """No systemd: the local agent's log file (this user's dso home), with tail."""
    from kernel.paths import local_layout
    from kernel.system.service import no_systemd_detail

    path = local_layout().logs / "dso.log"
    if not path.is_file():
        raise AgentError(
            f"no systemd on this host ({no_systemd_detail()}) and no local agent log at {path}",
            hint="`docker dso agent` runs the agent in the foreground (its log on stderr); "
            f"`docker dso up -d` starts a local agent that logs to {path}; a host agent logs "
            "to stderr and to logging.file of its configuration",
        )
    if used:
        raise UsageError(
            f"{', '.join(used)} need the journal, and this host has no systemd",
            hint=f"the local agent's log is a file: grep it ({path})",
        )
    app.info(f"no systemd on this host: the local agent's log, {path}")
    argv = ["tail", "-n", str(lines), *(["-F"] if follow else []), str(path)]
    return run_foreground(argv, follow=follow)


def run_foreground(argv: list[str], *, follow: bool) -> int:
    """Run ``argv`` on this terminal until it ends or Ctrl-C (then 0 when following).

    A child, not exec: under the Docker CLI without a terminal, Ctrl-C arrives as the closing
    of docker's plugin socket (kernel.cli.docker_plugin), which an exec'd program would not
    hold. The child gets SIGTERM if this process dies first, so a ``-f`` never outlives it.
    """
    import signal
    import subprocess

    try:
        child = subprocess.Popen(argv, preexec_fn=_dies_with_parent())
    except FileNotFoundError:
        raise AgentError(f"{argv[0]} is not installed") from None
    try:
        return child.wait()
    except KeyboardInterrupt:
        child.send_signal(signal.SIGINT)
        try:
            child.wait(timeout=5)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        return ExitCode.OK if follow else ExitCode.INTERRUPTED


def _dies_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` that arms SIGTERM on the parent's death (Linux ``prctl``)."""
    import ctypes
    import os
    import signal
    import sys

    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # resolved before the fork
    parent = os.getpid()
    set_pdeathsig = 1

    def arm() -> None:
        prctl(set_pdeathsig, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the signal was armed
            os.kill(os.getpid(), signal.SIGTERM)

    return arm
