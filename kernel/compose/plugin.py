"""The Compose plugin binary, run directly instead of through ``docker compose``.

``docker compose ARGS`` starts the docker CLI (~20-40 ms), which finds ``docker-compose`` in its
plugin directories, runs ``docker-compose docker-cli-plugin-metadata`` (another ~20-40 ms) and
then ``docker-compose compose ARGS`` with ``DOCKER_CLI_PLUGIN_ORIGINAL_CLI_COMMAND`` set. dso
runs compose two or three times per ``up`` or ``rotate``, so it runs that last step itself:
:func:`compose_command` finds the binary where the docker CLI would (docker/cli
``cli-plugins/manager``: the config file's ``cliPluginsExtraDirs``, ``$DOCKER_CONFIG/cli-plugins``
(``~/.docker/cli-plugins``), then the system directories) and falls back to ``docker compose``
when there is none. docker's own global flags never reach compose this way: dso turned them
into ``DOCKER_HOST``/``DOCKER_CONTEXT``/``DOCKER_CONFIG`` (kernel.cli.docker_plugin), which
compose reads as docker would have passed them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

#: docker/cli's defaultSystemPluginDirs on Linux, in its order.
SYSTEM_PLUGIN_DIRS = (
    "/usr/local/lib/docker/cli-plugins",
    "/usr/local/libexec/docker/cli-plugins",
    "/usr/lib/docker/cli-plugins",
    "/usr/libexec/docker/cli-plugins",
)
#: What the docker CLI sets for the plugins it runs (the command that ran docker).
REEXEC_ENV = "DOCKER_CLI_PLUGIN_ORIGINAL_CLI_COMMAND"

_found: dict[tuple[str, str | None], str | None] = {}


def config_dir(environ: Mapping[str, str]) -> Path:
    """The docker CLI's configuration directory (``DOCKER_CONFIG`` or ``~/.docker``; as
    kernel.containers.docker_context, which this layer does not import)."""
    configured = environ.get("DOCKER_CONFIG")
    if configured:
        return Path(configured)
    return Path(environ.get("HOME") or Path.home()) / ".docker"


def plugin_dirs(environ: Mapping[str, str]) -> list[Path]:
    """Where the docker CLI looks for ``docker-<name>``, in its order of preference."""
    directory = config_dir(environ)
    dirs: list[Path] = []
    try:
        extra = json.loads((directory / "config.json").read_text()).get("cliPluginsExtraDirs")
    except (OSError, ValueError, AttributeError):
        extra = None
    if isinstance(extra, list):
        dirs += [Path(d) for d in extra if isinstance(d, str) and d]
    dirs.append(directory / "cli-plugins")
    dirs += [Path(d) for d in SYSTEM_PLUGIN_DIRS]
    return dirs


def compose_plugin(environ: Mapping[str, str]) -> str | None:
    """The path of the ``docker-compose`` plugin the docker CLI would run, or None."""
    key = (str(config_dir(environ)), environ.get("HOME"))
    if key not in _found:
        _found[key] = None
        for directory in plugin_dirs(environ):
            path = directory / "docker-compose"
            # Like the docker CLI: the first that exists wins (it stats, then runs it).
            if path.exists():
                _found[key] = str(path) if os.access(path, os.X_OK) else None
                break
    return _found[key]


def compose_command(environ: Mapping[str, str]) -> tuple[list[str], dict[str, str]]:
    """The argv prefix that runs ``docker compose`` and what to add to its environment:
    ``([plugin, "compose"], {REEXEC_ENV: "docker"})``, else ``(["docker", "compose"], {})``."""
    plugin = compose_plugin(environ)
    if plugin is not None:
        return [plugin, "compose"], {REEXEC_ENV: "docker"}
    return ["docker", "compose"], {}
