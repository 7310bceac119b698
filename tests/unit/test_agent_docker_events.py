"""kernel.agent.docker_events: delivery, filtering, reconnection with since=, dedupe, stop.

A fake client plays scripted sessions: each connection yields some events, then fails, ends or
blocks until ``close()`` (as a real ``/events`` response does until its socket is shut down).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import docker.errors
import pytest
import requests
import requests.exceptions

from kernel.agent.docker_events import Backoff, DockerEvent, DockerEvents, WatcherState

BLOCK = "block"
END = "end"


def raw(
    action: str,
    ident: str = "c1",
    *,
    nano: int,
    kind: str = "container",
    **attributes: str,
) -> dict[str, Any]:
    # As the daemon sends them: a volume's attributes carry no name (its ID is the name).
    attrs = {} if kind == "volume" else {"name": f"name-{ident}", "image": "img"}
    attrs.update(attributes)
    return {
        "status": action,
        "id": ident,
        "Type": kind,
        "Action": action,
        "Actor": {"ID": ident, "Attributes": attrs},
        "scope": "local",
        "time": nano // 10**9,
        "timeNano": nano,
    }


class FakeStream:
    """Yields ``items`` then fails (an exception), ends, or blocks until closed."""

    def __init__(self, items: list[dict[str, Any]], end: object, blocking: threading.Event):
        self.items = items
        self.end = end
        self.blocking = blocking
        self.closed = threading.Event()

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for item in self.items:
            if self.closed.is_set():
                return
            yield item
        if isinstance(self.end, BaseException):
            raise self.end
        if self.end == BLOCK:
            self.blocking.set()
            self.closed.wait(30)

    def close(self) -> None:
        self.closed.set()


class FakeClient:
    def __init__(self, session: Any, fake: FakeDocker) -> None:
        self.session = session
        self.fake = fake
        self.closed = False
        self.stream: FakeStream | None = None

    def events(self, **kwargs: Any) -> FakeStream:
        self.fake.calls.append(kwargs)
        if isinstance(self.session, BaseException):
            raise self.session
        items, end = self.session
        self.stream = FakeStream(items, end, self.fake.blocking)
        return self.stream

    def close(self) -> None:
        self.closed = True


class FakeDocker:
    """``connect`` for DockerEvents; each call plays the next scripted session.

    A session is ``(events, end)``; an exception instead fails ``connect`` itself, and
    ``("events", exc)`` makes ``client.events()`` raise.
    """

    def __init__(self, *sessions: Any) -> None:
        self.sessions = list(sessions)
        self.calls: list[dict[str, Any]] = []
        self.clients: list[FakeClient] = []
        self.blocking = threading.Event()

    def connect(self) -> Any:
        session = self.sessions.pop(0) if self.sessions else ([], BLOCK)
        if isinstance(session, BaseException):
            raise session
        if isinstance(session, tuple) and session[0] == "events":
            client = FakeClient(session[1], self)
        else:
            client = FakeClient(session, self)
        self.clients.append(client)
        return client


class Recorder:
    """Collects what the callbacks saw, in one ordered list."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, ...]] = []
        self.events: list[DockerEvent] = []

    def on_event(self, event: DockerEvent) -> None:
        self.events.append(event)
        self.seen.append((event.type, event.action, event.id))

    def on_reconnect(self) -> None:
        self.seen.append(("reconnect",))


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


def wait_until(predicate: Callable[[], object], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.005)


def watcher(
    fake: FakeDocker,
    recorder: Recorder,
    sleeps: list[float],
    **kwargs: Any,
) -> DockerEvents:
    kwargs.setdefault("backoff", Backoff(jitter=0.0))
    kwargs.setdefault("sleep", sleeps.append)
    return DockerEvents(
        fake.connect, recorder.on_event, recorder.on_reconnect, clock=lambda: 1234.5, **kwargs
    )


@pytest.fixture
def running() -> Iterator[list[DockerEvents]]:
    started: list[DockerEvents] = []
    yield started
    for events in started:
        events.stop(timeout=2)


def run_until_blocked(events: DockerEvents, fake: FakeDocker, running: list[DockerEvents]) -> None:
    running.append(events)
    events.start()
    assert fake.blocking.wait(5), "the watcher never reached the blocking session"


S = 10**9


