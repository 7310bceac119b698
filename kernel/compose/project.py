"""A compose project as ``docker compose config`` reads it, started early.

Kept apart from :mod:`kernel.compose.inject` (which imports the resolver, the tmpfs and the
scanner) so that ``up`` and ``rotate`` start compose before importing any of that: the compose
process reads the project while dso imports and loads its configuration.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kernel.compose.args import ComposeArgs
from kernel.compose.files import ProjectFiles, project_files
from kernel.compose.runner import PendingModel as start_model

__all__ = ["PendingProject", "Project", "load_project"]


@dataclass(frozen=True, slots=True)
class Project:
    """A compose project as compose reads it."""

    args: ComposeArgs
    cwd: Path
    env: Mapping[str, str]
    model: dict[str, Any]
    files: ProjectFiles
    #: Compose's own warnings while reading it (unset variables…), to show the user.
    warnings: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return str(self.model["name"])


class PendingProject:
    """A project whose ``docker compose config`` is running; :meth:`result` waits for it."""

    def __init__(
        self, args: ComposeArgs, *, cwd: Path | None = None, env: Mapping[str, str] | None = None
    ) -> None:
        self.args = args
        self.cwd = cwd or Path.cwd()
        self.env = dict(os.environ if env is None else env)
        self._model = start_model(args, cwd=self.cwd, env=self.env)

    def __enter__(self) -> PendingProject:
        return self

    def __exit__(self, *exc: object) -> None:
        self._model.cancel()

    def result(self) -> Project:
        """The project; :class:`ComposeError` with compose's message if it rejected it."""
        model, warnings = self._model.result()
        files = project_files(self.args, self.cwd, self.env)
        return Project(self.args, self.cwd, self.env, model, files, tuple(warnings))


def load_project(
    args: ComposeArgs, *, cwd: Path | None = None, env: Mapping[str, str] | None = None
) -> Project:
    """Read the project through ``docker compose config``; :class:`ComposeError` if rejected."""
    with PendingProject(args, cwd=cwd, env=env) as pending:
        return pending.result()
