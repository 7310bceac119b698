"""``docker dso recover``: converge interrupted rotations (the agent does this at start)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from kernel.cli.app import Application, pass_app
from kernel.errors import ExitCode

if TYPE_CHECKING:
    from kernel.rotation.batch import TargetResult
    from kernel.rotation.journal import RotationEntry
    from kernel.runtime import Runtime


@click.command("recover")
@click.option(
    "--no-resume",
    is_flag=True,
    envvar="DSO_NO_RESUME",
    help="Converge only: do not rotate again what an interruption rolled back.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@pass_app
def recover(app: Application, no_resume: bool, as_json: bool) -> None:
    """Finish or undo rotations a crash interrupted; remove their leftover containers.

    Every unfinished rotation in state/rotations.json whose lock is free (no live process
    holds it) is converged from what Docker shows: exactly one container under the canonical
    name, running; *_dso_new_* and *_dso_backup_* leftovers removed when not needed, and the
    secrets directories of rotations that no container mounts any more. The only copy of a
    service is never deleted. A Swarm service's rotation is converged from the engine's
    state: finished forwards if the service was updated, its new secret versions removed if
    not (docs/swarm.md).

    A rotation undone because it was interrupted (dso killed, the Docker daemon restarted)
    never rolled its change out: recover then rotates its service (or container) again, so
    every replica ends on the new versions (--no-resume skips that). One undone because its
    health gate failed or an extension vetoed it stays undone, and recover says so. Services
    whose replicas still hold different versions are reported. Finished rotations older than
    7 days are pruned; unfinished ones without progress for 24 h are reported as stale.
    Exits 9 when a rotation needs an operator (critical_error) or rotating again failed.

    \b
    Examples:
      docker dso recover
      docker dso recover --no-resume
      docker dso recover --json | jq '.recovered[] | select(.status == "critical_error")'
    """
    from kernel.containers.client import connect
    from kernel.rotation import lock_key
    from kernel.rotation import recover as run_recovery
    from kernel.rotation.files import sweep_base
    from kernel.rotation.strategies import CAUSES
    from kernel.rotation.targets import describe_spread, mixed_services
    from kernel.swarm.recovery import recover_swarm

    with app.open_runtime() as runtime:
        journal = runtime.journal
        client = connect()
        stale = [entry.id for entry in journal.stale()]
        results = run_recovery(client, journal, runtime.locks, lock_key=lock_key)
        results += recover_swarm(client, journal, runtime.locks)
        swept = [str(p) for p in sweep_base(client, runtime.secrets_base, runtime.locks)]
        pending = journal.needing_resuming()
        resumed: list[TargetResult] = []
        if pending and not no_resume:
            resumed = _resume(app, runtime, pending)
        mixed = mixed_services(client)
        client.close()
        pruned = journal.prune()
    by_id = {entry.id: entry for entry in journal.entries()}

    def why(rotation_id: str | None) -> str | None:
        entry = by_id.get(rotation_id or "")
        return entry.cause if entry is not None else None

    if as_json:
        app.out_json(
            {
                "recovered": [{**r.to_dict(), "cause": why(r.rotation_id)} for r in results],
                "resumed": [_resumed_dict(r) for r in resumed],
                "not_resumed": [e.id for e in pending] if no_resume else [],
                "mixed_versions": [
                    {**target.to_dict(), "containers": spread} for target, spread in mixed
                ],
                "stale": stale,
                "pruned": pruned,
                "removed_dirs": swept,
            }
        )
    else:
        if not results and not swept and not pending and not mixed:
            app.out("nothing to recover")
        for path in swept:
            app.out(f"removed the unused secrets directory {path}")
        for result in results:
            rotation = f" (rotation {result.rotation_id})" if result.rotation_id else ""
            status = f" -> {result.status}" if result.status else ""
            cause = why(result.rotation_id)
            because = f" [{CAUSES.get(cause, cause)}]" if cause else ""
            app.out(f"{result.target}{rotation}: {result.action}{status}: {result.reason}{because}")
            if result.action == "rolled_back" and cause not in (None, "crash", "docker"):
                app.out(f"  stays rolled back: {CAUSES.get(cause, cause)}")
        for entry in pending:
            if no_resume:
                app.out(
                    f"{entry.target} (rotation {entry.id}): its change was never rolled out "
                    f"[{CAUSES.get(entry.cause or '', entry.cause)}]; "
                    "`docker dso recover` without --no-resume (or `docker dso rotate`) does it"
                )
        for again in resumed:
            _show_resumed(app, again)
        for target, spread in mixed:
            app.out(
                f"{target.describe()}: replicas hold different versions: "
                f"{describe_spread(spread)}; `docker dso rotate {target.service}` aligns them"
            )
        if stale:
            app.out(f"stale (no progress for 24 h): {', '.join(stale)}")
    critical = [r for r in results if not r.ok]
    if critical:
        names = ", ".join(sorted({r.target for r in critical}))
        app.abort(f"recovery needs an operator for {names}", ExitCode.ROTATION)
    failed = [r for r in resumed if not r.ok]
    if failed:
        names = ", ".join(r.target.name for r in failed)
        app.abort(f"rotating again failed for {names}", ExitCode.ROTATION)


def _resume(app: Application, runtime: Runtime, pending: list[RotationEntry]) -> list[TargetResult]:
    """Rotate again what an interruption undid; mark each entry so it is done once."""
    import time

    from kernel.cli.rotation_kit import finish_project, project_hasher, start_project
    from kernel.compose.args import split_args
    from kernel.containers.client import connect
    from kernel.rotation.recovery import guarding_lock, resume_targets
    from kernel.swarm.recovery import resume_swarm_targets

    args = split_args([])
    with start_project(args) as reading:  # the current directory's, for compose's config hash
        project, _ = finish_project(app, args, reading, quiet=True)
    targets = resume_targets(pending)
    batch = runtime.batch(
        connect=connect, hasher=project_hasher(runtime, project), trigger="recover"
    )
    results = batch.run(targets) if targets else []
    swarm = resume_swarm_targets(pending)
    if swarm:  # Swarm services (docs/swarm.md, "Crash safety")
        from kernel.swarm.rotation import SwarmRotator, rotate_services

        def rotator() -> SwarmRotator:
            return SwarmRotator(
                connect(),
                journal=runtime.journal,
                locks=runtime.locks,
                resolver=runtime.rollout_resolver,
                config=runtime.config.agent.rotation,
                observer=runtime.extensions,
                trigger="recover",
            )

        results += rotate_services(swarm, rotator)
    status = {r.target.lock_key: r.status for r in results}
    now = time.time()
    for entry in pending:
        entry.resumed = {"at": round(now, 6), "status": status.get(guarding_lock(entry), "error")}
        runtime.journal.save(entry)
    return results


def _resumed_dict(result: TargetResult) -> dict[str, Any]:
    return {**result.to_dict(), "rotations": [o.to_dict() for o in result.outcomes]}


def _show_resumed(app: Application, result: TargetResult) -> None:
    from kernel.cli.rotate_output import show_result

    app.out(f"rotating {result.target.describe()} again (an interruption had undone it):")
    show_result(app, result, dry_run=False)
