"""``docker dso recover``: converge interrupted rotations (the agent does this at start)."""

from __future__ import annotations

import click

from kernel.cli.app import Application, pass_app
from kernel.errors import ExitCode


@click.command("recover")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@pass_app
def recover(app: Application, as_json: bool) -> None:
    """Finish or undo rotations a crash interrupted; remove their leftover containers.

    Every unfinished rotation in state/rotations.json whose lock is free (no live process
    holds it) is converged from what Docker shows: exactly one container under the canonical
    name, running; *_dso_new_* and *_dso_backup_* leftovers removed when not needed, and the
    secrets directories of rotations that no container mounts any more. The only copy of a
    service is never deleted. Finished rotations older than 7 days are pruned;
    unfinished ones without progress for 24 h are reported as stale. Exits 9 when a rotation
    needs an operator (critical_error), with the reason.

    \b
    Examples:
      docker dso recover
      docker dso recover --json | jq '.recovered[] | select(.status == "critical_error")'
    """
    from kernel.containers.client import connect
    from kernel.injection.tmpfs import default_base
    from kernel.rotation import Journal, TargetLocks, lock_key
    from kernel.rotation import recover as run_recovery
    from kernel.rotation.files import sweep_base

    layout = app.layout
    journal = Journal(layout.state)
    locks = TargetLocks(layout.locks)
    client = connect()
    stale = [entry.id for entry in journal.stale()]
    results = run_recovery(client, journal, locks, lock_key=lock_key)
    swept = [str(p) for p in sweep_base(client, default_base(layout), locks)]
    pruned = journal.prune()
    if as_json:
        app.out_json(
            {
                "recovered": [r.to_dict() for r in results],
                "stale": stale,
                "pruned": pruned,
                "removed_dirs": swept,
            }
        )
    else:
        if not results and not swept:
            app.out("nothing to recover")
        for path in swept:
            app.out(f"removed the unused secrets directory {path}")
        for result in results:
            rotation = f" (rotation {result.rotation_id})" if result.rotation_id else ""
            status = f" -> {result.status}" if result.status else ""
            app.out(f"{result.target}{rotation}: {result.action}{status}: {result.reason}")
        if stale:
            app.out(f"stale (no progress for 24 h): {', '.join(stale)}")
    critical = [r for r in results if not r.ok]
    if critical:
        names = ", ".join(sorted({r.target for r in critical}))
        app.abort(f"recovery needs an operator for {names}", ExitCode.ROTATION)
