"""Every mode of tests/fakes/misbehaving_provider.py against the real host: the error the user
sees names the provider and the defect, and no process is left behind (each pid reaped, its
process group empty). Supervision outcomes (breaker, restart) are asserted through
ProviderHost where the mode allows a start."""

from __future__ import annotations

import contextlib
import logging
import threading
import time

import pytest

from kernel.errors import (
    ProtocolError,
    ProviderError,
    ProviderStartError,
    ProviderTimeoutError,
    ProviderUnavailableError,
)
from kernel.paths import local_layout
from kernel.protocol import SecretRef
from kernel.provider_host import Backoff, ProviderClient, ProviderHost
from tests.integration.provider_host_support import (
    assert_reaped,
    config_with,
    fake_command,
    fake_env,
    spawned,
)

pytestmark = pytest.mark.integration
__all__ = ["spawned"]

REF = [SecretRef("r", "app/db")]
TOO_BIG = (
    "exceeds the maximum of 16777216 bytes (is something else writing to the provider's stdout?)"
)


def start(mode: str, **kwargs: object) -> ProviderClient:
    env = fake_env(mode, **kwargs.pop("extra_env", {}))  # type: ignore[arg-type]
    return ProviderClient.start(fake_command(), environ=env, **kwargs)  # type: ignore[arg-type]


def host_for(mode: str, *, timeout: float = 5.0, threshold: int = 5, **extra: str) -> ProviderHost:
    return ProviderHost(
        config_with("fake", timeout=timeout, threshold=threshold, cooldown=60),
        local_layout(),
        commands={"fake": fake_command()},
        environ=fake_env(mode, **extra),
        start_timeout=2.0,
        backoff=Backoff(initial=0.1, maximum=0.5, jitter=0.0),
    )


def wait_for(predicate: object, timeout: float = 5.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.02)
    raise AssertionError("condition not reached")


def test_bad_cookie(spawned: list[int]) -> None:
    with pytest.raises(ProviderStartError) as info:
        start("bad-cookie")
    assert str(info.value).startswith(
        "provider 'fake': handshake has a wrong or missing magic cookie"
    )
    assert len(spawned) == 1


def test_missing_cookie(spawned: list[int]) -> None:
    with pytest.raises(ProviderStartError, match="wrong or missing magic cookie"):
        start("bad-cookie", extra_env={"DSO_FAKE_COOKIE": ""})


def test_bad_version(spawned: list[int]) -> None:
    with pytest.raises(ProviderStartError) as info:
        start("bad-version")
    assert "provider 'fake':" in str(info.value)
    assert "chose protocol 99, but this dso offers 1" in str(info.value)


def test_no_handshake(spawned: list[int]) -> None:
    began = time.monotonic()
    with pytest.raises(ProviderStartError) as info:
        start("no-handshake", start_timeout=0.5)
    assert time.monotonic() - began < 3
    assert str(info.value).startswith(
        "provider 'fake': did not complete the handshake within 0.5 s"
    )


def test_start_failures_count_for_the_breaker_and_back_off(spawned: list[int]) -> None:
    with host_for("bad-cookie", threshold=2) as host:
        provider = host.client("fake")
        with pytest.raises(ProviderStartError):
            provider.ping()
        status = provider.status()
        assert status["state"] == "restarting"
        assert status["last_exit"].startswith("failed to start: handshake has a wrong")
        assert status["breaker"]["consecutive_failures"] == 1
        time.sleep(0.15)
        with pytest.raises(ProviderStartError):
            provider.ping()
        assert provider.breaker.state == "open"
        with pytest.raises(ProviderUnavailableError, match="circuit breaker open"):
            provider.ping()
    assert len(spawned) == 2


def test_hang_times_out_opens_the_breaker_and_is_still_stopped(spawned: list[int]) -> None:
    with host_for("hang", timeout=0.3, threshold=2) as host:
        provider = host.client("fake")
        with pytest.raises(ProviderTimeoutError) as info:
            provider.ping()  # configure at start times out
        assert str(info.value).startswith(
            "provider 'fake': 'configure' did not answer within 0.3 s"
        )
    with pytest.raises(ProviderTimeoutError, match=r"'ping' did not answer within 0\.3 s"):
        client = start("hang", request_timeout=0.3)
        try:
            client.ping()
        finally:
            began = time.monotonic()
            client.close(grace=0.3)
            assert time.monotonic() - began < 2.0  # ignores shutdown and EOF: SIGTERM ends it


