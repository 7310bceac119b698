"""Check a parsed file against :data:`~kernel.config.schema.SCHEMA`, collecting every problem.

One pass over the tree reports all errors (``config validate`` lists them together), each with
file, line and dotted key. The result is a plain tree of converted values (seconds, bytes,
paths) with defaults filled in, which :mod:`kernel.config.model` turns into dataclasses.

Credentials: a setting named like a credential becomes a :class:`SecretValue` right here, and
no message ever repeats its text.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kernel.config.cross_checks import cross_check
from kernel.config.expand import Where, expand
from kernel.config.schema import (
    SCHEMA,
    Field,
    FieldType,
    convert_default,
    default_text,
    is_credential_key,
)
from kernel.config.units import (
    DURATION_EXAMPLE,
    SIZE_EXAMPLE,
    format_duration,
    format_size,
    parse_duration,
    parse_size,
)
from kernel.config.yaml_source import Document, MapNode, Scalar, SeqNode, YNode, describe
from kernel.errors import ConfigError
from kernel.secret_value import SecretValue

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_INTEGER = re.compile(r"-?\d+")


class _Invalid:
    """The value of a key that failed validation (its error is already recorded)."""

    def __repr__(self) -> str:
        return "INVALID"


INVALID: Any = _Invalid()

_EXPECTED = {
    FieldType.INT: "a whole number",
    FieldType.STRING: "text",
    FieldType.BOOL: "a boolean (true/false)",
    FieldType.DURATION: f"a duration such as {DURATION_EXAMPLE}",
    FieldType.SIZE: f"a size such as {SIZE_EXAMPLE}",
    FieldType.PATH: "an absolute path",
    FieldType.NAMES: "a list of environment variable names",
    FieldType.SECTION: "a mapping of keys",
    FieldType.MAP: "a mapping of names",
}


@dataclass(frozen=True, slots=True)
class Validation:
    """What :func:`validate_document` found."""

    #: Converted values with defaults; keys that failed hold :data:`INVALID`.
    values: dict[str, Any]
    errors: tuple[ConfigError, ...]
    #: ``file:line: key: message`` lines about likely mistakes that are still valid.
    warnings: tuple[str, ...]
    #: Dotted key → line, for every key present in the file.
    lines: dict[str, int]


def validate_document(document: Document, *, path: str, env: Mapping[str, str]) -> Validation:
    """Validate ``document`` (read from ``path``), expanding ``${VAR}`` from ``env``."""
    checker = _Checker(path, env)
    values = checker.section(SCHEMA, document.root, "", document.root.line)
    cross_check(checker, values)
    return Validation(values, tuple(checker.errors), tuple(checker.warnings), checker.lines)


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _is_empty(node: YNode | None) -> bool:
    return node is None or (isinstance(node, Scalar) and node.value is None)


class _Checker:
    def __init__(self, path: str, env: Mapping[str, str]) -> None:
        self.path = path
        self.env = env
        self.errors: list[ConfigError] = []
        self.warnings: list[str] = []
        self.lines: dict[str, int] = {}

    def error(self, line: int | None, key: str, message: str, hint: str | None = None) -> Any:
        self.errors.append(
            ConfigError(message, path=self.path, line=line, key=key or None, hint=hint)
        )
        return INVALID

    def warn(self, line: int, key: str, message: str) -> None:
        self.warnings.append(f"{self.path}:{line}: {key}: {message}")

    # -- mappings ---------------------------------------------------------------------------

    def section(self, spec: Field, node: YNode | None, dotted: str, line: int) -> dict[str, Any]:
        entries: tuple[Any, ...] = ()
        report_missing = True
        if isinstance(node, MapNode):
            entries, line = node.entries, node.line
        elif not _is_empty(node):
            assert node is not None
            where = dotted or "the top level"
            self.error(
                node.line, dotted, f"expected a mapping of keys under {where}, got {describe(node)}"
            )
            report_missing = False
        values: dict[str, Any] = {}
        settings: dict[str, Any] = {}
        for entry in entries:
            key = _join(dotted, entry.key)
            self.lines[key] = entry.line
            child = spec.child(entry.key)
            if child is not None:
                values[entry.key] = self.value(child, entry.value, key, entry.line)
            elif spec.extra is not None:
                settings[entry.key] = self.setting(entry.value, key, is_credential_key(entry.key))
                self.near_miss(spec, entry.key, key, entry.line)
            else:
                self.unknown(spec, entry.key, dotted, entry.line)
        for child in spec.fields:
            if child.name in values:
                continue
            if child.required:
                if report_missing:
                    self.error(
                        line,
                        _join(dotted, child.name),
                        f"missing required key '{child.name}'",
                        hint=_required_hint(child),
                    )
                values[child.name] = INVALID
            else:
                values[child.name] = self.absent(child, _join(dotted, child.name), line)
        if spec.extra is not None:
            values["settings"] = settings
        return values

    def absent(self, spec: Field, dotted: str, line: int) -> Any:
        if spec.type is FieldType.SECTION:
            return self.section(spec, None, dotted, line)
        if spec.type is FieldType.MAP:
            return {}
        return convert_default(spec)

    def mapping(self, spec: Field, node: YNode, dotted: str, line: int) -> Any:
        if _is_empty(node):
            return {}
        if not isinstance(node, MapNode):
            return self.error(
                node.line,
                dotted,
                f"expected a mapping of names under {dotted}, got {describe(node)}",
            )
        assert spec.item is not None
        values: dict[str, Any] = {}
        for entry in node.entries:
            key = _join(dotted, entry.key)
            self.lines[key] = entry.line
            if spec.key_pattern and not re.fullmatch(spec.key_pattern, entry.key):
                self.error(
                    entry.line,
                    key,
                    f"invalid name {entry.key!r}: use lowercase "
                    "letters, digits, '_' and '-', starting with a letter (at most 63)",
                )
            values[entry.key] = self.section(spec.item, entry.value, key, entry.line)
        return values

    def unknown(self, spec: Field, name: str, dotted: str, line: int) -> None:
        known = [child.name for child in spec.fields]
        where = f"in {dotted}" if dotted else "at the top level"
        message = f"unknown key '{name}' {where}"
        guess = difflib.get_close_matches(name, known, n=1)
        if guess:
            message += f"; did you mean '{guess[0]}'?"
        else:
            message += f"; allowed keys: {', '.join(known)}"
        self.error(line, _join(dotted, name), message)

    def near_miss(self, spec: Field, name: str, dotted: str, line: int) -> None:
        """Warn when a provider setting looks like a misspelt provider key (``timout``)."""
        guess = difflib.get_close_matches(name, [c.name for c in spec.fields], n=1, cutoff=0.75)
        if guess:
            self.warn(line, dotted, f"kept as a provider setting; did you mean '{guess[0]}'?")

    # -- values -----------------------------------------------------------------------------

    def value(self, spec: Field, node: YNode, dotted: str, line: int) -> Any:
        if spec.type is FieldType.SECTION:
            return self.section(spec, node, dotted, line)
        if spec.type is FieldType.MAP:
            return self.mapping(spec, node, dotted, line)
        if spec.type is FieldType.NAMES:
            return self.names(spec, node, dotted)
        if spec.type is FieldType.ANY:
            return self.setting(node, dotted, spec.credential)
        return self.leaf(spec, node, dotted)

    def text(self, node: Scalar, dotted: str) -> Any:
        """A string scalar with ``${VAR}`` expanded, or INVALID (error recorded)."""
        assert isinstance(node.value, str)
        try:
            return expand(node.value, self.env, Where(self.path, node.line, dotted))
        except ConfigError as exc:
            self.errors.append(exc)
            return INVALID

    def leaf(self, spec: Field, node: YNode, dotted: str) -> Any:
        expected = _EXPECTED[spec.type]
        if not isinstance(node, Scalar):
            return self.error(node.line, dotted, f"expected {expected}, got {describe(node)}")
        if node.value is None:
            return self.error(
                node.line, dotted, f"no value; expected {expected}", hint=_absent_hint(spec)
            )
        raw = node.value
        expanded = isinstance(raw, str) and "$" in raw
        if isinstance(raw, str):
            raw = self.text(node, dotted)
            if raw is INVALID:
                return INVALID

        def shown() -> str:
            if spec.credential:
                return "a value that is not shown (credential)"
            text = repr(raw) if isinstance(raw, str) else node.text
            return f"{text} (from {node.value!r})" if expanded else text

        try:
            value = _convert(spec.type, raw, from_env=expanded)
        except ValueError as exc:
            message = str(exc) if exc.args and not spec.credential else ""
            if message and expanded:
                message += f" (from {node.value!r})"
            return self.error(node.line, dotted, message or f"expected {expected}, got {shown()}")
        if value is INVALID:
            return self.error(node.line, dotted, f"expected {expected}, got {shown()}")
        if spec.pattern and isinstance(value, str) and not re.fullmatch(spec.pattern, value):
            return self.error(node.line, dotted, f"expected {spec.pattern_doc}; got {shown()}")
        if spec.choices and value not in spec.choices:
            message = f"expected one of {', '.join(spec.choices)}; got {shown()}"
            guess = difflib.get_close_matches(str(value).lower(), spec.choices, n=1)
            if guess:
                message += f"; did you mean '{guess[0]}'?"
            return self.error(node.line, dotted, message)
        if spec.minimum is not None and value < spec.minimum:
            return self.error(
                node.line,
                dotted,
                f"must be at least {_format(spec.type, spec.minimum)}, got {shown()}",
            )
        if spec.maximum is not None and value > spec.maximum:
            return self.error(
                node.line,
                dotted,
                f"must be at most {_format(spec.type, spec.maximum)}, got {shown()}",
            )
        return value

    def names(self, spec: Field, node: YNode, dotted: str) -> Any:
        if _is_empty(node):
            return ()
        if not isinstance(node, SeqNode):
            return self.error(
                node.line,
                dotted,
                f"expected a list of environment variable names, got {describe(node)}",
                hint="write it as [NAME, OTHER_NAME]",
            )
        names: list[str] = []
        for index, item in enumerate(node.items):
            key = f"{dotted}[{index}]"
            if not isinstance(item, Scalar) or not isinstance(item.value, str):
                self.error(
                    item.line, key, f"expected an environment variable name, got {describe(item)}"
                )
                continue
            name = self.text(item, key)
            if name is INVALID:
                continue
            if not _ENV_NAME.fullmatch(name):
                self.error(
                    item.line,
                    key,
                    f"{name!r} is not an environment variable name "
                    "(letters, digits and '_', not starting with a digit)",
                )
            elif name not in names:
                names.append(name)
        return tuple(names)

    def setting(self, node: YNode, dotted: str, credential: bool) -> Any:
        """A free-form provider setting: expanded, credentials wrapped in SecretValue."""
        if isinstance(node, MapNode):
            values: dict[str, Any] = {}
            for entry in node.entries:
                key = _join(dotted, entry.key)
                self.lines[key] = entry.line
                values[entry.key] = self.setting(
                    entry.value, key, credential or is_credential_key(entry.key)
                )
            return values
        if isinstance(node, SeqNode):
            return tuple(
                self.setting(item, f"{dotted}[{i}]", credential)
                for i, item in enumerate(node.items)
            )
        value: Any = node.value
        if isinstance(value, str):
            value = self.text(node, dotted)
        if credential and value is not None and value is not INVALID:
            return SecretValue(value if isinstance(value, str) else node.text)
        return value


def _convert(kind: FieldType, raw: str | int | float | bool, *, from_env: bool) -> Any:
    """Convert a scalar (already expanded) to ``kind``; INVALID for a wrong type.

    Text from ``${VAR}`` may spell a number or a boolean; literal text may not, so a quoted
    ``"5"`` is not silently an integer.
    """
    if kind is FieldType.INT:
        if isinstance(raw, int) and not isinstance(raw, bool):
            return raw
        if from_env and isinstance(raw, str) and _INTEGER.fullmatch(raw):
            return int(raw)
        return INVALID
    if kind is FieldType.BOOL:
        if isinstance(raw, bool):
            return raw
        if from_env and isinstance(raw, str) and raw.lower() in ("true", "false"):
            return raw.lower() == "true"
        return INVALID
    if kind is FieldType.STRING:
        return raw if isinstance(raw, str) and raw else INVALID
    if kind is FieldType.PATH:
        if not isinstance(raw, str) or not raw:
            return INVALID
        path = Path(raw).expanduser()
        return path if path.is_absolute() else INVALID
    if isinstance(raw, bool | float):
        return INVALID
    if kind is FieldType.DURATION:
        return parse_duration(raw)
    if kind is FieldType.SIZE:
        return parse_size(raw)
    raise AssertionError(kind)


def _format(kind: FieldType, value: float) -> str:
    if kind is FieldType.DURATION:
        return format_duration(value)
    if kind is FieldType.SIZE:
        return format_size(int(value))
    return f"{value:g}"


def _required_hint(spec: Field) -> str | None:
    if spec.name == "version":
        return "add `version: 1` at the top of the file"
    if spec.choices:
        return f"add `{spec.name}: <one of {', '.join(spec.choices)}>`"
    return None


def _absent_hint(spec: Field) -> str | None:
    if spec.required:
        return None
    return f"remove the key to use the default ({default_text(spec)})"
