"""Provider settings on their way out of dso: configuration values → msgpack types."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import PurePath
from typing import Any

from kernel.secret_value import SecretValue


def wire_settings(value: Any) -> Any:
    """Provider settings from the configuration as plain msgpack types (read-only mappings →
    maps, tuples → arrays, paths → strings). Credentials (:class:`SecretValue`) are revealed
    here: ``configure`` is where they leave dso, as text (bytes if not UTF-8)."""
    if isinstance(value, SecretValue):
        try:
            return value.reveal_text()
        except UnicodeDecodeError:
            return value.reveal()
    if isinstance(value, Mapping):
        return {str(k): wire_settings(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [wire_settings(v) for v in value]
    if isinstance(value, PurePath):
        return str(value)
    if value is None or isinstance(value, str | bytes | bool | int | float):
        return value
    raise TypeError(f"a provider setting of type {type(value).__name__} cannot be sent")
