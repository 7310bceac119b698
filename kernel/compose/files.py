"""Which compose files a project comes from and its working directory, as compose decides.

``docker compose config`` answers with the merged model and the project name, but not the
working directory nor the files. The working directory must be passed to the second call
(``--project-directory``) so that compose's labels and ``.env`` lookup stay what they would
have been; the files are read again only to point an error at ``file:line``.

Compose's rules (compose-go ``cli/options.go``): explicit ``-f`` files, else ``COMPOSE_FILE``
(split on ``COMPOSE_PATH_SEPARATOR``, default ``:``), else the first of compose.yaml,
compose.yml, docker-compose.yml, docker-compose.yaml found in the project directory (or the
current directory) or its parents, with its override file. The working directory is
``--project-directory``, else the directory of the first file.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from kernel.compose.args import ComposeArgs

DEFAULT_FILES = ("compose.yaml", "compose.yml", "docker-compose.yml", "docker-compose.yaml")
OVERRIDE_FILES = (
    "compose.override.yaml",
    "compose.override.yml",
    "docker-compose.override.yml",
    "docker-compose.override.yaml",
)


@dataclass(frozen=True, slots=True)
class ProjectFiles:
    """The compose files of a project (absolute) and its working directory."""

    files: tuple[Path, ...]
    working_dir: Path


def project_files(args: ComposeArgs, cwd: Path, env: Mapping[str, str]) -> ProjectFiles:
    """The files and working directory compose uses for ``args`` run in ``cwd``."""
    explicit = Path(cwd, args.project_directory).resolve() if args.project_directory else None
    if args.files:
        files = [_absolute(cwd, f) for f in args.files]
    elif env.get("COMPOSE_FILE"):
        separator = env.get("COMPOSE_PATH_SEPARATOR") or os.pathsep
        files = [_absolute(cwd, f) for f in env["COMPOSE_FILE"].split(separator) if f]
    else:
        files = _discover(explicit or cwd)
    if explicit is not None:
        working_dir = explicit
    elif files:
        working_dir = files[0].parent
    else:
        working_dir = cwd
    return ProjectFiles(tuple(files), working_dir)


def _absolute(cwd: Path, name: str) -> Path:
    return Path(os.path.abspath(Path(cwd, os.path.expanduser(name))))


def _discover(start: Path) -> list[Path]:
    directory = start.resolve()
    while True:
        for name in DEFAULT_FILES:
            candidate = directory / name
            if candidate.is_file():
                found = [candidate]
                for override in OVERRIDE_FILES:
                    if (directory / override).is_file():
                        found.append(directory / override)
                        break
                return found
        if directory.parent == directory:
            return []
        directory = directory.parent


def locate(files: Sequence[Path], service: str, variable: str) -> tuple[Path, int] | None:
    """Where ``service``'s ``environment`` sets ``variable``: the last file that does, and line.

    Best effort, for error messages: a variable that came from ``env_file``, ``extends`` or
    ``include`` is not found (None).
    """
    import yaml

    for path in reversed(files):
        try:
            root = yaml.compose(path.read_text(), Loader=yaml.SafeLoader)
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            continue
        environment = _child(_child(_child(root, "services"), service), "environment")
        if isinstance(environment, yaml.MappingNode):
            for key, _value in environment.value:
                if isinstance(key, yaml.ScalarNode) and key.value == variable:
                    return path, key.start_mark.line + 1
        elif isinstance(environment, yaml.SequenceNode):
            for item in environment.value:
                if isinstance(item, yaml.ScalarNode) and item.value.split("=", 1)[0] == variable:
                    return path, item.start_mark.line + 1
    return None


def _child(node: object, key: str) -> object:
    import yaml

    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if isinstance(k, yaml.ScalarNode) and k.value == key:
                return v
    return None