def test_hang_failed_starts_open_the_breaker(spawned: list[int]) -> None:
    host = ProviderHost(
        config_with("fake", timeout=0.2, threshold=3, cooldown=60),
        local_layout(),
        commands={"fake": fake_command()},
        environ=fake_env("hang"),
        backoff=Backoff(initial=0.05, factor=1.0, jitter=0.0),
    )
    with host:
        provider = host.client("fake")
        for _ in range(3):  # each start: the configure request times out
            with pytest.raises(ProviderTimeoutError):
                provider.get(REF)
            time.sleep(0.1)
        status = host.status()["providers"]["fake"]
        assert status["breaker"]["state"] == "open"
        assert status["breaker"]["last_failure"] == "'configure' did not answer within 0.2 s"
        assert status["last_exit"].startswith("failed to start: 'configure' did not answer")
        with pytest.raises(ProviderUnavailableError) as info:
            provider.get(REF)
        assert str(info.value).startswith("provider 'fake': circuit breaker open after 3")
    assert len(spawned) == 3


def test_crash_mid_request_fails_the_call_then_restarts(spawned: list[int]) -> None:
    with host_for("crash-mid-request") as host:
        provider = host.client("fake")
        with pytest.raises(ProviderError) as info:
            provider.get(REF)
        assert str(info.value).startswith(
            "provider 'fake': exited with status 3 while 'get' was in progress"
        )
        first = spawned[0]
        wait_for(lambda: provider.status()["state"] == "running")
        status = provider.status()
        assert status["pid"] != first and status["starts"] == 2 and status["crashes"] == 1
        assert status["last_exit"] == "exited with status 3"
        assert status["breaker"]["consecutive_failures"] == 1
        assert_reaped(first)


@pytest.mark.parametrize(
    ("mode", "claimed"), [("garbage-stdout", 1214606444), ("oversized-frame", 1 << 30)]
)
def test_bad_frames_at_start(spawned: list[int], mode: str, claimed: int) -> None:
    with pytest.raises(ProtocolError) as info:
        start(mode)
    assert str(info.value) == (
        f"provider 'fake': broke the protocol: frame of {claimed} bytes {TOO_BIG}; it was killed"
    )


@pytest.mark.parametrize("mode", ["garbage-stdout", "oversized-frame"])
def test_bad_frames_mid_stream_kill_and_restart(spawned: list[int], mode: str) -> None:
    with host_for(mode, DSO_FAKE_AT="request") as host:
        provider = host.client("fake")
        with pytest.raises(ProtocolError, match="broke the protocol: frame of") as info:
            provider.get(REF)
        assert str(info.value).startswith("provider 'fake':")
        assert_reaped(spawned[0])
        wait_for(lambda: len(spawned) == 2 and provider.status()["state"] == "running")
        assert provider.status()["last_exit"].startswith("broke the protocol")


def test_slow_shutdown_is_escalated_to_sigkill(
    spawned: list[int], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="dso.provider.fake")
    client = start("slow-shutdown", settings={})
    assert client.get(REF).errors["r"].code == "not_found"
    began = time.monotonic()
    assert client.close(grace=0.3) == -9
    assert 0.5 < time.monotonic() - began < 3
    assert any("ignored SIGTERM" in r.getMessage() for r in caplog.records)


def test_stray_print_on_stdout_is_a_protocol_error(spawned: list[int]) -> None:
    with pytest.raises(ProtocolError) as info:
        start("stray-print", settings={})  # the junk arrives before the configure answer
    assert str(info.value).startswith("provider 'fake': broke the protocol: frame of")
    assert TOO_BIG in str(info.value)
    with (
        host_for("stray-print") as host,
        pytest.raises(ProtocolError, match="is something else writing"),
    ):
        host.client("fake").ping()


def test_a_failed_warm_start_is_reported_by_the_first_call_without_backoff(
    spawned: list[int],
) -> None:
    """`docker dso up` warms the default provider while compose reads the project: a start
    that fails then must reach the user as the same error, at once, and start nothing more."""
    with host_for("bad-cookie") as host:
        provider = host.client("fake")
        provider.warm()
        assert provider.state() == "stopped"  # no restart scheduled in the background
        began = time.monotonic()
        with pytest.raises(ProviderStartError, match="handshake has a wrong"):
            provider.ping()
        assert time.monotonic() - began < 0.05
        assert provider.breaker.consecutive_failures == 1
        assert len(spawned) == 1
        with pytest.raises(ProviderStartError):  # the next call starts again, as without warm
            provider.ping()
    assert len(spawned) == 2


def test_status_does_not_wait_for_a_provider_being_started(spawned: list[int]) -> None:
    """A provider slow to answer its handshake holds its supervisor while it starts: status
    (the agent's `status`, `providers`) reports it `starting` at once instead of stalling."""
    host = host_for("no-handshake")
    try:
        caller = threading.Thread(target=lambda: _try_get(host), daemon=True)
        caller.start()
        wait_for(lambda: len(spawned) == 1)
        began = time.monotonic()
        doc = host.status()["providers"]["fake"]
        assert time.monotonic() - began < 1.0
        assert doc["state"] == "starting" and doc["pid"] is None
        caller.join(10)
        assert host.status()["providers"]["fake"]["state"] in ("restarting", "stopped")
    finally:
        host.close()


def _try_get(host: ProviderHost) -> None:
    with contextlib.suppress(ProviderStartError):
        host.client("fake").get(REF)
