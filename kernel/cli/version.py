"""``docker dso version``: dso, commit, Python and Docker daemon versions."""

from __future__ import annotations

import platform
import sys

import click

from kernel import __version__
from kernel.build_info import commit
from kernel.cli.app import Application, pass_app
from kernel.containers.daemon_info import daemon_version
from kernel.containers.docker_context import Endpoint, resolve_endpoint
from kernel.errors import DockerUnavailableError, ExitCode


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print a JSON document.")
@pass_app
def version(app: Application, as_json: bool) -> None:
    """Show the versions of dso, Python and the Docker daemon.

    Exits 6 when the Docker daemon does not answer (after printing the rest).

    \b
    Examples:
      docker dso version
      docker dso version --json | jq -r .docker.version
    """
    doc: dict[str, object] = {
        "version": __version__,
        "commit": commit(),
        "python": platform.python_version(),
        "platform": f"{sys.platform}/{platform.machine()}",
    }
    error = None
    endpoint: Endpoint | None = None
    try:
        endpoint = resolve_endpoint()
        info = daemon_version(endpoint.host)
        doc["docker"] = {
            "host": endpoint.host,
            "context": endpoint.context,
            "reachable": True,
            "version": info.get("Version"),
            "api_version": info.get("ApiVersion"),
            "os": info.get("Os"),
            "arch": info.get("Arch"),
        }
    except DockerUnavailableError as exc:
        error = exc
        doc["docker"] = {
            "host": endpoint.host if endpoint else None,
            "context": endpoint.context if endpoint else None,
            "reachable": False,
            "error": exc.message,
        }
    if as_json:
        app.out_json(doc)
    else:
        docker = doc["docker"]
        assert isinstance(docker, dict)
        app.out(f"dso:     {doc['version']} (commit {doc['commit']})")
        app.out(f"python:  {doc['python']} ({doc['platform']})")
        if docker["reachable"]:
            where = docker["host"]
            if docker["context"] != "default":
                where = f"context {docker['context']}: {where}"
            app.out(f"docker:  {docker['version']} (API {docker['api_version']}, {where})")
        else:
            app.out(f"docker:  unreachable: {docker['error']}")
    if error is not None:
        raise click.exceptions.Exit(ExitCode.DOCKER)
