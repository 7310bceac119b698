"""What ``rotate`` and ``recover`` both need to roll values out: the compose project of the
current directory (so a rotated container keeps compose's config hash) and the provider host,
resolver and extensions of one command."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

from kernel.errors import DSOError

if TYPE_CHECKING:
    from kernel.cli.app import Application
    from kernel.compose.args import ComposeArgs
    from kernel.compose.confighash import ComposeHasher
    from kernel.compose.inject import PendingProject, Project
    from kernel.config.model import Config
    from kernel.extensions import Extensions
    from kernel.injection.resolver import Resolver


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
    from kernel.compose.inject import PendingProject

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


def project_hasher(app: Application, project: Project | None) -> ComposeHasher | None:
    if project is None:
        return None
    from kernel.compose.confighash import ComposeHasher
    from kernel.injection.tmpfs import default_base

    return ComposeHasher(project, default_base(app.layout))


@contextlib.contextmanager
def rollout_services(app: Application, config: Config) -> Iterator[tuple[Resolver, Extensions]]:
    """A resolver on one provider host (started on first use, closed at the end) and the
    loaded extensions, for the rotations of one command."""
    import threading

    from kernel.extensions import Extensions
    from kernel.injection.host_resolver import ProviderHostResolver
    from kernel.provider_host import ProviderHost

    hosts: list[ProviderHost] = []
    hosts_lock = threading.Lock()

    def open_host() -> ProviderHost:
        with hosts_lock:  # one host for every target (thread): one process per provider
            if not hosts:
                hosts.append(ProviderHost(config, app.layout))
            return hosts[0]

    resolver = ProviderHostResolver(config, open_host, keep_open=True)
    try:
        with Extensions.load(app.layout, config.extensions) as extensions:
            yield resolver, extensions
    finally:
        for host in hosts:
            host.close()