def test_events_delivered_in_order_exec_dropped_filter_at_daemon(
    logs: Logs, running: list[DockerEvents]
) -> None:
    fake = FakeDocker(
        (
            [
                raw("create", nano=1 * S, secretlabel="label-value-xyz"),
                raw("start", nano=2 * S, secretlabel="label-value-xyz"),
                raw("exec_create: sh -c true", nano=3 * S),
                raw("exec_start: sh -c true", nano=3 * S + 1),
                raw("exec_die", nano=3 * S + 2),
                raw("health_status: healthy", nano=4 * S),
                raw("connect", "n1", nano=5 * S, kind="network", container="c1"),
                raw("create", "vol1", nano=6 * S, kind="volume", driver="local"),
                raw("die", nano=7 * S, exitCode="0"),
                raw("stop", nano=8 * S),
                raw("destroy", nano=9 * S),
            ],
            BLOCK,
        )
    )
    recorder = Recorder()
    events = watcher(fake, recorder, [])

    run_until_blocked(events, fake, running)

    assert recorder.seen == [
        ("container", "create", "c1"),
        ("container", "start", "c1"),
        ("container", "health_status: healthy", "c1"),
        ("network", "connect", "n1"),
        ("volume", "create", "vol1"),
        ("container", "die", "c1"),
        ("container", "stop", "c1"),
        ("container", "destroy", "c1"),
    ]
    assert fake.calls == [
        {"decode": True, "filters": {"type": ["container", "network", "volume"]}, "since": None}
    ]
    start = recorder.events[1]
    assert (start.name, start.time, start.time_nano) == ("name-c1", 2.0, 2 * S)
    assert start.labels["secretlabel"] == "label-value-xyz"
    assert recorder.events[2].health == "healthy"
    assert recorder.events[4].name == "vol1"
    assert events.connected and events.alive and events.state is WatcherState.CONNECTED
    assert events.last_event_at == 1234.5
    assert logs.messages(logging.INFO) == ["Event watcher started"]
    # Attributes (container labels) are logged at DEBUG only.
    loud = [r for r in logs.records if r.levelno >= logging.INFO]
    assert not any("label-value-xyz" in r.getMessage() + str(vars(r)) for r in loud)
    assert any("label-value-xyz" in str(vars(r)) for r in logs.records)


def test_lost_daemon_reconnects_with_backoff_since_and_drops_replayed_duplicates(
    logs: Logs, running: list[DockerEvents]
) -> None:
    lost = requests.exceptions.ConnectionError("Connection aborted")
    fake = FakeDocker(
        ([raw("start", nano=1 * S), raw("die", nano=2 * S + 5)], lost),
        ConnectionError("refused"),  # daemon still down: three attempts fail
        FileNotFoundError("/var/run/docker.sock"),
        ("events", docker.errors.APIError("x", response=_response(500), explanation="starting")),
        # Back: the daemon replays since the last event (inclusive), then new ones.
        ([raw("die", nano=2 * S + 5), raw("start", "c2", nano=3 * S)], BLOCK),
    )
    recorder = Recorder()
    sleeps: list[float] = []
    events = watcher(fake, recorder, sleeps)

    run_until_blocked(events, fake, running)

    assert recorder.seen == [
        ("container", "start", "c1"),
        ("container", "die", "c1"),
        ("reconnect",),
        ("container", "start", "c2"),
    ]
    assert sleeps == [0.5, 1.0, 2.0, 4.0]
    assert [call["since"] for call in fake.calls] == [None, "2.000000005", "2.000000005"]
    assert logs.messages(logging.WARNING) == ["Docker event stream lost, reconnecting..."]
    assert logs.messages(logging.INFO) == ["Event watcher started", "Event watcher started"]
    # Every failed attempt's reason is translated to dso's words (DEBUG), nothing foreign.
    debug = "\n".join(logs.messages(logging.DEBUG))
    assert "the Docker daemon does not answer" in debug
    assert "subscribing to Docker events: starting" in debug
    assert all(client.closed for client in fake.clients[:-1])


def test_each_outage_warns_once_and_calls_on_reconnect_once(
    logs: Logs, running: list[DockerEvents]
) -> None:
    fake = FakeDocker(
        ([raw("start", nano=1 * S)], END),  # the stream just ends (daemon stopped)
        ([raw("start", nano=1 * S), raw("stop", nano=2 * S)], END),
        ConnectionError("refused"),
        ([raw("start", nano=3 * S)], BLOCK),
    )
    recorder = Recorder()
    sleeps: list[float] = []
    events = watcher(fake, recorder, sleeps)

    run_until_blocked(events, fake, running)

    assert recorder.seen == [
        ("container", "start", "c1"),
        ("reconnect",),
        ("container", "stop", "c1"),
        ("reconnect",),
        ("container", "start", "c1"),
    ]
    # The backoff starts over after each successful connection.
    assert sleeps == [0.5, 0.5, 1.0]
    assert logs.messages(logging.WARNING) == ["Docker event stream lost, reconnecting..."] * 2


