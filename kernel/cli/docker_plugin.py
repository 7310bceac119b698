"""``docker-dso``: the Docker CLI plugin entry point.

docker runs ``docker-dso docker-cli-plugin-metadata`` before every ``docker`` call and for
``docker --help``, so that path imports nothing but ``os`` and ``sys`` (an import such as json
or typing would add milliseconds to every ``docker dso …``; bench/cli_status_profile.py lists
what each path imports). A real call arrives as ``docker-dso dso <args>``; ``docker help dso``
arrives as ``docker-dso help dso``. docker's own global flags typed before ``dso`` (``docker -H
… --context … dso …``) arrive in front of it and are turned into the environment variables
docker would have honoured.

The frozen release has one executable for both programs: :func:`entry` runs the plugin when it
was started as ``docker-dso`` (docker runs ``…/cli-plugins/docker-dso``, a link to it) and the
``dso`` CLI otherwise.
"""

from __future__ import annotations

import os
import sys

from kernel import __version__

METADATA = {
    "SchemaVersion": "0.1.0",
    "Vendor": "dso project",
    "Version": __version__,
    "ShortDescription": "Inject secrets into containers and rotate them without downtime",
    "URL": "https://github.com/docker-secret-operator/dso",
}


def metadata_json() -> str:
    """``json.dumps(METADATA)``, without importing json (longer than the rest of the call): the
    values are plain text that needs no escaping (a unit test holds the two equal)."""
    return "{" + ", ".join(f'"{key}": "{value}"' for key, value in METADATA.items()) + "}"


#: After docker closed the plugin socket, how long dso may take to wind down before it is forced.
_FORCE_EXIT_AFTER = 60.0


#: docker's global flags that take a value, by every spelling (docker/cli `cli/flags`).
_VALUE_FLAGS = {
    "-H": "host",
    "--host": "host",
    "-c": "context",
    "--context": "context",
    "--config": "config",
    "-l": "log-level",
    "--log-level": "log-level",
    "--tlscacert": "tls",
    "--tlscert": "tls",
    "--tlskey": "tls",
}
_BOOL_FLAGS = {"-D": "debug", "--debug": "debug", "--tls": "tls", "--tlsverify": "tls"}
#: docker's log levels → dso's (``fatal``/``panic`` have no counterpart: errors only).
_LOG_LEVELS = {"debug": "debug", "info": "info", "warn": "warning", "error": "error"}


class DockerFlagError(Exception):
    """A docker global flag before ``dso`` that dso cannot honour."""


def docker_globals(argv: list[str]) -> tuple[dict[str, str | None], list[str]]:
    """Split docker's global flags (``docker -H … --context … dso …``) from the rest of argv.

    docker passes the flags typed before ``dso`` on to the plugin, in front of its own argv,
    and exports nothing; they become environment variables for dso and for the ``docker
    compose`` it runs (a None value removes the variable: ``--context`` beats ``DOCKER_HOST``, as
    in docker). Raises :class:`DockerFlagError` for TLS flags and anything unknown.
    """
    env: dict[str, str | None] = {}
    seen: set[str] = set()
    index = 0
    while index < len(argv) and argv[index].startswith("-"):
        token = argv[index]
        name, eq, value = token.partition("=")
        if not eq and not name.startswith("--") and len(name) > 2 and name[:2] in _VALUE_FLAGS:
            name, value, eq = name[:2], name[2:], "="  # -Hunix:///… as pflag allows
        if name in _BOOL_FLAGS:
            kind, value = _BOOL_FLAGS[name], value if eq else "true"
        elif name in _VALUE_FLAGS:
            kind = _VALUE_FLAGS[name]
            if not eq:
                if index + 1 == len(argv):
                    raise DockerFlagError(f"docker flag {name} needs a value")
                index += 1
                value = argv[index]
        else:
            raise DockerFlagError(f"unknown docker flag {token} before `dso`")
        index += 1
        if name in _BOOL_FLAGS and value.lower() in ("false", "0"):
            continue  # --tls=false, --debug=false: as if not given
        seen.add(kind)
        _apply(env, kind, name, value)
    if {"host", "context"} <= seen:
        raise DockerFlagError("conflicting docker flags: pass either --host or --context")
    return env, argv[index:]


def _apply(env: dict[str, str | None], kind: str, flag: str, value: str) -> None:
    if kind == "host":
        env["DOCKER_HOST"] = value
    elif kind == "context":
        env["DOCKER_CONTEXT"] = value
        if value != "default":  # the default context *is* DOCKER_HOST when that is set
            env["DOCKER_HOST"] = None
    elif kind == "config":
        env["DOCKER_CONFIG"] = value
    elif kind == "debug":
        env["DSO_LOG_LEVEL"] = "debug"
    elif kind == "log-level":
        env.setdefault("DSO_LOG_LEVEL", _LOG_LEVELS.get(value.lower(), "error"))
    else:
        raise DockerFlagError(
            f"docker flag {flag}: dso does not connect to the Docker daemon over TLS; "
            "run it on the daemon's host (file secrets are written to that host's tmpfs)"
        )


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
    import signal
    import socket
    import threading
    import time

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


#: The plugin's program name: docker looks for ``docker-<command>`` in its plugin directories.
PLUGIN_PROGRAM = "docker-dso"


def is_plugin_program(argv0: str) -> bool:
    """True when ``argv0`` (as run, before links are resolved) names the Docker CLI plugin."""
    return os.path.basename(argv0) == PLUGIN_PROGRAM


def entry() -> None:
    """The frozen executable's entry point: the plugin as ``docker-dso``, else ``dso``."""
    if is_plugin_program(sys.argv[0]):
        main()
    else:
        from kernel.cli.main import main as dso_main

        dso_main()


def main() -> None:
    try:
        env, rest = docker_globals(sys.argv[1:])
    except DockerFlagError as exc:
        sys.stderr.write(f"docker dso: error: {exc}\n")
        sys.exit(2)
    args = plugin_argv(rest)
    if args is None:
        sys.stdout.write(metadata_json() + "\n")
        sys.exit(0)
    for key, value in env.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
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
