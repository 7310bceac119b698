"""What rotations leave behind: ``_dso_`` containers no rotation works on
(``containers.orphans``) and rotation locks held far longer than a rotation takes
(``locks.stale``).

A rotation's temporary containers are ``<name>_dso_new_<id>`` and ``<name>_dso_backup_<id>``
(:data:`kernel.containers.view.TEMP_NAME`), labelled with the owner id of the installation that
made them. One whose rotation is unfinished and holds its lock is in flight; any other of this
installation's is an orphan that ``docker dso recover`` removes (or renames back, when it is the
only copy left: then the service has no container under its name, a failure). Another
installation's are its own business; unlabelled ones were not made by a dso that labels.

A lock is an flock the kernel drops when its holder exits, so a held lock always has a live
holder: a *stale* lock is one held for longer than :data:`STALE_LOCK_AFTER`, or by a process
other than the one that took it (a child that inherited the descriptor), which blocks every
rotation of its target.
"""

from __future__ import annotations

import calendar
import contextlib
import os
import re
import time
from typing import TYPE_CHECKING

from kernel.containers.listing import list_containers
from kernel.containers.view import TEMP_NAME
from kernel.doctor.model import Check, Finding, NotChecked, fail, ok, warn
from kernel.errors import DSOError, StorageError
from kernel.labels import OWNER_LABEL
from kernel.rotation.locks import TargetLocks
from kernel.rotation.recovery import guarding_lock

if TYPE_CHECKING:
    from kernel.doctor.context import Context

#: Seconds a rotation lock may be held before it is reported (a rotation takes seconds to
#: minutes: its health gate's timeout bounds each replica).
STALE_LOCK_AFTER = 3600.0
_HOLDER = re.compile(r"pid (?P<pid>\d+) since (?P<since>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)")


def containers_orphans(ctx: Context) -> Finding:
    client = ctx.docker()
    listed = list_containers(client, action="listing containers")
    names = {name for item in listed for name in item.names}
    owner = ctx.owner()
    try:
        unfinished = ctx.unfinished()
    except (NotChecked, DSOError):
        unfinished = []  # rotations.review says why; here: no rotation is known in flight
    locks = TargetLocks(ctx.layout.locks)
    in_flight = {e.id for e in unfinished if _held(locks, guarding_lock(e))}
    only_copies, orphans, foreign, unlabelled, running = [], [], [], [], []
    for item in listed:
        for name in item.names:
            match = TEMP_NAME.match(name)
            if match is None:
                continue
            label = item.labels.get(OWNER_LABEL)
            if label is None:
                unlabelled.append(name)
            elif label != owner:
                foreign.append(f"{name} (owner {label})")
            elif match["rotation"] in in_flight:
                running.append(name)
            elif match["target"] in names:
                orphans.append(f"{name} ({match['target']} exists)")
            else:
                only_copies.append(f"{name} (no container is named {match['target']})")
    detail = "\n".join(
        [
            *(f"only copy left: {n}" for n in only_copies),
            *(f"orphan: {n}" for n in orphans),
            *(f"not labelled by any dso installation: {n}" for n in unlabelled),
            *(f"another dso installation's: {n}" for n in foreign),
            *(f"rotation in progress: {n}" for n in running),
        ]
    )
    fix = (
        "docker dso recover: removes an orphan when its service's container exists, renames it "
        "back (and starts it) when it is the only copy left"
    )
    if only_copies:
        return fail(
            f"{len(only_copies)} service(s) left only as a rotation's container: "
            + ", ".join(only_copies),
            detail,
            fix,
        )
    if orphans:
        return warn(f"{len(orphans)} orphan container(s): " + ", ".join(orphans), detail, fix)
    if unlabelled:
        return warn(
            f"{len(unlabelled)} _dso_ container(s) no dso installation claims: "
            + ", ".join(unlabelled),
            detail,
            "look at each (docker inspect NAME); remove it by hand (docker rm NAME) if nothing "
            "needs it: recover touches only containers its installation labelled",
        )
    if running:
        return ok(f"no orphan ({len(running)} container(s) of rotations in progress)", detail)
    return ok("no orphan _dso_ container", detail)


def locks_stale(ctx: Context) -> Finding:
    directory = ctx.layout.locks
    if not directory.is_dir():
        return ok(f"no locks directory yet ({directory})")
    locks = TargetLocks(directory)
    now = ctx.clock()
    stale: list[str] = []
    held: list[str] = []
    unreadable: list[str] = []
    for path in sorted(directory.glob("*.lock")):
        key = path.stem  # lock file names are already safe: path(key) is this file
        try:
            if not locks.is_held(key):
                continue
        except StorageError as exc:
            unreadable.append(exc.message)
            continue
        note = locks.holder(key)
        why = _stale(note, now)
        line = f"{path}: {note or 'held (no holder note)'}"
        (stale if why else held).append(f"{line}{f': {why}' if why else ''}")
    detail = "\n".join([*stale, *held, *unreadable])
    if stale:
        return warn(
            f"{len(stale)} rotation lock(s) held too long: {stale[0]}",
            detail=detail + "\nevery rotation of such a target waits for the lock, then is refused",
            fix="see what the holder does: ps -o pid,etime,args -p PID (fuser -v LOCKFILE "
            "names every process holding it); if it hangs, stop it (kill PID): the kernel "
            "releases the lock; then docker dso recover",
        )
    if unreadable:
        return warn(unreadable[0], detail=detail, fix="run doctor as root")
    if held:
        return ok(f"no stale lock ({len(held)} held by rotations in progress)", detail)
    return ok("no rotation lock is held")


def _stale(note: str, now: float) -> str:
    """Why the lock described by ``note`` (``pid N since <UTC>``) is stale, or ``""``."""
    match = _HOLDER.search(note)
    if match is None:
        return ""
    pid = int(match["pid"])
    alive = True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        alive = False
    except PermissionError:
        pass
    if not alive:
        return f"pid {pid}, which took it, is gone: another process (a child?) holds it"
    with contextlib.suppress(ValueError):
        since = calendar.timegm(time.strptime(match["since"], "%Y-%m-%dT%H:%M:%SZ"))
        if now - since > STALE_LOCK_AFTER:
            return f"held for {(now - since) / 3600:.1f} h"
    return ""


def _held(locks: TargetLocks, key: str) -> bool:
    try:
        return locks.is_held(key)
    except StorageError:
        return True  # cannot tell: do not call its containers orphans


CHECKS = (
    Check(
        "containers.orphans",
        "no rotation's _dso_ container is left behind",
        containers_orphans,
    ),
    Check("locks.stale", "no rotation lock is held far longer than a rotation takes", locks_stale),
)