def test_daemon_down_at_start_no_on_reconnect_for_the_first_connection(
    logs: Logs, running: list[DockerEvents]
) -> None:
    fake = FakeDocker(ConnectionError("refused"), ConnectionError("refused"), ([], BLOCK))
    recorder = Recorder()
    events = watcher(fake, recorder, [])

    run_until_blocked(events, fake, running)

    assert recorder.seen == []
    assert logs.messages(logging.WARNING) == ["Docker event stream not connected, retrying..."]
    assert logs.messages(logging.INFO) == ["Event watcher started"]
    assert [call["since"] for call in fake.calls] == [None]


def test_a_failing_handler_is_logged_and_the_watcher_goes_on(
    logs: Logs, running: list[DockerEvents]
) -> None:
    fake = FakeDocker(([raw("start", nano=1 * S), raw("stop", nano=2 * S)], BLOCK))
    seen: list[str] = []

    def on_event(event: DockerEvent) -> None:
        seen.append(event.action)
        if event.action == "start":
            raise RuntimeError("handler bug")

    def on_reconnect() -> None:
        raise AssertionError("not at the first connection")

    events = DockerEvents(fake.connect, on_event, on_reconnect, sleep=lambda _s: None)
    run_until_blocked(events, fake, running)

    assert seen == ["start", "stop"]
    errors = [r for r in logs.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and errors[0].exc_info is not None
    assert "start" in errors[0].getMessage() and "name-c1" in errors[0].getMessage()
    assert events.alive


def test_stop_returns_promptly_while_the_stream_blocks(running: list[DockerEvents]) -> None:
    fake = FakeDocker(([raw("start", nano=1 * S)], BLOCK))
    events = watcher(fake, Recorder(), [])
    run_until_blocked(events, fake, running)
    assert events.alive and events.connected

    began = time.monotonic()
    assert events.stop(timeout=5)
    elapsed = time.monotonic() - began

    assert elapsed < 1.0
    assert fake.clients[0].stream is not None and fake.clients[0].stream.closed.is_set()
    assert fake.clients[0].closed
    assert not events.alive and not events.connected
    assert events.state is WatcherState.STOPPED


def test_stop_interrupts_the_backoff_wait() -> None:
    fake = FakeDocker(*[ConnectionError("refused")] * 5)
    attempts = threading.Event()
    original = fake.connect

    def connect() -> Any:
        attempts.set()
        return original()

    events = DockerEvents(
        connect, lambda _e: None, lambda: None, backoff=Backoff(initial=20, maximum=20)
    )
    events.start()
    assert attempts.wait(5)
    wait_until(lambda: events.state is WatcherState.BACKOFF)
    assert events.alive and not events.connected

    began = time.monotonic()
    assert events.stop(timeout=5)
    assert time.monotonic() - began < 1.0
    assert not events.alive


def test_start_twice_is_refused(running: list[DockerEvents]) -> None:
    fake = FakeDocker()
    events = watcher(fake, Recorder(), [])
    run_until_blocked(events, fake, running)
    with pytest.raises(RuntimeError):
        events.start()


@pytest.mark.parametrize(
    ("attempt", "rand", "expected"),
    [
        (0, 0.0, 0.5),
        (1, 0.0, 1.0),
        (5, 0.0, 16.0),
        (6, 0.0, 30.0),
        (10_000, 0.0, 30.0),
        (0, 0.999, 0.5 * (1 - 0.2 * 0.999)),
        (10_000, 0.5, 27.0),
    ],
)
def test_backoff_delays(attempt: int, rand: float, expected: float) -> None:
    assert Backoff().delay(attempt, rand) == pytest.approx(expected)


@pytest.mark.parametrize(
    "kwargs",
    [{"initial": 0}, {"initial": 5, "maximum": 1}, {"factor": 0.5}, {"jitter": 1.0}],
)
def test_backoff_rejects_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Backoff(**kwargs)


def test_event_from_raw() -> None:
    unhealthy = DockerEvent.from_raw(raw("health_status: unhealthy", nano=7 * S + 1))
    assert unhealthy is not None and unhealthy.health == "unhealthy"
    assert unhealthy.key == (7 * S + 1, "c1", "health_status: unhealthy")
    start = DockerEvent.from_raw(raw("start", nano=S))
    assert start is not None and start.health is None
    legacy = {"Type": "container", "Action": "start", "Actor": {"ID": "c9"}, "time": 12}
    event = DockerEvent.from_raw(legacy)
    assert event is not None and (event.time_nano, event.name, dict(event.labels)) == (
        12 * S,
        "",
        {},
    )
    assert DockerEvent.from_raw(raw("pull", nano=S, kind="image")) is None
    assert DockerEvent.from_raw(raw("exec_die", nano=S)) is None


def _response(status: int) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response.url = "http+docker://localhost/v1.41/events"
    response.reason = "reason"
    return response
