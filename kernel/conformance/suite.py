"""The conformance suite: every check in order, run against one provider command.

Raw-process checks run first (launch, handshake, requests the host never sends, stopping),
then the host-client checks (methods, pipelining, watch, shutdown). A check that cannot run
because an earlier one failed is skipped, naming that check; the run fails if any check failed.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Collection, Mapping
from typing import TYPE_CHECKING

from kernel.conformance import launch, methods, wire
from kernel.conformance.base import Check, CheckFailed, CheckSkipped, Context
from kernel.conformance.fixture import Fixture
from kernel.conformance.results import CheckResult, CheckStatus, SuiteReport
from kernel.errors import DSOError
from kernel.protocol import DEFAULT_REQUEST_TIMEOUT, START_TIMEOUT

if TYPE_CHECKING:
    from kernel.provider_host import ProviderCommand

_HS = ("handshake",)
_RAW = ("handshake", "configure")
_HOST = ("host-start",)

CHECKS: tuple[Check, ...] = (
    Check("describe", "§2.4", "--describe prints JSON metadata, exit 0", launch.check_describe),
    Check(
        "refuses-without-cookie",
        "§2.3",
        "run by hand: explanation on stderr, exit 1",
        launch.check_refuses_without_cookie,
    ),
    Check(
        "check-settings",
        "§2.4.1",
        "--check-settings accepts the fixture's settings (optional)",
        launch.check_settings_flag,
    ),
    Check("handshake", "§5", "first frame is a valid handshake", launch.check_handshake),
    Check(
        "describe-matches-handshake",
        "§2.4",
        "--describe agrees with the handshake",
        launch.check_describe_matches,
        ("describe", "handshake"),
    ),
    Check(
        "before-configure",
        "§6",
        "get before configure is invalid_request",
        wire.check_before_configure,
        _HS,
    ),
    Check(
        "missing-deadline", "§6", "no deadline: invalid_request", wire.check_missing_deadline, _HS
    ),
    Check("configure", "§6.2", "configure with the fixture's settings", wire.check_configure, _HS),
    Check("ping", "§6.2", "ping answers the provider's clock", wire.check_ping_clock, _RAW),
    Check(
        "unknown-method", "§7", "unknown method: invalid_request", wire.check_unknown_method, _RAW
    ),
    Check(
        "malformed-request",
        "§4",
        "bad params: invalid_request",
        wire.check_malformed_request,
        _RAW,
    ),
    Check(
        "expired-deadline",
        "§8.2",
        "deadline already passed: timeout",
        wire.check_expired_deadline,
        _RAW,
    ),
    Check(
        "unadvertised-methods",
        "§5",
        "methods not advertised: invalid_request",
        wire.check_unadvertised,
        _RAW,
    ),
    Check("stop-on-eof", "§8.3", "end of stdin: exit 0 within 2 s", launch.check_stop_on_eof, _HS),
    Check("stop-on-sigterm", "§8.3", "SIGTERM: exit 0 within 2 s", launch.check_stop_on_sigterm),
    Check("host-start", "§5", "the host starts and configures it", methods.check_host_start),
    Check("get", "§6.2", "a batch returns every fixture value", methods.check_get, _HOST),
    Check("not-found", "§7", "an unknown reference is not_found", methods.check_not_found, _HOST),
    Check(
        "versions",
        "§6.2",
        "versions agree with get, no values",
        methods.check_versions,
        ("host-start", "get"),
    ),
    Check("list", "§6.2", "list names the fixture's paths", methods.check_list, _HOST),
    Check("large-value", "§11", "a large value arrives intact", methods.check_large_value, _HOST),
    Check(
        "pipelining",
        "§8.1",
        "500 requests in flight, matched by id",
        methods.check_pipelining,
        _HOST,
    ),
    Check("watch", "§6.2", "a change sends a changed notification", methods.check_watch, _HOST),
    Check(
        "stdout-integrity",
        "§9",
        "the frame stream survived every request",
        methods.check_stdout_integrity,
        _HOST,
    ),
    Check("shutdown", "§8.3", "shutdown: exit 0 within 2 s", methods.check_shutdown, _HOST),
)

#: Every check name, in run order (pytest parametrizes on these).
CHECK_NAMES: tuple[str, ...] = tuple(check.name for check in CHECKS)


def run_suite(
    command: ProviderCommand,
    fixture: Fixture,
    *,
    environ: Mapping[str, str] | None = None,
    start_timeout: float = START_TIMEOUT,
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
    only: Collection[str] | None = None,
    on_result: Callable[[CheckResult], None] | None = None,
) -> SuiteReport:
    """Run the checks (all, or those named in ``only`` and the checks they build on) against
    ``command``.

    ``environ`` is the environment the provider's allow-list picks from (default: ours).
    ``on_result`` is called after each check, for progressive output. Every process started
    is stopped and reaped before this returns.
    """
    selected = None if only is None else with_prerequisites(only)
    ctx = Context(
        command,
        fixture,
        os.environ if environ is None else environ,
        start_timeout=start_timeout,
        request_timeout=request_timeout,
    )
    results: list[CheckResult] = []
    started = time.monotonic()
    try:
        for check in CHECKS:
            if selected is not None and check.name not in selected:
                continue
            result = _run_one(check, ctx)
            results.append(result)
            if on_result is not None:
                on_result(result)
    finally:
        _cleanup(ctx)
    return SuiteReport(
        command.name, tuple(command.argv), tuple(results), time.monotonic() - started
    )


def with_prerequisites(names: Collection[str]) -> frozenset[str]:
    """``names`` plus every check they build on, transitively; unknown names raise."""
    unknown = set(names) - set(CHECK_NAMES)
    if unknown:
        raise ValueError(f"unknown checks {sorted(unknown)}; known: {', '.join(CHECK_NAMES)}")
    by_name = {check.name: check for check in CHECKS}
    selected: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        if name not in selected:
            selected.add(name)
            todo.extend(by_name[name].needs)
    return frozenset(selected)


def _run_one(check: Check, ctx: Context) -> CheckResult:
    started = time.monotonic()
    try:
        detail = check.run(ctx)
        status = CheckStatus.PASSED
    except CheckSkipped as exc:
        status, detail = CheckStatus.SKIPPED, str(exc)
    except CheckFailed as exc:
        status, detail = CheckStatus.FAILED, str(exc)
    except DSOError as exc:
        status, detail = CheckStatus.FAILED, methods.describe_error(exc)
    except Exception as exc:
        # A bug in the kit or a wildly broken provider: report the type, keep going.
        status, detail = CheckStatus.FAILED, f"unexpected {type(exc).__name__}: {exc!s:.200}"
    return CheckResult(
        check.name, status, " ".join(detail.split()), time.monotonic() - started, check.section
    )


def _cleanup(ctx: Context) -> None:
    if ctx.raw is not None:
        ctx.raw.close()
        ctx.raw = None
    if ctx.client is not None:
        with contextlib.suppress(Exception):
            ctx.client.close(grace=0.5)
        ctx.client = None
