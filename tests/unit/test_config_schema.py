"""The schema is the one source of truth: the model mirrors it, defaults come from it."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from kernel.config import SCHEMA, Config, FieldType, is_credential_key, iter_fields
from kernel.config.document import config_document
from kernel.config.schema import Field, convert_default, lookup


def walk(spec: Field, obj: Any, prefix: str = "") -> list[tuple[str, Field, Any]]:
    """(dotted, field, model value) for every fixed key, following the model objects."""
    found: list[tuple[str, Field, Any]] = []
    for child in spec.fields:
        dotted = f"{prefix}.{child.name}" if prefix else child.name
        value = getattr(obj, child.name)
        found.append((dotted, child, value))
        if child.type is FieldType.SECTION:
            found.extend(walk(child, value, dotted))
        if child.type is FieldType.MAP and child.item is not None:
            for name, entry in value.items():
                found.extend(walk(child.item, entry, f"{dotted}.{name}"))
    return found


def test_the_model_mirrors_the_schema_and_takes_its_defaults() -> None:
    seen = walk(SCHEMA, Config.default())
    assert len(seen) > 20
    for dotted, spec, value in seen:
        if spec.type in (FieldType.SECTION, FieldType.MAP) or spec.required:
            continue
        assert value == convert_default(spec), dotted


def test_model_classes_have_no_field_the_schema_lacks() -> None:
    def names(spec: Field) -> set[str]:
        extra = {"settings"} if spec.extra is not None else set()
        return {c.name for c in spec.fields} | extra

    assert {f.name for f in dataclasses.fields(Config)} == names(SCHEMA)
    provider = Config.default().providers["local"]
    positional = {"name", "source", "line", "setting_lines"}
    assert {f.name for f in dataclasses.fields(provider)} - positional == names(
        lookup("providers.<name>")
    )


def test_dotted_paths_are_unique() -> None:
    paths = [dotted for dotted, _ in iter_fields()]
    assert len(paths) == len(set(paths))


def test_the_default_document_shows_the_schema_defaults() -> None:
    document = config_document(Config.default())
    for dotted, spec in iter_fields():
        if spec.default is None or spec.type in (FieldType.SECTION, FieldType.MAP):
            continue
        node: Any = document
        for part in dotted.replace("<name>", "local").split("."):
            node = node[part]
        expected = list(spec.default) if isinstance(spec.default, tuple) else spec.default
        assert node == expected, dotted


@pytest.mark.parametrize(
    ("name", "credential"),
    [
        ("token", True),
        ("root_token", True),
        ("Token", True),
        ("secret", True),
        ("client_secret", True),
        ("client-secret", True),
        ("secret_access_key", True),
        ("aws_secret_access_key", True),
        ("secret_id", True),
        ("password", True),
        ("db_password", True),
        ("passphrase", True),
        ("api_key", True),
        ("private_key", True),
        ("token_file", False),
        ("password_file", False),
        ("secret_name", False),
        ("role_id", False),
        ("client_id", False),
        ("access_key_id", False),
        ("address", False),
        ("tokens", False),
    ],
)
def test_credential_names(name: str, credential: bool) -> None:
    assert is_credential_key(name) is credential


def test_defaults_are_valid_for_their_type() -> None:
    for dotted, spec in iter_fields():
        if spec.default is None:
            continue
        value = convert_default(spec)
        if spec.choices:
            assert value in spec.choices, dotted
        if spec.minimum is not None:
            assert value >= spec.minimum, dotted
