"""A killable stand-in for the Docker daemon's socket: a unix-socket proxy to the real one.

Killing it is, from a client's side, what a daemon restart looks like (open streams end, new
connections are refused until it listens again), without restarting the daemon the other tests
share.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from pathlib import Path
from urllib.parse import urlparse

import pytest

from kernel.containers.client import docker_host


def upstream_socket() -> str:
    url = urlparse(docker_host())
    if url.scheme != "unix":
        pytest.skip("the proxy forwards to a unix socket daemon only")
    return url.path


class UnixProxy:
    """Forwards connections on ``path`` to the Docker socket; ``kill()`` drops them all at once.

    From the client's side this is what a daemon that goes away looks like: open streams end,
    new connections are refused (the socket file is gone) until a proxy listens again.
    """

    def __init__(self, path: Path, upstream: str) -> None:
        self.path = path
        self.upstream = upstream
        self.sockets: list[socket.socket] = []
        self.lock = threading.Lock()
        self.killed = threading.Event()
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(str(path))
        self.listener.listen(16)
        self.listener.settimeout(0.05)
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while not self.killed.is_set():
            try:
                downstream, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                upstream.connect(self.upstream)
            except OSError:
                downstream.close()
                upstream.close()
                continue
            with self.lock:
                if self.killed.is_set():
                    downstream.close()
                    upstream.close()
                    return
                self.sockets += [downstream, upstream]
            for src, dst in ((downstream, upstream), (upstream, downstream)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def kill(self) -> None:
        self.killed.set()
        self.thread.join(2)
        # The path goes first: whoever finds it may connect (see connect_through()).
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        self.listener.close()
        with self.lock:
            sockets, self.sockets = self.sockets, []
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
