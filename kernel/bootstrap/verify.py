"""The checks that end a bootstrap: every path as planned, and what ``docker dso doctor`` says of
the directories and the configuration (the same checks, ``dirs.modes``, ``config.valid`` and
``config.permissions``), and that the local vault opens with its key.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kernel.bootstrap.steps import describe_stat
from kernel.errors import DSOError

if TYPE_CHECKING:
    from kernel.bootstrap.host import Host
    from kernel.bootstrap.planner import Plan

__all__ = ["Verified", "verify"]


@dataclass(frozen=True, slots=True)
class Verified:
    """One check of the result: ``ok``, ``warn`` or ``fail``, and what was found."""

    id: str
    status: str
    summary: str
    #: What to do about a warning or a failure.
    fix: str = ""

    @property
    def failed(self) -> bool:
        return self.status == "fail"

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "status": self.status, "summary": self.summary, "fix": self.fix}


def verify(plan: Plan, host: Host) -> list[Verified]:
    """Check what ``plan`` set up (whether it changed anything or found it all in place)."""
    results = [_paths(plan, host)]
    if plan.group is not None:
        gid = host.group_id(plan.group)
        results.append(
            Verified("bootstrap.group", "ok", f"group {plan.group} exists (gid {gid})")
            if gid is not None
            else Verified(
                "bootstrap.group",
                "fail",
                f"group {plan.group} does not exist",
                f"sudo groupadd --system {plan.group}",
            )
        )
    results += _doctor(plan)
    if plan.vault:
        results.append(_vault(plan))
    return results


def _paths(plan: Plan, host: Host) -> Verified:
    wrong = []
    for item in plan.expected:
        try:
            st = os.stat(item.path)
        except OSError as exc:
            wrong.append(f"{item.path}: {exc.strerror}")
            continue
        is_dir = stat.S_ISDIR(st.st_mode)
        if is_dir != (item.kind == "directory"):
            wrong.append(f"{item.path} is not a {item.kind}")
            continue
        fits = stat.S_IMODE(st.st_mode) == item.mode
        if item.owner is not None:
            fits = fits and item.owner.matches(st, host)
        if not fits:
            want = f"{item.mode:04o}" + (f" {item.owner}" if item.owner is not None else "")
            wrong.append(f"{item.path} is {describe_stat(st)}, not {want}")
    if wrong:
        return Verified("bootstrap.paths", "fail", "; ".join(wrong))
    return Verified(
        "bootstrap.paths", "ok", f"{len(plan.expected)} paths with their planned owners and modes"
    )


def _doctor(plan: Plan) -> list[Verified]:
    from kernel.doctor import Context, run_one
    from kernel.doctor.configuration import CHECKS as CONFIG_CHECKS
    from kernel.doctor.directories import CHECKS as DIRECTORY_CHECKS

    ctx = Context(plan.layout, config_path=plan.layout.config, config_candidates=())
    results = []
    for check in (*DIRECTORY_CHECKS, *CONFIG_CHECKS):
        result = run_one(ctx, check)
        results.append(Verified(result.id, result.status.value, result.finding, result.fix))
    return results


def _vault(plan: Plan) -> Verified:
    from kernel.vault import KeySource, Vault

    layout = plan.layout
    keys = KeySource.from_env(layout.vault_key) if plan.passphrase else KeySource(layout.vault_key)
    try:
        vault = Vault.open(layout.vault, keys)
        count = len(vault.list())
    except DSOError as exc:
        return Verified("bootstrap.vault", "fail", exc.message, exc.hint or "")
    how = "DSO_VAULT_PASSPHRASE" if plan.passphrase else f"the key {layout.vault_key}"
    plural = "" if count == 1 else "s"
    return Verified(
        "bootstrap.vault", "ok", f"{layout.vault} opens with {how} ({count} secret{plural})"
    )
