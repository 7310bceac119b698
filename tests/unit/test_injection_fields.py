"""`#field` selection on JSON secrets: values, nesting, errors that never show the value."""

from __future__ import annotations

import pytest

from kernel.errors import SecretError, SecretNotFoundError
from kernel.injection.fields import select_field
from kernel.secret_value import SecretValue

DOC = SecretValue('{"user": "app", "password": "CANARY-pw", "port": 5432, "tls": {"on": true}}')


@pytest.mark.parametrize(
    ("field", "expected"),
    [("password", b"CANARY-pw"), ("port", b"5432"), ("tls", b'{"on":true}'), ("tls.on", b"true")],
)
def test_strings_as_is_everything_else_as_json(field: str, expected: bytes) -> None:
    assert select_field(DOC, field, subject="dso://app/db").reveal() == expected


def test_a_missing_field_names_the_reference_and_lists_fields_not_values() -> None:
    with pytest.raises(SecretNotFoundError) as info:
        select_field(DOC, "pass", subject="dso://app/db#pass")
    assert "dso://app/db#pass" in str(info.value)
    assert "password" in str(info.value)
    assert "CANARY" not in str(info.value)


@pytest.mark.parametrize("value", ["CANARY-not-json", '["CANARY"]', '{"a": "CANARY"}'])
def test_non_objects_are_refused_without_showing_the_value(value: str) -> None:
    with pytest.raises(SecretError) as info:
        select_field(SecretValue(value), "a.b", subject="dso://app/x#a.b")
    assert "CANARY" not in str(info.value)
