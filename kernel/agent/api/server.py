"""The agent's socket (``agent.socket``): one listener, two dialects (docs/agent-api.md).

Thread ``dso-api`` accepts; each connection gets a thread from a bounded set of slots
(:data:`MAX_CONNECTIONS`; beyond it, new clients wait in the listen backlog), and event streams
have a smaller cap of their own (:data:`MAX_STREAMS`) so that they can never take every slot.
For each connection: who is it (``SO_PEERCRED``), may it ask (:mod:`.peers`), which dialect
(the first bytes: an HTTP request line, or a JSON object), then the dialect serves it under
the size and time limits of :mod:`.wire`. Nothing a client sends can stop or block the agent:
a bad request gets a 4xx answer, an exception in a handler a 500, and the connection's thread
ends.
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from kernel.agent.api import http_dialect, lines_dialect, unix
from kernel.agent.api.actions import Actions, Answer, Request
from kernel.agent.api.peers import Authorizer, Peer, peer_of
from kernel.agent.api.wire import HEADER_TIMEOUT, Closed, Timeout, Wire
from kernel.errors import DSOError
from kernel.log import get_logger

if TYPE_CHECKING:
    from kernel.agent.bus import EventBus, Stream
    from kernel.agent.daemon import Agent
    from kernel.extensions.builtin.audit import AuditLog

log = get_logger("agent.api")

#: Connections served at once.
MAX_CONNECTIONS = 64
#: Event streams open at once (each holds a connection).
MAX_STREAMS = 16
_HTTP = re.compile(rb"^[A-Z]{3,10} ")
_MAYBE_HTTP = re.compile(rb"^[A-Z]{1,10}$")


class Connection:
    """One client: its socket, who it is, and the way back to the actions."""

    def __init__(self, server: ApiServer, sock: socket.socket, peer: Peer) -> None:
        self.server = server
        self.wire = Wire(sock)
        self.peer = peer

    @property
    def stopping(self) -> bool:
        return self.server.stopping

    def handle(self, request: Request) -> Answer:
        answer = self.server.actions.handle(request)
        stream = answer.stream
        if stream is not None:
            if not self.server.stream_slots.acquire(blocking=False):
                stream.close()
                return Answer.error(503, f"too many event streams open (at most {MAX_STREAMS})")
            self.server.opened(stream, self.wire.sock)
        return answer


class ApiServer:
    """Listens on ``path`` and answers with ``actions``."""

    def __init__(
        self,
        path: Path,
        actions: Actions,
        *,
        authorizer: Authorizer | None = None,
        bus: EventBus | None = None,
        audit: AuditLog | None = None,
    ) -> None:
        self.path = path
        self.actions = actions
        self.authorizer = authorizer or Authorizer()
        self.bus = bus
        self.audit = audit
        self.stopping = False
        self.slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self.stream_slots = threading.BoundedSemaphore(MAX_STREAMS)
        self._sock: socket.socket | None = None
        self._ident: tuple[int, int, int] | None = None
        self._thread: threading.Thread | None = None
        self._active: set[socket.socket] = set()
        self._streams: set[Stream] = set()
        #: Connections serving an event stream (given a moment to flush at stop).
        self._streaming: set[socket.socket] = set()
        self._lock = threading.Lock()

    @classmethod
    def for_agent(cls, agent: Agent) -> ApiServer:
        from kernel.agent.api.client import socket_path

        runtime = agent.runtime
        path = socket_path(runtime.layout, runtime.config)
        return cls(path, Actions(agent), bus=agent.bus, audit=runtime.audit_log())

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        """Bind (refusing a socket another agent answers on) and serve from ``dso-api``."""
        self._sock = unix.bind(self.path)
        self._ident = unix.identity(self.path)
        self._thread = threading.Thread(target=self._accept_loop, name="dso-api", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop accepting, remove the socket file, end the connections in progress."""
        self.stopping = True
        sock, self._sock = self._sock, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)  # wakes accept()
            sock.close()
        unix.remove(self.path, self._ident)
        with self._lock:
            active = list(self._active)
            streams = list(self._streams)
        for stream in streams:
            stream.close()  # wakes a connection waiting for the next event
        # A moment for the streams to hand out their last events (``stopping``); then every
        # connection left is cut.
        drain = time.monotonic() + min(1.0, timeout)
        while self._streams_flushing() and time.monotonic() < drain:
            time.sleep(0.01)
        for conn in active:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout)
        deadline = time.monotonic() + timeout
        while self.connections and time.monotonic() < deadline:
            time.sleep(0.02)

    def opened(self, stream: Stream, sock: socket.socket) -> None:
        """Track an event stream holding a stream slot: the slot is freed when it closes, and
        :meth:`stop` closes it."""

        def closed() -> None:
            with self._lock:
                self._streams.discard(stream)
            self.stream_slots.release()

        stream.on_close = closed
        with self._lock:
            self._streams.add(stream)
            self._streaming.add(sock)

    def _streams_flushing(self) -> bool:
        with self._lock:
            return bool(self._streaming)

    @property
    def connections(self) -> int:
        with self._lock:
            return len(self._active)

    # -- serving ----------------------------------------------------------------------------

    def _accept_loop(self) -> None:
        while not self.stopping:
            self.slots.acquire()
            sock = self._sock
            if sock is None or self.stopping:
                self.slots.release()
                return
            try:
                client, _ = sock.accept()
            except OSError:
                self.slots.release()
                if self.stopping:
                    return
                time.sleep(0.05)  # EMFILE and the like: do not spin
                continue
            with self._lock:
                self._active.add(client)
            threading.Thread(
                target=self._serve, args=(client,), name="dso-api-conn", daemon=True
            ).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            peer = peer_of(client)
            conn = Connection(self, client, peer)
            dialect = _sniff(conn.wire)
            if dialect is None:
                return
            if not self.authorizer.allows(peer):
                self._denied(peer)
                dialect.deny(
                    conn,
                    f"uid {peer.uid} may not use the agent's socket: ask as root "
                    "or as a member of group dso",
                )
                return
            dialect.serve(conn)
        except (Closed, Timeout):
            pass
        except Exception:
            log.exception("socket: a connection failed")
        finally:
            with self._lock:
                self._active.discard(client)
                self._streaming.discard(client)
            with contextlib.suppress(OSError):
                client.close()
            self.slots.release()

    def _denied(self, peer: Peer) -> None:
        log.warning(
            "socket: refused uid %d (pid %d, gid %d): not root, not the agent's user, not in "
            "group dso",
            peer.uid,
            peer.pid,
            peer.gid,
        )
        if self.bus is not None:
            self.bus.publish("denied", uid=peer.uid, pid=peer.pid, gid=peer.gid)
        if self.audit is not None:
            try:
                self.audit.append_request(
                    "connect", caller=peer.to_dict(), params={}, outcome="denied"
                )
            except DSOError as exc:
                log.warning("socket: the audit line could not be written: %s", exc.message)


class _Dialect:
    """What :func:`_sniff` returns: the module of a dialect."""

    serve = staticmethod(lines_dialect.serve)
    deny = staticmethod(lines_dialect.deny)


class _Http(_Dialect):
    serve = staticmethod(http_dialect.serve)
    deny = staticmethod(http_dialect.deny)


def _sniff(wire: Wire) -> type[_Dialect] | None:
    """HTTP when the first bytes are a request line's method, else JSON lines (which answers
    anything else with a 400, a method cut short by the client's close included). ``None``:
    the client closed without a byte. The bytes read stay in the wire's buffer for the dialect;
    a method cut short waits for the rest until :data:`HEADER_TIMEOUT` after the first byte."""
    deadline = time.monotonic() + HEADER_TIMEOUT
    while True:
        head = bytes(wire.buffer[:16])
        if _HTTP.match(head):
            return _Http
        if head and (wire.eof or not _MAYBE_HTTP.match(head)):
            return _Dialect
        if wire.eof:
            return None
        wire.fill(deadline)
        if wire.first_byte is not None:
            deadline = wire.first_byte + HEADER_TIMEOUT
