"""The scheduler: one rotation per target per debounce window, one more for changes arriving
while it rotates, targets independent and bounded (real threads, short windows)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from kernel.agent.scheduler import Reason, Scheduler
from kernel.rotation.targets import Target

WEB = Target("web", "service-shop.web", "shop", "web")
API = Target("api", "service-shop.api", "shop", "api")


class Recorder:
    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.runs: list[tuple[str, list[str]]] = []
        self.lock = threading.Lock()
        self.running = 0
        self.most = 0
        self.entered = threading.Event()

    def __call__(self, target: Target, reasons: list[Reason]) -> None:
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
            self.runs.append((target.lock_key, sorted(r for x in reasons for r in x.references)))
        self.entered.set()
        time.sleep(self.delay)
        with self.lock:
            self.running -= 1


def reason(*refs: str) -> Reason:
    return Reason("poll", frozenset(refs), "t" * 32)


def wait_until(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_changes_within_the_window_make_one_rotation_with_all_of_them() -> None:
    rec = Recorder()
    scheduler = Scheduler(rec, window=0.3)
    scheduler.start()
    try:
        started = time.monotonic()
        for ref in ("dso://a", "dso://b", "dso://c"):
            scheduler.submit(WEB, reason(ref))
            time.sleep(0.05)
        wait_until(lambda: bool(rec.runs))
        assert time.monotonic() - started >= 0.3  # not before the window closed
        time.sleep(0.4)
        assert rec.runs == [("service-shop.web", ["dso://a", "dso://b", "dso://c"])]
    finally:
        scheduler.stop(timeout=5)


def test_a_change_during_a_rotation_causes_exactly_one_more() -> None:
    rec = Recorder(delay=0.4)
    scheduler = Scheduler(rec, window=0.05)
    scheduler.start()
    try:
        scheduler.submit(WEB, reason("dso://a"))
        assert rec.entered.wait(5)
        scheduler.submit(WEB, reason("dso://b"))
        scheduler.submit(WEB, reason("dso://c"))
        wait_until(lambda: len(rec.runs) == 2)
        time.sleep(0.6)
        assert rec.runs == [
            ("service-shop.web", ["dso://a"]),
            ("service-shop.web", ["dso://b", "dso://c"]),
        ]
        assert not scheduler.busy()
    finally:
        scheduler.stop(timeout=5)


def test_targets_are_independent_and_bounded() -> None:
    rec = Recorder(delay=0.3)
    scheduler = Scheduler(rec, window=0.0, concurrency=2)
    scheduler.start()
    try:
        third = Target("db", "service-shop.db", "shop", "db")
        for target in (WEB, API, third):
            scheduler.submit(target, reason("dso://shared"), now=True)
        wait_until(lambda: len(rec.runs) == 3 and not scheduler.busy())
        assert {key for key, _ in rec.runs} == {WEB.lock_key, API.lock_key, third.lock_key}
        assert rec.most == 2
    finally:
        scheduler.stop(timeout=5)


def test_stop_takes_no_more_work_and_waits_for_the_rotation_in_flight() -> None:
    rec = Recorder(delay=0.3)
    scheduler = Scheduler(rec, window=0.0)
    scheduler.start()
    scheduler.submit(WEB, reason("dso://a"), now=True)
    assert rec.entered.wait(5)
    scheduler.submit(API, reason("dso://b"))  # still in its window
    scheduler.stop(timeout=5)
    assert rec.running == 0 and [key for key, _ in rec.runs] == [WEB.lock_key]
    scheduler.submit(WEB, reason("dso://c"), now=True)
    time.sleep(0.2)
    assert len(rec.runs) == 1


def test_a_failing_rotation_does_not_stop_the_scheduler() -> None:
    calls: list[str] = []

    def rotate(target: Target, reasons: list[Reason]) -> None:
        calls.append(target.lock_key)
        if len(calls) == 1:
            raise RuntimeError("bug")

    scheduler = Scheduler(rotate, window=0.0)
    scheduler.start()
    try:
        scheduler.submit(WEB, reason(), now=True)
        wait_until(lambda: len(calls) == 1)
        scheduler.submit(API, reason(), now=True)
        wait_until(lambda: len(calls) == 2)
        assert scheduler.alive
    finally:
        scheduler.stop(timeout=5)
