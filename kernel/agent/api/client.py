"""Talking to the agent from a command (``status``, ``events``): the JSON-lines dialect.

:func:`socket_path` finds the socket of an installation (``agent.socket``, else the layout's);
:class:`AgentClient` sends one request per connection and reads its answer, or follows an
event stream. Nothing answering is :class:`~kernel.errors.AgentUnavailableError`; an error
answer is :class:`~kernel.errors.AgentRequestError` with the agent's message.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

from kernel.agent.api import unix
from kernel.errors import AgentRequestError, AgentUnavailableError

# typing.TYPE_CHECKING without importing typing: `status --json` (kernel.cli.quick) pays for
# every module it imports.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from kernel.config.model import Config
    from kernel.paths import Layout

#: Largest answer line read (a status document with 1,000 containers is ~1 MB).
MAX_ANSWER = 64 * 1024 * 1024


def socket_path(layout: Layout, config: Config | None = None) -> Path:
    configured = config.agent.socket if config is not None else None
    return configured or layout.socket


class AgentClient:
    def __init__(self, path: Path, *, timeout: float = 5.0) -> None:
        self.path = path
        self.timeout = timeout

    def call(self, action: str, **params: Any) -> Any:
        """The ``result`` of one request."""
        with self._open() as sock, sock.makefile("rb") as reader:
            try:
                sock.sendall(_line({"action": action, **params}))
            except OSError as exc:
                raise AgentUnavailableError(f"the agent on {self.path} went away: {exc}") from None
            doc = _read(reader, self.path)
        return _result(doc)

    def stream(self, action: str = "events", **params: Any) -> Iterator[dict[str, Any]]:
        """The events of a stream, until the agent closes it (keep-alive lines skipped)."""
        sock = self._open()
        reader = sock.makefile("rb")
        try:
            sock.sendall(_line({"action": action, **params}))
            _result(_read(reader, self.path))
            sock.settimeout(None)
            while True:
                raw = reader.readline(MAX_ANSWER)
                if not raw:
                    return
                event = json.loads(raw)
                if isinstance(event, dict) and event.get("type") != "keepalive":
                    yield event
        except OSError as exc:
            raise AgentUnavailableError(f"the agent on {self.path} went away: {exc}") from None
        finally:
            reader.close()
            sock.close()

    def _open(self) -> socket.socket:
        return unix.connect(self.path, self.timeout)


def _line(doc: dict[str, Any]) -> bytes:
    return (json.dumps(doc) + "\n").encode()


def _read(reader: Any, path: Path) -> dict[str, Any]:
    try:
        raw = reader.readline(MAX_ANSWER)
    except TimeoutError:
        raise AgentUnavailableError(f"the agent on {path} did not answer in time") from None
    except OSError as exc:
        raise AgentUnavailableError(f"the agent on {path} went away: {exc}") from None
    if not raw:
        raise AgentUnavailableError(f"the agent on {path} closed the connection unanswered")
    try:
        doc = json.loads(raw)
    except ValueError:
        raise AgentRequestError(f"the agent on {path} answered something not JSON") from None
    if not isinstance(doc, dict):
        raise AgentRequestError(f"the agent on {path} answered something not an object")
    return doc


def _result(doc: dict[str, Any]) -> Any:
    if not doc.get("ok"):
        status = int(doc.get("status") or 500)
        raise AgentRequestError(f"the agent refused: {doc.get('error', 'failed')}", status=status)
    return doc.get("result")
