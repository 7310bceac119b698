"""Entry point of ``dso``: the root click group, lazy command loading, error handling."""

from __future__ import annotations

import importlib
import logging
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from kernel import __version__
from kernel.errors import DSOError, ExitCode

#: Command name → "module:attribute". Imported only when used, so ``version`` stays fast.
COMMANDS: dict[str, str] = {
    "agent": "kernel.cli.agent:agent",
    "compose": "kernel.cli.compose:compose",
    "config": "kernel.cli.config:config",
    "doctor": "kernel.cli.doctor:doctor",
    "down": "kernel.cli.compose:down",
    "events": "kernel.cli.status:events",
    "extensions": "kernel.cli.extensions:extensions",
    "fetch": "kernel.cli.fetch:fetch",
    "init": "kernel.cli.init:init",
    "install": "kernel.cli.install:install",
    "migrate": "kernel.cli.migrate:migrate",
    "providers": "kernel.cli.providers:providers",
    "recover": "kernel.cli.recover:recover",
    "rotate": "kernel.cli.rotate:rotate",
    "secret": "kernel.cli.secret:secret",
    "status": "kernel.cli.status:status",
    "up": "kernel.cli.compose:up",
    "validate": "kernel.cli.validate:validate",
    "version": "kernel.cli.version:version",
}

EPILOG = """\b
Examples:
  docker dso init                      create ~/.dso and an empty local vault
  printf s3cret | docker dso secret set app/db_password
  docker dso secret list
  docker dso config validate --json
  docker dso version

Set DSO_DEBUG=1 to see tracebacks. Every option can also be set as DSO_<OPTION>.
"""


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


def run(argv: Sequence[str], *, prog_name: str = "dso") -> int:
    """Run the CLI with ``argv`` and return the exit code (no ``sys.exit``)."""
    try:
        # Without standalone mode click *returns* the code of a click.exceptions.Exit.
        result = cli.main(args=list(argv), prog_name=prog_name, standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return ExitCode.USAGE if isinstance(exc, click.UsageError) else exc.exit_code
    except click.exceptions.Abort as exc:
        # click turns a Ctrl-C inside a command into Abort; say what happened either way.
        interrupted = isinstance(exc.__context__, KeyboardInterrupt)
        click.echo("Interrupted." if interrupted else "Aborted.", err=True)
        return ExitCode.INTERRUPTED
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        return ExitCode.INTERRUPTED
    except DSOError as exc:
        if _debug():
            traceback.print_exc()
        click.echo(f"{prog_name}: error: {exc}", err=True)
        return int(exc.exit_code)
    except BrokenPipeError:
        # `docker dso secret list | head -1`: the reader left; not an error of ours.
        sys.stderr.close()
        return ExitCode.OK
    return result if isinstance(result, int) else ExitCode.OK


def _debug() -> bool:
    import os

    return os.environ.get("DSO_DEBUG", "") not in ("", "0") or logging.getLogger(
        "dso"
    ).isEnabledFor(logging.DEBUG)


def main() -> None:
    sys.exit(run(sys.argv[1:]))
