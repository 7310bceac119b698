"""``agent.socket`` and ``agent.health`` against a stand-in agent on a real unix socket."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from kernel import __version__
from kernel.doctor import Status
from kernel.paths import Layout
from tests.unit.doctor_support import check, home, make_context

__all__ = ["home"]


class StandIn:
    """Answers one JSON line per connection from ``answers`` (action → answer document)."""

    def __init__(self, layout: Layout, answers: dict[str, dict[str, Any]]) -> None:
        self.answers = answers
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(layout.socket))
        layout.socket.chmod(0o660)  # as the agent makes it
        self.sock.listen(8)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn, conn.makefile("rb") as reader:
                line = reader.readline()
                if not line:
                    continue
                action = json.loads(line)["action"]
                conn.sendall(json.dumps(self.answers[action]).encode() + b"\n")

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self.thread.join(5)


@pytest.fixture
def stand_in(home: Layout) -> Iterator[Any]:
    made: list[StandIn] = []

    def start(answers: dict[str, dict[str, Any]]) -> StandIn:
        made.append(StandIn(home, answers))
        return made[-1]

    yield start
    for agent in made:
        agent.close()


def _health(live: bool = True, version: str = __version__) -> dict[str, Any]:
    body = {"live": live, "problems": [], "version": version, "pid": 4242, "uptime_seconds": 75}
    if live:
        return {"ok": True, "status": 200, "action": "health", "result": body}
    return {"ok": False, "status": 503, "action": "health", "error": "failed", "result": body}


def test_no_agent_fails_both_checks_with_how_to_start_it(home: Layout) -> None:
    ctx = make_context(home)
    status, finding, detail, fix = check(ctx, "agent.socket")
    assert status is Status.FAIL
    assert finding == f"no agent socket at {home.socket}: the agent is not running"
    assert "instance lock" in detail
    assert "docker dso agent" in fix
    status, finding, _, fix = check(ctx, "agent.health")
    assert (status, finding) == (Status.FAIL, "no agent answers: it is not running")
    assert "docker dso agent" in fix


def test_a_stale_socket_file_fails_as_nothing_listening(home: Layout) -> None:
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(home.socket))
    dead.close()  # the file stays; nothing listens (an agent killed with -9)
    status, finding, _, fix = check(make_context(home), "agent.socket")
    assert status is Status.FAIL
    assert "nothing answers" in finding and "stale socket" in finding
    assert "docker dso agent" in fix


def test_something_else_at_the_socket_path_fails(home: Layout) -> None:
    home.socket.write_text("not a socket")
    status, finding, _, fix = check(make_context(home), "agent.socket")
    assert (status, finding) == (Status.FAIL, f"{home.socket} is not a socket")
    assert f"mv {home.socket}" in fix


def test_a_live_agent_passes_both(home: Layout, stand_in: Any) -> None:
    stand_in({"health": _health()})
    ctx = make_context(home)
    status, finding, _, _ = check(ctx, "agent.socket")
    assert status is Status.OK and finding.startswith(f"{home.socket} accepts connections")
    status, finding, _, _ = check(ctx, "agent.health")
    assert (status, finding) == (
        Status.OK,
        f"the agent (pid 4242, version {__version__}) is live, up 75 s",
    )


def test_a_socket_every_user_may_open_is_a_warning(home: Layout, stand_in: Any) -> None:
    stand_in({"health": _health()})
    home.socket.chmod(0o666)
    status, finding, _, fix = check(make_context(home), "agent.socket")
    assert status is Status.WARN
    assert finding.startswith(f"{home.socket} accepts connections from every user (mode 0666")
    assert "0660" in fix


def test_an_agent_that_is_not_live_fails_with_its_problems(home: Layout, stand_in: Any) -> None:
    problems = ["the Docker daemon is not reachable (event stream reconnecting)"]
    status_doc = {"agent": {"health": {"live": False, "problems": problems}}}
    stand_in(
        {
            "health": _health(live=False),
            "status": {"ok": True, "status": 200, "action": "status", "result": status_doc},
        }
    )
    status, finding, _, fix = check(make_context(home), "agent.health")
    assert status is Status.FAIL
    assert finding == f"the agent runs but is not live: {problems[0]}"
    assert "docker dso status" in fix


def test_an_agent_older_than_this_dso_is_a_warning(home: Layout, stand_in: Any) -> None:
    stand_in({"health": _health(version="0.0.1")})
    status, finding, _, fix = check(make_context(home), "agent.health")
    assert status is Status.WARN
    assert f"but this dso is version {__version__}" in finding
    assert "agent stop" in fix
