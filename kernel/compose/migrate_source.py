"""Reading a compose project's files as written, for ``docker dso migrate``.

Compose files are parsed with PyYAML's *node* API, not loaded into Python objects: every scalar
keeps its position, so the plan can say ``compose.yaml:12`` and the writer can replace exactly
that scalar's text. ``.env`` and ``env_file:`` files are read with the parser of
``docker dso secret import`` (:mod:`kernel.vault.envfile`), which speaks compose's dotenv syntax.

Nothing here runs ``docker compose``: its ``config`` output is already interpolated, so where a
value came from (a literal, a default, which ``.env`` line) would be lost.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

import yaml

from kernel.compose.migrate_interp import DotenvVar, EnvLine, mentions
from kernel.errors import ComposeError, UsageError
from kernel.secret_value import SecretValue
from kernel.vault.envfile import EMPTY_VALUE, parse_env

_STR = "tag:yaml.org,2002:str"
_NULL = "tag:yaml.org,2002:null"
_MERGE = "tag:yaml.org,2002:merge"
_DOLLAR_RAW = re.compile(r"\$[{A-Za-z_]")
_DOLLAR_DOUBLE = re.compile(r"(?<!\\)\$[{A-Za-z_]")


@dataclass(frozen=True, slots=True)
class ComposeText:
    """One compose file: its path, its text and its node tree."""

    path: Path
    text: str = field(repr=False)
    root: yaml.Node | None = field(repr=False)


def read_compose(path: Path, shown: str | None = None) -> ComposeText:
    """Read and parse ``path`` (``shown`` names it in messages); :class:`ComposeError` naming
    ``file:line``, never quoting the text (a broken line may hold a secret)."""
    name = shown or str(path)
    try:
        # Bytes, decoded: read_text() would turn CRLF into LF and the output would differ
        # from the original on every line.
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise ComposeError(f"{name}: no such compose file") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or "not UTF-8 text"
        raise ComposeError(f"{name}: cannot read it: {reason}") from None
    return ComposeText(path, text, parse_yaml(text, name))


def parse_yaml(text: str, name: str) -> yaml.Node | None:
    """The node tree of ``text``; YAML errors name the position and the problem only."""
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{name}:{mark.line + 1}:{mark.column + 1}" if mark else name
        raise ComposeError(f"{where}: not valid YAML: {exc.problem}") from None
    except yaml.YAMLError:
        raise ComposeError(f"{name}: not valid YAML") from None


class Form(StrEnum):
    """How a service's ``environment`` entry is written."""

    #: ``VAR: value`` (or ``VAR:`` without a value).
    MAP = "map"
    #: ``- VAR=value`` (or ``- VAR`` without a value).
    LIST = "list"


@dataclass(frozen=True, slots=True)
class EnvItem:
    """One ``environment`` entry of a service, as written."""

    file: ComposeText
    service: str
    variable: str
    form: Form
    #: The value scalar (map form) or the whole ``VAR=value`` item (list form).
    node: yaml.ScalarNode = field(repr=False)
    #: The text after ``=`` or the scalar's value; None when the entry has no value (compose
    #: then takes it from the shell or ``.env``).
    raw: str | None = field(repr=False)
    #: The YAML tag of a map value (``!!int`` for ``PORT: 5432``…).
    tag: str = _STR

    @property
    def line(self) -> int:
        return self.node.start_mark.line + 1


@dataclass(frozen=True, slots=True)
class EnvFileRef:
    """One ``env_file:`` entry of a service (path resolved against the project directory)."""

    path: Path
    required: bool
    line: int


@dataclass(frozen=True, slots=True)
class ServiceNodes:
    """The nodes of one service in one compose file that migrate reads or edits."""

    file: ComposeText
    name: str
    #: The service's name key and its mapping.
    key: yaml.ScalarNode = field(repr=False)
    node: yaml.MappingNode = field(repr=False)
    #: The ``environment`` key and value nodes, if the service has the key.
    env_key: yaml.ScalarNode | None = field(repr=False)
    env_value: yaml.Node | None = field(repr=False)
    #: The ``env_file`` key and value nodes, if any.
    env_file_key: yaml.ScalarNode | None = field(repr=False)
    env_file_value: yaml.Node | None = field(repr=False)
    items: tuple[EnvItem, ...]
    env_files: tuple[EnvFileRef, ...]


def child(node: yaml.Node | None, key: str) -> tuple[yaml.ScalarNode, yaml.Node] | None:
    """The key and value nodes of ``key`` in a mapping node (None if absent or not a map)."""
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if isinstance(k, yaml.ScalarNode) and k.value == key:
                return k, v
    return None


def services(compose: ComposeText, working_dir: Path) -> list[ServiceNodes]:
    """Every service of ``compose`` with its ``environment`` entries and ``env_file`` list."""
    found = child(compose.root, "services")
    if found is None or not isinstance(found[1], yaml.MappingNode):
        return []
    result = []
    for key, node in found[1].value:
        if not isinstance(key, yaml.ScalarNode) or not isinstance(node, yaml.MappingNode):
            continue
        env = child(node, "environment")
        env_file = child(node, "env_file")
        result.append(
            ServiceNodes(
                file=compose,
                name=key.value,
                key=key,
                node=node,
                env_key=env[0] if env else None,
                env_value=env[1] if env else None,
                env_file_key=env_file[0] if env_file else None,
                env_file_value=env_file[1] if env_file else None,
                items=tuple(_items(compose, key.value, env[1] if env else None)),
                env_files=tuple(_env_files(env_file[1] if env_file else None, working_dir)),
            )
        )
    return result


