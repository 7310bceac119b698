"""The root click group of ``dso``: global options, lazily loaded subcommands.

Kept apart from :mod:`kernel.cli.main` (the entry point) so that ``status --json``, which
:mod:`kernel.cli.quick` answers without click, never imports click.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from typing import Any

import click

from kernel import __version__
from kernel.cli.main import COMMANDS, EPILOG, SUMMARIES

#: ctx.meta key: the subcommand was asked for its help only (nothing to log).
HELP_ONLY = "dso.help_only"


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use."""

    def __init__(
        self,
        *args: Any,
        lazy: dict[str, str],
        summaries: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = lazy
        #: The first paragraph of a lazy command's help, to list it without importing it.
        self.summaries = summaries or {}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy:
            module_name, attr = self.lazy[cmd_name].split(":")
            command = getattr(importlib.import_module(module_name), attr)
            assert isinstance(command, click.Command)
            return command
        return super().get_command(ctx, cmd_name)

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        ctx = super().make_context(info_name, args, parent=parent, **extra)
        if ctx.terminal_width is None and click.formatting.FORCED_WIDTH is None:
            # What click's HelpFormatter computes, without importing shutil (and with it lzma
            # and bz2: ~10 ms of every --help); sub-contexts inherit it.
            ctx.terminal_width = max(min(_columns(), ctx.max_content_width or 80) - 2, 50)
        return ctx

    def invoke(self, ctx: click.Context) -> Any:
        # `dso rotate --help` runs this group's callback before the subcommand prints its help:
        # that callback then skips the log setup (its import is a tenth of such a call).
        pending = [*getattr(ctx, "_protected_args", ()), *ctx.args]
        words = pending[1 : pending.index("--")] if "--" in pending else pending[1:]
        help_names = set(ctx.help_option_names)
        ctx.meta[HELP_ONLY] = any(word in help_names for word in words)
        return super().invoke(ctx)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """click's listing, with the summaries of lazy commands instead of their modules (importing
        every command made ``dso --help`` ~0.3 s)."""
        names = [
            (name, None if name in self.summaries else self.get_command(ctx, name))
            for name in self.list_commands(ctx)
        ]
        shown = [(name, cmd) for name, cmd in names if cmd is None or not cmd.hidden]
        if not shown:
            return
        limit = formatter.width - 6 - max(len(name) for name, _ in shown)
        rows = [
            (
                name,
                (cmd or click.Command(name, help=self.summaries[name])).get_short_help_str(limit),
            )
            for name, cmd in shown
        ]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def _columns() -> int:
    """``shutil.get_terminal_size().columns``: $COLUMNS, else stdout's terminal, else 80."""
    try:
        columns = int(os.environ.get("COLUMNS", 0))
    except ValueError:
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns or 80


@click.group(
    cls=LazyGroup,
    lazy=COMMANDS,
    summaries=SUMMARIES,
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

    if not ctx.meta.get(HELP_ONLY):
        from kernel.log import configure

        configure(log_level)
    ctx.obj = Application(
        prog=ctx.find_root().info_name or "dso", config_path=config_path, log_level=log_level
    )
