"""Compose's ``${VAR}`` interpolation, evaluated only when every part is a literal in a file.

``docker dso migrate`` reads compose files as text so it knows where each value comes from
(``compose.yaml:12``, ``.env:3``); ``docker compose config`` would hand back the interpolated
result without that provenance. So it evaluates the interpolation itself, for the forms compose
supports (``$$``, ``$VAR``, ``${VAR}``, ``${VAR:-default}``, ``${VAR-default}``, ``${VAR:?err}``,
``${VAR?err}``, ``${VAR:+alt}``, ``${VAR+alt}``), and gives up with a reason whenever a value is
not a literal: a variable set in the shell (compose prefers it over ``.env``), an unset one, a
nested ``${…}`` in a default, or a ``.env`` value that interpolates in turn.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from kernel.secret_value import SecretValue

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_BRACED = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])(.*))?\}", re.DOTALL)
#: Variable names an interpolation mentions anywhere (defaults included), for usage checks.
_MENTION = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)")


@dataclass(frozen=True, slots=True)
class EnvLine:
    """One assignment of a dotenv file (``.env`` or an ``env_file``)."""

    file: Path
    line: int


@dataclass(frozen=True, slots=True)
class DotenvVar:
    """The value a dotenv file gives a variable, where, and whether it is a literal.

    ``lines`` are every assignment of the variable in the file (the last one wins, as in
    compose); ``value`` is empty when the last assignment is empty.
    """

    name: str
    value: SecretValue
    lines: tuple[EnvLine, ...]
    #: Why the value is not a literal (it interpolates ``$OTHER``), else None.
    not_literal: str | None = None
    #: The variables the value interpolates (when it is not a literal).
    mentions: frozenset[str] = frozenset()

    @property
    def where(self) -> EnvLine:
        return self.lines[-1]


@dataclass(frozen=True, slots=True)
class Evaluated:
    """An interpolated string: its value and the dotenv variables it used."""

    value: SecretValue = field(repr=False)
    dotenv: tuple[DotenvVar, ...] = ()
    #: True when some of the value is text of the compose file itself (literal or default).
    uses_compose_text: bool = False


@dataclass(frozen=True, slots=True)
class NotLiteral:
    """Why a string's value cannot be known from the files alone."""

    reason: str


def mentions(text: str) -> set[str]:
    """Names of the variables ``text`` interpolates (``$$`` escapes excluded)."""
    return set(_MENTION.findall(text.replace("$$", "")))


def has_interpolation(text: str) -> bool:
    return "$" in text.replace("$$", "")


def evaluate(
    text: str, shell: Mapping[str, str], dotenv: Mapping[str, DotenvVar]
) -> Evaluated | NotLiteral:
    """The value compose would give ``text``, if it comes from files only."""
    out: list[str] = []
    used: dict[str, DotenvVar] = {}
    compose_text = False
    index = 0
    while index < len(text):
        dollar = text.find("$", index)
        if dollar < 0:
            out.append(text[index:])
            compose_text = True
            break
        if dollar > index:
            out.append(text[index:dollar])
            compose_text = True
        rest = text[dollar + 1 :]
        if rest.startswith("$"):
            out.append("$")
            compose_text = True
            index = dollar + 2
            continue
        if rest.startswith("{"):
            close = _closing_brace(rest)
            match = _BRACED.fullmatch(rest[: close + 1]) if close > 0 else None
            if match is None:
                return NotLiteral("an interpolation compose would reject")
            name, op, word = match.group(1), match.group(2), match.group(3) or ""
            index = dollar + 1 + close + 1
        else:
            plain = _NAME.match(rest)
            if plain is None:
                return NotLiteral("an interpolation compose would reject")
            name, op, word = plain.group(), None, ""
            index = dollar + 1 + plain.end()
        if has_interpolation(word):
            return NotLiteral(f"a nested interpolation in the default of ${{{name}}}")
        if name in shell:
            return NotLiteral(f"${{{name}}} comes from the shell environment, not a file")
        found = dotenv.get(name)
        if found is not None and found.not_literal:
            return NotLiteral(found.not_literal)
        is_set = found is not None
        empty = found is None or not found.value
        part = _apply(name, op, word, is_set, empty)
        if isinstance(part, NotLiteral):
            return part
        if part is None:
            assert found is not None
            used[name] = found
            out.append(found.value.reveal_text())
        else:
            compose_text = compose_text or bool(part)
            out.append(part)
    return Evaluated(SecretValue("".join(out)), tuple(used.values()), compose_text)


def _apply(
    name: str, op: str | None, word: str, is_set: bool, empty: bool
) -> str | NotLiteral | None:
    """What one ``${name<op>word}`` gives: None for the variable's value, else a literal."""
    missing = empty if op is not None and op.startswith(":") else not is_set
    if op in (":-", "-"):
        return word if missing else None
    if op in (":+", "+"):
        return "" if missing else word
    if op in (":?", "?") and missing:
        return NotLiteral(f"${{{name}}} is required but not set")
    if not is_set:
        return NotLiteral(f"${{{name}}} is not set in any .env file")
    return None


def _closing_brace(rest: str) -> int:
    """Index of the ``}`` closing the ``{`` at ``rest[0]``, counting nested braces; -1 if none."""
    depth = 0
    for position, char in enumerate(rest):
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return position
    return -1
