"""Running the checks: each timed, in parallel threads, reported in registry order.

A check that raises :class:`~kernel.doctor.model.NotChecked` is a warning naming the check
that has the cause; a :class:`~kernel.errors.DSOError` is a failure with its message and hint;
anything else is a bug in the check, reported as a failure of that check alone (the others
still run) and logged with its traceback at debug level.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from kernel.doctor.context import Context
from kernel.doctor.model import Check, Finding, Level, NotChecked, Result, Status, fail, warn
from kernel.errors import DSOError
from kernel.log import get_logger

log = get_logger("doctor")
#: Checks run at once (most wait on Docker, a socket or a subprocess).
WORKERS = 8


@dataclass(frozen=True, slots=True)
class Report:
    """Every result of one run."""

    level: Level
    mode: str
    results: tuple[Result, ...]
    seconds: float

    @property
    def ok(self) -> bool:
        return all(r.status is not Status.FAIL for r in self.results)

    def failed(self) -> list[Result]:
        return [r for r in self.results if r.status is Status.FAIL]

    def count(self, status: Status) -> int:
        return sum(1 for r in self.results if r.status is status)

    def to_dict(self) -> dict[str, Any]:
        """The ``--json`` document."""
        return {
            "level": self.level.value,
            "mode": self.mode,
            "ok": self.ok,
            "checks": [r.to_dict(self.level) for r in self.results],
        }


def selected(level: Level, checks: Sequence[Check] | None = None) -> list[Check]:
    from kernel.doctor.registry import CHECKS

    chosen = CHECKS if checks is None else checks
    return [c for c in chosen if level is Level.FULL or not c.full_only]


def run_checks(ctx: Context, checks: Sequence[Check] | None = None) -> Report:
    """Run the checks of ``ctx.level`` (or ``checks``) against ``ctx``."""
    chosen = selected(ctx.level, checks)
    began = time.perf_counter()
    with ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="dso-doctor") as pool:
        results = list(pool.map(lambda check: run_one(ctx, check), chosen))
    return Report(ctx.level, ctx.mode, tuple(results), time.perf_counter() - began)


def run_one(ctx: Context, check: Check) -> Result:
    began = time.perf_counter()
    try:
        finding = check.run(ctx)
    except NotChecked as exc:
        see = f" (see {exc.see})" if exc.see else ""
        finding = warn(f"not checked: {exc.reason}{see}", fix=f"fix {exc.see} first" if see else "")
    except DSOError as exc:
        finding = fail(exc.message, fix=exc.hint or "")
    except Exception as exc:  # a bug in the check: report it, keep the others
        log.debug("doctor check %s crashed", check.id, exc_info=True)
        finding = fail(
            f"the check itself failed ({type(exc).__name__}): a bug in dso",
            detail=str(exc)[:300],
            fix="run with DSO_DEBUG=1 --log-level debug and report it",
        )
    return _result(check.id, finding, time.perf_counter() - began)


def _result(check_id: str, finding: Finding, seconds: float) -> Result:
    return Result(check_id, finding.status, finding.finding, finding.detail, finding.fix, seconds)
