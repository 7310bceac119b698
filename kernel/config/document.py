"""A :class:`Config` back as a plain document in file syntax, credentials masked.

Used by ``docker dso config show`` (and anything else that reports the effective configuration,
such as the agent's status). The walk follows the schema, so a new key shows up without touching
this module. Durations and sizes print as a user writes them (``1h``, ``500Mi``); every
credential prints as ``********``, whatever its origin (literal or ``${VAR}``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from kernel.config.model import Config
from kernel.config.schema import SCHEMA, Field, FieldType, is_credential_key
from kernel.config.units import format_duration, format_size
from kernel.secret_value import MASK, SecretValue


def config_document(config: Config) -> dict[str, Any]:
    """``config`` as nested dicts/lists/strings/numbers, safe to print or serialise."""
    document = _section(SCHEMA, config)
    assert isinstance(document, dict)
    return document


def config_yaml(config: Config) -> str:
    """``config`` as YAML text, in schema order, credentials masked."""
    return yaml.safe_dump(
        config_document(config), sort_keys=False, default_flow_style=False, allow_unicode=True
    )


def _section(spec: Field, obj: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for child in spec.fields:
        out[child.name] = _value(child, getattr(obj, child.name))
    if spec.extra is not None:
        for key, value in getattr(obj, "settings", {}).items():
            out[key] = _setting(value, is_credential_key(key))
    return out


def _value(spec: Field, value: Any) -> Any:
    if value is None:
        return None
    if spec.credential:
        return MASK
    if spec.type is FieldType.SECTION:
        return _section(spec, value)
    if spec.type is FieldType.MAP:
        assert spec.item is not None
        item = spec.item
        return {name: _section(item, entry) for name, entry in value.items()}
    if spec.type is FieldType.DURATION:
        return format_duration(value)
    if spec.type is FieldType.SIZE:
        return format_size(value)
    if spec.type is FieldType.PATH:
        return str(value)
    if spec.type is FieldType.NAMES:
        return list(value)
    if spec.type is FieldType.ANY:
        return _setting(value, False)
    return value


def _setting(value: Any, credential: bool) -> Any:
    if isinstance(value, SecretValue) or (credential and value is not None):
        return MASK
    if isinstance(value, Mapping):
        return {k: _setting(v, is_credential_key(k)) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_setting(v, False) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value
