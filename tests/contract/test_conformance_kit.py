"""The conformance kit itself: it must fail providers that break the protocol, naming the rule.

Runs the suite (or the relevant checks) against tests/fakes/misbehaving_provider.py in several
modes; a kit that passed these would be useless to a provider author.
"""

from __future__ import annotations

import sys
import time

import pytest

from kernel.conformance import CheckStatus, ExpectedSecret, Fixture, SuiteReport, run_suite
from kernel.provider_host import ProviderCommand

pytestmark = [pytest.mark.contract, pytest.mark.integration]

FIXTURE = Fixture(settings={}, secrets=(ExpectedSecret("app/a", value=b"A"),), missing="app/zz")


def misbehaving(mode: str) -> ProviderCommand:
    return ProviderCommand(
        "misbehaving",
        (sys.executable, "-m", "tests.fakes.misbehaving_provider"),
        "source",
        env_set=(("DSO_FAKE_MODE", mode),),
    )


def run(mode: str, *checks: str, **kwargs: float) -> SuiteReport:
    return run_suite(misbehaving(mode), FIXTURE, only=set(checks) or None, **kwargs)


def status(report: SuiteReport) -> dict[str, CheckStatus]:
    return {result.name: result.status for result in report.results}


def detail(report: SuiteReport, name: str) -> str:
    (result,) = [r for r in report.results if r.name == name]
    return result.detail


def test_a_bad_cookie_fails_the_handshake_and_the_host_start() -> None:
    report = run("bad-cookie", "handshake", "host-start", "refuses-without-cookie")
    assert not report.passed
    assert status(report) == {
        "refuses-without-cookie": CheckStatus.FAILED,  # it never checks the cookie
        "handshake": CheckStatus.FAILED,
        "host-start": CheckStatus.FAILED,
    }
    assert "magic cookie" in detail(report, "handshake")


def test_a_bad_protocol_version_is_named() -> None:
    report = run("bad-version", "handshake")
    assert "protocol 99" in detail(report, "handshake")


def test_no_handshake_fails_within_the_start_timeout_and_skips_what_depends_on_it() -> None:
    started = time.monotonic()
    report = run("no-handshake", "handshake", "configure", "unknown-method", start_timeout=0.5)
    assert time.monotonic() - started < 5
    assert status(report) == {
        "handshake": CheckStatus.FAILED,
        "configure": CheckStatus.SKIPPED,  # nothing to configure without a handshake
        "unknown-method": CheckStatus.SKIPPED,
    }
    assert "start timeout" in detail(report, "handshake")
    assert "see 'handshake'" in detail(report, "configure")


def test_a_provider_that_never_answers_fails_with_a_timeout() -> None:
    report = run("hang", "handshake", "before-configure", request_timeout=0.5)
    assert status(report)["before-configure"] is CheckStatus.FAILED
    assert "no answer" in detail(report, "before-configure")


def test_stray_output_on_stdout_is_caught() -> None:
    report = run("stray-print", "handshake", "before-configure", "host-start")
    assert status(report)["before-configure"] is CheckStatus.FAILED
    assert "bad frame" in detail(report, "before-configure")
    assert status(report)["host-start"] is CheckStatus.FAILED


def test_garbage_instead_of_a_handshake_is_caught() -> None:
    report = run("garbage-stdout", "handshake")
    assert "not a frame" in detail(report, "handshake")


def test_a_provider_that_ignores_shutdown_fails_the_stop_checks() -> None:
    report = run("slow-shutdown", "handshake", "stop-on-eof", "stop-on-sigterm")
    assert status(report) == {
        "handshake": CheckStatus.PASSED,
        "stop-on-eof": CheckStatus.FAILED,
        "stop-on-sigterm": CheckStatus.FAILED,
    }
    assert "still running 2 s after" in detail(report, "stop-on-eof")


def test_wrong_answers_fail_the_method_checks() -> None:
    # The misbehaving provider answers every reference not_found.
    report = run("crash-mid-request", "host-start", "get")
    assert status(report)["host-start"] is CheckStatus.PASSED
    assert status(report)["get"] is CheckStatus.FAILED


def test_unknown_check_names_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown checks"):
        run_suite(misbehaving("hang"), FIXTURE, only={"no-such-check"})
