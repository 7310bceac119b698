"""``docker dso migrate``: move the secrets of an existing compose project into the local vault.

Reads the compose files, the project's ``.env`` and the services' ``env_file:`` files directly
(never through ``docker compose config``, which would interpolate and lose where each value came
from), proposes which variables are secrets and why, and with ``--apply`` imports them in one
vault transaction and writes a new compose file with references. Dry run by default; never
overwrites the originals; never prints a value. User documentation: docs/compose.md.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import click

from kernel.cli.app import Application, pass_app
from kernel.cli.progress import plural
from kernel.errors import UsageError, VaultError, VaultNotFoundError
from kernel.reference import Delivery

if TYPE_CHECKING:
    from kernel.compose.migrate_edit import Rewritten
    from kernel.compose.migrate_plan import Plan
    from kernel.compose.migrate_report import Report, Show, VaultState
    from kernel.vault import Vault


@click.command()
@click.option(
    "-f",
    "--file",
    "files",
    multiple=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Compose file (repeatable); default: as compose finds it (compose.yaml…).",
)
@click.option(
    "--env-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The project's .env for ${VAR} interpolation (default: .env in the project directory).",
)
@click.option("--prefix", default="", help="Prepended to every secret name, e.g. 'prod/'.")
@click.option(
    "--delivery",
    type=click.Choice(["env", "file"]),
    default="env",
    show_default=True,
    help="env: dso:// references; file: dsofile:// (the variable then holds a file path).",
)
@click.option("--include", multiple=True, metavar="VAR", help="Also migrate VAR (repeatable).")
@click.option("--exclude", multiple=True, metavar="VAR", help="Never migrate VAR (repeatable).")
@click.option("--apply", is_flag=True, help="Import the secrets and write the new compose file.")
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The new compose file (default: <name>.dso.yaml next to the original).",
)
@click.option(
    "--force",
    is_flag=True,
    help="Replace an existing output file, and vault secrets holding another value.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON (never values).")
@pass_app
def migrate(
    app: Application,
    files: tuple[Path, ...],
    env_file: Path | None,
    prefix: str,
    delivery: str,
    include: tuple[str, ...],
    exclude: tuple[str, ...],
    apply: bool,
    output: Path | None,
    force: bool,
    as_json: bool,
) -> None:
    """Propose which variables of a compose project are secrets; with --apply, migrate them.

    Reads the compose files, the project's .env and the services' env_file: files as
    written. A variable is proposed when its name (PASSWORD, SECRET, TOKEN, API_KEY…) or its
    value (a URL with a password, a PEM private key, an AWS key, a JWT, a long random string)
    says so, and its value is a literal in those files. Each becomes the secret
    PREFIX<project>/VAR, referenced as dso://… (or dsofile:// with --delivery file).

    Without --apply nothing changes. With --apply the values are imported into the local vault
    in one transaction and a new compose file is written with references; the originals (and
    .env) are left untouched and the .env lines no longer used are listed. All or nothing:
    every check passes before anything is written.

    \b
    Examples:
      docker dso migrate                         the plan for ./compose.yaml and ./.env
      docker dso migrate --json | jq -r '.secrets[].name'
      docker dso migrate -f docker-compose.yml --prefix prod/ --exclude GIT_SHA
      docker dso migrate --apply                 writes compose.dso.yaml
      docker dso migrate --apply --delivery file --output compose.secrets.yaml
    """
    from kernel.compose.args import ComposeArgs
    from kernel.compose.files import project_files
    from kernel.compose.migrate_edit import rewrite, unused_lines
    from kernel.compose.migrate_plan import Options, build_plan, variables_in_use
    from kernel.compose.migrate_report import Report, document, text_lines
    from kernel.compose.migrate_write import check_outputs, default_output

    cwd = Path.cwd()

    def show(path: Path) -> str:
        try:
            return str(path.relative_to(cwd))
        except ValueError:
            return str(path)

    project = project_files(ComposeArgs(files=tuple(map(str, files))), cwd, os.environ)
    if not project.files:
        raise UsageError(
            "no compose file here or in a parent directory", hint="name one with -f FILE"
        )
    if env_file is not None:
        dotenv = [Path(os.path.abspath(env_file))]
        if not dotenv[0].is_file():
            raise UsageError(f"--env-file {env_file}: no such file")
    else:
        dotenv = [p for p in [project.working_dir / ".env"] if p.is_file()]
    options = Options(
        prefix=prefix,
        delivery=Delivery.FILE if delivery == "file" else Delivery.ENV,
        include=frozenset(include),
        exclude=frozenset(exclude),
    )
    plan = build_plan(project.files, project.working_dir, dotenv, os.environ, options, show=show)
    rewritten = rewrite(plan)
    if output is not None and len(rewritten) > 1:
        raise UsageError(f"--output names one file, but {len(rewritten)} compose files change")
    outputs = {
        source: (Path(os.path.abspath(output)) if output else default_output(source), new.changes)
        for source, new in rewritten.items()
    }
    report = Report(plan, outputs, unused_lines(plan, rewritten), dry_run=not apply)
    report.problems += plan.problems
    vault = _vault_state(app, plan, report, apply=apply, force=force)
    protected = [t.path for t in plan.files] + list(plan.dotenv) + list(plan.env_files)
    report.problems += check_outputs(
        {source: out for source, (out, _n) in outputs.items()}, protected, force=force, show=show
    )
    for warning in plan.warnings:
        app.warn(warning)
    for source, (out, _n) in outputs.items():
        if out.parent != source.parent:
            app.warn(
                f"{show(out)} is not in the directory of {show(source)}: compose resolves "
                "relative paths (build, env_file, volumes, .env) from the first file's "
                f"directory, so add --project-directory {show(source.parent) or '.'}"
            )
    if apply and plan.secrets and not report.problems:
        assert vault is not None
        _apply(plan, rewritten, report, vault, force)
    if as_json:
        app.out_json(document(report, show, delivery))
    else:
        for line in text_lines(report, show):
            app.out(line)
    if report.problems:
        _fail(app, report, as_json)
    if not as_json and plan.secrets:
        _delivery_note(app, options.delivery)
    count = variables_in_use(plan)
    services = len({use.service for s in plan.secrets for use in s.uses})
    summary = (
        f"{plural(len(plan.secrets), 'secret')} for {plural(count, 'variable')} in "
        f"{plural(services, 'service')} of project {plan.project}"
    )
    if not plan.secrets:
        app.info("dso: nothing to migrate: no variable with a literal value looks like a secret")
    elif not apply:
        app.info(f"dso: dry run: {summary}; nothing was changed (--apply to migrate)")
    else:
        _after_apply(app, report, summary, show)


def _vault_state(
    app: Application, plan: Plan, report: Report, *, apply: bool, force: bool
) -> Vault | None:
    """Open the vault and ask what importing would do; problems for --apply, notes otherwise."""
    from kernel.compose.migrate_report import VaultState
    from kernel.vault import ChangeKind, open_local

    if not plan.secrets:
        return None
    try:
        vault = open_local(app.layout)
        changes = vault.set_many({s.name: s.value for s in plan.secrets}, dry_run=True)
    except VaultNotFoundError as exc:
        if apply:
            report.problems.append(exc)
        else:
            app.warn("no local vault yet: `docker dso init` creates one; --apply needs it")
        return None
    except VaultError as exc:
        if apply:
            report.problems.append(exc)
        else:
            app.warn(f"cannot read the local vault: {exc.message}")
        return None
    states: dict[str, VaultState] = {}
    for change in changes:
        states[change.name] = VaultState(str(change.kind), change.version)
        if change.kind is ChangeKind.UPDATED and not force:
            report.problems.append(
                VaultError(
                    f"{change.name} already exists in the local vault with another value "
                    f"(version {change.version - 1})",
                    hint="choose another --prefix, or --force to replace it",
                )
            )
    report.vault = states
    return vault


def _delivery_note(app: Application, delivery: Delivery) -> None:
    if delivery is Delivery.FILE:
        app.info(
            "dso: note: with dsofile:// each variable holds the path of a file "
            "(/run/secrets/dso/<VAR>): the application must read the file"
        )
    else:
        app.info(
            "dso: note: dso:// values are in the containers' environment, where "
            "`docker inspect` shows them; --delivery file delivers files instead"
        )


def _fail(app: Application, report: Report, as_json: bool) -> NoReturn:
    if not as_json:
        for problem in report.problems:
            app.info(f"problem: {problem.message}")
            if problem.hint:
                app.info(f"  hint: {problem.hint}")
    first = report.problems[0]
    count = len(report.problems)
    app.abort(f"{plural(count, 'problem')}; nothing was changed", first.exit_code)


def _apply(
    plan: Plan, rewritten: dict[Path, Rewritten], report: Report, vault: Vault, force: bool
) -> None:
    """Write the new files, then import in one transaction; undo the files if that fails."""
    from kernel.compose.migrate_write import Outputs

    files = {
        out: (rewritten[source].text, source.stat().st_mode & 0o777)
        for source, (out, _n) in report.outputs.items()
    }
    outputs = Outputs(files, force=force)
    outputs.stage()
    outputs.commit()
    try:
        vault.set_many({s.name: s.value for s in plan.secrets})
    except BaseException:
        outputs.rollback()
        raise
    outputs.finish()
    report.applied = True


def _after_apply(app: Application, report: Report, summary: str, show: Show) -> None:
    created = sum(s.action == "created" for s in report.vault.values())
    app.info(f"dso: imported {summary} into the local vault ({created} new)")
    for source, (out, _n) in report.outputs.items():
        app.info(
            f"dso: wrote {show(out)}; {show(source)} is unchanged and still holds the "
            "plaintext values: replace it once the new file works"
        )
    if report.unused:
        app.info("dso: the lines listed as unused can be removed from their files")
    paths = [report.outputs.get(t.path, (t.path, 0))[0] for t in report.plan.files]
    files = " ".join(f"-f {show(path)}" for path in paths)
    app.info(f"dso: next: docker dso validate {files} && docker dso up -d {files}")
