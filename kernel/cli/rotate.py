"""``docker dso rotate <container>…``: roll fresh secret values out to running containers.

For each container, the references it was given (label ``dso.refs``) are resolved again; when a
version moved (label ``dso.versions``), or with ``--force``, the container is rotated with the
strategy the flag, its ``dso.strategy`` label, the configuration or ``auto`` picks. How it works:
docs/rotation.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from kernel.cli.app import Application, pass_app
from kernel.errors import DSOError, ExitCode
from kernel.rotation.choose import CHOICES

if TYPE_CHECKING:
    from kernel.rotation.model import Outcome, Plan


@click.command("rotate")
@click.argument("containers", nargs=-1, required=True)
@click.option(
    "--strategy",
    type=click.Choice(CHOICES),
    envvar="DSO_STRATEGY",
    help="Override the strategy (default: the container's dso.strategy label, else "
    "agent.rotation.strategy, else auto).",
)
@click.option("--dry-run", is_flag=True, help="Print the plan; change nothing.")
@click.option("--force", is_flag=True, help="Rotate even if no secret version changed.")
@click.option(
    "--wait",
    type=click.FloatRange(min=0),
    default=60.0,
    show_default=True,
    envvar="DSO_WAIT",
    help="Seconds to wait for another rotation of the same container before giving up.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.001),
    envvar="DSO_TIMEOUT",
    help="Seconds the new container may take to pass its health check "
    "(default: agent.rotation.timeout).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@pass_app
def rotate(
    app: Application,
    containers: tuple[str, ...],
    strategy: str | None,
    dry_run: bool,
    force: bool,
    wait: float,
    timeout: float | None,
    as_json: bool,
) -> None:
    """Rotate containers whose secrets changed, without downtime where possible.

    Each container's references (label dso.refs) are resolved again; if a version changed (or
    with --force) the container is replaced by a faithful clone holding the new values. With
    rolling (zero downtime) both serve during the overlap; restart stops the old one first
    (published host ports, static IPs, exclusive volumes); reload rewrites secret files in
    place and signals the container. A failed health check rolls back: the old container keeps
    serving, untouched. Exits 9 if a rotation failed, with the state it left.

    \b
    Examples:
      docker dso rotate web --dry-run
      docker dso rotate web worker
      docker dso rotate db --strategy restart --timeout 60
      docker dso rotate web --force --json | jq '.rotations[0].phases'
    """
    import dataclasses

    from kernel.config import load_config
    from kernel.containers.client import connect
    from kernel.extensions import Extensions
    from kernel.injection.setup import make_resolver
    from kernel.rotation import RotationEngine, label_fetch

    config = load_config(app.config_path).config
    rotation = config.agent.rotation
    if timeout is not None:
        rotation = dataclasses.replace(rotation, timeout=timeout)
    fetch = label_fetch(make_resolver(app.layout, app.config_path), force=force)
    client = connect()
    outcomes: list[Outcome] = []
    first_error: DSOError | None = None
    with Extensions.load(app.layout, config.extensions) as extensions:
        engine = RotationEngine(client, app.layout, config=rotation, observer=extensions)
        for name in containers:
            try:
                if dry_run:
                    outcome = engine.dry_run(name, fetch, strategy=strategy, force=force)
                else:
                    outcome = engine.rotate(name, fetch, strategy=strategy, force=force, wait=wait)
            except DSOError as exc:
                if len(containers) == 1 and not as_json:
                    raise  # one line, its hint and its exit code, like any other command
                first_error = first_error or exc
                outcome = _error_outcome(name, exc)
                app.info(f"{name}: {exc}")
            outcomes.append(outcome)
            if not as_json and outcome.status != "error":
                _show(app, outcome)
    if as_json:
        app.out_json({"dry_run": dry_run, "rotations": [o.to_dict() for o in outcomes]})
    failed = [o for o in outcomes if not o.ok]
    if failed:
        code = first_error.exit_code if first_error else ExitCode.ROTATION
        names = ", ".join(o.target for o in failed)
        app.abort(f"rotation failed for {names}", code)


def _error_outcome(name: str, exc: DSOError) -> Outcome:
    from kernel.rotation.model import Outcome

    return Outcome(target=name, status="error", error=str(exc))


def _show(app: Application, outcome: Outcome) -> None:
    plan = outcome.plan
    name = outcome.target
    if outcome.status == "up_to_date":
        app.out(f"{name}: up to date (no secret version changed; --force rotates anyway)")
    elif outcome.status == "planned" and plan is not None:
        _show_plan(app, plan)
    elif outcome.status == "completed" and plan is not None:
        ids = f"{(outcome.old_id or '')[:12]} -> {(outcome.new_id or outcome.old_id or '')[:12]}"
        changed = ", ".join(r.variable for r in plan.changes.references) or "forced"
        app.out(
            f"{name}: rotated with {plan.strategy.value} in {outcome.elapsed:.2f}s "
            f"({ids}): {changed}"
        )
    else:
        app.out(f"{name}: {outcome.status.replace('_', ' ')}: {outcome.error}")
        if outcome.health and not outcome.health.get("healthy"):
            output = str(outcome.health.get("last_output") or "").strip()
            if output:
                app.out("  last probe output: " + output.splitlines()[-1][:200])


def _show_plan(app: Application, plan: Plan) -> None:
    app.out(f"{plan.target} ({plan.container_id[:12]}): would rotate with {plan.strategy.value}")
    app.out(f"  why: {plan.reason}")
    for ref in plan.changes.references:
        app.out(
            f"  {ref.variable:<20} {ref.reference}  {ref.old or '-'} -> {ref.new or '-'}"
            f"  ({ref.delivery})"
        )
    if plan.forced:
        app.out("  (no version changed: --force)")
    for ref_text in plan.changes.unchanged:
        app.out(f"  unchanged: {ref_text}")
    app.out(f"  health check: {plan.probe}")