def _items(compose: ComposeText, service: str, node: yaml.Node | None) -> list[EnvItem]:
    items: list[EnvItem] = []
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in _merged(node):
            if not isinstance(key, yaml.ScalarNode) or not isinstance(value, yaml.ScalarNode):
                continue
            if key.value in seen:
                continue
            seen.add(key.value)
            raw = None if value.tag == _NULL else value.value
            items.append(EnvItem(compose, service, key.value, Form.MAP, value, raw, value.tag))
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            if isinstance(item, yaml.ScalarNode) and item.value:
                variable, eq, value = item.value.partition("=")
                raw = value if eq else None
                items.append(EnvItem(compose, service, variable.strip(), Form.LIST, item, raw))
    return items


def _merged(node: yaml.MappingNode) -> list[tuple[yaml.Node, yaml.Node]]:
    """Entries of a mapping, own ones first, then those of ``<<`` merge keys (own ones win)."""
    own = [(k, v) for k, v in node.value if k.tag != _MERGE]
    merged: list[tuple[yaml.Node, yaml.Node]] = []
    for key, value in node.value:
        if key.tag != _MERGE:
            continue
        sources = value.value if isinstance(value, yaml.SequenceNode) else [value]
        for source in sources:
            if isinstance(source, yaml.MappingNode):
                merged += _merged(source)
    return own + merged


def _env_files(node: yaml.Node | None, working_dir: Path) -> list[EnvFileRef]:
    """``env_file: a.env``, ``env_file: [a.env, b.env]`` or ``[{path: a.env, required: false}]``."""
    entries = node.value if isinstance(node, yaml.SequenceNode) else [node] if node else []
    refs = []
    for entry in entries:
        required = True
        path_node: yaml.Node | None = entry
        if isinstance(entry, yaml.MappingNode):
            found = child(entry, "path")
            path_node = found[1] if found else None
            flag = child(entry, "required")
            required = not (flag and flag[1].value in ("false", "False", "no"))
        if isinstance(path_node, yaml.ScalarNode) and path_node.value:
            path = (working_dir / Path(path_node.value).expanduser()).resolve()
            refs.append(EnvFileRef(path, required, path_node.start_mark.line + 1))
    return refs


@dataclass(frozen=True, slots=True)
class Dotenv:
    """A parsed dotenv file: its variables and the warnings worth showing."""

    path: Path
    variables: dict[str, DotenvVar]
    warnings: tuple[str, ...] = ()


def read_dotenv(path: Path, shown: str) -> Dotenv:
    """Parse a ``.env`` / ``env_file`` file; ``shown`` names it in messages.

    Duplicate assignments keep the last one, as compose does, with a warning naming both
    lines; a last assignment that is empty makes the variable empty.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {shown}: {exc.strerror}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise UsageError(f"{shown}:{line}: not valid UTF-8") from None
    parsed = parse_env(text, shown)
    lines = text.removeprefix("\ufeff").replace("\r\n", "\n").split("\n")
    assignments: dict[str, list[tuple[int, SecretValue | None]]] = {}
    for entry in parsed.entries:
        assignments.setdefault(entry.variable, []).append((entry.line, entry.value))
    for skipped in parsed.skipped:
        empty = SecretValue(b"") if skipped.reason == EMPTY_VALUE else None
        assignments.setdefault(skipped.variable, []).append((skipped.line, empty))
    variables: dict[str, DotenvVar] = {}
    warnings: list[str] = []
    for name, found in assignments.items():
        found.sort(key=lambda item: item[0])
        numbers = [line for line, _ in found]
        if len(numbers) > 1:
            earlier = ", ".join(str(n) for n in numbers[:-1])
            warnings.append(
                f"{shown}: {name} is set on lines {earlier} and {numbers[-1]}; "
                f"line {numbers[-1]} wins, as in compose"
            )
        last_line, value = found[-1]
        value = value if value is not None else SecretValue(b"")
        raw = _raw_value(lines, last_line, value)
        interpolated = raw is not None and _interpolates(raw)
        variables[name] = DotenvVar(
            name,
            value,
            tuple(EnvLine(path, n) for n in numbers),
            f"{shown}:{last_line}: the value of {name} interpolates another variable"
            if interpolated
            else None,
            frozenset(mentions(raw)) if raw is not None and interpolated else frozenset(),
        )
    return Dotenv(path, variables, tuple(warnings))


def _raw_value(lines: list[str], line: int, value: SecretValue) -> str | None:
    """The text after ``=`` of the assignment at ``line`` (None when it cannot hold ``$``)."""
    if b"$" not in value.reveal():
        return None
    count = value.reveal().count(b"\n") + 1
    return "\n".join(lines[line - 1 : line - 1 + count]).partition("=")[2].lstrip()


def _interpolates(raw: str) -> bool:
    """True if compose interpolates ``raw``: ``$VAR`` / ``${VAR}`` in an unquoted or
    double-quoted dotenv value (unless escaped as ``\\$`` in double quotes)."""
    if raw.startswith("'"):
        return False
    pattern = _DOLLAR_DOUBLE if raw.startswith('"') else _DOLLAR_RAW
    return pattern.search(raw) is not None
