"""``${VAR}`` expansion in configuration strings, so credentials can stay out of the file.

Syntax (a strict subset of Compose's):

- ``${NAME}``: the value of environment variable ``NAME``; unset is an error.
- ``${NAME:-default}``: the value of ``NAME``, or ``default`` when it is unset or empty. The
  default is literal text up to the first ``}``; it is not expanded again.
- ``$$``: a literal ``$``.
- any other ``$`` is an error, so ``$HOME`` or a half-typed ``${`` is never taken literally.

``NAME`` is ``[A-Za-z_][A-Za-z0-9_]*``. Error messages name the variable and the place, never a
value: the text being expanded may be a credential.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from kernel.errors import ConfigError

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True, slots=True)
class Reference:
    """One ``${NAME}`` or ``${NAME:-default}`` in a string."""

    name: str
    default: str | None


@dataclass(frozen=True, slots=True)
class Where:
    """Where a string came from, for error messages."""

    path: str | None = None
    line: int | None = None
    key: str | None = None

    def error(self, message: str, *, hint: str | None = None) -> ConfigError:
        return ConfigError(message, path=self.path, line=self.line, key=self.key, hint=hint)


_Token = str | Reference


def _tokens(text: str, where: Where) -> Iterator[_Token]:
    """Split ``text`` into literal runs and references; raise on malformed ``$`` syntax."""
    literal: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char != "$":
            literal.append(char)
            i += 1
            continue
        following = text[i + 1 : i + 2]
        if following == "$":
            literal.append("$")
            i += 2
            continue
        if following != "{":
            raise where.error(
                f"a lone '$' at character {i + 1}",
                hint="write $$ for a literal $, or ${NAME} for an environment variable",
            )
        end = text.find("}", i + 2)
        if end < 0:
            raise where.error(
                f"unterminated '${{' at character {i + 1}",
                hint="close it: ${NAME} or ${NAME:-default}; write $$ for a literal $",
            )
        body = text[i + 2 : end]
        name, sep, default = body.partition(":-")
        if not _NAME.fullmatch(name):
            raise where.error(
                f"invalid variable reference at character {i + 1}",
                hint="use ${NAME} or ${NAME:-default} with NAME made of letters, digits and _",
            )
        if literal:
            yield "".join(literal)
            literal = []
        yield Reference(name, default if sep else None)
        i = end + 1
    if literal:
        yield "".join(literal)


def references(text: str, where: Where | None = None) -> list[Reference]:
    """The ``${…}`` references in ``text``, in order. Raises :class:`ConfigError` on bad syntax."""
    return [t for t in _tokens(text, where or Where()) if isinstance(t, Reference)]


def is_reference_only(text: str) -> bool:
    """True when ``text`` holds nothing but ``${NAME}`` references (no literal, no default).

    Used by the permission check: such a value keeps its secret outside the file. Malformed
    text counts as literal (the caller reports the syntax error separately).
    """
    try:
        tokens = list(_tokens(text, Where()))
    except ConfigError:
        return False
    return bool(tokens) and all(isinstance(t, Reference) and not t.default for t in tokens)


def needs_expansion(text: str) -> bool:
    """True when :func:`expand` would change ``text`` (it contains a ``$``)."""
    return "$" in text


def expand(text: str, env: Mapping[str, str], where: Where | None = None) -> str:
    """``text`` with every reference replaced from ``env`` and ``$$`` turned into ``$``.

    Raises :class:`ConfigError` at ``where`` for an unset variable without a default or for
    malformed syntax. The message names the variable; it never contains ``text`` or a value.
    """
    if "$" not in text:
        return text
    where = where or Where()
    out: list[str] = []
    for token in _tokens(text, where):
        if isinstance(token, str):
            out.append(token)
            continue
        value = env.get(token.name)
        if token.default is not None:
            out.append(value if value else token.default)
        elif value is None:
            raise where.error(
                f"environment variable {token.name} is not set (referenced as ${{{token.name}}})",
                hint=f"export {token.name}=… before running dso, or give a default: "
                f"${{{token.name}:-value}}",
            )
        else:
            out.append(value)
    return "".join(out)
