"""``docker dso providers new NAME``: scaffold a provider project (:mod:`kernel.provider_scaffold`).

Attached to the ``providers`` group by ``providers.add_command``.
"""

from __future__ import annotations

from pathlib import Path

import click

from kernel.cli.app import Application, pass_app


@click.command("new")
@click.argument("name")
@click.option(
    "--dir",
    "directory",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Where to create the project. Default: ./dso-provider-NAME.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@pass_app
def new(app: Application, name: str, directory: Path | None, as_json: bool) -> None:
    """Create a Python provider project for NAME on the provider SDK, green from the start.

    The project holds the provider (as generated it serves a directory of files: replace
    that with your back end), a launcher that runs it from source, a conformance fixture, a
    pytest test of its logic and one running `docker dso providers test` against it, a
    pyproject.toml, and a Makefile whose `build` makes a PyInstaller onedir program that
    `docker dso providers install` takes. An existing directory is never overwritten.

    \b
    Examples:
      docker dso providers new files
      docker dso providers new my-backend --dir ~/src/dso-provider-my-backend
      cd dso-provider-files && make conformance
    """
    from kernel.provider_scaffold import scaffold

    target = directory if directory is not None else Path(f"dso-provider-{name}")
    project = scaffold(name, target)
    if as_json:
        app.out_json(project.to_json())
        return
    app.out(f"created {project.directory} ({len(project.files)} files): the {name} provider")
    app.out("")
    app.out("next:")
    app.out(f"  cd {project.directory}")
    app.out("  python3 -m venv .venv && .venv/bin/pip install -e '.[dev]'")
    app.out("  make test                # unit tests and the conformance kit")
    app.out(f"  edit src/{project.module}/provider.py: your back end")
    app.out("  make build && docker dso providers install dist/" + project.launcher.name)
