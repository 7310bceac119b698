"""``docker dso doctor``: checks of one installation, each with a stable id, a status
(ok/warn/fail), a one-line finding, and at ``--level full`` the root cause and the fix.

    ctx = Context(layout, level=Level.FULL, config_path=app.config_path)
    report = run_checks(ctx)            # every check of the level, in parallel, timed
    report.ok, report.to_dict()         # no failure; the --json document

Modules: ``model`` (status, finding, check), ``context`` (what checks read, shared and
memoised; every input fakeable), ``runner``, ``registry`` (the ordered list), and one module per
group: ``daemon`` (Docker, Compose), ``configuration``, ``directories``, ``agent_socket``,
``service_unit`` (systemd), ``programs`` (provider programs and, at full level, the providers
themselves), ``storage`` (tmpfs), ``state_files`` (state files, rotations awaiting review),
``leftovers`` (orphan containers, stale locks), ``swarm`` (the node's role, dso's Swarm
secret versions). docs/doctor.md explains every check id.
The doctor reads; it changes nothing it examines, and never reads a secret value.
"""

from __future__ import annotations

from kernel.doctor.context import Completed, Context, Runner
from kernel.doctor.model import Check, Finding, Level, NotChecked, Result, Status
from kernel.doctor.registry import CHECK_IDS, CHECKS
from kernel.doctor.runner import Report, run_checks, run_one, selected

__all__ = [
    "CHECKS",
    "CHECK_IDS",
    "Check",
    "Completed",
    "Context",
    "Finding",
    "Level",
    "NotChecked",
    "Report",
    "Result",
    "Runner",
    "Status",
    "run_checks",
    "run_one",
    "selected",
]
