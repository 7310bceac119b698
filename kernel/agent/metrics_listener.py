"""``agent.metrics.listen``: the agent's metrics over plain HTTP for a Prometheus server.

Off by default: the socket's ``metrics`` action serves the same text to local callers. When a
Prometheus server cannot read a unix socket, this listener binds the one configured
``host:port`` (never every address, as ``prometheus_client.start_http_server`` does unless told)
and answers ``GET /metrics`` with ``prometheus_client``'s WSGI app (gzip when asked, ``HEAD``
and ``OPTIONS``); any other path is 404. The figures are counts and names, never a value, but
they describe the host's services: keep it on loopback or a private address.

A client holds a connection for at most :data:`READ_TIMEOUT` seconds of silence, and at most
:data:`MAX_CONNECTIONS` are served at once (others wait in the listen backlog), so a scraper
gone wrong cannot grow the agent's threads.
"""

from __future__ import annotations

import socket
import socketserver
import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

from prometheus_client import CollectorRegistry, make_wsgi_app

from kernel.config.model import parse_listen
from kernel.errors import ConfigError
from kernel.log import get_logger

#: Seconds a connection may stay silent before it is closed.
READ_TIMEOUT = 5.0
#: Connections served at once.
MAX_CONNECTIONS = 8
THREAD_NAME = "dso-metrics"

log = get_logger("agent.metrics")

StartResponse = Callable[[str, list[tuple[str, str]]], Any]


class MetricsListener:
    """Serves ``registry`` on ``listen`` (``host:port``) from a daemon thread."""

    def __init__(self, listen: str, registry: CollectorRegistry) -> None:
        self.listen = listen
        self._app = make_wsgi_app(registry)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Bind and serve; :class:`ConfigError` naming the key when the address cannot be bound."""
        host, port = parse_listen(self.listen)
        try:
            family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
            self._server = _Server((host, port), family, self._route)
        except OSError as exc:
            raise ConfigError(
                f"the metrics listener cannot listen on {self.listen}: "
                f"{exc.strerror or exc.__class__.__name__}",
                key="agent.metrics.listen",
                hint="choose a free port on an address of this host, or remove "
                "agent.metrics.listen (the socket's metrics action needs no port)",
            ) from None
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.2}, name=THREAD_NAME
        )
        self._thread.daemon = True
        self._thread.start()

    @property
    def address(self) -> tuple[str, int]:
        """The bound ``(host, port)`` (the real port when ``listen`` asked for port 0)."""
        if self._server is None:
            return parse_listen(self.listen)
        bound = self._server.server_address
        return str(bound[0]), int(bound[1])

    def stop(self) -> None:
        """Stop accepting and close the listening socket (idempotent)."""
        server, self._server = self._server, None
        if server is None:
            return
        server.stopping = True
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _route(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != "/metrics":
            start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
            return [b"not found: the metrics are at /metrics\n"]
        answer: Iterable[bytes] = self._app(environ, start_response)
        return answer


class _Handler(WSGIRequestHandler):
    timeout = READ_TIMEOUT

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("metrics: " + format, *args)


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        family: socket.AddressFamily,
        app: Callable[[dict[str, Any], StartResponse], Iterable[bytes]],
    ) -> None:
        self.address_family = family
        self.stopping = False
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        super().__init__(address, _Handler)
        self.set_app(app)

    def server_bind(self) -> None:
        # HTTPServer's own also resolves the host's FQDN, a DNS query nothing here needs.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), self.server_address[1]
        self.setup_environ()

    def process_request(self, request: Any, client_address: Any) -> None:
        while not self._slots.acquire(timeout=0.2):
            if self.stopping:
                self.shutdown_request(request)
                return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()
