"""Entry point of ``dso``: which command runs, and how its errors end (message, exit code).

``status --json`` and ``version`` are answered by :mod:`kernel.cli.quick` when they can be,
without click; everything else goes to the click tree of :mod:`kernel.cli.root` (``cli`` here
too). This module imports neither: the time of ``docker dso status --json`` is mostly Python
starting twice.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

    from kernel.cli.root import LazyGroup, cli

__all__ = ["COMMANDS", "EPILOG", "SUMMARIES", "LazyGroup", "cli", "main", "run"]

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
    "stack": "kernel.cli.stack:stack",
    "status": "kernel.cli.status:status",
    "system": "kernel.cli.system:system",
    "up": "kernel.cli.compose:up",
    "validate": "kernel.cli.validate:validate",
    "version": "kernel.cli.version:version",
}

#: Command name → the first paragraph of its help: ``dso --help`` lists the commands from here
#: without importing each (tests/unit/test_cli_help_fast.py holds the two equal; a command
#: missing here is imported to be listed).
SUMMARIES: dict[str, str] = {
    "agent": "Watch the providers and Docker, and roll changed secrets out by itself.",
    "bootstrap": "Set up dso on this host: the systemd agent (as root), or ~/.dso for a user.",
    "compose": (
        "Run any other `docker compose` command on the same project (ps, logs, stop, restart…)."
    ),
    "config": "Check and show the dso configuration (every key: docs/configuration.md).",
    "doctor": (
        "Check this installation: Docker, Compose, configuration, directories, the agent, "
        "systemd, provider programs, tmpfs, state files, rotations, orphans and locks."
    ),
    "down": "Run `docker compose down`, then remove the project's secret files from the tmpfs.",
    "events": "Follow the agent's events as they happen, one line each, until Ctrl-C.",
    "extensions": (
        "Extensions: in-process Python code notified of every rotation, able to veto a swap."
    ),
    "fetch": "Resolve REFERENCE (dso://… or dsofile://…) through its provider and report it.",
    "init": "Create ~/.dso (or $DSO_HOME), a vault key, an empty local vault and config.yaml.",
    "install": "Install dso as a Docker CLI plugin, so `docker dso …` works.",
    "migrate": (
        "Propose which variables of a compose project are secrets; with --apply, migrate them."
    ),
    "providers": "Provider programs: the processes that fetch secrets from each back end.",
    "recover": "Finish or undo rotations a crash interrupted; remove their leftover containers.",
    "rotate": "Roll new secret versions out to services or containers, without downtime.",
    "secret": "Manage secrets in the local encrypted vault (~/.dso/vault.enc).",
    "stack": "Docker Swarm stacks whose dsofile:// references become versioned Swarm secrets.",
    "status": "Show what the agent knows, live or from its state files.",
    "system": "The host agent as a systemd service (dso-agent.service).",
    "up": "Resolve the project's secret references, then run `docker compose up`.",
    "validate": "Check that every secret reference of the compose project parses and resolves.",
    "version": "Show the versions of dso, Python and the Docker daemon.",
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
