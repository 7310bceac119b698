"""Helpers for the extension tests: events, a recording extension, log capture, a receiver.

The receiver is an in-process HTTP server on 127.0.0.1 (a thread, no subprocess) that records
every request and answers with scripted statuses, optionally after a delay.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from kernel import hookimpl
from kernel.extensions import ExtensionManager, Extensions, RotationEvent

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


def make_event(**changes: Any) -> RotationEvent:
    base: dict[str, Any] = {
        "trace_id": TRACE_ID,
        "rotation_id": "r-1",
        "target": "web",
        "strategy": "rolling",
        "step": "plan",
        "project": "shop",
        "old_container": "old123",
        "references": ("dso://vault/app/db#password",),
        "versions": {"dso://vault/app/db#password": "7"},
        "fingerprints": {"dso://vault/app/db#password": "sha256:1f0c2a9b"},
        "started_at": 1_700_000_000.0,
        "occurred_at": 1_700_000_001.5,
    }
    base.update(changes)
    return RotationEvent(**base)


class Recorder:
    """Implements every hook and records (hook, event) calls."""

    def __init__(self, veto: str | None = None) -> None:
        self.calls: list[tuple[str, RotationEvent | None]] = []
        self.veto = veto

    @hookimpl
    def dso_rotation_planned(self, event: RotationEvent) -> None:
        self.calls.append(("dso_rotation_planned", event))

    @hookimpl
    def dso_rotation_started(self, event: RotationEvent) -> None:
        self.calls.append(("dso_rotation_started", event))

    @hookimpl
    def dso_before_swap(self, event: RotationEvent) -> str | None:
        self.calls.append(("dso_before_swap", event))
        return self.veto

    @hookimpl
    def dso_after_swap(self, event: RotationEvent) -> None:
        self.calls.append(("dso_after_swap", event))

    @hookimpl
    def dso_rotation_failed(self, event: RotationEvent) -> None:
        self.calls.append(("dso_rotation_failed", event))

    @hookimpl
    def dso_rotation_rolled_back(self, event: RotationEvent) -> None:
        self.calls.append(("dso_rotation_rolled_back", event))

    @hookimpl
    def dso_rotation_completed(self, event: RotationEvent) -> None:
        self.calls.append(("dso_rotation_completed", event))

    @hookimpl
    def dso_shutdown(self) -> None:
        self.calls.append(("dso_shutdown", None))

    @property
    def hooks(self) -> list[str]:
        return [hook for hook, _ in self.calls]


def facade_with(*plugins: tuple[str, object]) -> Extensions:
    """An :class:`Extensions` with exactly ``plugins`` (name, object) registered."""
    manager = ExtensionManager()
    for name, plugin in plugins:
        assert manager.add(name, plugin, source="test", location="test"), manager.records
    return Extensions(manager)


class Logs(logging.Handler):
    """Collects records of the ``dso`` logger tree (whether or not it propagates)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def text(self) -> str:
        return "\n".join(r.getMessage() + " " + str(vars(r)) for r in self.records)

    def matching(self, fragment: str) -> list[logging.LogRecord]:
        return [r for r in self.records if fragment in r.getMessage()]


@contextmanager
def capture_logs() -> Iterator[Logs]:
    logger = logging.getLogger("dso")
    handler = Logs()
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)


def write_extension(directory: Path, name: str, source: str) -> Path:
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = directory / f"{name}.py"
    path.write_text(source)
    path.chmod(0o644)
    return path


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """A local HTTP receiver: answers ``statuses`` in turn (then 200), after ``delay`` s."""

    statuses: list[int] = field(default_factory=list)
    delay: float = 0.0
    requests: list[Received] = field(default_factory=list)
    arrived: threading.Event = field(default_factory=threading.Event)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}/hooks/dso?x=1"

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while len(self.requests) < count and time.monotonic() < deadline:
            self.arrived.wait(0.05)
            self.arrived.clear()
        return self.requests


@contextmanager
def receiver(statuses: list[int] | None = None, delay: float = 0.0) -> Iterator[Receiver]:
    state = Receiver(list(statuses or []), delay)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if state.delay:
                time.sleep(state.delay)
            state.requests.append(Received(self.path, dict(self.headers.items()), body))
            state.arrived.set()
            status = state.statuses.pop(0) if state.statuses else 200
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.server = server
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
