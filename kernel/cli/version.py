"""``docker dso version``: dso, commit, Python and Docker daemon versions."""

from __future__ import annotations

import click

from kernel.cli.app import Application, pass_app
from kernel.cli.version_doc import version_document, version_lines
from kernel.errors import ExitCode


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
    doc, error = version_document()
    if as_json:
        app.out_json(doc)
    else:
        for line in version_lines(doc):
            app.out(line)
    if error is not None:
        raise click.exceptions.Exit(ExitCode.DOCKER)
