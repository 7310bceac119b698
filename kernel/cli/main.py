"""Entry point of ``dso``: which command runs, and how its errors end (message, exit code).

``status --json`` is answered by :mod:`kernel.cli.quick` when it can be, without click;
everything else goes to the click tree of :mod:`kernel.cli.root` (``cli`` here too). This module
imports neither: the time of ``docker dso status --json`` is mostly Python starting twice.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

TYPE_CHECKING = False
if TYPE_CHECKING:
    from kernel.cli.root import LazyGroup, cli

__all__ = ["COMMANDS", "EPILOG", "LazyGroup", "cli", "main", "run"]

#: Command name → "module:attribute". Imported only when used, so ``version`` stays fast.
COMMANDS: dict[str, str] = {
    "agent": "kernel.cli.agent:agent",
    "bootstrap": "kernel.cli.bootstrap:bootstrap",
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
    "system": "kernel.cli.system:system",
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


def run(argv: Sequence[str], *, prog_name: str = "dso") -> int:
    """Run the CLI with ``argv`` and return the exit code (no ``sys.exit``)."""
    from kernel.cli.quick import quick_run

    code = quick_run(argv)
    if code is not None:
        return code
    import click

    from kernel.cli.root import cli
    from kernel.errors import DSOError, ExitCode

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
            import traceback

            traceback.print_exc()
        click.echo(f"{prog_name}: error: {exc}", err=True)
        return int(exc.exit_code)
    except BrokenPipeError:
        # `docker dso secret list | head -1`: the reader left; not an error of ours.
        sys.stderr.close()
        return ExitCode.OK
    return result if isinstance(result, int) else ExitCode.OK


def _debug() -> bool:
    import logging
    import os

    return os.environ.get("DSO_DEBUG", "") not in ("", "0") or logging.getLogger(
        "dso"
    ).isEnabledFor(logging.DEBUG)


def main() -> None:
    sys.exit(run(sys.argv[1:]))


def __getattr__(name: str) -> object:
    # The click tree, for `docker dso --help`, the docs generator and tests.
    if name in ("cli", "LazyGroup"):
        from kernel.cli import root

        return getattr(root, name)
    raise AttributeError(f"module 'kernel.cli.main' has no attribute {name!r}")
