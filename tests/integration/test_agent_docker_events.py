"""The agent's Docker events source against the real daemon.

The shared dockerd is never restarted (other tests use it): a lost daemon is simulated by a
small unix-socket proxy in front of it, killed and started again on the same path.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from kernel.agent.docker_events import Backoff, DockerEvent, DockerEvents
from kernel.containers.client import connect
from tests.integration.docker_proxy import UnixProxy, upstream_socket
from tests.integration.rotation_support import LABEL, Scope, scope, wait_for

pytestmark = pytest.mark.integration
__all__ = ["scope"]

#: Seconds within which an event must reach ``on_event`` after what caused it.
LATENCY = 2.0
#: A healthcheck that passes, probed every second.
FAST_HEALTH = {
    "test": ["CMD-SHELL", "exit 0"],
    "interval": 1 * 10**9,
    "timeout": 1 * 10**9,
    "retries": 1,
}


def connect_through(path: Path) -> object:
    """A client talking to the daemon through the proxy at ``path``.

    The Docker SDK leaks its unix socket when ``connect()`` fails (docker/transport/unixconn.py
    does not close it), which pytest reports as an unclosed-socket warning: probe the proxy
    first with a socket closed here, so a dead proxy fails before the SDK is involved.
    """
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.connect(str(path))
    return connect(f"unix://{path}", timeout=10)


class Received:
    """What ``on_event``/``on_reconnect`` saw, with the wall time each event arrived."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.events: list[tuple[float, DockerEvent]] = []
        self.reconnects = 0

    def on_event(self, event: DockerEvent) -> None:
        with self.lock:
            self.events.append((time.time(), event))

    def on_reconnect(self) -> None:
        with self.lock:
            self.reconnects += 1

    def find(
        self, kind: str, action: str, name: str, **attributes: str
    ) -> tuple[float, DockerEvent] | None:
        with self.lock:
            for arrived, event in self.events:
                if (event.type, event.action, event.name) == (kind, action, name) and all(
                    event.labels.get(k) == v for k, v in attributes.items()
                ):
                    return arrived, event
        return None

    def expect(
        self, kind: str, action: str, name: str, within: float = LATENCY, **attrs: str
    ) -> DockerEvent:
        """The event, waited for at most ``within`` seconds from now; checks its latency."""
        arrived, event = wait_for(lambda: self.find(kind, action, name, **attrs), timeout=within)
        # Delivery latency measured from the daemon's own timestamp (same host, same clock).
        assert arrived - event.time < LATENCY, (kind, action, name, arrived - event.time)
        return event

    def keys(self) -> list[tuple[int, str, str]]:
        with self.lock:
            return [event.key for _, event in self.events]


class Logs(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def messages(self, level: int) -> list[str]:
        return [r.getMessage() for r in self.records if r.levelno == level]


@pytest.fixture
def logs() -> Iterator[Logs]:
    logger = logging.getLogger("dso.agent.docker")
    handler = Logs()
    old = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old)


@pytest.fixture
def watch() -> Iterator[Callable[..., tuple[DockerEvents, Received]]]:
    started: list[DockerEvents] = []

    def make(connect_to: Callable[[], object], **kwargs: object) -> tuple[DockerEvents, Received]:
        received = Received()
        events = DockerEvents(
            connect_to,  # type: ignore[arg-type]
            received.on_event,
            received.on_reconnect,
            **kwargs,  # type: ignore[arg-type]
        )
        started.append(events)
        events.start()
        wait_for(lambda: events.connected, timeout=10)
        return events, received

    yield make
    for events in started:
        events.stop(timeout=5)


def assert_stops_fast(events: DockerEvents) -> None:
    began = time.monotonic()
    assert events.stop(timeout=5)
    elapsed = time.monotonic() - began
    assert elapsed < 1.0, elapsed
    assert not events.alive


def test_container_lifecycle_health_network_and_volume_events_arrive(
    scope: Scope, watch: Callable[..., tuple[DockerEvents, Received]], logs: Logs
) -> None:
    events, received = watch(lambda: connect(timeout=10))
    assert logs.messages(logging.INFO) == ["Event watcher started"]

    network = scope.network("net")
    received.expect("network", "create", network)
    volume = scope.volume("vol")
    received.expect("volume", "create", volume)

    container = scope.run(
        "app", ["sleep", "300"], network=network, healthcheck=FAST_HEALTH, labels={"app": "x"}
    )
    name = container.name
    start = received.expect("container", "start", name)
    assert start.id == container.id
    assert start.labels[LABEL] == scope.value and start.labels["app"] == "x"
    received.expect("network", "connect", network, container=container.id)
    # First probe one interval after the start.
    healthy = received.expect("container", "health_status: healthy", name, within=1 + LATENCY)
    assert healthy.health == "healthy"

    container.stop(timeout=5)
    die = received.expect("container", "die", name)
    assert die.labels.get("exitCode") is not None
    received.expect("container", "stop", name)
    container.remove()
    received.expect("container", "destroy", name)
    scope.client.volumes.get(volume).remove()
    received.expect("volume", "destroy", volume)

    # The health probes ran as execs: none reached the agent.
    ours = [event for _, event in received.events if event.name == name]
    assert ours and not any(event.action.startswith("exec_") for event in ours)
    assert received.reconnects == 0
    assert events.last_event_at is not None
    assert_stops_fast(events)


def test_lost_daemon_reconnects_replays_what_happened_meanwhile_without_duplicates(
    scope: Scope, watch: Callable[..., tuple[DockerEvents, Received]], logs: Logs
) -> None:
    upstream = upstream_socket()
    # A short directory: unix socket paths are limited to 107 bytes.
    directory = Path(tempfile.mkdtemp(prefix="dso-ev-"))
    path = directory / "docker.sock"
    proxies = [UnixProxy(path, upstream)]
    try:
        events, received = watch(
            lambda: connect_through(path),
            backoff=Backoff(initial=0.1, maximum=0.3),
        )
        before = scope.run("before", ["sleep", "300"])
        received.expect("container", "start", before.name)

        proxies[0].kill()
        wait_for(lambda: not events.connected, timeout=LATENCY)
        assert events.alive  # backing off, not dead
        # What happens while the daemon is unreachable (through the real socket).
        during = scope.run("during", ["sleep", "300"])
        before.stop(timeout=5)
        # Several attempts fail meanwhile; one WARNING for the outage.
        wait_for(
            lambda: sum("attempt" in m for m in logs.messages(logging.DEBUG)) >= 3,
            timeout=5,
        )
        assert not events.connected and received.reconnects == 0
        assert received.find("container", "start", during.name) is None

        proxies.append(UnixProxy(path, upstream))
        wait_for(lambda: received.reconnects == 1, timeout=LATENCY)
        # Delivered from the daemon's replay (since=): their latency is the outage, so only
        # their arrival within LATENCY of the reconnection is checked here.
        wait_for(lambda: received.find("container", "start", during.name), timeout=LATENCY)
        wait_for(lambda: received.find("container", "die", before.name), timeout=LATENCY)
        # And the live stream goes on.
        during.stop(timeout=5)
        received.expect("container", "die", during.name)

        assert logs.messages(logging.WARNING) == ["Docker event stream lost, reconnecting..."]
        assert logs.messages(logging.INFO) == ["Event watcher started"] * 2
        keys = received.keys()
        assert len(keys) == len(set(keys)), "an event was delivered twice after the replay"
        assert received.reconnects == 1
        assert_stops_fast(events)
    finally:
        for proxy in proxies:
            proxy.kill()
        shutil.rmtree(directory, ignore_errors=True)
        assert not os.path.exists(path)
