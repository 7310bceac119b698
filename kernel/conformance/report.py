"""The human-readable conformance report: one line per check with ✓/✗/-, timing and reason."""

from __future__ import annotations

from kernel.conformance.base import ms
from kernel.conformance.results import CheckResult, CheckStatus, SuiteReport

SYMBOLS = {CheckStatus.PASSED: "✓", CheckStatus.FAILED: "✗", CheckStatus.SKIPPED: "-"}


def format_result(result: CheckResult, width: int = 26) -> str:
    """``  ✓ handshake                  71 ms  local 0.1.0, protocol 1, …``"""
    symbol = SYMBOLS[result.status]
    detail = result.detail
    if result.status is CheckStatus.SKIPPED:
        detail = f"skipped: {detail}"
    return f"  {symbol} {result.name:<{width}} {ms(result.duration):>8}  {detail}"


def summary_line(report: SuiteReport) -> str:
    passed = report.count(CheckStatus.PASSED)
    failed = report.count(CheckStatus.FAILED)
    skipped = report.count(CheckStatus.SKIPPED)
    verdict = "conforms" if report.passed else "does NOT conform"
    return (
        f"provider {report.provider!r} {verdict} to protocol 1: {passed} passed, {failed} failed,"
        f" {skipped} skipped in {ms(report.duration)}"
    )


def render_text(report: SuiteReport) -> str:
    """The whole report: a header, a line per check, the summary."""
    lines = [f"testing provider {report.provider!r}: {' '.join(report.command)}"]
    lines.extend(format_result(result) for result in report.results)
    lines.append(summary_line(report))
    return "\n".join(lines)
