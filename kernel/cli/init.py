"""``docker dso init``: create the local layout, the vault key, an empty vault and a config.

Never clobbers: an existing vault stops it before anything is touched, an existing key file or
config is kept, and files are created with ``link`` (which refuses to replace).
"""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import click

from kernel.cli.app import Application, pass_app
from kernel.errors import DSOError, StorageError, VaultExistsError

#: Written to ``config.yaml`` when there is none (the config validator accepts it as is).
CONFIG_TEMPLATE = """\
# dso configuration (local mode). Every key: docs/configuration.md
version: 1
default_provider: local
providers:
  local:
    type: local
"""


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the created paths as JSON.")
@pass_app
def init(app: Application, as_json: bool) -> None:
    """Create ~/.dso (or $DSO_HOME), a vault key, an empty local vault and config.yaml.

    The vault is protected by a random key in vault.key (mode 0600; back it up, it cannot be
    recovered), or, when DSO_VAULT_PASSPHRASE is set, by that passphrase through Argon2id (no
    key file; every later command needs the variable). An existing vault is never replaced;
    an existing key file or config.yaml is kept.

    \b
    Examples:
      docker dso init
      read -rs DSO_VAULT_PASSPHRASE && export DSO_VAULT_PASSPHRASE && docker dso init
      DSO_HOME=/srv/dso docker dso init --json
    """
    from kernel.vault import KeySource, Vault, create_key_file
    from kernel.vault.files import write_new_file
    from kernel.vault.keys import read_key_file

    layout = app.layout
    if layout.vault.exists() or layout.vault.is_symlink():
        raise VaultExistsError(
            f"a vault already exists at {layout.vault}; nothing was changed",
            hint=f"to start over, move it away first (mv {layout.vault} {layout.vault}.old)",
        )
    keys = KeySource.from_env(layout.vault_key)
    if keys.has_passphrase:
        keys.require_passphrase(layout.vault)  # refuse an empty one before creating anything

    created: list[tuple[Path, str]] = []
    kept: list[tuple[Path, str]] = []
    for directory in layout.directories():
        if _make_directory(directory):
            created.append((directory, "directory"))
    _warn_if_open(app, layout.root)

    new_key = False
    if not keys.has_passphrase:
        if layout.vault_key.exists():
            read_key_file(layout.vault_key)  # refuses a bad size or bad permissions
            kept.append((layout.vault_key, "existing key file"))
        else:
            create_key_file(layout.vault_key)
            new_key = True
            created.append((layout.vault_key, "vault key: back it up, it cannot be recovered"))
    try:
        vault = Vault.create(layout.vault, keys)
    except DSOError:
        if new_key:  # it protects nothing yet
            layout.vault_key.unlink(missing_ok=True)
        raise
    created.append((layout.vault, f"empty vault, AES-256-GCM, {vault.kdf.describe()}"))

    try:
        write_new_file(layout.config, CONFIG_TEMPLATE.encode())
        created.append((layout.config, "configuration"))
    except FileExistsError:
        kept.append((layout.config, "existing configuration"))

    if as_json:
        app.out_json(_as_json(created, kept, vault.kdf.describe(), keys.has_passphrase))
        return
    for path, what in created:
        app.info(f"created {path}  ({what})")
    for path, what in kept:
        app.info(f"kept {path}  ({what})")
    if keys.has_passphrase:
        app.info("the vault is opened with DSO_VAULT_PASSPHRASE: keep it set for dso commands")
    app.info("next: docker dso secret set NAME")


def _make_directory(path: Path) -> bool:
    """Create ``path`` with mode 0700; return False if it already existed."""
    if path.is_dir():
        return False
    try:
        path.mkdir(mode=0o700, parents=True)
        path.chmod(0o700)  # mkdir's mode is filtered through the umask
    except FileExistsError:
        if path.is_dir():
            return False
        raise StorageError(f"{path} exists and is not a directory") from None
    except OSError as exc:
        raise StorageError(f"could not create {path}: {exc.strerror}") from None
    return True


def _warn_if_open(app: Application, root: Path) -> None:
    mode = stat.S_IMODE(root.stat().st_mode)
    if mode & 0o077:
        app.warn(f"{root} is accessible by group or others (mode {mode:04o}); chmod 700 {root}")


def _as_json(
    created: list[tuple[Path, str]], kept: list[tuple[Path, str]], kdf: str, passphrase: bool
) -> dict[str, Any]:
    return {
        "created": [str(path) for path, _ in created],
        "kept": [str(path) for path, _ in kept],
        "key": "passphrase" if passphrase else "key-file",
        "kdf": kdf,
    }
