"""``docker dso providers install SOURCE`` and ``providers remove NAME``.

The work is in :mod:`kernel.provider_host.install`; this module parses the options, picks the
plugins directory of ``--mode``, and prints the outcome. Attached to the ``providers`` group by
``providers.add_command``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from kernel.cli.app import Application, pass_app
from kernel.cli.modes import layout_for, mode_option
from kernel.errors import DSOError, ProviderInstallError

if TYPE_CHECKING:
    from kernel.provider_host.install import Installed

_MODE_HELP = "Whose plugins directory: this user's (local) or the agent's (/var/lib/dso/plugins)."


def _directory(app: Application, mode: str | None) -> Path:
    from kernel.provider_host import plugins_dir

    return plugins_dir(layout_for(app, mode))


@click.command("install")
@click.argument("source", type=click.Path(exists=True, path_type=Path))
@click.option("--force", is_flag=True, help="Replace an installed provider of the same name.")
@click.option("--dry-run", is_flag=True, help="Check everything, change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@mode_option(_MODE_HELP)
@pass_app
def install(
    app: Application, source: Path, force: bool, dry_run: bool, as_json: bool, mode: str | None
) -> None:
    """Install a provider program into the plugins directory, verified.

    SOURCE is a bundle directory (dso-provider-<name>/ holding dso-provider-<name>), a .tar.gz
    holding one with its SHA256SUMS, or a single executable. Every file the source's
    SHA256SUMS lists is checked (a single file or a directory without one has its digest
    computed); `--describe` gives the name, version and protocol, and a program that speaks
    no protocol this dso speaks is refused. The program and the plugins directory's
    SHA256SUMS are replaced atomically: a refusal or a failure leaves nothing behind. A
    running agent uses the new program the next time it starts that provider.

    \b
    Examples:
      docker dso providers install ./dso-provider-mine
      docker dso providers install dso-provider-vault-1.4.0.tar.gz --dry-run
      sudo docker dso providers install --mode agent ./dist/plugins/dso-provider-vault
      docker dso providers install ./dso-provider-mine --force --json
    """
    from kernel.provider_host.install import install as do_install

    result = do_install(source, _directory(app, mode), force=force, dry_run=dry_run)
    for note in result.notes:
        app.warn(note)
    if as_json:
        app.out_json(result.to_json())
        return
    app.out(_summary(result))


def _summary(result: Installed) -> str:
    verb = {
        (False, False): "installed",
        (False, True): "replaced",
        (True, False): "would install",
        (True, True): "would replace",
    }[(result.dry_run, result.replaced)]
    was = f" (was {result.replaced_version or 'unknown version'})" if result.replaced else ""
    caps = ",".join(result.capabilities)
    checked = (
        "checked against the source's SHA256SUMS"
        if result.checksums == "SHA256SUMS"
        else "digest computed: the source had no SHA256SUMS"
    )
    return (
        f"{verb} {result.name} {result.version}{was}: protocol {result.protocol}, {caps}\n"
        f"  {result.path} ({result.files} file(s), {checked})\n"
        f"  sha256 {result.sha256}"
    )


def _configured_as(app: Application, mode: str | None, name: str) -> list[str] | None:
    """Providers of dso.yaml whose program is ``name``; None when no configuration loads."""
    from kernel.config import load_config

    path = layout_for(app, mode).config if mode is not None else app.config_path
    try:
        config = load_config(path).config
    except DSOError:
        return None
    return sorted(key for key, p in config.providers.items() if p.type == name)


@click.command("remove")
@click.argument("name")
@click.option("--force", is_flag=True, help="Remove it even if dso.yaml configures it.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@mode_option(_MODE_HELP)
@pass_app
def remove(app: Application, name: str, force: bool, as_json: bool, mode: str | None) -> None:
    """Remove provider NAME from the plugins directory, and its SHA256SUMS line.

    Every other line of SHA256SUMS is kept as it was; when no line and no other program is
    left, SHA256SUMS is removed too. A program that dso.yaml uses (and that is not one of
    dso's own, which would take its place) is kept unless --force is given. dso's own
    providers (origin source or release) are not in the plugins directory: nothing to remove.

    \b
    Examples:
      docker dso providers remove mine
      sudo docker dso providers remove --mode agent vault --json
    """
    from kernel.provider_host.discovery import builtin_names
    from kernel.provider_host.install import remove as do_remove

    # Removing a program that shadows one of dso's own leaves that one in use: no refusal.
    users = None if name in builtin_names() else _configured_as(app, mode, name)
    if users and not force:
        raise ProviderInstallError(
            f"dso.yaml configures {', '.join(users)} with this program; nothing was changed",
            provider=name,
            hint="change those providers first, or pass --force to remove it anyway",
        )
    result = do_remove(name, _directory(app, mode))
    if as_json:
        app.out_json(result.to_json())
        return
    manifest = "; SHA256SUMS removed (empty)" if result.manifest_removed else ""
    lines = f"{result.manifest_lines} SHA256SUMS line(s)"
    app.out(f"removed {name}: {result.path} and {lines}{manifest}")
