"""ProviderHost supervising real provider processes: lazy start, restart with backoff after a
crash (watch re-established), the circuit breaker's whole cycle, status for --json."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from kernel.config import Config
from kernel.errors import (
    ProviderNotFoundError,
    ProviderTimeoutError,
    ProviderUnavailableError,
)
from kernel.paths import local_layout
from kernel.protocol import Changed, SecretRef
from kernel.provider_host import Backoff, ProviderHost
from kernel.secret_value import SecretValue
from kernel.vault import KeySource, Vault, create_key_file
from tests.integration.provider_host_support import (
    SECRETS,
    assert_reaped,
    config_with,
    echo_command,
    spawned,
)

pytestmark = pytest.mark.integration
__all__ = ["spawned"]

GOOD = [SecretRef("g", "db/password")]
DOWN = [SecretRef("d", "down")]


def echo_host(
    *,
    settings: dict[str, object] | None = None,
    timeout: float = 5.0,
    threshold: int = 5,
    cooldown: float = 30.0,
    backoff: Backoff | None = None,
) -> ProviderHost:
    config = config_with(
        "echo",
        settings={"secrets": SECRETS} if settings is None else settings,
        timeout=timeout,
        threshold=threshold,
        cooldown=cooldown,
    )
    return ProviderHost(
        config,
        local_layout(),
        commands={"echo": echo_command()},
        backoff=backoff or Backoff(initial=0.3, factor=2.0, jitter=0.0),
    )


def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(0.01)
    raise AssertionError("condition not reached")


def test_lazy_start_and_status_is_json(spawned: list[int]) -> None:
    with echo_host() as host:
        provider = host.client("echo")
        assert spawned == [] and provider.state() == "stopped"
        assert provider.get(GOOD).values["g"].value == b"hunter2"
        assert host.client("echo") is provider
        status = json.loads(json.dumps(host.status()))["providers"]["echo"]
        assert status["state"] == "running" and status["pid"] == spawned[0]
        assert status["capabilities"] == ["get", "list", "versions", "watch"]
        assert status["breaker"]["state"] == "closed"
        assert set(status["latency"]["get"]) == {
            "count",
            "errors",
            "min_ms",
            "max_ms",
            "avg_ms",
            "p95_ms",
        }
        assert status["latency"]["get"]["count"] == 1
    assert provider.state() == "closed"
    with pytest.raises(ProviderUnavailableError):
        provider.ping()
    with pytest.raises(ProviderUnavailableError):
        host.client("echo")


def test_unknown_provider_names_what_is_configured() -> None:
    with echo_host() as host, pytest.raises(ProviderNotFoundError) as info:
        host.client("nope")
    assert "no provider 'nope' is configured (configured: echo)" in str(info.value)


def test_restart_with_backoff_after_a_crash_and_watch_resumes(spawned: list[int]) -> None:
    changed = threading.Event()

    def on_changed(notice: Changed) -> None:
        if notice.refs == ("w",):
            changed.set()

    with echo_host() as host:
        provider = host.client("echo")
        provider.watch([SecretRef("w", "db/password")], on_changed)
        first = spawned[0]
        crashed_at = time.monotonic()
        os.kill(first, signal.SIGKILL)
        wait_for(lambda: len(spawned) == 2 and provider.state() == "running")
        assert time.monotonic() - crashed_at >= 0.28  # the first backoff step
        assert_reaped(first)
        status = provider.status()
        assert (status["starts"], status["crashes"]) == (2, 1)
        assert status["last_exit"] == "was killed by SIGKILL"
        assert status["restart_delay"] == 0.3
        # the watch was re-established on the new process
        client = provider.client
        assert client is not None
        client.configure({"secrets": {**SECRETS, "db/password": "rotated"}})
        assert changed.wait(5)
        # a second crash soon after waits twice as long
        os.kill(spawned[1], signal.SIGKILL)
        wait_for(lambda: provider.status()["crashes"] == 2)
        assert provider.status()["restart_delay"] == 0.6
        wait_for(lambda: len(spawned) == 3 and provider.state() == "running")


def test_a_call_waits_out_a_short_backoff(spawned: list[int]) -> None:
    with echo_host() as host:
        provider = host.client("echo")
        provider.ping()
        os.kill(spawned[0], signal.SIGKILL)
        wait_for(lambda: provider.state() == "restarting")
        assert provider.get(GOOD, timeout=5).values["g"].value == b"hunter2"
        assert len(spawned) == 2


def test_a_call_during_a_long_backoff_fails_fast(spawned: list[int]) -> None:
    with echo_host(backoff=Backoff(initial=30, jitter=0.0)) as host:
        provider = host.client("echo")
        provider.ping()
        os.kill(spawned[0], signal.SIGKILL)
        wait_for(lambda: provider.state() == "restarting")
        began = time.monotonic()
        with pytest.raises(ProviderUnavailableError) as info:
            provider.ping(timeout=1.0)
        assert time.monotonic() - began < 0.5
        assert str(info.value).startswith("provider 'echo': was killed by SIGKILL; restarting in 3")
        assert provider.breaker.consecutive_failures == 1  # the crash, counted once


def test_breaker_opens_half_opens_and_closes(spawned: list[int]) -> None:
    settings = {"secrets": SECRETS, "errors": {"down": "unavailable"}}
    with echo_host(settings=settings, threshold=3, cooldown=0.4) as host:
        provider = host.client("echo")
        for _ in range(3):
            assert provider.get(DOWN).errors["d"].code == "unavailable"
        assert provider.breaker.state == "open"
        with pytest.raises(ProviderUnavailableError) as info:
            provider.get(GOOD)
        assert "circuit breaker open after 3 consecutive failures" in str(info.value)
        assert "(last: unavailable: down: configured to fail with unavailable)" in str(info.value)
        time.sleep(0.45)
        provider.get(DOWN)  # the trial fails: open again
        assert provider.breaker.state == "open"
        time.sleep(0.45)
        assert provider.get(GOOD).values["g"].value == b"hunter2"  # the trial succeeds
        assert provider.breaker.state == "closed"
        status = host.status()["providers"]["echo"]["breaker"]
        assert (status["state"], status["trips"], status["consecutive_failures"]) == (
            "closed",
            2,
            0,
        )
        assert len(spawned) == 1  # a breaker never restarts a healthy process


def test_timeouts_open_the_breaker_and_healthy_errors_do_not(spawned: list[int]) -> None:
    settings = {"secrets": SECRETS, "sleep": 0.5}
    with echo_host(settings=settings, timeout=0.1, threshold=2) as host:
        provider = host.client("echo")
        for _ in range(5):  # not_found is a healthy answer
            with pytest.raises(ProviderTimeoutError):
                provider.get([SecretRef("m", "missing")], timeout=0.1)
            if provider.breaker.state == "open":
                break
        assert provider.breaker.state == "open"
        assert provider.status()["latency"]["get"]["errors"] == 2
    with echo_host(threshold=2) as host:
        provider = host.client("echo")
        for _ in range(5):
            assert provider.get([SecretRef("m", "missing")]).errors["m"].code == "not_found"
        assert provider.breaker.state == "closed"


def test_the_local_provider_exists_without_configuration(tmp_path: Path) -> None:
    layout = local_layout(tmp_path / "dso")
    layout.root.mkdir()
    create_key_file(layout.vault_key)
    vault = Vault.create(layout.vault, KeySource.from_env(layout.vault_key, environ={}))
    vault.set_many({"app/db_password": SecretValue(b"from-the-vault")})
    with ProviderHost(Config.default(), layout, environ={"PATH": os.environ["PATH"]}) as host:
        assert host.names() == ["local"]
        local = host.client()
        result = local.get([SecretRef("x", "app/db_password")])
        assert result.values["x"].value == b"from-the-vault"
        assert local.status()["origin"] == "source"


def test_warm_starts_the_process_before_the_first_call(spawned: list[int]) -> None:
    with echo_host() as host:
        provider = host.client("echo")
        provider.warm()
        assert provider.state() == "running" and len(spawned) == 1
        provider.warm()  # once only
        assert provider.get(GOOD).values["g"].value == b"hunter2"
        assert len(spawned) == 1
