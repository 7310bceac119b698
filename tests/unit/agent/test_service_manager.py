"""sd_notify on the real wire: a datagram socket as NOTIFY_SOCKET, read back here.

What the agent sends at each phase, the watchdog's cadence (half of WATCHDOG_USEC, on the
ticks of the main loop only: a stuck loop sends nothing), WATCHDOG_PID, and no-op without a
socket. The clock is a test clock where timing matters; the messages go through cysystemd and
libsystemd's sd_notify.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from kernel.agent.service_manager import ServiceManager, watchdog_usec


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Listener:
    """A bound AF_UNIX datagram socket: what systemd listens on."""

    def __init__(self) -> None:
        # sun_path holds 108 bytes: pytest's tmp_path can be longer.
        self.dir = Path(tempfile.mkdtemp(prefix="dso-n-"))
        self.path = self.dir / "notify"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(self.path))

    def messages(self, timeout: float = 0.2) -> list[str]:
        """Every datagram that arrived (waiting ``timeout`` for the first)."""
        got = []
        self.sock.settimeout(timeout)
        while True:
            try:
                got.append(self.sock.recv(4096).decode())
            except (TimeoutError, BlockingIOError):
                return got
            self.sock.settimeout(0.01)

    def close(self) -> None:
        self.sock.close()
        self.path.unlink(missing_ok=True)
        self.dir.rmdir()


@pytest.fixture
def listener(monkeypatch: pytest.MonkeyPatch) -> Iterator[Listener]:
    listening = Listener()
    # libsystemd's sd_notify reads the variable from the process environment.
    monkeypatch.setenv("NOTIFY_SOCKET", str(listening.path))
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    try:
        yield listening
    finally:
        listening.close()


def test_without_notify_socket_everything_is_a_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    manager = ServiceManager(environ={"WATCHDOG_USEC": "1000000"})
    assert not manager.enabled and manager.watchdog is None
    manager.ready("serving")
    manager.stopping()
    assert not manager.tick(force=True)
    assert manager.wait_time(1.0) == 1.0


def test_the_phases_of_an_agent_on_the_wire(listener: Listener) -> None:
    manager = ServiceManager()
    assert manager.enabled and manager.watchdog is None
    manager.status("recovering interrupted rotations")
    assert listener.messages() == ["STATUS=recovering interrupted rotations"]
    manager.ready("serving: 2 managed containers")
    assert listener.messages() == ["READY=1", "STATUS=serving: 2 managed containers"]
    manager.status("serving: 2 managed containers")  # unchanged: not sent again
    assert listener.messages(timeout=0.05) == []
    manager.reloading()
    manager.ready("serving: 3 managed containers")
    assert listener.messages() == [
        "RELOADING=1",
        "STATUS=reloading the configuration",
        "READY=1",
        "STATUS=serving: 3 managed containers",
    ]
    manager.stopping()
    assert listener.messages() == ["STOPPING=1", "STATUS=stopping"]


def test_status_text_is_one_line_of_bounded_length(listener: Listener) -> None:
    ServiceManager().status("failed to start:\n  hint: " + "x" * 500)
    (message,) = listener.messages()
    assert "\n" not in message and message.startswith("STATUS=failed to start: hint: xxx")
    assert len(message) == len("STATUS=") + 200


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"WATCHDOG_USEC": "30000000"}, 30_000_000),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "4242"}, 30_000_000),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "4243"}, None),  # another process's
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "x"}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({}, None),
    ],
)
def test_watchdog_enabled_like_sd_watchdog_enabled(
    environ: dict[str, str], expected: int | None
) -> None:
    assert watchdog_usec(environ, 4242) == expected


def test_pings_every_half_of_watchdog_usec_on_the_main_loop_s_ticks(listener: Listener) -> None:
    clock = Clock()
    environ = {**os.environ, "WATCHDOG_USEC": "2000000", "WATCHDOG_PID": str(os.getpid())}
    manager = ServiceManager(environ, clock=clock)
    assert manager.watchdog == 1.0
    manager.ready("serving")
    assert listener.messages() == ["READY=1", "STATUS=serving", "WATCHDOG=1"]
    # The main loop waits at most until the next ping is due.
    assert manager.wait_time(5.0) == 1.0
    clock.now += 0.6
    assert manager.wait_time(5.0) == pytest.approx(0.4)
    manager.heartbeat("serving")
    assert listener.messages(timeout=0.05) == []  # not due yet
    clock.now += 0.4
    manager.heartbeat("serving")
    assert listener.messages() == ["WATCHDOG=1"]
    # The main loop is stuck for 5 s (a reload that hangs): nobody else pings.
    clock.now += 5.0
    assert listener.messages(timeout=0.3) == []
    # Back: one ping at once, then the cadence again.
    manager.heartbeat("serving")
    assert listener.messages() == ["WATCHDOG=1"]
    assert manager.wait_time(5.0) == 1.0


def test_a_dead_worker_thread_stops_the_pings(listener: Listener) -> None:
    clock = Clock()
    manager = ServiceManager({**os.environ, "WATCHDOG_USEC": "2000000"}, clock=clock)
    manager.ready("serving")
    listener.messages()
    for _ in range(3):
        clock.now += 1.0
        manager.heartbeat("serving", "the rotation scheduler thread died")
    assert listener.messages() == ["STATUS=failing: the rotation scheduler thread died"]


def test_without_a_socket_only_the_status_is_lost_never_the_loop(listener: Listener) -> None:
    said: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            said.append(record)

    handler = Keep()
    logger = logging.getLogger("dso.agent.systemd")
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)  # whatever an earlier test left on "dso"
    try:
        manager = ServiceManager({**os.environ, "WATCHDOG_USEC": "2000000"})
        listener.close()  # systemd went away (or the path is wrong)
        listener.dir.mkdir()  # for the fixture's cleanup
        manager.ready("serving")
        manager.tick(force=True)
        manager.stopping()
    finally:
        logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)
    (failure,) = [r.getMessage() for r in said if "sd_notify" in r.getMessage()]  # said once
    assert str(listener.path) in failure


def test_without_cysystemd_it_says_why_systemd_will_time_out(
    listener: Listener, monkeypatch: pytest.MonkeyPatch
) -> None:
    said: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            said.append(record.getMessage())

    handler = Keep()
    logger = logging.getLogger("dso.agent.systemd")
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)
    monkeypatch.setitem(sys.modules, "cysystemd", None)  # import cysystemd → ImportError
    try:
        manager = ServiceManager()
        manager.ready("serving")
    finally:
        logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)
    assert not manager.enabled
    assert listener.messages(timeout=0.05) == []
    (message,) = said
    assert "cysystemd cannot be imported" in message and "READY=1" in message
