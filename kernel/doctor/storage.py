"""``storage.tmpfs``: the base directory of ``dsofile://`` secrets is (or would be created) on a
tmpfs, owned by dso's user and writable by no one else (:mod:`kernel.injection.tmpfs` decides,
changing nothing)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from kernel.doctor.files import describe
from kernel.doctor.model import Check, Finding, fail, ok
from kernel.errors import StorageError
from kernel.injection.tmpfs import SecretsDir, default_base, filesystem_type

if TYPE_CHECKING:
    from kernel.doctor.context import Context


def storage_tmpfs(ctx: Context) -> Finding:
    base = default_base(ctx.layout, ctx.environ)
    secrets = SecretsDir(base)
    try:
        secrets.check()
    except StorageError as exc:
        return fail(
            exc.message,
            detail="dso writes dsofile:// secrets only to a tmpfs directory it owns, so that "
            "a secret never reaches a disk and no other user can swap the files",
            fix=exc.hint or "",
        )
    if not secrets.exists():
        parent = next(p for p in base.parents if p.exists())
        return ok(
            f"{base} does not exist yet: dso creates it (0700) when it first writes a secret "
            f"file, on the {filesystem_type(parent)} mounted at or above {parent}",
        )
    projects = secrets.projects()
    return ok(
        f"{base} is on {filesystem_type(base)} ({describe(os.stat(base))})",
        detail=f"{len(projects)} project(s) with secret files: {', '.join(projects) or '-'}",
    )


CHECKS = (
    Check(
        "storage.tmpfs",
        "the directory of secret files is on a tmpfs, owned by dso's user",
        storage_tmpfs,
    ),
)
