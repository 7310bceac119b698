"""The real ``dso agent`` for the socket API tests: dso homes without compose (the abuse and
socket-file tests need no containers), readers of the agent's event stream in either dialect,
and the audit log.

A home here is a :class:`ComposeProject` without a compose file (``AgentProcess`` runs on one):
its own DSO_HOME under the test's directory, ``dso init`` done, the fast agent settings of
agent_support written, nothing on the daemon to clean up.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from tests.integration.agent_support import FAST, AgentProcess
from tests.integration.compose_support import ComposeProject
from tests.socket_support import connect, http, http_request


def plain_home(root: Path, *, extra: str = "") -> ComposeProject:
    """A dso home at ``root/dso-home`` (``dso init`` done), its config the fast agent settings
    plus ``extra`` (YAML appended under ``agent:``, e.g. ``  socket: /x/agent.sock\\n``)."""
    root.mkdir(parents=True, exist_ok=True)
    shm = Path("/dev/shm") / f"dsotest-{secrets.token_hex(5)}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DSO_", "COMPOSE_"))}
    env.pop("XDG_RUNTIME_DIR", None)
    env.update(
        DSO_HOME=str(root / "dso-home"),
        DSO_NO_AGENT="1",
        DSO_SECRETS_DIR=str(shm / "secrets"),
        COMPOSE_PROJECT_NAME="dsotestapi" + secrets.token_hex(4),
    )
    workdir = root / "app"
    workdir.mkdir(exist_ok=True)
    home = ComposeProject(env["COMPOSE_PROJECT_NAME"], workdir, env, shm / "secrets")
    home.dso("init")
    write_config(home, extra=extra)
    return home


def write_config(home: ComposeProject, *, poll: str = "1h", extra: str = "") -> None:
    config = Path(home.env["DSO_HOME"]) / "config.yaml"
    config.write_text(FAST.format(poll=poll, debounce="1s") + extra)
    config.chmod(0o600)


def socket_of(home: ComposeProject) -> Path:
    """Where a local agent of this home listens when ``agent.socket`` is not set."""
    return Path(home.env["DSO_HOME"]) / "agent.sock"


@contextmanager
def running(
    home: ComposeProject, log: Path, *, ready: str = "Listening on"
) -> Iterator[AgentProcess]:
    """The agent of ``home``, started and killed (by its pid) afterwards; the secrets
    directory on /dev/shm is removed too."""
    process = AgentProcess(home, log)
    try:
        process.start(ready=ready)
        process.wait_for("Event watcher started")
        yield process
    finally:
        process.kill()
        shutil.rmtree(home.secrets_base.parent, ignore_errors=True)


def sh(
    command: str, env: dict[str, str], *, timeout: float = 30, text: bool = True
) -> subprocess.CompletedProcess[Any]:
    """``command`` through bash, as a user would type it (``text=False``: bytes as sent, e.g.
    an HTTP head's CRLFs)."""
    return subprocess.run(
        ["bash", "-o", "pipefail", "-c", command],
        env=env,
        capture_output=True,
        text=text,
        timeout=timeout,
    )


def healthy(sock: Path) -> bool:
    try:
        return http(sock, "GET", "/health").status == 200
    except OSError:
        return False


def audit_lines(home: ComposeProject) -> list[dict[str, Any]]:
    path = Path(home.env["DSO_HOME"]) / "logs" / "audit.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class EventReader:
    """The agent's event stream on its own connection and thread, in one dialect: ``lines``
    (``{"action": "events"}``) or ``sse`` (``GET /events``). :meth:`wait_for` returns the first
    event matching."""

    def __init__(self, path: Path, dialect: str, types: str | None = None) -> None:
        self.dialect = dialect
        self.events: list[dict[str, Any]] = []
        self.answer: Any = None
        self._cond = threading.Condition()
        self._sock = connect(path, timeout=60)
        query = f"?types={types}" if types else ""
        if dialect == "sse":
            self._sock.sendall(http_request("GET", f"/events{query}", close=False))
        else:
            request: dict[str, Any] = {"action": "events"}
            if types:
                request["types"] = types.split(",")
            self._sock.sendall(json.dumps(request).encode() + b"\n")
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        reader = self._sock.makefile("rb")
        try:
            if self.dialect == "sse":
                self._read_sse(reader)
            else:
                self._read_lines(reader)
        except (OSError, ValueError):
            pass
        finally:
            reader.close()

    def _read_lines(self, reader: Any) -> None:
        self.answer = json.loads(reader.readline())
        for raw in reader:
            self._add(json.loads(raw))

    def _read_sse(self, reader: Any) -> None:
        status = reader.readline()
        head = [status]
        while head[-1] not in (b"\r\n", b""):
            head.append(reader.readline())
        self.answer = b"".join(head)
        kind = None
        for raw in reader:
            text = raw.decode().rstrip("\r\n")
            if text.startswith("event: "):
                kind = text[len("event: ") :]
            elif text.startswith("data: "):
                doc = json.loads(text[len("data: ") :])
                assert doc["type"] == kind, (kind, doc)
                self._add(doc)

    def _add(self, event: dict[str, Any]) -> None:
        with self._cond:
            self.events.append(event)
            self._cond.notify_all()

    def wait_for(self, timeout: float = 60.0, **fields: Any) -> dict[str, Any]:
        def match() -> dict[str, Any] | None:
            for event in self.events:
                if all(event.get(k) == v for k, v in fields.items()):
                    return event
            return None

        with self._cond:
            found = self._cond.wait_for(match, timeout)
        assert found, f"no event {fields} in {timeout}s (dialect {self.dialect}): {self.events}"
        return found

    def close(self) -> None:
        with suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()
        self._thread.join(5)
