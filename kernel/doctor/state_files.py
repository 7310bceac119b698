"""State checks: every state file parses (``state.files``), and no rotation waits for an
operator (``rotations.review``).

The state files are parsed here, read-only: dso's own reader (:class:`~kernel.state.StateFile`)
moves an unreadable file aside when it meets one, and a doctor must report what it found, not
change it. Files moved aside earlier (``<name>.corrupt-<time>``, ``<name>.unknown-schema-<time>``)
are reported too: their content was dropped and nobody has looked at them yet.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from kernel.agent import managed, status_file
from kernel.doctor.model import Check, Finding, fail, ok, warn
from kernel.rotation.journal import FILE_NAME, INFLIGHT_DIR, LOG_NAME
from kernel.rotation.journal import SCHEMA as JOURNAL_SCHEMA
from kernel.rotation.locks import TargetLocks
from kernel.rotation.recovery import guarding_lock
from kernel.rotation.states import RotationStatus

if TYPE_CHECKING:
    from kernel.doctor.context import Context

_ASIDE_MARKS = (".corrupt-", ".unknown-schema-")


@dataclass(slots=True)
class StateScan:
    """What :func:`scan_state` found."""

    checked: list[Path] = field(default_factory=list)
    #: (file, why it cannot be read by dso).
    unreadable: list[tuple[Path, str]] = field(default_factory=list)
    #: Files dso moved aside before.
    aside: list[Path] = field(default_factory=list)
    #: (file, what is odd but tolerated: unreadable log lines).
    odd: list[tuple[Path, str]] = field(default_factory=list)
    #: An unreadable file belongs to the rotation journal (do not read it through Journal).
    journal_unreadable: bool = False


#: The state files dso writes, and the schema this dso reads of each.
SCHEMAS = {
    status_file.FILE_NAME: status_file.SCHEMA,
    managed.FILE_NAME: managed.SCHEMA,
    FILE_NAME: JOURNAL_SCHEMA,
}


def scan_state(state: Path) -> StateScan:
    """Parse every state file under ``state`` (and its ``rotations.d``), changing nothing."""
    scan = StateScan()
    inflight = state / INFLIGHT_DIR
    for directory in (state, inflight):
        try:
            names = sorted(p.name for p in directory.iterdir())
        except OSError:
            continue
        for name in names:
            path = directory / name
            if any(mark in name for mark in _ASIDE_MARKS):
                scan.aside.append(path)
            elif name.endswith(".json") and not name.startswith("."):
                entry = directory == inflight  # a rotation, in the journal's schema
                schema = SCHEMAS[FILE_NAME] if entry else SCHEMAS.get(name, 0)
                why = _unreadable(path, schema, entry=entry)
                if why is None:
                    scan.checked.append(path)
                elif why != "gone":
                    scan.unreadable.append((path, why))
                    scan.journal_unreadable |= entry or name == FILE_NAME
    log = state / LOG_NAME
    if log.exists():
        scan.checked.append(log)
        odd = _log_problems(log)
        if odd:
            scan.odd.append((log, odd))
    return scan


def _unreadable(path: Path, schema: int, *, entry: bool) -> str | None:
    """Why dso could not use the state file ``path`` (``schema``: the one it reads; 0 for a
    file it does not know), ``gone`` when it vanished meanwhile, or None."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return "gone"  # finished meanwhile (a rotations.d entry) or replaced: not a problem
    except OSError as exc:
        return f"cannot be read ({exc.strerror})"
    try:
        doc = json.loads(raw)
    except ValueError as exc:
        return f"is not valid JSON ({exc})"
    if not isinstance(doc, dict):
        return "is not a JSON object"
    found = doc.get("schema")
    if not isinstance(found, int) or isinstance(found, bool):
        return "has no schema number"
    if schema and found > schema:
        return f"has schema {found}; this dso reads schema {schema} (written by a newer dso?)"
    if entry:
        return _entry_problem(doc.get("rotation"))
    return None


def _entry_problem(rotation: object) -> str | None:
    if not isinstance(rotation, dict) or not isinstance(rotation.get("id"), str):
        return "holds no rotation entry"
    try:
        RotationStatus(str(rotation.get("status")))
    except ValueError:
        return f"has an unknown rotation status {str(rotation.get('status'))[:40]!r}"
    return None


