"""The real ``dso agent`` as a subprocess on a compose project's DSO_HOME, and its log.

Started with the project's environment, logging at debug to a file the test reads; stopped with
SIGTERM (and asserted to exit 0) or killed by its pid in teardown. Nothing is killed by name.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.compose_support import DSO, ComposeProject

#: Fast settings for tests: a 1 s debounce window, polling every second.
FAST = """\
version: 1
default_provider: local
providers:
  local:
    type: local
agent:
  watch:
    polling_interval: {poll}
    debounce_window: {debounce}
  rotation:
    timeout: 30s
"""


class AgentProcess:
    def __init__(self, project: ComposeProject, log: Path, *args: str) -> None:
        self.project = project
        self.log = log
        self.args = args
        self.proc: subprocess.Popen[bytes] | None = None
        self._offset = 0

    def start(self, *, ready: str = "Event watcher started", timeout: float = 30.0) -> None:
        self._offset = self.log.stat().st_size if self.log.exists() else 0
        out = self.log.open("ab")
        self.proc = subprocess.Popen(
            [DSO, "--log-level", "debug", "agent", *self.args],
            cwd=self.project.dir,
            env=self.project.env,
            stdout=out,
            stderr=out,
            stdin=subprocess.DEVNULL,
        )
        out.close()
        self.wait_for(ready, timeout=timeout)

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def since_start(self) -> str:
        return self.text()[self._offset :]

    def wait_for(self, needle: str, *, timeout: float = 30.0, count: int = 1) -> float:
        """Seconds until ``needle`` appeared ``count`` times in this run's log."""
        started = time.monotonic()
        while self.since_start().count(needle) < count:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"agent exited {self.proc.returncode}:\n{self.since_start()}")
            if time.monotonic() - started > timeout:
                raise AssertionError(f"no {needle!r} after {timeout}s:\n{self.since_start()}")
            time.sleep(0.05)
        return time.monotonic() - started

    def stop(self, timeout: float = 60.0) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=timeout)
        self.proc = None
        return code

    def kill(self) -> None:
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)
            self.proc = None


def serving(name: str) -> str | None:
    """What the test web server in container ``name`` answers (None: nothing)."""
    from tests.integration.rotation_compose_support import exec_in

    return exec_in(name, "wget", "-q", "-O-", "http://127.0.0.1/")


def wait_until(check: Callable[[], object], timeout: float = 30.0) -> float:
    """Seconds until ``check()`` is true (fails the test after ``timeout``)."""
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < timeout, f"timed out waiting for {check}"
        time.sleep(0.05)
    return time.monotonic() - started


def configure(
    project: ComposeProject, *, poll: str = "1h", debounce: str = "1s", **extra: Any
) -> None:
    config = Path(project.env["DSO_HOME"]) / "config.yaml"
    config.write_text(FAST.format(poll=poll, debounce=debounce))
    config.chmod(0o600)


@pytest.fixture
def agent(project: ComposeProject, tmp_path: Path) -> Iterator[Callable[..., AgentProcess]]:
    started: list[AgentProcess] = []

    def make(*args: str) -> AgentProcess:
        process = AgentProcess(project, tmp_path / "agent.log", *args)
        started.append(process)
        return process

    try:
        yield make
    finally:
        for process in started:
            process.kill()
