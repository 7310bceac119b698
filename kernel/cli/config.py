"""``docker dso config``: which file is used, is it valid, and what is in force.

All three read the file the way the agent does (kernel.config), so "validate says OK" means
"the agent will start with it".
"""

from __future__ import annotations

from pathlib import Path

import click

from kernel.cli.app import Application, pass_app
from kernel.config import (
    ConfigReport,
    check_config,
    config_document,
    config_yaml,
    find_config,
    load_config,
    lookup_order,
)
from kernel.errors import ExitCode


@click.group()
def config() -> None:
    """Check and show the dso configuration (every key: docs/configuration.md).

    dso reads the first file that exists of: -c/--config (DSO_CONFIG), /etc/dso/dso.yaml,
    ~/.dso/config.yaml ($DSO_HOME/config.yaml), ./dso.yaml. With none, built-in defaults apply.

    \b
    Examples:
      docker dso config path
      docker dso config validate
      docker dso -c /etc/dso/dso.yaml config show --json | jq .config.agent
    """


@config.command()
@click.argument("file", required=False, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print a JSON document.")
@click.option(
    "--skip-providers",
    is_flag=True,
    help="Check the file only; do not ask the provider programs about their settings.",
)
@pass_app
def validate(app: Application, file: Path | None, as_json: bool, skip_providers: bool) -> None:
    """Check a configuration file and list every problem in it.

    FILE defaults to the file dso would use (see `docker dso config path`). Each problem prints
    as `file:line: key: message`. Exits 0 when the file is valid, 1 when it is not. `${VAR}`
    references are expanded from the current environment, as the agent would. Once the file
    itself is valid, each provider it configures checks its own settings (`dso-provider-<type>
    --check-settings`: no back end is contacted); --skip-providers leaves that out.

    \b
    Examples:
      docker dso config validate
      sudo docker dso config validate /etc/dso/dso.yaml
      docker dso config validate --json | jq -r '.errors[] | "\\(.line): \\(.message)"'
    """
    report = check_config(file or app.config_path)
    if report.valid and report.config is not None and not skip_providers:
        report = _with_provider_checks(app, report)
    path = str(report.path) if report.path is not None else None
    if as_json:
        app.out_json(
            {
                "valid": report.valid,
                "path": path,
                "errors": [
                    {"path": e.path, "line": e.line, "key": e.key, "message": e.reason}
                    for e in report.errors
                ],
                "warnings": list(report.warnings),
            }
        )
    else:
        for error in report.errors:
            app.out(str(error))
        for warning in report.warnings:
            app.warn(warning)
        if report.valid:
            app.info(
                f"{path}: valid"
                if path
                else "no configuration file found; the built-in defaults apply (local vault)"
            )
    if not report.valid:
        # abort() rather than click's Exit: run() turns a DSOError into its exit code, while
        # click's non-standalone main() returns (not raises) an Exit's code.
        count = len(report.errors)
        app.abort(
            f"{path or 'configuration'}: {count} problem{'s' if count > 1 else ''}", ExitCode.ERROR
        )


def _with_provider_checks(app: Application, report: ConfigReport) -> ConfigReport:
    """``report`` plus what each configured provider program says of its settings."""
    import dataclasses
    import os

    from kernel.provider_host.check import check_configured

    assert report.config is not None
    errors, warnings = check_configured(report.config, app.layout, environ=os.environ)
    return dataclasses.replace(
        report,
        config=None if errors else report.config,
        errors=(*report.errors, *errors),
        warnings=(*report.warnings, *warnings),
    )


@config.command()
@click.option("--json", "as_json", is_flag=True, help="Print a JSON document.")
@pass_app
def show(app: Application, as_json: bool) -> None:
    """Print the configuration in force: the file's values with every default filled in.

    Credentials print as ******** whether written in the file or taken from ${VAR}. Exits 3
    when the configuration is invalid.

    \b
    Examples:
      docker dso config show
      docker dso config show --json | jq -r .config.agent.rotation.strategy
    """
    loaded = load_config(app.config_path)
    for warning in loaded.warnings:
        app.warn(warning)
    path = str(loaded.path) if loaded.path is not None else None
    if as_json:
        app.out_json({"path": path, "config": config_document(loaded.config)})
        return
    app.out(f"# source: {path or 'none (built-in defaults)'}")
    app.out(config_yaml(loaded.config).rstrip("\n"))


@config.command("path")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON document.")
@pass_app
def path_command(app: Application, as_json: bool) -> None:
    """Print which configuration file dso uses, and every place it looks.

    \b
    Examples:
      docker dso config path
      docker dso config path --json | jq -r .path
    """
    used = find_config(app.config_path)
    order = lookup_order(app.config_path)
    if as_json:
        app.out_json(
            {
                "path": str(used) if used is not None else None,
                "candidates": [
                    {
                        "path": str(c.path),
                        "source": c.source,
                        "exists": c.exists,
                        "used": c.path == used,
                    }
                    for c in order
                ],
            }
        )
        return
    app.out(f"using: {used if used is not None else 'none (built-in defaults: the local vault)'}")
    app.out("lookup order:")
    width = max(len(str(c.path)) for c in order)
    for number, candidate in enumerate(order, 1):
        state = "found" if candidate.exists else "missing"
        if candidate.path == used:
            state += " (used)"
        origin = "  (-c/--config)" if candidate.source == "flag" else ""
        app.out(f"  {number}. {candidate.path!s:<{width}}  {state}{origin}")