def _log_problems(log: Path) -> str:
    """What dso skips in ``rotations.log``: lines that are not JSON (a torn last line, still
    being written or cut by a crash, is fine)."""
    bad = 0
    first_bad = 0
    try:
        with log.open("rb") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.endswith(b"\n"):
                    break
                try:
                    doc = json.loads(line)
                except ValueError:
                    doc = None
                if not isinstance(doc, dict):
                    bad += 1
                    first_bad = first_bad or number
    except OSError as exc:
        return f"cannot be read ({exc.strerror})"
    if not bad:
        return ""
    return f"{bad} line(s) that are not JSON (first: line {first_bad}); dso skips them"


def state_files(ctx: Context) -> Finding:
    state = ctx.layout.state
    if not state.is_dir():
        return ok(f"no state directory yet ({state}): nothing has run here")
    scan = ctx.memo("state.scan", lambda: scan_state(state))
    if scan.unreadable:
        path, why = scan.unreadable[0]
        more = f" (and {len(scan.unreadable) - 1} more)" if len(scan.unreadable) > 1 else ""
        return fail(
            f"{path} {why}{more}",
            detail="\n".join(f"{p} {w}" for p, w in scan.unreadable)
            + "\ndso moves an unreadable state file aside at its next read (<name>.corrupt-"
            "<time>) and starts that file empty: what it recorded is lost to dso (a "
            "rotations.d entry: the interrupted rotation it tracked is not recovered)",
            fix=f"look at {path}; restore it from a backup if you have one, else move it aside "
            f"yourself (mv {path} {path}.bad) and run `docker dso recover`",
        )
    notes = [f"{p} {w}" for p, w in scan.odd]
    if scan.aside:
        names = ", ".join(p.name for p in scan.aside)
        return warn(
            f"{len(scan.aside)} state file(s) moved aside earlier: {names}",
            detail="dso could not read them, moved them aside and went on with an empty "
            "document; their content is not used\n" + "\n".join(map(str, scan.aside)),
            fix="look at them (they hold names and versions, never values), then delete them: "
            + " ".join(f"rm {p}" for p in scan.aside),
        )
    if notes:
        return warn(
            notes[0],
            detail="\n".join(notes),
            fix="nothing to do unless lines keep "
            "appearing: each was a rotation record dso could not read",
        )
    return ok(
        f"{len(scan.checked)} state file(s) parse",
        detail="\n".join(str(p) for p in scan.checked),
    )


def rotations_review(ctx: Context) -> Finding:
    journal = ctx.journal()
    if journal is None:
        return ok("no rotation journal yet")
    entries = ctx.unfinished()
    stale = {entry.id for entry in journal.stale()}
    locks = TargetLocks(ctx.layout.locks)
    critical, review, interrupted, running = [], [], [], []
    for entry in entries:
        line = f"{entry.target} (rotation {entry.id}, trace {entry.trace_id}, {entry.status})"
        if entry.status == "critical_error":
            reason = (entry.recovery or {}).get("reason") or entry.error or "no reason recorded"
            critical.append(f"{line}: recover could not converge it: {reason}")
        elif entry.status == "failed":
            review.append(f"{line}: failed and left for an operator: {entry.error or '?'}")
        elif entry.id in stale:
            review.append(f"{line}: no progress for 24 h")
        elif locks.is_held(guarding_lock(entry)):
            running.append(line)
        elif (journal.path.parent / INFLIGHT_DIR / f"{entry.id}.json").exists():
            interrupted.append(f"{line}: interrupted (no process holds its lock)")
    detail = "\n".join([*critical, *review, *interrupted, *(f"{r}: in progress" for r in running)])
    fix = (
        "docker dso status (rotations.awaiting_review) shows them; look at the containers "
        "(docker ps -a --filter name=<target>), then `docker dso recover` converges them"
    )
    if critical:
        return fail(
            f"{len(critical)} rotation(s) could not be recovered: {critical[0]}",
            detail=detail,
            fix=fix,
        )
    if review:
        return warn(f"{len(review)} rotation(s) await review: {review[0]}", detail, fix)
    if interrupted:
        return warn(
            f"{len(interrupted)} interrupted rotation(s): {interrupted[0]}",
            detail,
            "the agent recovers them when it starts; or run `docker dso recover`",
        )
    if running:
        return ok(f"{len(running)} rotation(s) in progress, none awaiting review", detail)
    return ok("no rotation awaits review")


CHECKS = (
    Check("state.files", "every state file parses, none was moved aside", state_files),
    Check(
        "rotations.review",
        "no rotation awaits an operator (failed, critical_error, stale for 24 h)",
        rotations_review,
    ),
)
