"""`docker dso system logs`' options as journalctl takes them: times, priorities, field matches,
the runs of a start, and the whole command line."""

from __future__ import annotations

import pytest

from kernel.errors import UsageError
from kernel.system.journal import (
    field_match,
    invocation_matches,
    journal_argv,
    priority,
    time_spec,
    trace_match,
)


@pytest.mark.parametrize(
    ("given", "passed"),
    [
        # A bare span means that long ago: journalctl refuses "1h" ("Failed to parse timestamp").
        ("1h", "-1h"),
        ("5m", "-5m"),
        ("2d", "-2d"),
        ("30s", "-30s"),
        ("1w", "-1w"),
        ("1h30m", "-1h30m"),
        ("90min", "-90min"),
        ("2hours", "-2hours"),
        ("1h 30m", "-1h 30m"),
        (" 10sec ", "-10sec"),
        # Everything else is journalctl's to read, unchanged.
        ("-1h", "-1h"),
        ("1 hour ago", "1 hour ago"),
        ("1h ago", "1h ago"),
        ("yesterday", "yesterday"),
        ("today", "today"),
        ("2024-05-01 10:00", "2024-05-01 10:00"),
        ("@1714550400", "@1714550400"),
        ("90", "90"),
        ("1x", "1x"),
    ],
)
def test_time_spec(given: str, passed: str) -> None:
    assert time_spec(given) == passed


@pytest.mark.parametrize(
    ("given", "passed"),
    [
        ("err", "err"),
        ("warning", "warning"),
        ("info", "info"),
        ("debug", "debug"),
        ("emerg", "emerg"),
        ("ERR", "err"),
        ("error", "err"),
        ("warn", "warning"),
        ("critical", "crit"),
        ("emergency", "emerg"),
        ("3", "3"),
        ("0", "0"),
        ("7", "7"),
        ("err..warning", "err..warning"),
        ("error..warn", "err..warning"),
        ("3..4", "3..4"),
    ],
)
def test_priority(given: str, passed: str) -> None:
    assert priority(given) == passed


@pytest.mark.parametrize("given", ["8", "-1", "errors", "", "err..", "..err", "err..loud"])
def test_an_unknown_priority_is_a_usage_error_that_lists_the_names(given: str) -> None:
    with pytest.raises(UsageError) as caught:
        priority(given)
    assert caught.value.hint is not None and "err" in caught.value.hint


def test_field_matches_and_trace_ids() -> None:
    assert field_match("DSO_SERVICE=web") == "DSO_SERVICE=web"
    assert field_match("DSO_CONTAINER=") == "DSO_CONTAINER="
    assert field_match("_PID=12=3") == "_PID=12=3"
    assert trace_match("4bf92f3577b34da6a3ce929d0e0e4736") == (
        "DSO_TRACE_ID=4bf92f3577b34da6a3ce929d0e0e4736"
    )
    for bad in ("web", "dso_service=web", "1FIELD=x", "+", "/usr/bin/dso", "A B=c"):
        with pytest.raises(UsageError):
            field_match(bad)
    for bad in ("", "a b", "x=y", "a" * 129):
        with pytest.raises(UsageError):
            trace_match(bad)


def test_invocation_matches_cover_the_agent_lines_and_systemd_lines_of_each_run() -> None:
    assert invocation_matches([]) == []
    assert invocation_matches(["", "a"]) == ["_SYSTEMD_INVOCATION_ID=a", "+", "INVOCATION_ID=a"]
    assert invocation_matches(["a", "b", "a"]) == [
        *("_SYSTEMD_INVOCATION_ID=a", "+", "INVOCATION_ID=a", "+"),
        *("_SYSTEMD_INVOCATION_ID=b", "+", "INVOCATION_ID=b"),
    ]


def test_journal_argv() -> None:
    assert journal_argv(lines=20) == [
        *("journalctl", "-u", "dso-agent.service", "--no-pager", "-n", "20"),
    ]
    argv = journal_argv(
        lines=100,
        follow=True,
        priority_="err",
        since="1h",
        until="5 minutes ago",
        output="json",
        matches=["DSO_TRACE_ID=abc"],
    )
    assert argv == [
        *("journalctl", "-u", "dso-agent.service", "--no-pager", "-n", "100", "-f"),
        *("-p", "err", "--since", "-1h", "--until", "5 minutes ago", "-o", "json"),
        "DSO_TRACE_ID=abc",
    ]
