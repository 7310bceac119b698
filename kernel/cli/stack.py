"""``docker dso stack deploy|rm|secrets``: Docker Swarm stacks with dso's secrets.

``deploy`` reads the stack file, resolves its ``dsofile://`` references, creates one versioned
Swarm secret per value (through the API), and runs ``docker stack deploy -c - STACK`` on the
rewritten file. ``rm`` removes the stack, then the dso secrets no task uses any more. How it
works and what Swarm guarantees: docs/swarm.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from kernel.cli.app import Application, pass_app
from kernel.cli.progress import Progress, plural
from kernel.containers.client import connect
from kernel.swarm.secret_versions import dso_secrets

if TYPE_CHECKING:
    from kernel.swarm.secret_versions import SecretUse, SwarmSecret


@click.group("stack")
def stack() -> None:
    """Docker Swarm stacks whose dsofile:// references become versioned Swarm secrets.

    \b
    Examples:
      docker dso stack deploy -c stack.yaml shop
      docker dso stack deploy -c stack.yaml shop --dry-run
      docker dso stack secrets shop --json
      docker dso stack rm shop
    """


@stack.command("deploy")
@click.option(
    "-c",
    "--compose-file",
    "compose_file",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="DSO_STACK_FILE",
    help="The stack (compose) file.",
)
@click.option("--dry-run", is_flag=True, help="Check and resolve; create and deploy nothing.")
@click.option("--print", "print_file", is_flag=True, help="Print the rewritten file (no values).")
@click.option("--prune", is_flag=True, help="Passed to docker stack deploy.")
@click.option("--with-registry-auth", is_flag=True, help="Passed to docker stack deploy.")
@click.option(
    "--resolve-image",
    type=click.Choice(["always", "changed", "never"]),
    default=None,
    help="Passed to docker stack deploy.",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON document (never values).")
@click.argument("stack_name", metavar="STACK")
@pass_app
def deploy(
    app: Application,
    compose_file: Path,
    dry_run: bool,
    print_file: bool,
    prune: bool,
    with_registry_auth: bool,
    resolve_image: str | None,
    as_json: bool,
    stack_name: str,
) -> int:
    """Resolve the stack file's secret references, then run `docker stack deploy`.

    Each `dsofile://REF` value of a service's environment becomes a Swarm secret named
    STACK_NAME_FINGERPRINT (one per value: Swarm secrets are immutable), mounted where the
    reference's file goes (/run/secrets/dso/FILE, or the dso.secrets.path label) with the
    service user's numeric uid/gid (else root) and mode 0400; the variable holds the file's
    path. `dso://` is refused: Swarm stores a service's environment in its spec in the clear.
    Services that use secrets get `order: start-first` and `failure_action: rollback` in
    their update_config unless the file sets them, and the label dso.health.exec becomes the
    healthcheck of a service that has none (a warning names services without either: Swarm
    then counts a task ready as soon as it starts). Values reach the engine through its API,
    never a file or argv. Run it on a swarm manager.

    \b
    Examples:
      docker dso stack deploy -c stack.yaml shop
      docker dso stack deploy -c stack.yaml shop --dry-run --print
      docker dso stack deploy -c stack.yaml shop --json | jq '.secrets'
      docker dso stack deploy -c stack.yaml shop --resolve-image never   local images
    """
    from kernel.swarm.stack import dump, problems_error, read_stack, rewrite

    progress = Progress(quiet=as_json)
    with progress.step("reading the stack file") as timer:
        found = read_stack(compose_file, stack_name, shown=str(compose_file))
    refs = found.references()
    if found.problems:
        if as_json:
            app.out_json(_deploy_doc(stack_name, {}, [p.to_json() for p in found.problems]))
        raise problems_error(stack_name, found.problems)
    progress.line(
        f"stack {stack_name}: {plural(len(refs), 'dsofile:// secret')} in "
        f"{plural(len(found.scan.services), 'service')}, read in {timer}"
    )
    for warning in found.warnings:
        progress.warn(warning)
    client = None if dry_run else connect()
    if client is not None:
        from kernel.swarm.deploy import manager_node

        manager_node(client)
    runtime = app.open_runtime()
    with runtime:
        from kernel.compose.inject import resolve
        from kernel.swarm.stack import locate_problems

        with progress.step(f"resolving {plural(len(refs), 'secret')}") as timer:
            values, failed = resolve(found.scan, runtime.resolver) if refs else ({}, [])
        if failed:
            located = locate_problems(found, failed)
            if as_json:
                app.out_json(_deploy_doc(stack_name, {}, [p.to_json() for p in located]))
            raise problems_error(stack_name, located)
        if refs:
            progress.line(f"resolved {plural(len(refs), 'secret')} in {timer}")
        from kernel.swarm.secret_versions import fingerprint, secret_name

        names = {
            ref: secret_name(stack_name, key.removeprefix("dso_"), fingerprint(ref, values[ref]))
            for ref, key in found.keys.items()
        }
        created: list[str] = []
        if client is not None and refs:
            from kernel.swarm.deploy import create_versions

            before = {s.name for s in dso_secrets(client, stack_name)}
            with progress.step("creating swarm secrets") as timer:
                made = create_versions(client, found, values)
            created = [s.name for s in made.values() if s.name not in before]
            progress.line(
                f"{plural(len(created), 'new swarm secret')}, "
                f"{len(made) - len(created)} already there, in {timer}"
            )
        del values
    text = dump(rewrite(found, names))
    if print_file and not as_json:
        app.out(text.rstrip("\n"))
    doc = _deploy_doc(
        stack_name,
        {
            ref.uri(): {
                "name": names[ref],
                "key": found.keys[ref],
                "services": found.services_of(ref),
                "created": names[ref] in created,
            }
            for ref in refs
        },
        [],
    )
    doc["dry_run"] = dry_run
    doc["warnings"] = found.warnings
    if client is None:
        doc["node"], where = _node_role()
        progress.line(f"dry run: nothing created, nothing deployed ({where})")
        if as_json:
            app.out_json(doc)
        return 0
    from kernel.swarm.deploy import retire, run_stack

    argv = ["deploy", "--compose-file", "-"]
    argv += ["--prune"] if prune else []
    argv += ["--with-registry-auth"] if with_registry_auth else []
    argv += ["--resolve-image", resolve_image] if resolve_image else []
    with progress.step(f"docker stack deploy {stack_name}") as timer:
        code = run_stack([*argv, stack_name], text, capture=as_json)
    if code != 0:
        return code
    removed, _kept = retire(client, stack_name, keep=list(names.values()))
    if removed:
        progress.line(f"removed {plural(len(removed), 'unused secret version')}")
    doc["removed"] = removed
    if as_json:
        app.out_json(doc)
    return 0


def _deploy_doc(
    stack_name: str, secrets: dict[str, Any], problems: list[dict[str, Any]]
) -> dict[str, Any]:
    return {"stack": stack_name, "secrets": secrets, "problems": problems}


@stack.command("rm")
@click.option(
    "--timeout",
    default=60.0,
    show_default=True,
    type=float,
    envvar="DSO_STACK_RM_TIMEOUT",
    help="Seconds to wait for the stack's tasks to stop before removing its secrets.",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON document.")
@click.argument("stack_name", metavar="STACK")
@pass_app
def rm(app: Application, timeout: float, as_json: bool, stack_name: str) -> int:
    """Run `docker stack rm STACK`, then remove the stack's dso secrets no task uses.

    Swarm stops the stack's tasks after `docker stack rm` returns; dso waits for them (up to
    --timeout) so it can remove every secret version. A version still in use then (another
    stack's service uses it) is kept and listed.

    \b
    Examples:
      docker dso stack rm shop
      docker dso stack rm shop --timeout 120 --json
    """
    from kernel.swarm.deploy import manager_node, retire, run_stack, wait_unused

    progress = Progress(quiet=as_json)
    client = connect()
    manager_node(client)
    names = [s.name for s in dso_secrets(client, stack_name)]
    with progress.step(f"docker stack rm {stack_name}"):
        code = run_stack(["rm", stack_name], capture=as_json)
    if code != 0:
        return code
    with progress.step(f"waiting for the tasks of {stack_name} to stop") as timer:
        wait_unused(client, names, timeout)
    removed, kept = retire(client, stack_name, keep_newest=False)
    progress.line(
        f"removed {plural(len(removed), 'secret version')} in {timer}"
        + (f"; kept {len(kept)} still in use: {', '.join(kept)}" if kept else "")
    )
    if as_json:
        app.out_json({"stack": stack_name, "removed": removed, "kept": kept})
    return 0 if not kept else 1


@stack.command("secrets")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON document.")
@click.argument("stack_name", metavar="[STACK]", required=False)
@pass_app
def secrets(app: Application, as_json: bool, stack_name: str | None) -> None:
    """List dso's Swarm secret versions and the services and tasks that use each.

    Never shows a value (the engine never returns one). A version used by nothing is removed
    by the next deploy, rotation or `stack rm`.

    \b
    Examples:
      docker dso stack secrets
      docker dso stack secrets shop --json | jq '.secrets[] | select(.used_by == [])'
    """
    from kernel.swarm.secret_versions import secret_uses

    client = connect()
    found = dso_secrets(client, stack_name)
    uses = secret_uses(client)
    doc = {"secrets": [_secret_doc(s, uses) for s in found]}
    if as_json:
        app.out_json(doc)
        return
    if not found:
        app.info("no dso swarm secrets" + (f" for stack {stack_name}" if stack_name else ""))
        return
    app.out(f"{'SECRET':<44} {'VERSION':<12} {'REFERENCE':<36} USED BY")
    for item in doc["secrets"]:
        used = ", ".join(f"{u['service']} ({u['via']})" for u in item["used_by"]) or "-"
        app.out(f"{item['name']:<44} {item['version']:<12} {item['reference']:<36} {used}")


def _secret_doc(secret: SwarmSecret, uses: list[SecretUse]) -> dict[str, Any]:
    seen: dict[tuple[str, str], None] = {}
    for use in uses:
        if use.secret == secret.name:
            seen[(use.service, use.via)] = None
    return {
        "name": secret.name,
        "stack": secret.stack,
        "secret": secret.secret,
        "reference": secret.reference,
        "version": secret.version,
        "created": secret.created,
        "used_by": [{"service": s, "via": v} for s, v in seen],
    }


def _node_role() -> tuple[dict[str, Any] | None, str]:
    """This daemon's swarm role for a dry run, which needs no daemon: (JSON, a phrase)."""
    from kernel.containers.swarm import swarm_node
    from kernel.errors import DSOError

    try:
        node = swarm_node(connect())
    except DSOError:
        return None, "Docker is not reachable: could not check for a swarm manager"
    role = "manager" if node.active and node.manager else "worker" if node.active else "none"
    phrase = {
        "manager": "this daemon is a swarm manager: a deploy can run here",
        "worker": "this daemon is a swarm worker: deploy on a manager",
        "none": "this daemon is not part of a swarm: deploy on a swarm manager",
    }[role]
    return {"state": node.state, "role": role}, phrase
