"""Providers that idle out: a real provider process with no watch and no call for
``idle_timeout`` is stopped (reaped), reported ``idle``, and started again by the next call
with its breaker and latency stats kept; a watch keeps it; a call in flight is never cut."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable

import pytest

from kernel.paths import local_layout
from kernel.protocol import SecretRef
from kernel.provider_host import ProviderHost
from tests.integration.provider_host_support import (
    SECRETS,
    assert_reaped,
    config_with,
    echo_command,
    process_gone,
    spawned,
)

pytestmark = pytest.mark.integration
__all__ = ["spawned"]

GOOD = [SecretRef("g", "db/password")]
DOWN = [SecretRef("d", "down")]


def idle_host(idle_timeout: float, **settings: object) -> ProviderHost:
    config = config_with(
        "echo",
        settings={"secrets": SECRETS, "errors": {"down": "unavailable"}, **settings},
        threshold=2,
        idle_timeout=idle_timeout,
    )
    return ProviderHost(config, local_layout(), commands={"echo": echo_command()})


def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(0.01)
    raise AssertionError("condition not reached")


def test_an_unused_provider_idles_out_and_the_next_call_starts_it_again(
    spawned: list[int],
) -> None:
    with idle_host(0.4) as host:
        provider = host.client("echo")
        assert provider.get(GOOD).values["g"].value == b"hunter2"
        provider.get(DOWN)  # one breaker failure (threshold 2): must survive the idle stop
        first = spawned[0]
        wait_for(lambda: provider.state() == "idle")
        assert process_gone(first)
        assert_reaped(first)
        status = host.status()["providers"]["echo"]
        assert (status["state"], status["pid"], status["idle_stops"]) == ("idle", None, 1)
        assert status["crashes"] == 0 and status["last_exit"] is None
        assert status["breaker"]["consecutive_failures"] == 1
        assert status["latency"]["get"]["count"] == 2

        # The next call starts a new process, transparently.
        assert provider.get(GOOD).values["g"].value == b"hunter2"
        assert len(spawned) == 2 and spawned[1] != first
        status = provider.status()
        assert (status["state"], status["pid"], status["starts"]) == ("running", spawned[1], 2)
        assert status["latency"]["get"]["count"] == 3  # the stats were kept
        # The breaker too: a failure before the stop and one after open it (threshold 2).
        provider.get(DOWN)
        provider.get(DOWN)
        assert provider.status()["breaker"]["state"] == "open"


def test_a_watched_provider_never_idles_out(spawned: list[int]) -> None:
    with idle_host(0.3) as host:
        provider = host.client("echo")
        provider.watch([SecretRef("w", "db/password")], lambda note: None)
        time.sleep(1.0)
        assert provider.state() == "running" and len(spawned) == 1
        provider.watch([], lambda note: None)  # nothing watched any more: it may idle
        wait_for(lambda: provider.state() == "idle")
        assert process_gone(spawned[0])


def test_idle_timeout_zero_keeps_the_process(spawned: list[int]) -> None:
    with idle_host(0.0) as host:
        provider = host.client("echo")
        provider.ping()
        time.sleep(0.6)
        assert provider.state() == "running" and provider.status()["idle_stops"] == 0


def test_a_call_in_flight_is_never_cut_by_the_idle_stop(spawned: list[int]) -> None:
    """A get that lasts three idle timeouts completes; the stop waits for it."""
    with idle_host(0.3, sleep=1.0) as host:
        provider = host.client("echo")
        provider.ping()
        started = time.monotonic()
        assert provider.get(GOOD).values["g"].value == b"hunter2"
        assert time.monotonic() - started >= 1.0
        assert len(spawned) == 1 and provider.status()["idle_stops"] == 0
        wait_for(lambda: provider.state() == "idle")


def test_calls_racing_the_idle_stop_all_succeed(spawned: list[int]) -> None:
    """Callers pausing around the idle timeout: every call lands on a live process (the one
    in use is never stopped, a stopped one is never handed out), and stops did happen."""
    failures: list[BaseException] = []

    with idle_host(0.05) as host:
        provider = host.client("echo")

        def caller(seed: int) -> None:
            rand = random.Random(seed)
            for _ in range(15):
                try:
                    assert provider.get(GOOD).values["g"].value == b"hunter2"
                except BaseException as exc:
                    failures.append(exc)
                time.sleep(rand.uniform(0.0, 0.12))

        threads = [threading.Thread(target=caller, args=(seed,)) for seed in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        status = provider.status()
    assert failures == []
    assert status["idle_stops"] >= 1 and status["crashes"] == 0
    assert status["latency"]["get"] == {**status["latency"]["get"], "count": 45, "errors": 0}
