"""Where extensions come from, and the environment variables that block them.

Sources, in load order: the built-in extensions (``audit``, ``webhook``, as configured), the
``dso`` entry-point group of installed distributions, and the ``*.py`` files of the extensions
directory (frozen installs cannot see other distributions' entry points). A name is loaded
once; a later source with a taken name is recorded as failed.

Blocking (tox style): ``DSO_DISABLE_EXTENSIONS=name1,name2`` skips those names, built-in ones
included; ``DSO_NO_EXTENSIONS=1`` skips every third-party extension (the built-in ones follow
the configuration, so the audit log cannot be switched off by an environment variable).
With ``strict`` (what rotating commands use) loading raises
:class:`~kernel.errors.ExtensionError` naming every extension that failed.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import re
import stat
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from kernel.extensions.manager import (
    DIRECTORY_ENV,
    DISABLE_ENV,
    ENTRY_POINT_GROUP,
    NO_EXTENSIONS_ENV,
    SOURCE_BUILTIN,
    SOURCE_DIRECTORY,
    SOURCE_ENTRY_POINT,
    ExtensionManager,
    ExtensionStatus,
    one_line,
)
from kernel.log import get_logger

if TYPE_CHECKING:
    from kernel.config import ExtensionsConfig
    from kernel.paths import Layout

_log = get_logger("extensions")


def blocked_names(env: Mapping[str, str]) -> set[str]:
    """Names listed in ``DSO_DISABLE_EXTENSIONS`` (comma or space separated)."""
    raw = env.get(DISABLE_ENV, "")
    return {part for part in re.split(r"[,\s]+", raw) if part}


def third_party_blocked(env: Mapping[str, str]) -> bool:
    return env.get(NO_EXTENSIONS_ENV, "") not in ("", "0")


def extensions_dir(
    layout: Layout, config: ExtensionsConfig | None = None, env: Mapping[str, str] | None = None
) -> Path:
    """``DSO_EXTENSIONS_DIR``, else ``extensions.directory``, else ``<dso root>/extensions``."""
    env = os.environ if env is None else env
    if env.get(DIRECTORY_ENV):
        return Path(env[DIRECTORY_ENV]).expanduser()
    if config is not None and config.directory is not None:
        return config.directory
    return layout.root / "extensions"


def load_extensions(
    layout: Layout,
    config: ExtensionsConfig | None = None,
    *,
    env: Mapping[str, str] | None = None,
    directory: Path | None = None,
    builtins: bool = True,
    strict: bool = True,
) -> ExtensionManager:
    """Load every extension; with ``strict`` raise :class:`ExtensionError` if any failed."""
    env = os.environ if env is None else env
    manager = ExtensionManager()
    for name in blocked_names(env):
        manager.pm.set_blocked(name)
    if builtins:
        from kernel.extensions.builtin import builtin_extensions

        for builtin in builtin_extensions(layout, config):
            if builtin.plugin is None:
                manager.skip(
                    builtin.name,
                    source=SOURCE_BUILTIN,
                    location=builtin.module,
                    status=ExtensionStatus.DISABLED,
                    reason=builtin.reason,
                )
            else:
                manager.add(
                    builtin.name, builtin.plugin, source=SOURCE_BUILTIN, location=builtin.module
                )
    if third_party_blocked(env):
        _log.info("third-party extensions not loaded (%s is set)", NO_EXTENSIONS_ENV)
    else:
        load_entry_points(manager)
        manager.directory = directory or extensions_dir(layout, config, env)
        load_directory(manager, manager.directory)
    if strict:
        manager.check()
    return manager


def load_entry_points(manager: ExtensionManager, group: str = ENTRY_POINT_GROUP) -> None:
    """Register every extension of entry-point ``group``, recording failures per name."""
    seen: set[str] = set()
    for ep in importlib.metadata.entry_points(group=group):
        if ep.name in seen:
            continue  # pluggy loads the first distribution that declares a name
        seen.add(ep.name)
        dist = ep.dist
        where = f"{dist.name} {dist.version} ({ep.value})" if dist else ep.value
        refused = manager.refusal(ep.name)
        if refused is not None:
            manager.skip(
                ep.name,
                source=SOURCE_ENTRY_POINT,
                location=where,
                status=refused[0],
                reason=refused[1],
            )
            continue
        try:
            plugin = ep.load()
        except Exception as exc:  # whatever the extension's import raises
            manager.skip(
                ep.name,
                source=SOURCE_ENTRY_POINT,
                location=where,
                status=ExtensionStatus.FAILED,
                reason=f"import failed: {type(exc).__name__}: {one_line(exc)}",
            )
            continue
        manager.add(ep.name, plugin, source=SOURCE_ENTRY_POINT, location=where)


def load_directory(manager: ExtensionManager, directory: Path) -> None:
    """Register each ``*.py`` file of ``directory`` (not ``_*``/``.*``) under its stem."""
    if not directory.is_dir():
        return
    unsafe_dir = _unsafe(directory)
    for path in _candidates(directory):
        name = path.stem
        where = str(path)
        refused = manager.refusal(name)
        problem = unsafe_dir or _unsafe(path)
        if refused is None and problem:
            refused = ExtensionStatus.FAILED, problem
        if refused is not None:
            manager.skip(
                name, source=SOURCE_DIRECTORY, location=where, status=refused[0], reason=refused[1]
            )
            continue
        try:
            module = _import_file(path)
        except Exception as exc:  # whatever the extension's import raises
            manager.skip(
                name,
                source=SOURCE_DIRECTORY,
                location=where,
                status=ExtensionStatus.FAILED,
                reason=f"import failed: {type(exc).__name__}: {one_line(exc)}",
            )
            continue
        manager.add(name, module, source=SOURCE_DIRECTORY, location=where)


def _candidates(directory: Path) -> Iterator[Path]:
    for path in sorted(directory.glob("*.py")):
        if not path.name.startswith(("_", ".")) and path.is_file():
            yield path


def _unsafe(path: Path) -> str:
    """Why ``path`` must not be executed in-process (writable by others), or ``""``.

    In agent mode extensions run as root: a file anyone else can edit is a root shell.
    """
    st = path.stat()
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"{path} is group- or world-writable: chmod go-w {path}"
    if st.st_uid not in (0, os.geteuid()):
        return f"{path} is owned by uid {st.st_uid}, not by this user or root"
    return ""


def _import_file(path: Path) -> object:
    module_name = "dso_extension_" + re.sub(r"\W", "_", path.stem)
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    # In sys.modules while it runs, so dataclasses and pickling inside it work.
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(module_name, None)
        raise
    return module
