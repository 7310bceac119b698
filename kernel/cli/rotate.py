"""``docker dso rotate <service|container>…``: roll fresh secret values out to running containers.

A name is a compose service of the project (``-f``/``-p``/``--project-directory``, or the one
of the current directory, found as compose finds it) — all its replicas — or a container's exact
name. For each container, the references it was given (label ``dso.refs``) are resolved again;
when a version moved (label ``dso.versions``), or with ``--force``, the container is rotated with
the strategy the flag, its ``dso.strategy`` label, the configuration or ``auto`` picks. How it
works: docs/rotation.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from kernel.cli.app import Application, pass_app
from kernel.rotation.states import CONTAINER_STRATEGIES

if TYPE_CHECKING:
    from kernel.rotation.batch import TargetResult

#: kernel.rotation.choose.CHOICES, which imports the container model: `rotate --help` does not
#: need it (tests/unit/test_cli_help_fast.py holds the two equal).
CHOICES = ("auto", *(s.value for s in CONTAINER_STRATEGIES))


@click.command("rotate")
@click.argument("targets", nargs=-1, required=True)
@click.option(
    "-f", "--file", "files", multiple=True, help="Compose file of the project (as compose's -f)."
)
@click.option("-p", "--project-name", help="Compose project name (as compose's -p).")
@click.option("--project-directory", help="Compose project directory (as compose's).")
@click.option("--profile", "profiles", multiple=True, help="Compose profile to enable.")
@click.option("--env-file", "env_files", multiple=True, help="Compose environment file.")
@click.option(
    "--strategy",
    type=click.Choice(CHOICES),
    envvar="DSO_STRATEGY",
    help="Override the strategy (default: the container's dso.strategy label, else "
    "agent.rotation.strategy, else auto).",
)
@click.option("--dry-run", is_flag=True, help="Print the plan; change nothing.")
@click.option("--force", is_flag=True, help="Rotate even if no secret version changed.")
@click.option(
    "--wait",
    type=click.FloatRange(min=0),
    default=60.0,
    show_default=True,
    envvar="DSO_WAIT",
    help="Seconds to wait for another rotation of the same service or container.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.001),
    envvar="DSO_TIMEOUT",
    help="Seconds the new container may take to pass its health check "
    "(default: agent.rotation.timeout).",
)
@click.option(
    "--concurrency",
    type=click.IntRange(min=1, max=32),
    default=4,
    show_default=True,
    envvar="DSO_CONCURRENCY",
    help="Services or containers rotated at the same time.",
)
@click.option(
    "--parallel",
    type=click.IntRange(min=1, max=32),
    envvar="DSO_PARALLEL",
    help="Replicas of one service rotated at the same time once the first has rotated alone "
    "(default: the service's dso.parallel label, else agent.rotation.parallel, 4; 1: one after "
    "another).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@pass_app
def rotate(
    app: Application,
    targets: tuple[str, ...],
    files: tuple[str, ...],
    project_name: str | None,
    project_directory: str | None,
    profiles: tuple[str, ...],
    env_files: tuple[str, ...],
    strategy: str | None,
    dry_run: bool,
    force: bool,
    wait: float,
    timeout: float | None,
    concurrency: int,
    parallel: int | None,
    as_json: bool,
) -> None:
    """Roll new secret versions out to services or containers, without downtime.

    TARGETS are compose services of the project (-f/-p/--project-directory, else the one in
    the current directory; COMPOSE_FILE and COMPOSE_PROJECT_NAME work as with compose) or
    container names, or (on a swarm manager) Swarm services or stacks deployed with
    `docker dso stack deploy`, rotated through the engine (docs/swarm.md). A service's
    containers are resolved again (label dso.refs) in one fetch;
    if a version changed (or with --force) each is replaced by a faithful clone holding the
    new values, under one lock per service. With rolling (zero downtime) both serve during the
    overlap, and after the first replica has rotated alone, up to --parallel replicas rotate at
    a time; restart stops the old one first (published host ports, static IPs, exclusive
    volumes) and reload rewrites secret files in place and signals the container, one replica
    after another. Several targets rotate in parallel and independently. A failed health check
    rolls back: the old container keeps serving, untouched, and no further replica starts.
    Exits 9 if a rotation failed.

    \b
    Examples:
      docker dso rotate web --dry-run
      docker dso rotate web worker
      docker dso rotate web --parallel 4
      docker dso rotate -f compose.prod.yaml api
      docker dso rotate shop-db-1 --strategy restart --timeout 60
      docker dso rotate web --force --json | jq '.rotations[0].phases'
      docker dso rotate shop_web          # a Swarm service (or: shop, the whole stack)
    """
    import contextlib
    import dataclasses

    from kernel.cli.rotate_output import show_result
    from kernel.cli.rotation_kit import finish_project, project_hasher, start_project
    from kernel.compose.args import split_args

    tokens = [f"--file={f}" for f in files] + [f"--profile={p}" for p in profiles]
    tokens += [f"--env-file={e}" for e in env_files]
    if project_name:
        tokens.append(f"--project-name={project_name}")
    if project_directory:
        tokens.append(f"--project-directory={project_directory}")
    compose_args = split_args(tokens)
    # compose reads the project, and then the default provider starts, while dso imports, loads
    # its configuration and connects to Docker (once: the batch reuses the connection). What
    # the provider's start does not need is imported after it.
    with start_project(compose_args) as pending:
        runtime = app.open_runtime()
        rotation = runtime.config.agent.rotation
        if timeout is not None:
            rotation = dataclasses.replace(rotation, timeout=timeout)
        try:
            runtime.resolver.prewarm()
            from kernel.containers.client import SharedConnection, connect
            from kernel.swarm.targets import split_targets

            client = connect()
            connection = SharedConnection(client)
            project, name = finish_project(app, compose_args, pending)
        except BaseException:
            runtime.close()  # the provider prewarm started
            raise
    services = list((project.model.get("services") or {}) if project else ())
    with runtime, contextlib.closing(connection):
        chosen, swarm = split_targets(client, targets, project=name, services=services)
        batch = runtime.batch(
            connect=connection.connect,
            hasher=project_hasher(runtime, project),
            rotation=rotation,
            strategy=strategy,
            force=force,
            dry_run=dry_run,
            wait=wait,
            concurrency=concurrency,
            parallel=parallel,
        )
        single = len(chosen) + len(swarm) == 1 and not as_json

        def shown(result: TargetResult) -> None:
            if single and result.error is not None and result.untouched:
                return  # raised below: one line, its hint and its exit code
            if not as_json:
                show_result(app, result, dry_run=dry_run)

        results = batch.run(chosen, on_result=shown) if chosen else []
        if swarm:  # Swarm services: the engine's secrets and rolling update (docs/swarm.md)
            from kernel.swarm.rotation import SwarmRotator, rotate_services

            def rotator() -> SwarmRotator:
                return SwarmRotator(
                    connection.connect(),
                    journal=runtime.journal,
                    locks=runtime.locks,
                    resolver=runtime.rollout_resolver,
                    config=rotation,
                    observer=runtime.extensions,
                )

            results += rotate_services(
                swarm,
                rotator,
                force=force,
                dry_run=dry_run,
                wait=wait,
                concurrency=concurrency,
                on_result=shown,
            )
    if as_json:
        app.out_json(
            {
                "dry_run": dry_run,
                "targets": [r.to_dict() for r in results],
                "rotations": [o.to_dict() for r in results for o in r.outcomes],
            }
        )
    failed = [r for r in results if not r.ok]
    if not failed:
        return
    from kernel.errors import ExitCode

    errors = [r.error for r in failed if r.error is not None]
    if single and errors and failed[0].untouched:
        raise errors[0]
    code = errors[0].exit_code if errors else ExitCode.ROTATION
    app.abort(f"rotation failed for {', '.join(r.target.name for r in failed)}", code)
