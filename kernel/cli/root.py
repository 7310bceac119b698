"""The root click group of ``dso``: global options, lazily loaded subcommands.

Kept apart from :mod:`kernel.cli.main` (the entry point) so that ``status --json``, which
:mod:`kernel.cli.quick` answers without click, never imports click.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import click

from kernel import __version__
from kernel.cli.main import COMMANDS, EPILOG


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use."""

    def __init__(self, *args: Any, lazy: dict[str, str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = lazy

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy:
            module_name, attr = self.lazy[cmd_name].split(":")
            command = getattr(importlib.import_module(module_name), attr)
            assert isinstance(command, click.Command)
            return command
        return super().get_command(ctx, cmd_name)


@click.group(
    cls=LazyGroup,
    lazy=COMMANDS,
    epilog=EPILOG,
    context_settings={"help_option_names": ["-h", "--help"], "auto_envvar_prefix": "DSO"},
)
@click.option(
    "-c",
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="DSO_CONFIG",
    help="Configuration file (default: /etc/dso/dso.yaml, ~/.dso/config.yaml, ./dso.yaml).",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
    default="warning",
    envvar="DSO_LOG_LEVEL",
    show_default=True,
    help="Verbosity of log messages on stderr.",
)
@click.version_option(__version__, "--version", prog_name="dso")
@click.pass_context
def cli(ctx: click.Context, config_path: Path | None, log_level: str) -> None:
    """dso: inject secrets into Docker containers and rotate them without downtime."""
    from kernel.cli.app import Application
    from kernel.log import configure

    configure(log_level)
    ctx.obj = Application(
        prog=ctx.find_root().info_name or "dso", config_path=config_path, log_level=log_level
    )
