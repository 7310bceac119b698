"""ProviderClient against the well-behaved echo provider, as a real child process over real
pipes: handshake, every method, pipelining, host-side deadlines, stderr re-logging, secret
hygiene in logs, and the parent-death signal (no orphan when the kernel is SIGKILLed)."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from kernel.errors import ProviderError, ProviderStartError, ProviderTimeoutError
from kernel.protocol import Capability, Changed, ErrorCode, SecretRef
from kernel.provider_host import ProviderClient, ProviderCommand
from tests.integration.provider_host_support import (
    ECHO,
    REPO,
    SECRETS,
    assert_reaped,
    echo_command,
    process_gone,
    started,
)

pytestmark = pytest.mark.integration


def test_handshake_then_every_method() -> None:
    with started(echo_command(), settings={"secrets": SECRETS}) as client:
        assert (client.handshake.name, client.handshake.protocol) == ("echo", 1)
        assert client.handshake.capabilities == set(Capability)
        assert client.alive
        result = client.get(
            [
                SecretRef("a", "db/password"),
                SecretRef("b", "db/creds", field="user"),
                SecretRef("c", "nope"),
            ]
        )
        assert result.values["a"].value == b"hunter2"
        assert (result.values["b"].value, result.values["b"].version) == (b"admin", "7")
        assert result.errors["c"].code == ErrorCode.NOT_FOUND
        versions = client.versions([SecretRef("a", "db/password"), SecretRef("b", "db/creds")])
        assert versions.versions == {"a": result.values["a"].version, "b": "7"}
        assert client.list_names("db/") == ["db/creds", "db/password"]
        assert 0 < client.ping() < 1.0
        stats = client.stats.snapshot()
        assert {"configure", "get", "versions", "list", "ping"} <= set(stats)
        assert stats["get"].count == 1
    assert client.exit_status == 0
    assert not client.alive


def test_error_answers_raise_the_mapped_exception() -> None:
    settings = {"secrets": SECRETS, "errors": {"down": "unavailable"}}
    with started(echo_command(), settings=settings) as client:
        with pytest.raises(ProviderError, match="provider 'echo': unknown method 'teleport'") as e:
            client.call("teleport", {})
        assert e.value.code == "invalid_request"
        with pytest.raises(ProviderError, match=r"params\.refs must be an array"):
            client.call("get", {"refs": "nope"})
        # per-reference failures stay in the batch answer
        result = client.get([SecretRef("d", "down")])
        assert result.errors["d"].code == ErrorCode.UNAVAILABLE


def test_a_refused_configure_fails_the_start_and_reaps_the_process() -> None:
    with pytest.raises(ProviderError, match=r"settings\.secrets must be a map") as info:
        ProviderClient.start(echo_command(), settings={"secrets": "oops"})
    assert info.value.code == "invalid_request"


def test_pipelining_1000_requests() -> None:
    with started(echo_command(), settings={"secrets": SECRETS}) as client:
        futures = [
            client.submit("versions", {"refs": [{"id": str(i), "path": "db/password"}]})
            for i in range(500)
        ]
        futures += [client.submit("ping", {}) for _ in range(500)]
        results = [future.result(timeout=30) for future in futures]
        version = results[0]["versions"]["0"]
        assert all(r["versions"] == {str(i): version} for i, r in enumerate(results[:500]))
        assert all("time" in r for r in results[500:])
        assert client.stats.snapshot()["ping"].count == 500


def test_host_side_deadline_whatever_the_provider_does() -> None:
    settings = {"secrets": SECRETS, "sleep": 1.0}
    with started(echo_command(), settings=settings) as client:
        started_at = time.monotonic()
        with pytest.raises(ProviderTimeoutError) as info:
            client.get([SecretRef("a", "db/password")], timeout=0.2)
        assert time.monotonic() - started_at < 0.9
        assert str(info.value).startswith("provider 'echo': 'get' did not answer within 0.2 s")
        assert info.value.code == "timeout"
        # The late answer (after 1 s) is ignored; the client keeps working meanwhile.
        assert client.ping() < 0.5
        time.sleep(1.0)
        assert client.alive
        assert client.get([SecretRef("a", "db/password")], timeout=5).values["a"].value == (
            b"hunter2"
        )
        assert client.stats.snapshot()["get"].errors == 1


def test_watch_delivers_changed_notifications() -> None:
    seen: list[Changed] = []
    event = threading.Event()

    def on_changed(changed: Changed) -> None:
        seen.append(changed)
        event.set()

    with started(echo_command(), settings={"secrets": SECRETS}) as client:
        client.watch([SecretRef("w1", "db/password")], on_changed)
        client.configure({"secrets": {**SECRETS, "db/password": "changed"}})
        assert event.wait(5)
        assert seen[0].refs == ("w1",)


def test_unannounced_capability_is_refused_before_sending() -> None:
    with started(echo_command(), settings={"secrets": SECRETS}) as client:
        client.handshake = type(client.handshake)(
            "echo", "1", 1, frozenset({Capability.GET}), "0", client.handshake.cookie
        )
        with pytest.raises(ProviderError, match="does not support 'list'"):
            client.list_names()
        assert "list" not in client.stats.snapshot()


def test_stderr_is_relogged_under_the_provider_name(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with started(echo_command("my-echo"), settings={"secrets": SECRETS}) as client:
        client.get([SecretRef("a", "db/password")])
    records = [r for r in caplog.records if r.name == "dso.provider.my-echo"]
    configured = [r for r in records if r.getMessage() == "configured"]
    assert configured and configured[0].levelno == logging.INFO
    assert configured[0].__dict__["secrets"] == 2
    assert configured[0].__dict__["provider_logger"] == "providers.echo"
    stray = [r for r in records if "stray print" in r.getMessage()]
    assert stray and stray[0].levelno == logging.WARNING  # a print is not a JSON line


def test_a_secret_value_never_reaches_a_log_line(
    caplog: pytest.LogCaptureFixture, canary: str
) -> None:
    caplog.set_level(logging.DEBUG)
    settings = {"secrets": {"app/token": canary}, "crash_message": f"crash {canary}"}
    with started(echo_command(), settings=settings, log_level="debug") as client:
        result = client.get([SecretRef("t", "app/token"), SecretRef("c", "crash")])
        assert result.values["t"].value == canary.encode()
        assert canary not in repr(result)
        assert result.errors["c"].code == ErrorCode.INTERNAL
        client.versions([SecretRef("t", "app/token")])
    assert any(r.name == "dso.provider.echo" for r in caplog.records)
    for record in caplog.records:
        assert canary not in record.getMessage()
        assert canary not in str(record.__dict__)


def test_spawning_from_a_short_lived_thread_does_not_kill_the_provider() -> None:
    # Linux sends the parent-death signal when the *thread* that forked exits.
    box: list[ProviderClient] = []
    thread = threading.Thread(target=lambda: box.append(ProviderClient.start(echo_command())))
    thread.start()
    thread.join()
    client = box[0]
    try:
        time.sleep(0.2)
        assert client.alive
        assert client.ping() < 1.0
    finally:
        client.close()
    assert_reaped(client.pid)


HOST_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from kernel.provider_host import ProviderClient, ProviderCommand
    client = ProviderClient.start(ProviderCommand("echo", (sys.executable, sys.argv[1]), "path"))
    print(client.pid, flush=True)
    time.sleep(120)
    """
)


