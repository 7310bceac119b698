from __future__ import annotations

import pytest

from kernel.errors import ExitCode, SecretReferenceError
from kernel.reference import Delivery, SecretReference, is_reference, parse_reference

ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/db-AbCdEf"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("dso://app/db_password", SecretReference(Delivery.ENV, "app/db_password")),
        ("dsofile://app/db_password", SecretReference(Delivery.FILE, "app/db_password")),
        (
            "dso://vault:kv/app/db#password",
            SecretReference(Delivery.ENV, "kv/app/db", "vault", None, "password"),
        ),
        (
            "dso://vault:kv/app/db@3#password",
            SecretReference(Delivery.ENV, "kv/app/db", "vault", "3", "password"),
        ),
        (
            "dso://aws:prod/db@AWSPREVIOUS",
            SecretReference(Delivery.ENV, "prod/db", "aws", "AWSPREVIOUS"),
        ),
        (f"dso://aws:{ARN}#password", SecretReference(Delivery.ENV, ARN, "aws", None, "password")),
        ("dso://local:a:b", SecretReference(Delivery.ENV, "a:b", "local")),
        ("dso://local:odd%40name", SecretReference(Delivery.ENV, "odd@name", "local")),
        ("dso://x#db.password", SecretReference(Delivery.ENV, "x", field="db.password")),
        ("dso://Upper/Case:9", SecretReference(Delivery.ENV, "Upper/Case:9")),
    ],
)
def test_parses(text: str, expected: SecretReference) -> None:
    assert parse_reference(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "dso://app/db_password",
        "dsofile://vault:kv/app/db@3#password",
        "dso://local:odd%40name",
        f"dso://aws:{ARN}",
    ],
)
def test_round_trips_through_uri(text: str) -> None:
    assert parse_reference(text).uri() == text
    assert parse_reference(str(parse_reference(text))) == parse_reference(text)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("app/db", "missing scheme"),
        ("vault://app/db", "unknown scheme 'vault'"),
        ("dso://", "the secret path is empty"),
        ("dso://vault:", "the secret path is empty"),
        ("dso://app/db@", "version '' after '@'"),
        ("dso://app/db@v 1", "character ' ' at column 15"),
        ("dso://app/db#", "field '' after '#'"),
        ("dso://app/db#a..b", "field 'a..b'"),
        ("dso:///abs", "must not start or end with '/'"),
        ("dso://a//b", "nor contain '//'"),
        ("dso://a/../b", "'..' path segments"),
        ("dso://a/./b", "'.' and '..'"),
        ("dso://a?x=1", "'?' at column 8"),
        ("dso://a\x00b", "character '\\x00' at column 8"),
        (f"dso://{ARN}", "an AWS ARN needs its provider first"),
        ("dso://" + "a" * 3000, "longer than 2048"),
    ],
)
def test_errors_say_what_and_where(text: str, problem: str) -> None:
    with pytest.raises(SecretReferenceError) as info:
        parse_reference(text)
    assert problem in str(info.value)
    assert info.value.exit_code == ExitCode.SECRET
    assert "docs/references.md" in str(info.value)


def test_is_reference() -> None:
    assert is_reference("dso://x") and is_reference("dsofile://x")
    assert not is_reference("postgres://x") and not is_reference("plain")


def test_key_groups_deliveries_of_the_same_value() -> None:
    env = parse_reference("dso://app/db")
    file = parse_reference("dsofile://local:app/db")
    assert env.key("local") == file.key("local")
