"""A socket server (kernel/agent/api/server.py) on a stand-in action table, for the unit tests
of the dialects, limits and peers: the server only needs an object with
``handle(Request) -> Answer``; :class:`EchoActions` records the requests and answers each with
what it understood, so a test sees how bytes became a request and how an answer became bytes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from kernel.agent.api.actions import Answer, Request
from kernel.agent.api.peers import Authorizer, Peer
from kernel.agent.api.server import ApiServer
from kernel.agent.bus import EventBus
from kernel.extensions.builtin.audit import AuditLog

READING = {"health", "status", "rotations", "containers", "providers", "metrics", "events"}
MUTATING = {"rotate", "sync", "reload"}
#: Size of the ``big`` action's answer: more than a unix socket's buffers hold.
BIG = 8 * 1024 * 1024


@dataclass
class EchoActions:
    """Answers every known action with what it understood; ``boom`` raises, ``big`` answers
    :data:`BIG` bytes, ``conflict`` is an error with extra fields."""

    bus: EventBus
    requests: list[Request] = field(default_factory=list)

    def handle(self, request: Request) -> Answer:
        self.requests.append(request)
        name = request.action
        if name == "boom":
            raise RuntimeError("a bug in an action")
        if name == "big":
            return Answer(200, {"pad": "x" * BIG})
        if name == "metrics":
            return Answer(200, {"text": "m 1\n"}, "m 1\n", "text/plain; version=0.0.4")
        if name == "events":
            return Answer(200, {"stream": True}, stream=self.bus.stream())
        if name in MUTATING and not request.may_mutate:
            return Answer.error(405, f"{name} changes things: send it as POST", allow="POST")
        if name == "conflict":
            return Answer.error(409, "busy", target="web")
        if name not in READING | MUTATING:
            return Answer.error(404, f"unknown action {name!r}")
        body = {"action": name, "params": request.params, "dialect": request.dialect}
        return Answer(202 if name in MUTATING else 200, body)


class Denying(Authorizer):
    """Refuses everyone (the unit tests run as root, whom the real one always allows)."""

    def allows(self, peer: Peer) -> bool:
        return False


@dataclass
class Served:
    path: Path
    server: ApiServer
    actions: EchoActions
    bus: EventBus
    audit: Path


def serve(tmp_path: Path, authorizer: Authorizer | None = None) -> Served:
    """A started server on ``tmp_path/api.sock`` (stop it with ``.server.stop()``)."""
    bus = EventBus()
    actions = EchoActions(bus)
    audit = tmp_path / "audit.jsonl"
    path = tmp_path / "api.sock"
    server = ApiServer(
        path,
        actions,  # type: ignore[arg-type]  # the server only calls .handle
        authorizer=authorizer,
        bus=bus,
        audit=AuditLog(audit),
    )
    server.start()
    return Served(path, server, actions, bus, audit)


def wait(check: Callable[[], object], timeout: float = 5.0) -> bool:
    """True as soon as ``check()`` is, False after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return False
