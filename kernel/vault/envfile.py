"""Reading ``.env`` files for ``docker dso secret import`` (syntax: docs/local-vault.md).

Understood: blank lines and ``#`` comments, an optional ``export`` prefix, ``NAME=value`` with
an inline `` # comment`` after unquoted values, single quotes (literal), double quotes (escapes
``\\n \\r \\t \\\\ \\" \\' \\$``), quoted values spanning several lines, CRLF line ends and a
UTF-8 byte order mark. ``$VAR`` is never expanded. Errors name ``file:line`` but never quote a
line: a malformed line may well be a secret.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from kernel.errors import InvalidSecretNameError, InvalidSecretValueError, UsageError
from kernel.secret_value import SecretValue
from kernel.vault.names import validate_name, validate_value

_ASSIGNMENT = re.compile(r"\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=(.*)", re.DOTALL)
_INLINE_COMMENT = re.compile(r"\s+#.*$")
_AFTER_QUOTE = re.compile(r"\s*(#.*)?")
#: :attr:`Skipped.reason` of an assignment with an empty value.
EMPTY_VALUE = "empty value"
_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "\\": "\\", '"': '"', "'": "'", "$": "$"}


@dataclass(frozen=True, slots=True)
class EnvEntry:
    """One ``NAME=value`` assignment; ``line`` is where it starts (1-based)."""

    variable: str
    value: SecretValue
    line: int


@dataclass(frozen=True, slots=True)
class Skipped:
    """An assignment that is not imported, and why (printed as a warning)."""

    variable: str
    line: int
    reason: str


@dataclass(frozen=True, slots=True)
class EnvFile:
    """The parsed file: assignments in order (later duplicates win) and skipped ones."""

    entries: tuple[EnvEntry, ...]
    skipped: tuple[Skipped, ...]


def _error(source: str, line: int, message: str) -> UsageError:
    return UsageError(f"{source}:{line}: {message}")


def parse_env(text: str, source: str) -> EnvFile:
    """Parse ``.env`` text; ``source`` names the file in messages. Raises :class:`UsageError`."""
    lines = text.removeprefix("\ufeff").replace("\r\n", "\n").split("\n")
    found: dict[str, EnvEntry] = {}
    skipped: list[Skipped] = []
    index = 0
    while index < len(lines):
        start = index + 1
        raw = lines[index]
        index += 1
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        match = _ASSIGNMENT.fullmatch(raw)
        if match is None:
            if "=" not in raw:
                raise _error(source, start, "expected NAME=VALUE (this line has no '=')")
            raise _error(
                source,
                start,
                "the variable name before '=' is not valid: use letters, digits and '_', "
                "not starting with a digit",
            )
        variable, rest = match.groups()
        if rest.lstrip().startswith(('"', "'")):
            value, index = _quoted(lines, index, rest.lstrip(), source, start)
        else:
            # "A= # note" is empty, "A=#x" is "#x": a comment needs whitespace before '#'.
            value = _INLINE_COMMENT.sub("", rest).strip()
        if not value:
            skipped.append(Skipped(variable, start, EMPTY_VALUE))
            continue
        previous = found.pop(variable, None)
        if previous is not None:
            skipped.append(Skipped(variable, previous.line, f"replaced by line {start}"))
        found[variable] = EnvEntry(variable, SecretValue(value), start)
    return EnvFile(tuple(found.values()), tuple(skipped))


def _quoted(lines: list[str], index: int, rest: str, source: str, start: int) -> tuple[str, int]:
    """Read a quoted value starting at ``rest``; return it and the index of the next line."""
    quote = rest[0]
    chars: list[str] = []
    text = rest[1:]
    while True:
        position = 0
        while position < len(text):
            char = text[position]
            if char == quote:
                tail = text[position + 1 :]
                if not _AFTER_QUOTE.fullmatch(tail):
                    raise _error(source, index, "unexpected characters after the closing quote")
                return "".join(chars), index
            if char == "\\" and quote == '"' and position + 1 < len(text):
                following = text[position + 1]
                if following in _ESCAPES:
                    chars.append(_ESCAPES[following])
                    position += 2
                    continue
            chars.append(char)
            position += 1
        if index >= len(lines):
            kind = "double" if quote == '"' else "single"
            raise _error(source, start, f"the {kind} quote opened here is never closed")
        chars.append("\n")
        text = lines[index]
        index += 1


def to_secrets(
    env: EnvFile, source: str, *, prefix: str = "", lowercase: bool = False
) -> dict[str, EnvEntry]:
    """Map variables to secret names (``prefix + NAME``, optionally lowercased) and validate.

    Raises :class:`InvalidSecretNameError` / :class:`InvalidSecretValueError` naming file:line;
    two variables that map to one name are an error too.
    """
    result: dict[str, EnvEntry] = {}
    for entry in env.entries:
        name = prefix + (entry.variable.lower() if lowercase else entry.variable)
        where = f"{source}:{entry.line}"
        try:
            validate_name(name)
            validate_value(entry.value, name=name)
        except InvalidSecretNameError as exc:
            raise InvalidSecretNameError(f"{where}: {exc.message}") from None
        except InvalidSecretValueError as exc:
            raise InvalidSecretValueError(f"{where}: {exc.message}") from None
        if name in result:
            raise UsageError(
                f"{where}: {entry.variable} and {result[name].variable} (line "
                f"{result[name].line}) both map to the secret {name!r}"
            )
        result[name] = entry
    return result
