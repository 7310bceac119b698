"""What ``rotate`` and ``recover`` both need besides the :class:`~kernel.runtime.Runtime`: the
compose project (so a rotated container keeps compose's config hash)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kernel.errors import DSOError

if TYPE_CHECKING:
    from kernel.cli.app import Application
    from kernel.compose.args import ComposeArgs
    from kernel.compose.confighash import ComposeHasher
    from kernel.compose.project import PendingProject, Project
    from kernel.runtime import Runtime


class NoProject:
    """Stands in for a :class:`PendingProject` when there is no compose project to read."""

    def __enter__(self) -> NoProject:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


def start_project(args: ComposeArgs) -> PendingProject | NoProject:
    """Start reading the compose project, if flags name one or the directory has one."""
    import os
    from pathlib import Path

    from kernel.compose.files import project_files
    from kernel.compose.project import PendingProject

    if not args.global_flags and not project_files(args, Path.cwd(), os.environ).files:
        return NoProject()
    return PendingProject(args)


def finish_project(
    app: Application, args: ComposeArgs, pending: PendingProject | NoProject, *, quiet: bool = False
) -> tuple[Project | None, str | None]:
    """The project read, and the project name services are looked up in (``-p`` alone
    names a project whose files are not at hand). ``quiet``: an unreadable project of the
    current directory is not worth a warning (``recover`` only uses it for config hashes)."""
    import os

    explicit = bool(args.files or args.project_directory or args.profiles or args.env_files)
    named = args.project_name or os.environ.get("COMPOSE_PROJECT_NAME") or None
    if isinstance(pending, NoProject):
        return None, named
    try:
        project = pending.result()
    except DSOError as exc:
        if explicit:
            raise
        if not args.project_name and not quiet:
            app.warn(f"{exc.message}; names are taken as container names")
        return None, named
    return project, project.name


def project_hasher(runtime: Runtime, project: Project | None) -> ComposeHasher | None:
    if project is None:
        return None
    from kernel.compose.confighash import ComposeHasher

    return ComposeHasher(project, runtime.secrets_base, runtime.journal.owner)
