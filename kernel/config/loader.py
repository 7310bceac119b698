"""Find, permission-check, read, validate and load the configuration file.

Lookup order (spec, "Configuration Loading"): the ``-c``/``--config`` path (or ``DSO_CONFIG``),
then ``/etc/dso/dso.yaml``, ``~/.dso/config.yaml`` (``$DSO_HOME/config.yaml``), ``./dso.yaml``.
The first that exists wins; with none, the built-in defaults apply (the local vault).

Permissions, checked before anything is used: a group- or world-writable file is refused (whoever
can edit it can point dso at their own back end); a file holding a credential literally must not
be world-readable either (group-readable is fine: the agent reads it as group ``dso``).

The lookup and the permission checks import nothing heavy; parsing, validation and the model
(PyYAML, the schema, the dataclasses) are imported when a file is loaded.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from kernel.errors import ConfigError, ConfigPermissionError
from kernel.paths import local_home

TYPE_CHECKING = False  # typing's, without importing typing (kernel.cli.quick's path)
if TYPE_CHECKING:
    from kernel.config.model import Config

#: The agent-mode file; a module attribute so tests can point it elsewhere.
SYSTEM_CONFIG = Path("/etc/dso/dso.yaml")
#: Looked up in the current directory, last.
DIRECTORY_CONFIG_NAME = "dso.yaml"
#: A configuration is a few kilobytes; anything past this is a mistake, not a config.
MAX_CONFIG_BYTES = 1024 * 1024


def default_candidates() -> tuple[Path, ...]:
    """Where dso looks for a file when none is given, in order (evaluated now, for DSO_HOME)."""
    return (SYSTEM_CONFIG, local_home() / "config.yaml", Path.cwd() / DIRECTORY_CONFIG_NAME)


@dataclass(frozen=True, slots=True)
class Candidate:
    """One place in the lookup order, as ``docker dso config path`` reports it."""

    path: Path
    #: ``flag`` (``-c``/``DSO_CONFIG``/an argument) or ``lookup``.
    source: str
    exists: bool


def lookup_order(
    explicit: Path | None, candidates: Sequence[Path] | None = None
) -> list[Candidate]:
    """Every place :func:`find_config` considers, in order, and whether a file is there."""
    order = [Candidate(explicit, "flag", explicit.is_file())] if explicit is not None else []
    for path in default_candidates() if candidates is None else candidates:
        order.append(Candidate(path, "lookup", path.is_file()))
    return order


def find_config(explicit: Path | None, candidates: Sequence[Path] | None = None) -> Path | None:
    """The file to use: ``explicit`` (which must exist), else the first existing candidate.

    ``candidates`` replaces :func:`default_candidates` (tests must never read ``/etc/dso``).
    Returns None when no file exists: the built-in defaults apply.
    """
    if explicit is not None:
        if explicit.is_dir():
            raise ConfigError("is a directory, not a configuration file", path=explicit)
        if not explicit.is_file():
            raise ConfigError(
                "configuration file not found",
                path=explicit,
                hint="check the -c/--config option or DSO_CONFIG; "
                "`docker dso config path` shows the lookup order",
            )
        return explicit
    for path in default_candidates() if candidates is None else candidates:
        if path.is_file():
            return path
    return None


@dataclass(frozen=True, slots=True)
class LoadedConfig:
    """A valid configuration and where it came from (None: no file, built-in defaults)."""

    config: Config
    path: Path | None
    #: ``file:line: key: message`` lines about likely mistakes that are still valid.
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ConfigReport:
    """Everything wrong with one configuration, for ``docker dso config validate``."""

    path: Path | None
    #: The configuration when valid, else None.
    config: Config | None
    errors: tuple[ConfigError, ...]
    warnings: tuple[str, ...] = ()

    @property
    def valid(self) -> bool:
        return not self.errors


def check_config(
    explicit: Path | None = None,
    *,
    candidates: Sequence[Path] | None = None,
    env: Mapping[str, str] | None = None,
) -> ConfigReport:
    """Find and check the configuration, collecting every problem instead of raising."""
    try:
        path = find_config(explicit, candidates)
    except ConfigError as exc:
        return ConfigReport(explicit, None, (exc,))
    if path is None:
        from kernel.config.model import Config

        return ConfigReport(None, Config.default(), ())
    return _inspect(path, os.environ if env is None else env, fail_fast=False)


def load_config(
    explicit: Path | None = None,
    *,
    candidates: Sequence[Path] | None = None,
    env: Mapping[str, str] | None = None,
) -> LoadedConfig:
    """Find, check and load the configuration; raise :class:`ConfigError` when it is invalid.

    With several problems the first is raised, its hint pointing at ``config validate`` for the
    rest. Unsafe permissions raise :class:`ConfigPermissionError` before the file is used.
    """
    path = find_config(explicit, candidates)
    if path is None:
        from kernel.config.model import Config

        return LoadedConfig(Config.default(), None)
    report = _inspect(path, os.environ if env is None else env, fail_fast=True)
    if report.errors:
        raise _first_of(report.errors, path)
    assert report.config is not None
    return LoadedConfig(report.config, path, report.warnings)


def _first_of(errors: Sequence[ConfigError], path: Path) -> ConfigError:
    first = errors[0]
    if len(errors) == 1:
        return first
    more = len(errors) - 1
    hint = f"{more} more problem{'s' if more > 1 else ''}: `docker dso config validate {path}`"
    combined = type(first)(
        first.reason,
        path=first.path,
        line=first.line,
        key=first.key,
        hint=f"{first.hint}; {hint}" if first.hint else hint,
    )
    combined.message = first.message  # keeps a syntax error's column
    return combined


def _inspect(path: Path, env: Mapping[str, str], *, fail_fast: bool) -> ConfigReport:
    from kernel.config.credentials import literal_credentials
    from kernel.config.model import build_config
    from kernel.config.validate import validate_document
    from kernel.config.yaml_source import parse_document

    errors: list[ConfigError] = []

    def problem(error: ConfigError) -> None:
        if fail_fast:
            raise error
        errors.append(error)

    try:
        info = path.stat()
        for unsafe in (writable_problem(path, info.st_mode), owner_problem(path, info.st_uid)):
            if unsafe is not None:
                problem(unsafe)
        document = parse_document(_read(path, info.st_size), str(path))
    except ConfigError as exc:
        errors.append(exc)
        return ConfigReport(path, None, tuple(errors))
    except OSError as exc:
        errors.append(_unreadable(path, exc))
        return ConfigReport(path, None, tuple(errors))
    literals = literal_credentials(document.root)
    if literals and info.st_mode & stat.S_IROTH:
        key, line = literals[0]
        problem(
            ConfigPermissionError(
                f"holds a credential literally and is world-readable "
                f"(mode {stat.S_IMODE(info.st_mode):04o})",
                path=path,
                line=line,
                key=key,
                hint=f"chmod 600 {path} (or 640 with group dso for the agent), "
                "or reference the credential from the environment as ${NAME}",
            )
        )
    validation = validate_document(document, path=str(path), env=env)
    # File order reads best; the permission problem (if any) stays first.
    errors.extend(sorted([*document.problems, *validation.errors], key=lambda e: e.line or 0))
    if errors:
        return ConfigReport(path, None, tuple(errors), validation.warnings)
    config = build_config(validation.values, source=path, lines=validation.lines)
    return ConfigReport(path, config, (), validation.warnings)


def owner_problem(path: Path, owner: int, euid: int | None = None) -> ConfigPermissionError | None:
    """The error for a file owned by someone other than dso's user or root, else None."""
    euid = os.geteuid() if euid is None else euid
    if owner in (0, euid):
        return None
    return ConfigPermissionError(
        f"refusing a configuration owned by uid {owner} while dso runs as uid {euid}: its "
        "owner can make dso fetch secrets from a back end, and run a provider, of their choosing",
        path=path,
        hint=f"chown {euid} {path} (or root), or point -c at a file of your own",
    )


def writable_problem(path: Path, mode: int) -> ConfigPermissionError | None:
    """The error for a group- or world-writable file, else None."""
    if not mode & (stat.S_IWGRP | stat.S_IWOTH):
        return None
    who = "world-writable" if mode & stat.S_IWOTH else "group-writable"
    return ConfigPermissionError(
        f"refusing a {who} configuration (mode {stat.S_IMODE(mode):04o}): whoever can edit it "
        "can make dso fetch secrets from a back end of their choosing",
        path=path,
        hint=f"chmod 600 {path}",
    )


def _read(path: Path, size: int) -> str:
    if size > MAX_CONFIG_BYTES:
        raise ConfigError(
            f"is {size} bytes; a configuration is at most {MAX_CONFIG_BYTES}", path=path
        )
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"is not UTF-8 text (invalid byte at offset {exc.start})", path=path
        ) from None


def _unreadable(path: Path, exc: OSError) -> ConfigError:
    return ConfigError(
        f"cannot read the configuration: {exc.strerror or exc}",
        path=path,
        hint="run as a user that may read it (agent configs are root:dso, mode 640)",
    )
