"""``dso install``: link ``docker-dso`` into docker's plugin dirs so ``docker dso …`` works."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import click

from kernel.cli.app import Application, pass_app
from kernel.errors import StorageError, UsageError

#: Where the docker CLI looks for plugins (docker/cli's cli-plugins/manager, Linux).
SYSTEM_PLUGIN_DIR = Path("/usr/local/lib/docker/cli-plugins")
PLUGIN_NAME = "docker-dso"


def user_plugin_dir() -> Path:
    from kernel.containers.docker_context import config_dir

    return config_dir(os.environ) / "cli-plugins"


def plugin_executable() -> Path:
    """The ``docker-dso`` program of this installation (frozen, venv, or on PATH)."""
    if getattr(sys, "frozen", False):
        return Path(sys.executable).resolve().with_name(PLUGIN_NAME)
    sibling = Path(sys.executable).parent / PLUGIN_NAME
    if sibling.exists():
        return sibling
    found = shutil.which(PLUGIN_NAME)
    if found:
        return Path(found)
    raise UsageError(
        f"cannot find the {PLUGIN_NAME} program of this installation",
        hint="reinstall dso (pip install dso) so its console scripts exist",
    )


def _link(target: Path, link: Path, *, force: bool) -> str:
    if link.is_symlink() and link.resolve() == target.resolve():
        return "unchanged"
    if link.exists() or link.is_symlink():
        if not force and not (link.is_symlink() and link.name == PLUGIN_NAME):
            raise UsageError(f"{link} exists and is not a link to dso", hint="use --force")
        link.unlink()
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(target)
    return "linked"


@click.command()
@click.option(
    "--system/--user",
    "system",
    default=None,
    help="Install for all users (/usr/local/lib/docker/cli-plugins; needs root) "
    "or only for you (~/.docker/cli-plugins). Default: both when root, else user.",
)
@click.option("--uninstall", is_flag=True, help="Remove the links instead.")
@click.option("--force", is_flag=True, help="Replace an existing docker-dso that is not ours.")
@click.option("--json", "as_json", is_flag=True, help="Print what was done as JSON.")
@pass_app
def install(
    app: Application, system: bool | None, uninstall: bool, force: bool, as_json: bool
) -> None:
    """Install dso as a Docker CLI plugin, so `docker dso …` works.

    \b
    Examples:
      dso install                 link docker-dso for this user (and system-wide as root)
      sudo dso install --system   only the system-wide link
      dso install --uninstall     remove the links
    """
    is_root = os.geteuid() == 0
    if system is None:
        dirs = [user_plugin_dir(), SYSTEM_PLUGIN_DIR] if is_root else [user_plugin_dir()]
    elif system:
        if not is_root:
            raise UsageError("--system needs root", hint="run it with sudo, or use --user")
        dirs = [SYSTEM_PLUGIN_DIR]
    else:
        dirs = [user_plugin_dir()]
    results = []
    for directory in dirs:
        link = directory / PLUGIN_NAME
        try:
            if uninstall:
                if link.is_symlink() or (force and link.exists()):
                    link.unlink()
                    action = "removed"
                else:
                    action = "absent" if not link.exists() else "kept (not a link; use --force)"
                target = None
            else:
                target = plugin_executable()
                action = _link(target, link, force=force)
        except OSError as exc:
            raise StorageError(f"could not update {link}: {exc.strerror}") from None
        results.append(
            {"path": str(link), "target": str(target) if target else None, "action": action}
        )
    if as_json:
        app.out_json(results)
        return
    for item in results:
        arrow = f" -> {item['target']}" if item["target"] else ""
        app.info(f"{item['action']}: {item['path']}{arrow}")
    if not uninstall:
        app.info("try: docker dso version")
