"""``docker dso doctor``: check this installation and say what to fix (the checks themselves:
:mod:`kernel.doctor`; this module only prints them)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from kernel.cli.app import Application, pass_app
from kernel.cli.modes import layout_for, mode_option
from kernel.errors import ExitCode

if TYPE_CHECKING:
    from kernel.doctor import Report, Result

_MARK = {"ok": "ok", "warn": "warn", "fail": "FAIL"}


@click.command("doctor")
@click.option(
    "--level",
    type=click.Choice(["basic", "full"]),
    default="basic",
    show_default=True,
    help="basic: local checks only (about a second); full: also contact every provider and show "
    "the root cause and the fix of each finding.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON (stdout only).")
@mode_option(
    "Which installation: local (~/.dso, $DSO_HOME) or agent (the host's /etc/dso, "
    "/var/lib/dso, /run/dso), as for `dso agent --mode`."
)
@pass_app
def doctor(app: Application, level: str, as_json: bool, mode: str | None) -> None:
    """Check this installation: Docker, Compose, configuration, directories, the agent,
    systemd, provider programs, tmpfs, state files, rotations, orphans and locks.

    Each check has a stable id (docker.reachable, agent.health, …; docs/doctor.md explains
    each with its fix) and reports ok, warn or fail with a one-line finding. --level full also
    starts every configured provider (handshake, settings, and a `versions` read of each
    secret the managed containers reference: ids only, never a value) and prints the root
    cause and the fix under each finding. Exits 1 when a check fails; warnings exit 0.

    \b
    Examples:
      docker dso doctor
      docker dso doctor --level full
      docker dso doctor --json | jq -r '.checks[] | select(.status != "ok") | .id'
      sudo docker dso doctor --mode agent --level full
    """
    from kernel.doctor import Context, Level, run_checks

    ctx = Context(layout_for(app, mode), level=Level(level), config_path=app.config_path)
    report = run_checks(ctx)
    if as_json:
        app.out_json(report.to_dict())
    else:
        _print(app, report, root=str(ctx.layout.root))
    failed = report.failed()
    if failed:
        ids = ", ".join(r.id for r in failed)
        hint = "" if report.level.value == "full" or as_json else "; --level full shows the fixes"
        app.abort(f"{len(failed)} check(s) failed: {ids}{hint}", ExitCode.ERROR)


def _print(app: Application, report: Report, *, root: str) -> None:
    from kernel.doctor import Status

    full = report.level.value == "full"
    app.out(f"dso doctor: {report.mode} mode ({root}), level {report.level.value}")
    width = max((len(r.id) for r in report.results), default=0)
    for result in report.results:
        mark = _MARK[result.status.value]
        app.out(f"  {mark:<4}  {result.id:<{width}}  {result.finding}")
        if full:
            _explain(app, result, indent=" " * (10 + width))
    warnings = report.count(Status.WARN)
    failures = report.count(Status.FAIL)
    app.out(
        f"{len(report.results)} checks: {len(report.results) - warnings - failures} ok, "
        f"{warnings} warning(s), {failures} failure(s) in {report.seconds:.2f} s"
    )


def _explain(app: Application, result: Result, *, indent: str) -> None:
    healthy = result.status.value == "ok"
    for label, text in (("info" if healthy else "why", result.detail), ("fix", result.fix)):
        if not text or (label == "fix" and healthy):
            continue
        lines = text.splitlines()
        app.out(f"{indent}{label}: {lines[0]}")
        for line in lines[1:]:
            app.out(f"{indent}     {line}")
