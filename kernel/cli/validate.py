"""``docker dso validate``: check every secret reference of a compose project, for CI.

Reads the project as ``docker dso up`` does, resolves every reference (values are fetched to
prove they exist, then dropped: never printed), and checks what delivery needs (file names,
users, mount paths, values an environment variable can hold, and for ``dsofile://`` the secrets
directory, checked as ``up`` checks it but never created).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from kernel.cli.app import Application, pass_app
from kernel.cli.compose import PASSTHROUGH
from kernel.cli.progress import plural
from kernel.compose.args import split_args
from kernel.errors import ComposeError, ExitCode, StorageError, UsageError

if TYPE_CHECKING:
    from kernel.compose.inject import LocatedProblem
    from kernel.compose.scan import Problem, Scan


@click.command(context_settings=PASSTHROUGH)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON document (never values).")
@click.option(
    "--stack",
    "stack_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Check a Swarm stack file instead (what `stack deploy` would refuse: dso:// "
    "references, users, unresolved references).",
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@pass_app
def validate(
    app: Application, as_json: bool, stack_file: Path | None, args: tuple[str, ...]
) -> None:
    """Check that every secret reference of the compose project parses and resolves.

    ARGS are compose's global flags (-f, -p, --profile, --env-file, --project-directory).
    Each problem prints as `file:line: service S, VARIABLE: what is wrong`. Exits 0 when every
    reference can be delivered, 1 when not, 3 when compose rejects the project itself.
    With --stack FILE, the Swarm stack file is checked as `docker dso stack deploy` reads it
    (docs/swarm.md): dsofile:// only, and every reference resolves.

    \b
    Examples:
      docker dso validate
      docker dso validate -f compose.yaml -f compose.prod.yaml --profile tools
      docker dso validate --json | jq -r '.problems[] | "\\(.file):\\(.line) \\(.problem)"'
      docker dso validate --stack stack.yaml
    """
    if stack_file is not None:
        if args:
            raise UsageError(f"--stack takes no compose flags; unexpected: {args[0]!r}")
        _validate_stack(app, stack_file, as_json)
        return
    from kernel.compose.project import PendingProject

    compose_args = split_args(args)
    if compose_args.rest:
        raise UsageError(
            f"validate takes only compose's global flags; unexpected: {compose_args.rest[0]!r}"
        )
    with PendingProject(compose_args) as pending:
        from kernel.compose.inject import locate_problems, resolve, scan_project
        from kernel.containers.daemon_info import image_user as daemon_image_user

        runtime = app.open_runtime()
        try:
            project = pending.result()
        except ComposeError as exc:
            if as_json:
                app.out_json(_document(None, [], [], compose_error=exc.message))
            raise
    for warning in project.warnings:
        app.warn(warning.removeprefix("warning: "))
    scan = scan_project(project, daemon_image_user)
    problems = list(scan.problems)
    with runtime:
        values, more = resolve(scan, runtime.resolver)
    problems += more
    failed = {(p.service, p.variable) for p in problems}
    storage = _secrets_dir_problem(app, scan)
    if storage is not None:
        problems.append(storage)
        failed |= {(n, v) for n, s in scan.services.items() for v in s.files}
    located = locate_problems(project, problems)
    references = []
    for name, wanted in scan.services.items():
        for variable, written in wanted.written.items():
            ref = wanted.references.get(variable)
            resolved = values.get(ref) if ref is not None else None
            references.append(
                {
                    "service": name,
                    "variable": variable,
                    "reference": written,
                    "delivery": "file" if variable in wanted.files else "env",
                    "path": wanted.file_path(variable) if variable in wanted.files else None,
                    "provider": runtime.resolver.provider_of(ref) if ref is not None else None,
                    "version": resolved.version if resolved is not None else None,
                    "ok": (name, variable) not in failed and (name, None) not in failed,
                }
            )
    del values
    doc = _document(project.name, references, [p.to_json() for p in located])
    summary = (
        f"project {project.name}: {plural(len(references), 'secret reference')} in "
        f"{plural(len(scan.services), 'service')}"
    )
    _report(app, doc if as_json else None, located, summary)


def _validate_stack(app: Application, path: Path, as_json: bool) -> None:
    """``validate --stack``: the stack file's problems, then its unresolved references."""
    from kernel.compose.inject import resolve
    from kernel.swarm.stack import locate_problems, read_stack

    found = read_stack(path, path.resolve().parent.name or "stack", shown=str(path))
    located = list(found.problems)
    if found.references():
        with app.open_runtime() as runtime:
            values, failed = resolve(found.scan, runtime.resolver)
            del values
        known = {(p.problem.service, p.problem.variable) for p in located}
        located += [
            p
            for p in locate_problems(found, failed)
            if (p.problem.service, p.problem.variable) not in known
        ]
    failed_keys = {(p.problem.service, p.problem.variable) for p in located}
    references = [
        {
            "service": name,
            "variable": variable,
            "reference": wanted.written.get(variable, ref.uri()),
            "delivery": "swarm secret",
            "path": wanted.file_path(variable),
            "ok": (name, variable) not in failed_keys and (name, None) not in failed_keys,
        }
        for name, wanted in found.scan.services.items()
        for variable, ref in wanted.files.items()
    ]
    doc = {**_document(None, references, [p.to_json() for p in located]), "stack_file": str(path)}
    if not as_json:
        for warning in found.warnings:
            app.warn(warning)
    summary = (
        f"stack file {path}: {plural(len(references), 'secret reference')} in "
        f"{plural(len(found.scan.services), 'service')}"
    )
    _report(app, doc if as_json else None, located, summary)


def _report(
    app: Application, doc: dict[str, Any] | None, located: list[LocatedProblem], summary: str
) -> None:
    """Print ``doc`` (``--json``) or each problem with its hint; exit 1 when there are any."""
    if doc is not None:
        app.out_json(doc)
    else:
        for problem in located:
            app.out(str(problem))
            if problem.problem.error.hint:
                app.out(f"  hint: {problem.problem.error.hint}")
    if located:
        app.abort(f"{summary}: {plural(len(located), 'problem')}", ExitCode.ERROR)
    if doc is None:
        app.info(f"{summary}: all valid")


def _secrets_dir_problem(app: Application, scan: Scan) -> Problem | None:
    """The refusal ``up`` would give for the secrets directory, if ``dsofile://`` is used."""
    from kernel.compose.scan import Problem
    from kernel.injection.tmpfs import SecretsDir, default_base

    users = sorted(name for name, wanted in scan.services.items() if wanted.files)
    if not users:
        return None
    try:
        SecretsDir(default_base(app.layout)).check()
    except StorageError as exc:
        return Problem(", ".join(users), None, None, exc)
    return None


def _document(
    project: str | None,
    references: list[dict[str, Any]],
    problems: list[dict[str, Any]],
    *,
    compose_error: str | None = None,
) -> dict[str, Any]:
    if compose_error is not None:
        problems = [
            {
                "file": None,
                "line": None,
                "service": None,
                "variable": None,
                "reference": None,
                "problem": compose_error,
                "hint": None,
                "error": "ComposeError",
                "exit_code": int(ExitCode.CONFIG),
            }
        ]
    return {
        "valid": not problems,
        "project": project,
        "references": references,
        "problems": problems,
    }
