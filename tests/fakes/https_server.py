"""A small threaded HTTPS server for test doubles of cloud APIs.

One thread per connection, HTTP/1.1 keep-alive (clients pool connections as they do in
production), the TLS handshake on the connection's own thread, ``TCP_NODELAY`` on every
accepted socket (without it a keep-alive request/response pair waits ~40 ms for delayed ACKs:
44 ms → 1.2 ms per Key Vault read, DESIGN §8), and :meth:`HTTPSServer.stop` drops kept-alive
connections too, so a stopped double really is unreachable. A double answers through one
callable ``handle(method, target, headers, body) -> Reply``.
"""

from __future__ import annotations

import json
import socket
import ssl
import threading
from collections.abc import Callable
from contextlib import suppress
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.fakes.tls_certs import TLSFiles


class Reply(Exception):
    """An HTTP answer; raise it anywhere in a route to answer at once. ``body`` is sent as
    JSON (None: empty)."""

    def __init__(self, status: int, body: Any = None, headers: dict[str, str] | None = None):
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = headers or {}


Handle = Callable[[str, str, Message, bytes], Reply]


class HTTPSServer(ThreadingHTTPServer):
    """Serves ``handle`` over TLS on 127.0.0.1 and a free port once :meth:`begin` is called."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, tls: TLSFiles, handle: Handle) -> None:
        self.handle_request_fn = handle
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(tls.cert_file, tls.key_file)
        self._conns: set[ssl.SSLSocket] = set()
        self._conns_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        super().__init__(("127.0.0.1", 0), _Handler)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def begin(self) -> None:
        self._thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop listening and drop every kept-alive connection."""
        self.shutdown()
        self.server_close()
        with self._conns_lock:
            conns = list(self._conns)
        for conn in conns:
            with suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def get_request(self) -> tuple[Any, Any]:
        conn, address = self.socket.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return conn, address

    def finish_request(self, request: Any, client_address: Any) -> None:
        try:
            tls = self.context.wrap_socket(request, server_side=True)
        except (OSError, ssl.SSLError):
            request.close()
            return
        with self._conns_lock:
            self._conns.add(tls)
        try:
            super().finish_request(tls, client_address)
        finally:
            with self._conns_lock:
                self._conns.discard(tls)
            tls.close()

    def shutdown_request(self, request: Any) -> None:
        # wrap_socket detached ``request``; the TLS socket was closed in finish_request.
        request.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client dropping its connection is normal here


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: HTTPSServer

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        try:
            reply = self.server.handle_request_fn(self.command, self.path, self.headers, body)
        except Reply as raised:
            reply = raised
        data = b"" if reply.body is None else json.dumps(reply.body).encode()
        self.send_response(reply.status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for key, value in reply.headers.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_PUT = do_POST = do_DELETE = do_PATCH = _serve

    def log_message(self, format: str, *args: Any) -> None:
        pass
