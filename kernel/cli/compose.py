"""``docker dso up``, ``down`` and ``compose``: Docker Compose with secrets injected.

``up`` reads the project exactly as compose does (``docker compose config``), resolves every
``dso://`` and ``dsofile://`` reference in one batch, writes file secrets to a tmpfs, and runs
``docker compose up`` on the rewritten model fed on stdin, with env values only in compose's
process environment. How it works, and its limits: docs/compose.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from kernel.cli.app import Application, pass_app
from kernel.cli.progress import Progress, plural
from kernel.compose.args import ComposeArgs, split_args
from kernel.errors import UsageError

if TYPE_CHECKING:
    from pathlib import Path

    from kernel.cli.progress import Timer
    from kernel.compose.project import Project
    from kernel.compose.scan import Scan
    from kernel.injection.resolver import Resolved
    from kernel.reference import SecretReference
    from kernel.runtime import Runtime

PASSTHROUGH = {"ignore_unknown_options": True, "allow_extra_args": True}
#: Compose commands that create containers: they need the secrets, so only `up` may run them.
_CREATING = frozenset({"up", "run", "create", "scale", "watch"})


@click.command(context_settings=PASSTHROUGH)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@pass_app
def up(app: Application, args: tuple[str, ...]) -> int:
    """Resolve the project's secret references, then run `docker compose up`.

    ARGS are compose's: global flags (-f, -p, --profile, --env-file, --project-directory…)
    and `up`'s own flags and services, in any order. `dso://REF` values of a service's
    environment become environment variables (visible in `docker inspect`: a warning says so);
    `dsofile://REF` values become files under /run/secrets/dso in the container (0400, on a
    host tmpfs) and the variable holds the file's path. With SERVICE names, only the references
    of the services that start (those named and their dependencies) must resolve. Exits with
    compose's exit code, or dso's when a reference cannot be delivered (nothing is started then).

    With -d, a local agent is started when none watches this dso home, so later secret
    changes are rolled out by themselves (--no-agent or DSO_NO_AGENT=1: don't; `docker dso
    agent stop` stops it).

    \b
    Examples:
      docker dso up -d
      docker dso up -d --no-agent
      docker dso up -d -f compose.yaml -f compose.prod.yaml --profile tools
      docker dso up -d --build web
      docker dso up                   attached, Ctrl-C stops the project as compose does
    """
    import contextlib
    import os

    from kernel.compose.project import PendingProject

    no_agent = "--no-agent" in args or os.environ.get("DSO_NO_AGENT", "") not in ("", "0")
    compose_args = split_args([a for a in args if a != "--no-agent"])
    progress = Progress()
    with contextlib.ExitStack() as stack:
        with (
            PendingProject(compose_args) as pending,
            progress.step("reading the compose project") as read,
        ):
            # dso's configuration loads, and the default provider starts, while compose reads
            # the project; what the provider's start does not need is imported after it.
            runtime = app.open_runtime()
            stack.callback(runtime.close)
            runtime.resolver.prewarm()
            from kernel.compose.inject import scan_project
            from kernel.containers.daemon_info import image_user as daemon_image_user

            project = pending.result()
            scan = scan_project(project, daemon_image_user)
        code = _up(app, compose_args, progress, read, project, scan, runtime)
    detached = any(a in ("-d", "--detach") for a in compose_args.rest)
    if code == 0 and detached and not no_agent and scan.services:
        _ensure_agent(app, progress)
    return code


def _ensure_agent(app: Application, progress: Progress) -> None:
    """Local mode: make sure an agent rolls later secret changes out (docs/agent.md)."""
    from kernel.agent.launcher import ensure_agent
    from kernel.errors import AgentError

    try:
        pid, started = ensure_agent(app.layout, app.config_path)
    except AgentError as exc:
        app.warn(f"{exc.message}: secret changes will not be rolled out by themselves")
        return
    if started:
        log = app.layout.logs / "dso.log"
        progress.line(f"started a local agent (pid {pid}) to roll secret changes out; log: {log}")


def _up(
    app: Application,
    compose_args: ComposeArgs,
    progress: Progress,
    read: Timer,
    project: Project,
    scan: Scan,
    runtime: Runtime,
) -> int:
    """``up`` once the project is read: resolve, deliver, run compose."""
    import contextlib
    import os
    import threading

    from kernel.compose.args import up_selection
    from kernel.compose.inject import (
        deliver_files,
        locate_problems,
        problems_error,
        remove_stale_projects,
        resolve,
        started_services,
    )
    from kernel.compose.rewrite import rewrite_model
    from kernel.compose.runner import run_with_model
    from kernel.injection.atomic_dir import remove_retired
    from kernel.injection.tmpfs import SecretsDir, default_base

    _show_compose_warnings(progress, project.warnings)
    started = started_services(project.model, up_selection(compose_args.rest))
    if started is not None:
        # `up -d web` starts web and what it depends on: only their secrets must resolve.
        scan = scan.only(started)
    problems = list(scan.problems)
    values: dict[SecretReference, Resolved] = {}
    refs = scan.references()
    if not scan.services:
        progress.line(f"project {project.name}: no secret references ({read})")
    else:
        env_count = sum(len(s.env) for s in scan.services.values())
        file_count = sum(len(s.files) for s in scan.services.values())
        total = sum(len(s.written) for s in scan.services.values())
        progress.line(
            f"project {project.name}: {plural(total, 'reference')} in "
            f"{plural(len(scan.services), 'service')} ({env_count} dso://, "
            f"{file_count} dsofile://), read in {read}"
        )
        if file_count:
            _require_local_daemon(scan)
        resolver = runtime.resolver
        with progress.step(f"resolving {len(refs)} secrets") as timer:
            values, more = resolve(scan, resolver)
        problems += more
        if not problems:
            by_provider: dict[str, int] = {}
            for ref in refs:
                provider = resolver.provider_of(ref)
                by_provider[provider] = by_provider.get(provider, 0) + 1
            providers = ", ".join(
                f"{plural(n, 'secret')} from {p}" for p, n in sorted(by_provider.items())
            )
            progress.line(f"resolved {providers} in {timer}")
    if problems:
        raise problems_error(project, locate_problems(project, problems))
    _warn_env_delivery(progress, scan)

    secrets_dir = SecretsDir(default_base(app.layout))
    dirs: dict[str, Path] = {}
    if any(s.files for s in scan.services.values()):
        with progress.step("writing secret files") as timer:
            secrets_dir.prepare()
            with secrets_dir.locked(project.name):
                dirs = deliver_files(scan, values, secrets_dir)
        count = sum(len(s.files) for s in scan.services.values())
        progress.line(
            f"wrote {plural(count, 'file')} for {plural(len(dirs), 'service')} to "
            f"{secrets_dir.project_dir(project.name)} (tmpfs) in {timer}"
        )
    remove_stale_projects(secrets_dir, project.env, keep=project.name)
    rewritten = rewrite_model(project.model, scan, values, dirs, owner=runtime.journal.owner)
    del values
    # The providers are not needed while compose runs (possibly attached, for hours): they stop
    # while compose starts rather than before it.
    stopping = threading.Thread(target=runtime.stop_providers, name="dso-stop-providers")
    stopping.start()
    try:
        code = run_with_model(
            project.name,
            project.files.working_dir,
            compose_args,
            ["up", *compose_args.rest],
            rewritten.model,
            rewritten.environment,
            cwd=project.cwd,
            env=os.environ,
        )
    finally:
        stopping.join()
    if dirs:
        # The versions this run replaced go once no container can still be reading them (best
        # effort: the next publication removes what is left).
        with secrets_dir.locked(project.name), contextlib.suppress(OSError):
            for directory in dirs.values():
                remove_retired(directory, wait=True)
    return code


@click.command(context_settings=PASSTHROUGH)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@pass_app
def down(app: Application, args: tuple[str, ...]) -> int:
    """Run `docker compose down`, then remove the project's secret files from the tmpfs.

    ARGS are compose's global flags and `down`'s own (-v, --remove-orphans, --rmi…). Secret
    directories of projects that no longer have containers are removed too.

    \b
    Examples:
      docker dso down
      docker dso down -v --remove-orphans
      docker dso down -p myproject          without the compose files
    """
    compose_args = split_args(args)
    return _down(app, compose_args)


def _down(app: Application, compose_args: ComposeArgs) -> int:
    import os
    from pathlib import Path

    from kernel.compose.inject import remove_stale_projects
    from kernel.compose.project import load_project
    from kernel.compose.runner import run_plain
    from kernel.injection.tmpfs import SecretsDir, default_base

    name = compose_args.project_name
    if name is None:
        name = load_project(compose_args).name
    code = run_plain(compose_args, ["down", *compose_args.rest], cwd=Path.cwd(), env=os.environ)
    if code != 0:
        return code
    secrets_dir = SecretsDir(default_base(app.layout))
    if secrets_dir.exists():
        # An unsafe base (a symlink, another user's, shared) is refused, not cleaned up.
        secrets_dir.check()
        with secrets_dir.locked(name):
            removed = secrets_dir.remove_project(name)
        if removed:
            Progress().line(
                f"removed the secret files of project {name} ({secrets_dir.project_dir(name)})"
            )
        remove_stale_projects(secrets_dir, os.environ)
    return code


@click.command(context_settings=PASSTHROUGH)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@pass_app
def compose(app: Application, args: tuple[str, ...]) -> int:
    """Run any other `docker compose` command on the same project (ps, logs, stop, restart…).

    Global flags go before the command, as with compose. Commands that create containers
    (up, run, create, scale, watch) need the secrets: use `docker dso up`. `down` removes
    the secret files as `docker dso down` does.

    \b
    Examples:
      docker dso compose ps
      docker dso compose logs -f web
      docker dso compose -f compose.yaml restart web
      docker dso compose exec web ls -l /run/secrets/dso
    """
    import os
    from pathlib import Path

    from kernel.compose.runner import run_plain

    compose_args = split_args(args, anywhere=False)
    if not compose_args.rest:
        raise UsageError("name a compose command, e.g. docker dso compose ps")
    command = compose_args.rest[0]
    if command in _CREATING:
        raise UsageError(
            f"`docker dso compose {command}` would create containers without their secrets",
            hint="use `docker dso up` (it accepts every `docker compose up` flag)",
        )
    if command == "down":
        down_args = split_args([*compose_args.global_flags, *compose_args.rest[1:]])
        return _down(app, down_args)
    return run_plain(compose_args, compose_args.rest, cwd=Path.cwd(), env=os.environ)


def _require_local_daemon(scan: Scan) -> None:
    """``dsofile://`` files are written to this machine's tmpfs and bind-mounted: a daemon on
    another machine would mount its own (missing) path. Refuse before fetching anything."""
    from kernel.containers.docker_context import resolve_endpoint
    from kernel.errors import ComposeError

    endpoint = resolve_endpoint()
    if endpoint.is_local:
        return
    services = ", ".join(sorted(name for name, s in scan.services.items() if s.files))
    raise ComposeError(
        f"dsofile:// needs the Docker daemon on this machine, and {endpoint.host} is another one "
        f"(used by {services})",
        hint="run docker dso on the daemon's host, or use dso:// for these variables",
    )


def _show_compose_warnings(progress: Progress, warnings: tuple[str, ...]) -> None:
    for message in warnings:
        progress.warn(message.removeprefix("warning: "))


def _warn_env_delivery(progress: Progress, scan: Scan) -> None:
    """Once per run: which variables carry a value in the container's environment."""
    names = [f"{v} ({s.service})" for s in scan.services.values() for v in s.env]
    if names:
        progress.warn(
            "dso:// puts secret values in container environments, where `docker inspect` and "
            f"/proc show them: {', '.join(names)}. Prefer dsofile:// (a 0400 file on a tmpfs)."
        )
