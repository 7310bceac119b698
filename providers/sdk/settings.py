"""Strict reading of a provider's ``configure`` settings, shared by the bundled providers.

Settings arrive from dso.yaml after ``${ENV}`` expansion, so a number may be an int or text
(``"2"``) and a flag a bool or ``"true"``. :class:`SettingsReader` accepts both, rejects unknown
keys with a "did you mean", and raises :class:`~providers.sdk.errors.InvalidRequest` naming the
dotted key and what was expected. It never quotes a value: any setting may be a credential.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from providers.sdk.errors import InvalidRequest

_TRUE = frozenset({"true", "yes", "on", "1"})
_FALSE = frozenset({"false", "no", "off", "0"})

#: Largest file a ``*_file`` setting may name (tokens, JWTs, secret ids are small).
MAX_CREDENTIAL_FILE = 64 * 1024


class SettingsReader:
    """Typed accessors over one settings map (or a nested section of it)."""

    __slots__ = ("_prefix", "_provider", "_settings")

    def __init__(self, settings: Mapping[str, Any], *, provider: str, prefix: str = "") -> None:
        self._settings = settings
        self._provider = provider
        self._prefix = prefix

    def key(self, name: str) -> str:
        """The dotted name of setting ``name`` as the user wrote it (``auth.role_id``)."""
        return f"{self._prefix}{name}"

    def fail(self, name: str, expected: str) -> InvalidRequest:
        """An error for setting ``name``: ``setting 'auth.role_id' of the vault provider …``."""
        return InvalidRequest(
            f"setting {self.key(name)!r} of the {self._provider} provider {expected}",
            setting=self.key(name),
        )

    def check_keys(self, known: Iterable[str]) -> None:
        """Reject any key not in ``known``, suggesting the closest known one."""
        allowed = tuple(known)
        for raw in self._settings:
            name = str(raw)
            if name in allowed:
                continue
            close = difflib.get_close_matches(name, allowed, n=1)
            hint = f"; did you mean {self.key(close[0])!r}?" if close else ""
            raise InvalidRequest(
                f"unknown setting {self.key(name)!r:.100} for the {self._provider} provider{hint}"
                f" (known: {', '.join(allowed)})",
                setting=self.key(name)[:100],
            )

    def has(self, name: str) -> bool:
        """True when ``name`` is set to something other than null or an empty string."""
        return self._settings.get(name) not in (None, "")

    def text(self, name: str, default: str | None = None) -> str | None:
        """A non-empty string setting (numbers are accepted as their text), or ``default``."""
        value = self._settings.get(name)
        if value is None or value == "":
            return default
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise self.fail(name, "must be a string")
        text = str(value)
        if any(ch in text for ch in "\r\n\x00"):
            raise self.fail(name, "must be a single line")
        return text

    def required_text(self, name: str, why: str = "") -> str:
        value = self.text(name)
        if value is None:
            raise self.fail(name, f"is required{why}")
        return value

    def choice(self, name: str, choices: Iterable[str], default: str) -> str:
        """One of ``choices`` (compared case-insensitively), or ``default``."""
        options = tuple(choices)
        value = self.text(name)
        if value is None:
            return default
        if value.lower() not in options:
            raise self.fail(name, f"must be one of {', '.join(options)}")
        return value.lower()

    def integer(
        self, name: str, default: int, *, minimum: int | None = None, maximum: int | None = None
    ) -> int:
        """A whole number (int or decimal text) within the bounds, or ``default``."""
        value = self._settings.get(name)
        if value is None or value == "":
            return default
        if isinstance(value, bool):
            raise self.fail(name, "must be a whole number")
        if isinstance(value, str) and value.strip().isdecimal():
            value = int(value.strip())
        if not isinstance(value, int):
            raise self.fail(name, "must be a whole number")
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            raise self.fail(name, f"must be between {minimum} and {maximum}")
        return value

    def number(self, name: str, default: float, *, minimum: float, maximum: float) -> float:
        """A number of seconds (int, float or numeric text) within the bounds, or ``default``."""
        value = self._settings.get(name)
        if value is None or value == "":
            return default
        if isinstance(value, bool):
            raise self.fail(name, "must be a number")
        if isinstance(value, str):
            try:
                value = float(value.strip())
            except ValueError:
                raise self.fail(name, "must be a number") from None
        if not isinstance(value, int | float) or not minimum <= value <= maximum:
            raise self.fail(name, f"must be a number from {minimum:g} to {maximum:g}")
        return float(value)

    def flag(self, name: str, default: bool = False) -> bool:
        """A boolean: ``true``/``false`` (also yes/no, on/off, 1/0 as text), or ``default``."""
        value = self._settings.get(name)
        if value is None or value == "":
            return default
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        raise self.fail(name, "must be true or false")

    def section(self, name: str) -> SettingsReader | None:
        """The nested map ``name`` as a reader whose keys are reported as ``name.<key>``."""
        value = self._settings.get(name)
        if value is None:
            return None
        if not isinstance(value, Mapping):
            raise self.fail(name, "must be a map")
        return SettingsReader(value, provider=self._provider, prefix=self.key(name) + ".")

    def path(self, name: str, default: str | None = None) -> Path | None:
        """A file path setting (``~`` expanded); existence is checked by whoever opens it."""
        value = self.text(name, default)
        return None if value is None else Path(value).expanduser()


def read_credential_file(path: Path, what: str) -> str:
    """The stripped text of a small credential file (a token, a JWT, a secret id).

    Errors name ``what`` and the path (a path is not secret), never the content.
    """
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_CREDENTIAL_FILE + 1)
    except FileNotFoundError:
        raise InvalidRequest(f"{what}: file {str(path)!r} does not exist") from None
    except PermissionError:
        raise InvalidRequest(f"{what}: file {str(path)!r} is not readable by dso") from None
    except OSError as exc:
        raise InvalidRequest(
            f"{what}: cannot read file {str(path)!r} ({type(exc).__name__})"
        ) from None
    if len(data) > MAX_CREDENTIAL_FILE:
        raise InvalidRequest(
            f"{what}: file {str(path)!r} is larger than {MAX_CREDENTIAL_FILE} bytes"
        )
    try:
        text = data.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise InvalidRequest(f"{what}: file {str(path)!r} is not UTF-8 text") from None
    if not text:
        raise InvalidRequest(f"{what}: file {str(path)!r} is empty")
    return text
