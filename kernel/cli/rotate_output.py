"""What ``docker dso rotate`` prints: per target, per container, plans and phases.

Only references, versions, strategies, names, ids and timings: never a value.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kernel.cli.progress import plural

if TYPE_CHECKING:
    from kernel.cli.app import Application
    from kernel.rotation.batch import TargetResult
    from kernel.rotation.model import Outcome, Plan


def show_result(app: Application, result: TargetResult, *, dry_run: bool) -> None:
    """One target's block: a header for a service, then a paragraph per container."""
    indent = ""
    swarm = result.target.lock_key.startswith("swarm-")  # one outcome: the service's update
    if result.target.is_service and not swarm and (result.outcomes or result.error is None):
        count = len(result.outcomes)
        order = ""
        if count > 1 and not dry_run:
            order = ", one after another"
            if result.parallel > 1:
                order = f", the first alone, then up to {result.parallel} at a time"
        app.out(f"{result.target.describe()}: {plural(count, 'container')}{order}")
        indent = "  "
    if result.mixed:
        from kernel.rotation.targets import describe_spread

        app.out(f"{indent}replicas hold different versions: {describe_spread(result.mixed)}")
    for outcome in result.outcomes:
        show_outcome(app, outcome, indent)
    if result.error is not None and not any(o.status == "error" for o in result.outcomes):
        app.info(f"{result.target.name}: {result.error}")


def show_outcome(app: Application, outcome: Outcome, indent: str = "") -> None:
    plan = outcome.plan
    name = outcome.target
    if outcome.status == "up_to_date":
        app.out(f"{indent}{name}: up to date (no secret version changed; --force rotates anyway)")
    elif outcome.status == "planned" and plan is not None:
        show_plan(app, plan, indent)
    elif outcome.status == "completed" and plan is not None:
        ids = f"{(outcome.old_id or '')[:12]} -> {(outcome.new_id or outcome.old_id or '')[:12]}"
        changed = ", ".join(r.variable for r in plan.changes.references) or "forced"
        app.out(
            f"{indent}{name}: rotated with {plan.strategy.value} in {outcome.elapsed:.2f}s "
            f"({ids}): {changed}"
        )
        if outcome.phases:
            app.out(f"{indent}  phases: {phases(outcome.phases)}")
        for note in plan.changes.notes:
            app.out(f"{indent}  {note}")
    else:
        app.out(f"{indent}{name}: {outcome.status.replace('_', ' ')}: {outcome.error}")
        if outcome.health and not outcome.health.get("healthy"):
            output = str(outcome.health.get("last_output") or "").strip()
            if output:
                app.out(f"{indent}  last probe output: " + output.splitlines()[-1][:200])


def show_plan(app: Application, plan: Plan, indent: str = "") -> None:
    app.out(
        f"{indent}{plan.target} ({plan.container_id[:12]}): would rotate with {plan.strategy.value}"
    )
    app.out(f"{indent}  why: {plan.reason}")
    for ref in plan.changes.references:
        app.out(
            f"{indent}  {ref.variable:<20} {ref.reference}  {ref.old or '-'} -> {ref.new or '-'}"
            f"  ({ref.delivery})"
        )
    if plan.forced:
        app.out(f"{indent}  (no version changed: --force)")
    for ref_text in plan.changes.unchanged:
        app.out(f"{indent}  unchanged: {ref_text}")
    app.out(f"{indent}  health check: {plan.probe}")
    for note in plan.changes.notes:
        app.out(f"{indent}  {note}")


def phases(times: dict[str, float]) -> str:
    """``create_new 41ms, start_new 198ms, …`` (the journaled steps, in order)."""
    return ", ".join(f"{step} {seconds * 1000:.0f}ms" for step, seconds in times.items())
