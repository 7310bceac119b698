"""Helpers of the provider host's integration tests: commands for the fake providers, and
assertions that a provider process is gone (reaped, its process group empty)."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kernel.config import BreakerConfig, Config, ProviderConfig
from kernel.provider_host import ProviderClient, ProviderCommand

REPO = Path(__file__).resolve().parents[2]
ECHO = REPO / "tests" / "fakes" / "echo_provider.py"
MISBEHAVING = REPO / "tests" / "fakes" / "misbehaving_provider.py"
SECRETS = {
    "db/password": "hunter2",
    "db/creds": {"fields": {"user": "admin"}, "version": "7"},
}


def echo_command(name: str = "echo") -> ProviderCommand:
    return ProviderCommand(name, (sys.executable, str(ECHO)), "path")


def fake_command(name: str = "fake") -> ProviderCommand:
    return ProviderCommand(
        name, (sys.executable, str(MISBEHAVING)), "path", env_allow=("DSO_FAKE_MODE", "DSO_FAKE_AT")
    )


def fake_env(mode: str, **extra: str) -> dict[str, str]:
    env = dict(os.environ, DSO_FAKE_MODE=mode)
    env.update(extra)
    return env


def config_with(
    name: str,
    *,
    settings: dict[str, object] | None = None,
    timeout: float = 5.0,
    threshold: int = 5,
    cooldown: float = 30.0,
    idle_timeout: float = 0.0,
) -> Config:
    provider = ProviderConfig(
        name=name,
        type=name,
        timeout=timeout,
        idle_timeout=idle_timeout,
        breaker=BreakerConfig(failure_threshold=threshold, cooldown=cooldown),
        settings=settings or {},
    )
    return Config(providers={name: provider})


def process_gone(pid: int, timeout: float = 5.0) -> bool:
    """True once ``pid`` no longer runs (absent, or a zombie someone else must reap)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.02)
    return False


def assert_reaped(pid: int, timeout: float = 5.0) -> None:
    """Our child ``pid`` was reaped by the host (no zombie) and its process group is empty.

    The host reaps from its own thread, a moment after the exit it reports: wait for the zombie
    to go (``waitpid`` here would reap it in the host's place and hide a leak) before checking.
    """
    end = time.monotonic() + timeout
    while Path(f"/proc/{pid}").exists() and time.monotonic() < end:
        time.sleep(0.02)
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
    assert not Path(f"/proc/{pid}").exists(), f"process {pid} is still there"
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)


@contextlib.contextmanager
def started(command: ProviderCommand, **kwargs: object) -> Iterator[ProviderClient]:
    """A started client, closed (and asserted reaped) afterwards."""
    client = ProviderClient.start(command, **kwargs)  # type: ignore[arg-type]
    try:
        yield client
    finally:
        client.close(grace=1.0)
        assert_reaped(client.pid)


@pytest.fixture
def spawned(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Records the pid of every provider process the test starts; at the end each must have
    been reaped by the host (the test closes what it started)."""
    from kernel.provider_host import ProviderProcess

    pids: list[int] = []
    original = ProviderProcess.spawn.__func__  # type: ignore[attr-defined]

    def spawn(cls: type[ProviderProcess], *args: object, **kwargs: object) -> ProviderProcess:
        process: ProviderProcess = original(cls, *args, **kwargs)
        pids.append(process.pid)
        return process

    monkeypatch.setattr(ProviderProcess, "spawn", classmethod(spawn))
    yield pids
    for pid in pids:
        assert_reaped(pid)
