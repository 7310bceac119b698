"""The facade: every hook through its typed method, veto semantics, isolation of failures."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import pytest

from kernel import hookimpl
from kernel.extensions import HOOK_METHODS, Extensions, RotationEvent, Veto
from tests.unit.extensions_support import (
    TRACE_ID,
    Logs,
    Recorder,
    capture_logs,
    facade_with,
    make_event,
)


@pytest.fixture
def logs() -> Iterator[Logs]:
    with capture_logs() as captured:
        yield captured


def call(extensions: Extensions, hook: str, event: RotationEvent) -> object:
    method = getattr(extensions, HOOK_METHODS[hook])
    return method() if hook == "dso_shutdown" else method(event)


@pytest.mark.parametrize("hook", sorted(HOOK_METHODS))
def test_every_hook_reaches_every_extension_through_the_facade(hook: str) -> None:
    first, second = Recorder(), Recorder()
    extensions = facade_with(("first", first), ("second", second))
    event = make_event()
    result = call(extensions, hook, event)
    expected_event = None if hook == "dso_shutdown" else event
    assert first.calls == [(hook, expected_event)]
    assert second.calls == [(hook, expected_event)]
    assert result is None


def test_extensions_are_called_in_pluggy_order() -> None:
    order: list[str] = []

    class Named:
        def __init__(self, name: str) -> None:
            self.name = name

        @hookimpl
        def dso_rotation_completed(self, event: RotationEvent) -> None:
            order.append(self.name)

    class Early:
        @hookimpl(tryfirst=True)
        def dso_rotation_completed(self, event: RotationEvent) -> None:
            order.append("early")

    extensions = facade_with(("early", Early()), ("a", Named("a")), ("b", Named("b")))
    extensions.completed(make_event())
    assert order == ["early", "b", "a"]  # tryfirst, then last registered first


def test_the_first_veto_wins_and_later_extensions_are_not_asked(logs: Logs) -> None:
    allow, veto, never = Recorder(), Recorder(veto="change freeze"), Recorder(veto="other")
    # pluggy calls the last registered first: allow, then veto; never would come last.
    extensions = facade_with(("never", never), ("freeze", veto), ("allow", allow))
    result = extensions.before_swap(make_event())
    assert result == Veto("freeze", "change freeze")
    assert allow.hooks == ["dso_before_swap"]
    assert veto.hooks == ["dso_before_swap"]
    assert never.calls == []
    [record] = logs.matching("vetoed by extension 'freeze'")
    assert record.levelno == logging.WARNING
    assert record.trace_id == TRACE_ID  # type: ignore[attr-defined]


@pytest.mark.parametrize("returned", [None, ""])
def test_none_or_an_empty_reason_lets_the_swap_proceed(returned: str | None) -> None:
    assert facade_with(("r", Recorder(veto=returned))).before_swap(make_event()) is None


def test_a_non_string_result_is_not_a_veto(logs: Logs) -> None:
    class Odd:
        @hookimpl
        def dso_before_swap(self, event: RotationEvent) -> object:
            return True

    assert facade_with(("odd", Odd())).before_swap(make_event()) is None
    assert logs.matching("returned bool from dso_before_swap")


class Broken:
    @hookimpl
    def dso_before_swap(self, event: RotationEvent) -> str | None:
        raise RuntimeError("database of freezes unreachable")

    @hookimpl
    def dso_rotation_completed(self, event: RotationEvent) -> None:
        raise KeyError("oops")

    @hookimpl
    def dso_shutdown(self) -> None:
        raise SystemExit(3)


@pytest.mark.parametrize(
    ("hook", "exc_type"),
    [
        ("dso_rotation_completed", "KeyError"),
        ("dso_before_swap", "RuntimeError"),
        ("dso_shutdown", "SystemExit"),
    ],
)
def test_a_raising_extension_is_logged_and_isolated(logs: Logs, hook: str, exc_type: str) -> None:
    before, after = Recorder(), Recorder()
    extensions = facade_with(("before", before), ("broken", Broken()), ("after", after))
    assert call(extensions, hook, make_event()) is None  # no exception, and not a veto
    assert before.hooks == [hook] and after.hooks == [hook]
    [record] = logs.matching("extension 'broken' raised")
    assert record.levelno == logging.WARNING
    message = record.getMessage()
    assert hook in message and exc_type in message
    assert record.extension == "broken"  # type: ignore[attr-defined]
    if hook != "dso_shutdown":
        assert record.trace_id == TRACE_ID  # type: ignore[attr-defined]


def test_an_exception_in_before_swap_is_not_a_veto(logs: Logs) -> None:
    extensions = facade_with(("broken", Broken()))
    assert extensions.before_swap(make_event()) is None
    assert "not a veto" in logs.matching("raised in dso_before_swap")[0].getMessage()
    assert "database of freezes unreachable" in logs.text()


def test_a_slow_extension_is_reported(logs: Logs) -> None:
    class Slow:
        @hookimpl
        def dso_after_swap(self, event: RotationEvent) -> None:
            time.sleep(0.05)

    extensions = facade_with(("slow", Slow()))
    extensions._slow_call = 0.01
    extensions.after_swap(make_event())
    [record] = logs.matching("extension 'slow' took")
    assert record.trace_id == TRACE_ID  # type: ignore[attr-defined]


def test_shutdown_happens_once_and_the_context_manager_calls_it() -> None:
    recorder = Recorder()
    with facade_with(("r", recorder)) as extensions:
        extensions.completed(make_event())
        extensions.shutdown()
    assert recorder.hooks == ["dso_rotation_completed", "dso_shutdown"]


def test_without_extensions_every_call_is_a_no_op() -> None:
    extensions = Extensions()
    event = make_event()
    for hook in HOOK_METHODS:
        assert call(extensions, hook, event) is None
    assert extensions.names == []


def test_an_extension_may_omit_the_event_argument() -> None:
    seen: list[str] = []

    class Minimal:
        @hookimpl
        def dso_rotation_started(self) -> None:
            seen.append("started")

    facade_with(("minimal", Minimal())).started(make_event())
    assert seen == ["started"]
