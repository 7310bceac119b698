"""The :class:`Application` every command receives: output channels, config and layout.

Data goes to stdout, messages to stderr (hatch's convention), so ``docker dso … --json | jq``
always sees clean JSON.
"""

from __future__ import annotations

import os
import sys
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from kernel.errors import DSOError, ExitCode

if TYPE_CHECKING:
    from kernel.paths import Layout
    from kernel.runtime import Runtime


class Abort(DSOError):
    """Raised by :meth:`Application.abort`; carries the exit code chosen by the command."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.exit_code = code  # type: ignore[assignment]


class Application:
    """State shared by every command of one invocation."""

    def __init__(self, *, prog: str, config_path: Path | None, log_level: str) -> None:
        self.prog = prog
        self.config_path = config_path
        self.log_level = log_level

    # -- output -------------------------------------------------------------------------------

    def out(self, text: str = "") -> None:
        """Data for the user: stdout."""
        click.echo(text)

    def out_json(self, doc: Any) -> None:
        from kernel.cli.json_output import json_text

        click.echo(json_text(doc))

    def info(self, text: str) -> None:
        """A message about what happened: stderr."""
        click.echo(text, err=True)

    def warn(self, text: str) -> None:
        click.echo(f"warning: {text}", err=True)

    def abort(self, message: str, code: int = ExitCode.ERROR) -> NoReturn:
        raise Abort(message, code)

    @property
    def stdout_is_tty(self) -> bool:
        return sys.stdout.isatty()

    @property
    def stdin_is_tty(self) -> bool:
        return sys.stdin.isatty()

    # -- environment ----------------------------------------------------------------------------

    @cached_property
    def layout(self) -> Layout:
        from kernel.paths import installation_mode, layout_of

        return layout_of(installation_mode(self.config_path))

    def open_runtime(self) -> Runtime:
        """A :class:`~kernel.runtime.Runtime` on this invocation's layout and configuration
        (``-c``, else the spec's lookup order); the caller closes it. Raises ConfigError."""
        from kernel.runtime import Runtime

        return Runtime.load(self.layout, self.config_path)

    @property
    def debug(self) -> bool:
        return os.environ.get("DSO_DEBUG", "") not in ("", "0")


pass_app = click.make_pass_decorator(Application)
