"""``docker dso secret …``: set, get, list, delete and import secrets of the local vault.

Values never travel on the command line (``ps`` and shell history show argv): ``set`` reads a
hidden prompt, stdin or a file. Values are printed only by ``get``, only to a pipe or with
``--reveal``; every other output — messages, ``--json``, errors, logs — carries names and
versions only.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from kernel.cli.app import Application, pass_app
from kernel.errors import ExitCode, InvalidSecretValueError, UsageError
from kernel.secret_value import SecretValue

if TYPE_CHECKING:
    from kernel.vault import Change, Vault
    from kernel.vault.envfile import EnvEntry, Skipped

_CHUNK = 64 * 1024


def _open_vault(app: Application) -> Vault:
    from kernel.vault import open_local

    return open_local(app.layout)


@click.group()
def secret() -> None:
    """Manage secrets in the local encrypted vault (~/.dso/vault.enc).

    Reference them as dso://NAME or dsofile://NAME. Values are read from a hidden prompt,
    stdin or a file, never from the command line.

    \b
    Examples:
      docker dso secret set app/db_password            prompts twice, input hidden
      printf %s "$TOKEN" | docker dso secret set app/api_token
      docker dso secret set app/tls_key --from-file key.pem
      docker dso secret get app/db_password | wc -c
      docker dso secret list --json
      docker dso secret import .env --prefix app/ --dry-run
      docker dso secret delete app/old_token --yes
    """


@secret.command("set", context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.argument("name")
@click.option(
    "--from-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Read the value from this file, byte for byte (no newline is stripped).",
)
@pass_app
def set_(app: Application, name: str, from_file: Path | None) -> None:
    """Store a secret value under NAME (a new version if it differs).

    The value comes from --from-file, else from a hidden prompt (asked twice) when stdin is a
    terminal, else from stdin with exactly one trailing newline removed, so that
    `echo s3cret | …` stores "s3cret". Use `printf %s` or --from-file to keep a trailing
    newline. The value can never be given as an argument. The vault must exist (docker dso init).

    \b
    Examples:
      docker dso secret set app/db_password
      printf %s "$TOKEN" | docker dso secret set app/api_token
      docker dso secret set app/tls_key --from-file key.pem
    """
    from kernel.vault import validate_name

    extra = click.get_current_context().args
    if extra:
        # Not quoted back: the extra argument is most likely the value itself.
        raise UsageError(
            f"`secret set` takes only NAME; got {len(extra)} more argument(s), not shown",
            hint="pass the value on stdin, at the hidden prompt or with --from-file; "
            "if you typed a value on the command line it is in your shell history: rotate it",
        )
    validate_name(name)
    vault = _open_vault(app)
    value = _read_value(app, name, from_file)
    (change,) = vault.set_many({name: value})
    _report(app, change, dry_run=False, verb="set")


def _read_value(app: Application, name: str, from_file: Path | None) -> SecretValue:
    from kernel.vault import MAX_VALUE_SIZE, validate_value

    if from_file is not None:
        try:
            size = from_file.stat().st_size
            if size > MAX_VALUE_SIZE:
                raise InvalidSecretValueError(
                    f"{from_file} is {size} bytes; the limit is {MAX_VALUE_SIZE} bytes (1 MiB)"
                )
            value = SecretValue(from_file.read_bytes())
        except OSError as exc:
            raise UsageError(f"cannot read {from_file}: {exc.strerror}") from None
    elif app.stdin_is_tty:
        text = click.prompt(
            f"Value for {name}", hide_input=True, confirmation_prompt=True, err=True
        )
        value = SecretValue(text)
    else:
        value = _read_stdin(name)
    return validate_value(value, name=name)


def _read_stdin(name: str) -> SecretValue:
    """All of stdin minus one trailing newline; oversized input is counted, not kept."""
    from kernel.vault import MAX_VALUE_SIZE

    stream = sys.stdin.buffer
    chunks: list[bytes] = []
    total = 0
    last = b""
    while chunk := stream.read(_CHUNK):
        if total <= MAX_VALUE_SIZE + 1:
            chunks.append(chunk)
        total += len(chunk)
        last = chunk[-1:]
    size = total - (1 if last == b"\n" else 0)
    if size > MAX_VALUE_SIZE:
        raise InvalidSecretValueError(
            f"the value of {name!r} on stdin is {size} bytes; "
            f"the limit is {MAX_VALUE_SIZE} bytes (1 MiB)"
        )
    data = b"".join(chunks)
    if size == 0:
        raise InvalidSecretValueError(
            f"the value of {name!r} is empty: nothing was read from stdin",
            hint="pipe the value in, or run in a terminal to be prompted",
        )
    return SecretValue(data.removesuffix(b"\n"))


def _report(app: Application, change: Change, *, dry_run: bool, verb: str | None = None) -> None:
    """One stderr line per name: ``set app/x (version 3)``, ``would create …``, ``… unchanged``."""
    from kernel.vault import ChangeKind

    if change.kind is ChangeKind.UNCHANGED:
        app.info(f"{change.name} unchanged (version {change.version})")
    elif dry_run:
        action = "create" if change.kind is ChangeKind.CREATED else "update"
        app.info(f"would {action} {change.name} (version {change.version})")
    else:
        app.info(f"{verb or change.kind} {change.name} (version {change.version})")


@secret.command("get")
@click.argument("name")
@click.option("--reveal", is_flag=True, help="Print the value even when stdout is a terminal.")
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print metadata (name, version, timestamps, size), never the value.",
)
@pass_app
def get(app: Application, name: str, reveal: bool, as_json: bool) -> None:
    """Print the value of NAME to stdout, byte for byte.

    To protect it from shoulder-surfing and terminal scrollback, the value is printed only
    when stdout is a pipe or a file, or with --reveal (then followed by a newline).

    \b
    Examples:
      docker dso secret get app/db_password | wc -c
      docker dso secret get app/db_password --reveal
      docker dso secret get app/db_password --json
    """
    if as_json and reveal:
        raise UsageError("--json never prints the value; drop --reveal")
    entry = _open_vault(app).get(name)
    if as_json:
        app.out_json(entry.info.to_json())
        return
    tty = app.stdout_is_tty
    if tty and not reveal:
        raise UsageError(
            f"refusing to print the value of {name!r} to a terminal",
            hint=f"pipe it (docker dso secret get {name} | …), add --reveal, or use --json",
        )
    click.echo(entry.value.reveal(), nl=tty)


@secret.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array of metadata.")
@pass_app
def list_(app: Application, as_json: bool) -> None:
    """List secret names, versions and update times (never values).

    \b
    Examples:
      docker dso secret list
      docker dso secret list --json | jq -r '.[].name'
    """
    from kernel.vault import format_timestamp

    infos = _open_vault(app).list()
    if as_json:
        app.out_json([info.to_json() for info in infos])
        return
    if not infos:
        app.info("the local vault is empty; add a secret with: docker dso secret set NAME")
        return
    rows = [("NAME", "VERSION", "UPDATED")]
    rows += [(i.name, str(i.version), format_timestamp(i.updated)) for i in infos]
    widths = [max(len(row[col]) for row in rows) for col in range(2)]
    for row in rows:
        app.out(f"{row[0]:<{widths[0]}}  {row[1]:>{widths[1]}}  {row[2]}")


@secret.command("delete")
@click.argument("name")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@pass_app
def delete(app: Application, name: str, yes: bool) -> None:
    """Delete the secret NAME. Asks first when stdin is a terminal, unless --yes.

    Its version number is remembered: setting NAME again continues after it, so consumers
    always see a new version.

    \b
    Examples:
      docker dso secret delete app/old_token
      docker dso secret delete app/old_token --yes
    """
    from kernel.errors import SecretNotFoundError

    vault = _open_vault(app)
    version = vault.versions([name])[name]
    if version is None:
        raise SecretNotFoundError(
            f"no secret named {name!r} in the local vault",
            hint="`docker dso secret list` shows what exists",
        )
    if app.stdin_is_tty and not yes:
        question = f"Delete {name} (version {version})?"
        if not click.confirm(question, default=False, err=True):
            app.abort(f"{name} was not deleted", ExitCode.ERROR)
    deleted = vault.delete(name)
    app.info(f"deleted {name} (was version {deleted})")


@secret.command("import")
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True, path_type=Path))
@click.option("--prefix", default="", help="Prepended to every variable name, e.g. 'app/'.")
@click.option("--lowercase", is_flag=True, help="Lowercase the variable names first.")
@click.option("--dry-run", is_flag=True, help="Validate and show what would change; write nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON (never values).")
@pass_app
def import_(
    app: Application, file: Path, prefix: str, lowercase: bool, dry_run: bool, as_json: bool
) -> None:
    """Import the variables of a .env FILE ('-' for stdin) as secrets, all or nothing.

    Each NAME=value becomes the secret PREFIX + NAME, verbatim (case kept; --lowercase to
    lowercase): with --prefix app/, DB_PASSWORD becomes app/DB_PASSWORD. Comments, blank
    lines, `export`, single and double quotes (escapes, several lines) are understood; $VARS
    are not expanded; empty values are skipped with a warning. Everything is validated first,
    then written in one transaction. Syntax: docs/local-vault.md.

    \b
    Examples:
      docker dso secret import .env --prefix app/ --dry-run
      docker dso secret import .env --prefix app/ --lowercase
      docker dso secret import - --json < prod.env
    """
    from kernel.vault.envfile import parse_env, to_secrets

    source = "<stdin>" if str(file) == "-" else str(file)
    text = _read_env_text(file, source)
    env = parse_env(text, source)
    wanted = to_secrets(env, source, prefix=prefix, lowercase=lowercase)
    vault = _open_vault(app)
    for skip in env.skipped:
        app.warn(f"{source}:{skip.line}: {skip.variable} skipped: {skip.reason}")
    changes = vault.set_many({name: e.value for name, e in wanted.items()}, dry_run=dry_run)
    if as_json:
        app.out_json(_import_json(source, dry_run, changes, wanted, env.skipped))
        return
    for change in changes:
        _report(app, change, dry_run=dry_run)
    created = sum(c.kind == "created" for c in changes)
    updated = sum(c.kind == "updated" for c in changes)
    unchanged = len(changes) - created - updated
    summary = f"{created} created, {updated} updated, {unchanged} unchanged"
    if dry_run:
        app.info(
            f"dry run: {created} to create, {updated} to update, {unchanged} unchanged; "
            "nothing was written"
        )
    elif not changes:
        app.info(f"nothing to import from {source}")
    else:
        app.info(f"imported {len(changes)} secret(s) from {source}: {summary}")


def _read_env_text(file: Path, source: str) -> str:
    try:
        data = sys.stdin.buffer.read() if str(file) == "-" else file.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {source}: {exc.strerror}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise UsageError(f"{source}:{line}: not valid UTF-8") from None


def _import_json(
    source: str,
    dry_run: bool,
    changes: list[Change],
    wanted: dict[str, EnvEntry],
    skipped: tuple[Skipped, ...],
) -> dict[str, Any]:
    return {
        "file": source,
        "dry_run": dry_run,
        "secrets": [
            {
                "name": c.name,
                "variable": wanted[c.name].variable,
                "line": wanted[c.name].line,
                "action": str(c.kind),
                "version": c.version,
            }
            for c in changes
        ],
        "skipped": [{"variable": s.variable, "line": s.line, "reason": s.reason} for s in skipped],
    }
