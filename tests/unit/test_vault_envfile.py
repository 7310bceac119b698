"""The .env parser of `secret import`: syntax, skipped lines, errors naming file:line."""

from __future__ import annotations

import pytest

from kernel.errors import InvalidSecretNameError, InvalidSecretValueError, UsageError
from kernel.secret_value import SecretValue
from kernel.vault.envfile import parse_env, to_secrets
from kernel.vault.names import MAX_VALUE_SIZE


def values(text: str) -> dict[str, bytes]:
    return {e.variable: e.value.reveal() for e in parse_env(text, ".env").entries}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("A=1", {"A": b"1"}),
        ("A=1\nB=two words\n", {"A": b"1", "B": b"two words"}),
        ("# comment\n\n   \n  # indented comment\nA=1", {"A": b"1"}),
        ("export A=1\nexport  B=2", {"A": b"1", "B": b"2"}),
        ("A = spaced  ", {"A": b"spaced"}),
        ("A=value # comment", {"A": b"value"}),
        ("A=value#not-a-comment", {"A": b"value#not-a-comment"}),
        ("A=#starts-with-hash", {"A": b"#starts-with-hash"}),
        ("A='single $HOME \\n # x'", {"A": b"single $HOME \\n # x"}),
        ('A="double \\n \\t \\" \\\\ \\$ \\q"', {"A": b'double \n \t " \\ $ \\q'}),
        ('A="quoted # not comment" # comment', {"A": b"quoted # not comment"}),
        (
            'A="line 1\nline 2\n  line 3"\nB=after',
            {"A": b"line 1\nline 2\n  line 3", "B": b"after"},
        ),
        ("A='multi\nline'", {"A": b"multi\nline"}),
        ("A=$OTHER ${X}", {"A": b"$OTHER ${X}"}),
        ("A=a=b=c", {"A": b"a=b=c"}),
        ("A=1\r\nB=2\r\n", {"A": b"1", "B": b"2"}),
        ("\ufeffA=1", {"A": b"1"}),
        ("A=caf\u00e9", {"A": "caf\u00e9".encode()}),
        ("export=1", {"export": b"1"}),
        ("_under_9=x", {"_under_9": b"x"}),
        ("A=1\nA=2", {"A": b"2"}),
    ],
)
def test_syntax(text: str, expected: dict[str, bytes]) -> None:
    assert values(text) == expected


def test_empty_values_are_skipped_with_their_line() -> None:
    env = parse_env("A=\nB=''\nC=\"\"\nD=  # only a comment\nE=1", "x.env")
    assert [e.variable for e in env.entries] == ["E"]
    assert [(s.variable, s.line, s.reason) for s in env.skipped] == [
        ("A", 1, "empty value"),
        ("B", 2, "empty value"),
        ("C", 3, "empty value"),
        ("D", 4, "empty value"),
    ]


def test_a_replaced_assignment_is_reported() -> None:
    env = parse_env("A=1\nB=2\nA=3", ".env")
    assert [(e.variable, e.line) for e in env.entries] == [("B", 2), ("A", 3)]
    assert [(s.variable, s.line, s.reason) for s in env.skipped] == [("A", 1, "replaced by line 3")]


def test_entries_remember_where_multiline_values_start() -> None:
    env = parse_env('\nA="x\ny"\nB=1', ".env")
    assert [(e.variable, e.line) for e in env.entries] == [("A", 2), ("B", 4)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("A=1\njust-a-secret-value", "prod.env:2: expected NAME=VALUE (this line has no '=')"),
        ("1A=x", "prod.env:1: the variable name before '=' is not valid"),
        ("MY-VAR=x", "prod.env:1: the variable name before '=' is not valid"),
        ("=x", "prod.env:1: the variable name before '=' is not valid"),
        ('A=1\nB="never closed\nC=3', "prod.env:2: the double quote opened here is never closed"),
        ("A='open", "prod.env:1: the single quote opened here is never closed"),
        ('A="x"y', "prod.env:1: unexpected characters after the closing quote"),
        ('A="x\ny" z', "prod.env:2: unexpected characters after the closing quote"),
    ],
)
def test_invalid_lines_name_file_and_line_but_not_the_content(text: str, expected: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_env(text, "prod.env")
    assert str(info.value) == expected or str(info.value).startswith(expected)
    assert "just-a-secret-value" not in str(info.value)
    assert "never closed\n" not in str(info.value)


def test_names_map_to_prefix_plus_variable() -> None:
    env = parse_env("DB_PASSWORD=1\nApi_Key=2", ".env")
    assert list(to_secrets(env, ".env")) == ["DB_PASSWORD", "Api_Key"]
    assert list(to_secrets(env, ".env", prefix="app/")) == ["app/DB_PASSWORD", "app/Api_Key"]
    assert list(to_secrets(env, ".env", prefix="app_", lowercase=True)) == [
        "app_db_password",
        "app_api_key",
    ]


def test_a_bad_prefix_is_reported_at_the_first_line() -> None:
    env = parse_env("\nA=1", ".env")
    with pytest.raises(InvalidSecretNameError, match=r"^\.env:2: secret name '/abs/A' is absolute"):
        to_secrets(env, ".env", prefix="/abs/")


def test_an_oversized_value_names_the_line_not_the_value() -> None:
    env = parse_env("A=1\nBIG=" + "z" * (MAX_VALUE_SIZE + 1), ".env")
    with pytest.raises(InvalidSecretValueError) as info:
        to_secrets(env, ".env")
    assert str(info.value).startswith(".env:2: the value of 'BIG' is 1048577 bytes")
    assert "zzz" not in str(info.value)


def test_two_variables_mapping_to_one_name_are_an_error() -> None:
    env = parse_env("db=1\nDB=2", ".env")
    with pytest.raises(UsageError, match=r"\.env:2: DB and db \(line 1\) both map to the secret"):
        to_secrets(env, ".env", lowercase=True)


def test_values_are_secret_values() -> None:
    (entry,) = parse_env("A=hunter2", ".env").entries
    assert isinstance(entry.value, SecretValue)
    assert "hunter2" not in repr(entry)
