"""``--mode``: which installation a command works on — this user's (``local``: ~/.dso,
``$DSO_HOME``) or the host's (``agent``: /etc/dso, /var/lib/dso, /run/dso). One option and
one layout lookup for ``agent``, ``status``, ``events`` and ``doctor``."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from kernel.cli.app import Application
    from kernel.paths import Layout

MODES = ("local", "agent")
F = TypeVar("F", bound=Callable[..., Any])


def mode_option(help: str) -> Callable[[F], F]:
    """The ``--mode`` option (``DSO_MODE``), with this command's ``help``."""

    def decorate(func: F) -> F:
        return click.option(
            "--mode",
            type=click.Choice(MODES),
            envvar="DSO_MODE",
            default=None,
            help=help + " Default: agent when the configuration in use is /etc/dso/dso.yaml "
            "(and DSO_HOME is unset), else local.",
        )(func)

    return decorate


def layout_for(app: Application, mode: str | None) -> Layout:
    """The layout of ``mode``'s installation; without one, the application's (``agent`` when
    the configuration in use is the host agent's: :func:`kernel.paths.installation_mode`)."""
    if mode is None:
        return app.layout
    from kernel.paths import layout_of

    return layout_of(mode)
