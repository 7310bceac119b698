"""``docker dso providers test <name-or-path>``: the conformance kit, for provider authors.

Runs the same suite as ``tests/contract`` (:mod:`kernel.conformance`) against a discovered
provider or an executable, prints ✓/✗ per check with its timing and reason (or ``--json``), and
exits 0 only when every check passed (7 otherwise). Attached to the ``providers`` group by
``providers.add_command(providers_test)``.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import click

from kernel.cli.app import Application, pass_app
from kernel.errors import ExitCode, UsageError

if TYPE_CHECKING:
    from kernel.conformance import CheckResult, Fixture
    from kernel.provider_host import ProviderCommand

LOCAL = "local"


def _looks_like_path(target: str) -> bool:
    return os.sep in target or target.startswith(".") or Path(target).is_file()


def resolve_command(app: Application, target: str) -> ProviderCommand:
    """An executable path as given, else a provider program found by discovery."""
    from kernel.protocol import EXECUTABLE_PREFIX
    from kernel.provider_host import ORIGIN_PATH, ProviderCommand, find_command, plugins_dir
    from kernel.provider_host.discovery import valid_name

    if _looks_like_path(target):
        path = Path(target).expanduser().absolute()
        if not path.is_file() or not os.access(path, os.X_OK):
            raise UsageError(f"{path} is not an executable file")
        name = path.name.removeprefix(EXECUTABLE_PREFIX)
        return ProviderCommand(name if valid_name(name) else "provider", (str(path),), ORIGIN_PATH)
    if not valid_name(target):
        raise UsageError(
            f"{target!r} is neither a provider name ([a-z][a-z0-9_-]*) nor a path;"
            " give a path as ./my-provider"
        )
    return find_command(target, plugins_dir(app.layout))


def _is_local(command: ProviderCommand) -> bool:
    """True for the local vault provider (by name, else by what ``--describe`` says)."""
    if command.name == LOCAL:
        return True
    from kernel.errors import ProtocolError
    from kernel.provider_host import run_describe

    try:
        return run_describe(command).get("name") == LOCAL
    except ProtocolError:
        return False


@contextlib.contextmanager
def _fixture_for(command: ProviderCommand, fixture_path: Path | None) -> Iterator[Fixture]:
    """The ``--fixture`` file, or a throwaway seeded vault for the local provider."""
    from kernel.conformance import load_fixture, seed_local_vault

    if fixture_path is not None:
        yield load_fixture(fixture_path)
        return
    if not _is_local(command):
        raise UsageError(
            f"testing the provider {command.name!r} needs --fixture FILE: the secrets that exist"
            " in its back end, and one that does not",
            hint="the format is in docs/provider-protocol.md, section 'Conformance kit'",
        )
    with tempfile.TemporaryDirectory(prefix="dso-conformance-") as directory:
        yield seed_local_vault(Path(directory))


@click.command("test")
@click.argument("target", metavar="NAME-OR-PATH")
@click.option(
    "--fixture",
    "fixture_path",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="JSON file naming the provider's settings, secrets that exist, and one that does not"
    " (optional for the local provider: a throwaway vault is used).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option(
    "--check",
    "only",
    multiple=True,
    metavar="NAME",
    help="Run only this check and those it builds on (repeatable). Default: every check.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.1),
    default=10.0,
    show_default=True,
    help="Seconds each request may take.",
)
@click.option(
    "--start-timeout",
    type=click.FloatRange(min=0.1),
    default=5.0,
    show_default=True,
    help="Seconds from exec to the handshake.",
)
@pass_app
def providers_test(
    app: Application,
    target: str,
    fixture_path: Path | None,
    as_json: bool,
    only: tuple[str, ...],
    timeout: float,
    start_timeout: float,
) -> None:
    """Check that a provider follows the dso provider protocol.

    NAME-OR-PATH is a provider found in the plugins directory or shipped with dso (see
    `docker dso providers list`), or the path of an executable (./dso-provider-mine). Each
    check prints ✓, ✗ or - (skipped) with its time and the reason. Exits 0 only when every
    check passed, 7 otherwise. Secret values are never printed: mismatches are described by
    size.

    \b
    Examples:
      docker dso providers test local                 uses a throwaway local vault
      docker dso providers test ./dso-provider-mine --fixture fixture.json
      docker dso providers test vault --fixture vault-fixture.json --json
    """
    from kernel.conformance import CHECK_NAMES, run_suite
    from kernel.conformance.report import format_result, summary_line

    unknown = sorted(set(only) - set(CHECK_NAMES))
    if unknown:
        raise UsageError(f"unknown check {unknown[0]!r}; the checks are: {', '.join(CHECK_NAMES)}")
    command = resolve_command(app, target)
    with _fixture_for(command, fixture_path) as fixture:
        if not as_json:
            app.out(f"testing provider {command.name!r}: {' '.join(command.argv)}")

        def progress(result: CheckResult) -> None:
            if not as_json:
                app.out(format_result(result))

        report = run_suite(
            command,
            fixture,
            start_timeout=start_timeout,
            request_timeout=timeout,
            only=set(only) or None,
            on_result=progress,
        )
    if as_json:
        app.out_json(report.to_json())
    else:
        app.out(summary_line(report))
    if not report.passed:
        raise click.exceptions.Exit(ExitCode.PROVIDER)