def test_no_orphan_when_the_kernel_is_killed(tmp_path: Path) -> None:
    host = subprocess.Popen(
        [sys.executable, "-c", HOST_SCRIPT, str(ECHO)],
        stdout=subprocess.PIPE,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        assert host.stdout is not None
        provider_pid = int(host.stdout.readline())
        assert not process_gone(provider_pid, timeout=0.2)
        os.kill(host.pid, signal.SIGKILL)
        host.wait(10)
        assert process_gone(provider_pid), "the provider outlived the kernel"
    finally:
        if host.poll() is None:
            host.kill()
            host.wait()
        if host.stdout is not None:
            host.stdout.close()


def test_close_is_idempotent_and_stops_with_status_0() -> None:
    client = ProviderClient.start(echo_command(), settings={})
    assert client.close() == 0
    assert client.close() == 0
    assert_reaped(client.pid)
    future = client.submit("ping", {})
    with pytest.raises(ProviderError, match="is not running, cannot send 'ping'"):
        future.result(1)


def test_command_from_source_with_its_own_pythonpath() -> None:
    command = ProviderCommand(
        "echo",
        (sys.executable, "-m", "tests.fakes.echo_provider"),
        "source",
        env_set=(("PYTHONPATH", str(REPO)),),
    )
    with started(command) as client:
        assert client.handshake.name == "echo"


def test_a_program_that_exits_at_once_fails_fast_with_its_last_log_line() -> None:
    # The process may be gone before the client has even stored it: 20 tries hit that race.
    command = ProviderCommand(
        "quick", ("/bin/sh", "-c", "echo 'no such library' >&2; exit 1"), "path"
    )
    for _ in range(20):
        began = time.monotonic()
        with pytest.raises(ProviderStartError) as info:
            ProviderClient.start(command, start_timeout=5.0)
        assert time.monotonic() - began < 2.0
        assert str(info.value) == (
            "provider 'quick': exited with status 1 before completing the handshake;"
            " its last log line: no such library"
        )
