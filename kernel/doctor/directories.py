"""``dirs.modes``: dso's directories exist with safe owners and modes, and the vault key is
private (spec: "Directory Structure"; ``ls -la /etc/dso /var/lib/dso /run/dso`` of its
"Service Won't Start" runbook, as one check).

Others must never be able to change what is in them: a writable plugins directory runs their
program as a provider, a writable state or locks directory lets them steer recovery. That is a
failure. Readable by others is a warning: state files hold names and versions, never values,
but in local mode ``docker dso init`` makes everything 0700, and in agent mode group ``dso``
is the only audience.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING

from kernel.doctor.files import describe, unsafe, user_name
from kernel.doctor.model import Check, Finding, fail, ok, warn
from kernel.paths import Layout

if TYPE_CHECKING:
    from kernel.doctor.context import Context


def expected_directories(layout: Layout) -> list[Path]:
    """The directories an installation of ``layout``'s mode is set up with."""
    if layout.mode == "agent":
        return [
            layout.config.parent,
            layout.root,
            layout.state,
            layout.cache,
            layout.locks,
            layout.plugins,
            layout.logs,
            layout.run,
        ]
    return list(layout.directories())


def _setup_fix(layout: Layout) -> str:
    if layout.mode == "agent":
        return "sudo docker dso bootstrap agent (creates them with the right owners and modes)"
    return "docker dso init (creates the missing ones, 0700)"


def dirs_modes(ctx: Context) -> Finding:
    layout = ctx.layout
    failures: list[str] = []
    warnings: list[str] = []
    fixes: list[str] = []
    missing: list[Path] = []
    checked: list[str] = []
    # Local mode: nobody else has any business in ~/.dso; agent mode: group dso may read.
    private = 0o077 if layout.mode == "local" else 0o007
    for path in expected_directories(layout):
        try:
            st = os.stat(path)
        except FileNotFoundError:
            missing.append(path)
            continue
        except OSError as exc:
            warnings.append(f"{path}: cannot be examined as {_me(ctx)} ({exc.strerror})")
            continue
        checked.append(f"{path} ({describe(st)})")
        if not stat.S_ISDIR(st.st_mode):
            failures.append(f"{path} is not a directory")
            fixes.append(f"move {path} aside; then {_setup_fix(layout)}")
            continue
        why = unsafe(st, ctx.euid)
        if why is not None:
            failures.append(f"{path} {why} ({describe(st)})")
            fixes.append(_tighten(path, st, ctx.euid, 0o700 if private == 0o077 else 0o750))
        elif stat.S_IMODE(st.st_mode) & private and not _open_by_design(layout, path):
            warnings.append(f"{path} is open to others ({describe(st)})")
            fixes.append(f"chmod {'700' if private == 0o077 else 'o-rwx'} {path}")
    _check_key(ctx, failures, warnings, fixes, checked)
    if missing:
        if layout.root in missing:
            warnings.insert(0, f"no dso installation at {layout.root} yet")
        else:
            warnings.append(f"missing: {', '.join(map(str, missing))}")
        fixes.append(_setup_fix(layout))
    detail = "\n".join(
        [
            *failures,
            *warnings,
            *(f"checked {c}" for c in checked),
            *(f"missing {p}" for p in missing),
        ]
    )
    if failures:
        return fail(_summary(failures, warnings), detail=detail, fix="\n".join(fixes))
    if warnings:
        return warn(_summary(warnings, []), detail=detail, fix="\n".join(fixes))
    key = any(c.startswith(f"{layout.vault_key} ") for c in checked)
    dirs = len(checked) - key
    what = f"{dirs} directories" + (" and the vault key" if key else "")
    return ok(f"{what}: safe owners and modes", detail=detail)


def _open_by_design(layout: Layout, path: Path) -> bool:
    """The host agent's /run/dso is 0755 (the unit's RuntimeDirectoryMode: systemd sets it
    root:root at every start, and group dso reaches the 0660 socket through it); what is in
    it protects itself (secrets/ is 0700)."""
    return layout.mode == "agent" and path == layout.run


def _check_key(
    ctx: Context, failures: list[str], warnings: list[str], fixes: list[str], checked: list[str]
) -> None:
    """The vault key: the vault refuses a key file others can read."""
    key = ctx.layout.vault_key
    try:
        st = os.stat(key)
    except FileNotFoundError:
        return
    except OSError as exc:
        warnings.append(f"{key}: cannot be examined as {_me(ctx)} ({exc.strerror})")
        return
    checked.append(f"{key} ({describe(st)})")
    why = unsafe(st, ctx.euid)
    if why is None and st.st_mode & 0o077:
        why = "is readable by others: the vault refuses to use it"
    if why is not None:
        failures.append(f"{key} {why} ({describe(st)})")
        fixes.append(_tighten(key, st, ctx.euid, 0o600))


def _tighten(path: Path, st: os.stat_result, euid: int, mode: int) -> str:
    steps = []
    if st.st_uid not in (euid, 0):
        steps.append(f"chown {euid} {path}")
    steps.append(f"chmod {mode:o} {path}")
    return " && ".join(steps)


def _summary(first: list[str], then: list[str]) -> str:
    more = len(first) + len(then) - 1
    return first[0] + (f" (and {more} more)" if more > 0 else "")


def _me(ctx: Context) -> str:
    return f"uid {ctx.euid} ({user_name(ctx.euid)})"


CHECKS = (
    Check(
        "dirs.modes",
        "dso's directories exist, with safe owners and modes; the vault key is private",
        dirs_modes,
    ),
)
