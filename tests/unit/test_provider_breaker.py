"""The circuit breaker: its transition table, exhaustively, and its behaviour on a fake clock."""

from __future__ import annotations

import itertools

import pytest

from kernel.errors import ProviderUnavailableError
from kernel.provider_host.breaker import (
    TRANSITIONS,
    BreakerEvent,
    BreakerState,
    CircuitBreaker,
    transition,
)
from kernel.provider_host.supervisor import Backoff

C, OPEN, H = BreakerState.CLOSED, BreakerState.OPEN, BreakerState.HALF_OPEN

EXPECTED = {
    (C, BreakerEvent.SUCCESS): C,
    (C, BreakerEvent.FAILURE): C,
    (C, BreakerEvent.TRIP): OPEN,
    (C, BreakerEvent.COOLDOWN_ELAPSED): None,
    (C, BreakerEvent.RESET): C,
    (OPEN, BreakerEvent.SUCCESS): None,
    (OPEN, BreakerEvent.FAILURE): None,
    (OPEN, BreakerEvent.TRIP): None,
    (OPEN, BreakerEvent.COOLDOWN_ELAPSED): H,
    (OPEN, BreakerEvent.RESET): C,
    (H, BreakerEvent.SUCCESS): C,
    (H, BreakerEvent.FAILURE): OPEN,
    (H, BreakerEvent.TRIP): OPEN,
    (H, BreakerEvent.COOLDOWN_ELAPSED): H,
    (H, BreakerEvent.RESET): C,
}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def breaker(clock: Clock, threshold: int = 3, cooldown: float = 10.0) -> CircuitBreaker:
    return CircuitBreaker("vault", failure_threshold=threshold, cooldown=cooldown, clock=clock)


@pytest.mark.parametrize(
    ("state", "event"), list(itertools.product(BreakerState, BreakerEvent)), ids=str
)
def test_every_state_and_event_pair(state: BreakerState, event: BreakerEvent) -> None:
    expected = EXPECTED[(state, event)]
    if expected is None:
        assert (state, event) not in TRANSITIONS
        with pytest.raises(ValueError, match="cannot happen"):
            transition(state, event)
    else:
        assert transition(state, event) is expected


def test_the_table_has_nothing_else() -> None:
    assert set(TRANSITIONS) == {k for k, v in EXPECTED.items() if v is not None}


def test_opens_after_the_threshold_of_consecutive_failures(clock: Clock) -> None:
    b = breaker(clock)
    for _ in range(2):
        b.record(b.admit(), ok=False, reason="unavailable: down")
    assert b.state is C
    b.record(b.admit(), ok=True)
    assert b.consecutive_failures == 0
    for _ in range(3):
        b.record(b.admit(), ok=False, reason="unavailable: down")
    assert b.state is OPEN
    with pytest.raises(ProviderUnavailableError) as info:
        b.admit()
    message = str(info.value)
    assert message.startswith("provider 'vault': circuit breaker open after 3 consecutive")
    assert "(last: unavailable: down)" in message
    assert "next trial in 10.0 s" in message
    assert info.value.code == "unavailable"


def test_half_open_admits_one_trial_and_its_success_closes(clock: Clock) -> None:
    b = breaker(clock)
    for _ in range(3):
        b.record(b.admit(), ok=False)
    clock.now += 9.9
    with pytest.raises(ProviderUnavailableError):
        b.admit()
    clock.now += 0.1
    trial = b.admit()
    assert trial.trial and b.state is H
    with pytest.raises(ProviderUnavailableError, match="a trial request is in progress"):
        b.admit()
    b.record(trial, ok=True)
    assert b.state is C
    assert not b.admit().trial


def test_a_failed_trial_opens_again_for_a_whole_cooldown(clock: Clock) -> None:
    b = breaker(clock)
    for _ in range(3):
        b.record(b.admit(), ok=False)
    clock.now += 10
    b.record(b.admit(), ok=False, reason="timeout")
    assert b.state is OPEN
    assert b.to_json()["retry_in"] == 10.0
    assert b.to_json()["trips"] == 2


def test_results_of_calls_admitted_before_opening_do_not_close_it(clock: Clock) -> None:
    b = breaker(clock, threshold=1)
    early = b.admit()
    b.record(b.admit(), ok=False)
    assert b.state is OPEN
    b.record(early, ok=True)  # a late success from before the breaker opened
    assert b.state is OPEN
    clock.now += 10
    trial = b.admit()
    b.record(early, ok=False)  # not the trial: ignored
    assert b.state is H
    b.record(trial, ok=True)
    assert b.state is C


def test_a_trial_that_outlives_a_cooldown_lets_another_try(clock: Clock) -> None:
    b = breaker(clock, threshold=1)
    b.record(b.admit(), ok=False)
    clock.now += 10
    first = b.admit()
    clock.now += 10
    second = b.admit()
    assert second.trial and second.generation != first.generation
    b.record(first, ok=True)  # stale trial
    assert b.state is H
    b.record(second, ok=True)
    assert b.state is C


def test_release_gives_the_trial_back(clock: Clock) -> None:
    b = breaker(clock, threshold=1)
    b.record(b.admit(), ok=False)
    clock.now += 10
    trial = b.admit()
    b.release(trial)
    assert b.admit().trial


def test_observed_failures_count_only_while_closed(clock: Clock) -> None:
    b = breaker(clock, threshold=2)
    b.observe_failure("exited with status 3")
    assert (b.state, b.consecutive_failures) == (C, 1)
    b.observe_failure("exited with status 3")
    assert b.state is OPEN
    b.observe_failure("again")
    assert b.state is OPEN and b.to_json()["last_failure"] == "again"
    clock.now += 10
    b.admit()
    b.observe_failure("while probing")
    assert b.state is H


def test_reset_closes(clock: Clock) -> None:
    b = breaker(clock, threshold=1)
    b.record(b.admit(), ok=False)
    b.reset()
    assert b.state is C and b.consecutive_failures == 0


def test_status_document(clock: Clock) -> None:
    b = breaker(clock)
    assert b.to_json() == {
        "state": "closed",
        "consecutive_failures": 0,
        "failure_threshold": 3,
        "cooldown": 10.0,
        "trips": 0,
        "retry_in": None,
        "last_failure": None,
        "changed_at": None,
    }
    for _ in range(3):
        b.record(b.admit(), ok=False)
    opened = b.to_json()
    assert opened["state"] == "open" and opened["trips"] == 1
    assert isinstance(opened["changed_at"], float) and opened["changed_at"] > 1_600_000_000


def test_bad_parameters() -> None:
    with pytest.raises(ValueError):
        CircuitBreaker("x", failure_threshold=0)
    with pytest.raises(ValueError):
        CircuitBreaker("x", cooldown=0)


def test_backoff_grows_exponentially_with_bounded_jitter() -> None:
    backoff = Backoff(initial=0.2, factor=2.0, maximum=5.0, jitter=0.2)
    assert [backoff.delay(n, lambda: 0.5) for n in (1, 2, 3, 4)] == [0.2, 0.4, 0.8, 1.6]
    assert backoff.delay(20, lambda: 0.5) == 5.0
    assert backoff.delay(1, lambda: 0.0) == pytest.approx(0.16)
    assert backoff.delay(1, lambda: 1.0) == pytest.approx(0.24)
