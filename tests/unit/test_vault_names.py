"""Secret name and value rules: each bad input is refused with a message saying what is wrong."""

from __future__ import annotations

import pytest

from kernel.errors import ExitCode, InvalidSecretNameError, InvalidSecretValueError
from kernel.secret_value import SecretValue
from kernel.vault.names import MAX_NAME_LENGTH, MAX_VALUE_SIZE, validate_name, validate_value


@pytest.mark.parametrize(
    "name",
    [
        "a",
        "db_password",
        "app/db_password",
        "team-a/app.v2/API_KEY",
        "a/b/c/d/e",
        "...a",
        "a..b",
        ".hidden",
        "x" * MAX_NAME_LENGTH,
        "/".join(["ab"] * 85) + "/a",
    ],
)
def test_valid_names_are_accepted(name: str) -> None:
    assert validate_name(name) == name


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("", "the secret name is empty"),
        ("x" * (MAX_NAME_LENGTH + 1), "is 257 characters long; the limit is 256"),
        ("/app/db", "is absolute; drop the leading '/' (e.g. 'app/db')"),
        ("/", "is absolute"),
        ("app//db", "has an empty segment ('//')"),
        ("app/", "has an empty segment (a trailing '/')"),
        ("app/./db", "has a '.' segment"),
        (".", "has a '.' segment"),
        ("app/../db", "has a '..' segment"),
        ("..", "has a '..' segment"),
        ("app db", "contains whitespace (' ') at position 4"),
        ("app\tdb", "contains whitespace ('\\t') at position 4"),
        ("app\n", "contains whitespace ('\\n') at position 4"),
        ("app\x00db", "contains a control character ('\\x00') at position 4"),
        ("app\x1bdb", "contains a control character ('\\x1b') at position 4"),
        ("app:db", "contains ':', which is not allowed"),
        ("app\\db", "contains '\\\\', which is not allowed"),
        ("café", "contains 'é', which is not allowed"),
        ("app/$HOME", "contains '$', which is not allowed"),
    ],
)
def test_invalid_names_say_exactly_what_is_wrong(name: str, expected: str) -> None:
    with pytest.raises(InvalidSecretNameError) as info:
        validate_name(name)
    assert expected in str(info.value)
    assert info.value.exit_code == ExitCode.SECRET


def test_a_name_of_the_wrong_type_is_refused() -> None:
    with pytest.raises(InvalidSecretNameError, match="must be text"):
        validate_name(b"app/db")  # type: ignore[arg-type]


def test_values_up_to_the_limit_are_accepted() -> None:
    assert validate_value(SecretValue(b"x")) is not None
    assert len(validate_value(SecretValue(b"\x00" * MAX_VALUE_SIZE))) == MAX_VALUE_SIZE


def test_an_empty_value_is_refused(canary: str) -> None:
    with pytest.raises(InvalidSecretValueError, match="the value of 'app/x' is empty"):
        validate_value(SecretValue(b""), name="app/x")


def test_an_oversized_value_states_size_and_limit_but_never_the_value(canary: str) -> None:
    value = SecretValue(canary.encode() * (MAX_VALUE_SIZE // len(canary) + 1))
    with pytest.raises(InvalidSecretValueError) as info:
        validate_value(value, name="app/big")
    message = str(info.value)
    assert f"is {len(value)} bytes; the limit is {MAX_VALUE_SIZE} bytes (1 MiB)" in message
    assert canary not in message


def test_a_bare_bytes_value_is_a_programming_error() -> None:
    with pytest.raises(TypeError):
        validate_value(b"x")  # type: ignore[arg-type]
