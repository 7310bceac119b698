"""``docker-dso``: the Docker CLI plugin entry point.

docker runs ``docker-dso docker-cli-plugin-metadata`` before every ``docker`` call and for
``docker --help``, so that path imports nothing but the standard library. A real call arrives as
``docker-dso dso <args>``; ``docker help dso`` arrives as ``docker-dso help dso``.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import threading
import time

from kernel import __version__

METADATA = {
    "SchemaVersion": "0.1.0",
    "Vendor": "dso project",
    "Version": __version__,
    "ShortDescription": "Inject secrets into containers and rotate them without downtime",
    "URL": "https://github.com/docker-secret-operator/dso",
}


#: After docker closed the plugin socket, how long dso may take to wind down before it is forced.
_FORCE_EXIT_AFTER = 60.0


def plugin_argv(argv: list[str]) -> list[str] | None:
    """Translate docker's argv (after the program name) into dso's; None means metadata."""
    if argv[:1] == ["docker-cli-plugin-metadata"]:
        return None
    if argv[:2] == ["help", "dso"]:
        return [*argv[2:], "--help"]
    if argv[:1] == ["dso"]:
        return argv[1:]
    return argv


def _exit_when_docker_closes(path: str) -> None:
    """Without a TTY docker does not forward Ctrl-C; it closes this socket instead."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        address = "\0" + path[1:] if path.startswith("@") else path
        sock.connect(address)
    except OSError:
        return

    def watch() -> None:
        try:
            while sock.recv(1024):
                pass
        except OSError:
            pass
        # Like Ctrl-C: the main thread gets KeyboardInterrupt, or a running `docker compose`
        # gets the signal forwarded and stops its containers cleanly before dso exits.
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(_FORCE_EXIT_AFTER)
        os._exit(130)

    threading.Thread(target=watch, name="docker-cli-socket", daemon=True).start()


def main() -> None:
    args = plugin_argv(sys.argv[1:])
    if args is None:
        sys.stdout.write(json.dumps(METADATA) + "\n")
        sys.exit(0)
    plugin_socket = os.environ.get("DOCKER_CLI_PLUGIN_SOCKET")
    if plugin_socket:
        _exit_when_docker_closes(plugin_socket)
    try:
        from kernel.cli.main import run

        code = run(args, prog_name="docker dso")
    except KeyboardInterrupt:  # interrupted before the CLI's own handling took over
        sys.stderr.write("Interrupted.\n")
        code = 130
    sys.exit(code)
