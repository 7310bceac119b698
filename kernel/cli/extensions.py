"""``docker dso extensions …``: which extensions are loaded, from where, and why others are not."""

from __future__ import annotations

import click

from kernel.cli.app import Application, pass_app
from kernel.errors import DSOError, ExitCode


@click.group()
def extensions() -> None:
    """Extensions: in-process Python code notified of every rotation, able to veto a swap.

    dso loads its built-in extensions (audit, webhook), then the `dso` entry-point group of
    installed packages, then the *.py files of the extensions directory (~/.dso/extensions,
    /var/lib/dso/extensions for the agent, or $DSO_EXTENSIONS_DIR). Skip some with
    DSO_DISABLE_EXTENSIONS=name1,name2, or every third-party one with DSO_NO_EXTENSIONS=1.

    \b
    Examples:
      docker dso extensions list
      docker dso extensions list --json | jq -r '.extensions[] | select(.enabled) | .name'
      DSO_DISABLE_EXTENSIONS=webhook docker dso extensions list
    """


@extensions.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@pass_app
def list_(app: Application, as_json: bool) -> None:
    """List every extension: source, location, hooks, and whether it is enabled (and why not).

    Exits 3 when an extension cannot be loaded (after listing all of them): a command that
    rotates would refuse to run.

    \b
    Examples:
      docker dso extensions list
      docker dso extensions list --json
      DSO_NO_EXTENSIONS=1 docker dso extensions list
    """
    from kernel.config import load_config
    from kernel.extensions import load_extensions

    config = None
    try:
        config = load_config(app.config_path).config.extensions
    except DSOError as exc:
        app.warn(f"configuration not loaded ({exc.message}); built-in extensions use defaults")
    manager = load_extensions(app.layout, config, strict=False)
    directory = str(manager.directory) if manager.directory else None
    if as_json:
        app.out_json(
            {
                "directory": directory,
                "extensions": [record.to_json() for record in manager.records],
            }
        )
    else:
        app.out(f"extensions directory: {directory or '(not scanned: DSO_NO_EXTENSIONS is set)'}")
        rows = [("NAME", "SOURCE", "STATUS", "LOCATION", "HOOKS")]
        for record in manager.records:
            hooks = ",".join(h.removeprefix("dso_") for h in record.hooks) or "-"
            rows.append((record.name, record.source, record.status.value, record.location, hooks))
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        for row in rows:
            app.out("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        reasons = [r for r in manager.records if r.reason]
        if reasons:
            app.out("")
            for record in reasons:
                app.out(f"{record.name}: {record.status.value}: {record.reason}")
    if manager.failures:
        raise click.exceptions.Exit(ExitCode.CONFIG)
