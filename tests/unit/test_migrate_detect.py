"""The rules that decide which variables `docker dso migrate` proposes as secrets."""

from __future__ import annotations

import random
import string
import uuid

import pytest

from kernel.compose.migrate_detect import (
    Match,
    classify,
    high_entropy,
    name_match,
    never_secret,
    value_match,
)


@pytest.mark.parametrize(
    ("name", "word"),
    [
        ("DB_PASSWORD", "PASSWORD"),
        ("POSTGRES_PASSWORD", "PASSWORD"),
        ("MYSQL_ROOT_PASSWD", "PASSWD"),
        ("GPG_PASSPHRASE", "PASSPHRASE"),
        ("DB_PASS", "PASS"),
        ("SMTP_PWD", "PWD"),
        ("DJANGO_SECRET_KEY", "SECRET"),
        ("client_secret", "SECRET"),
        ("GITHUB_TOKEN", "TOKEN"),
        ("SENDGRID_API_KEY", "API_KEY"),
        ("MAPS_APIKEY", "APIKEY"),
        ("JWT_PRIVATE_KEY", "PRIVATE_KEY"),
        ("MINIO_ACCESS_KEY", "ACCESS_KEY"),
        ("DATA_ENCRYPTION_KEY", "ENCRYPTION_KEY"),
        ("COOKIE_SIGNING_KEY", "SIGNING_KEY"),
        ("GOOGLE_CREDENTIALS", "CREDENTIAL"),
        ("BASIC_AUTH", "AUTH"),
        ("PROXY_AUTHORIZATION", "AUTHORIZATION"),
        ("GITHUB_OAUTH", "OAUTH"),
    ],
)
def test_name_rules(name: str, word: str) -> None:
    assert name_match(name) == Match("name", f"name contains {word}")


@pytest.mark.parametrize(
    "name",
    [
        "PWD",
        "OLDPWD",
        "POSTGRES_PASSWORD_FILE",
        "SECRETS_DIR",
        "VAULT_TOKEN_PATH",
        "AUTH_URL",
        "TOKEN_TTL",
        "SECRET_NAME",
        "AUTH_ENABLED",
        "PASSWORD_MIN_LENGTH",
        "AWS_ACCESS_KEY_ID",
        "DB_USER",
        "AUTHOR",
        "BYPASS_CACHE",
        "LOG_LEVEL",
        "DATABASE_URL",
        "KEY",
    ],
)
def test_names_that_are_not_secrets(name: str) -> None:
    assert name_match(name) is None


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("", "empty value"),
        ("   ", "empty value"),
        ("dso://app/db", "already a reference"),
        ("dsofile://aws:prod/db#password", "already a reference"),
        ("true", "a boolean"),
        ("False", "a boolean"),
        ("yes", "a boolean"),
        ("off", "a boolean"),
        ("5432", "a number"),
        ("-1", "a number"),
        ("3.14", "a number"),
        ("1e6", "a number"),
        ("8080:80", "a port"),
        ("127.0.0.1:8080:80", "a port"),
        ("9000-9010:9000-9010/udp", "a port"),
    ],
)
def test_values_never_proposed(value: str, reason: str) -> None:
    assert never_secret(value) == reason
    assert classify("DB_PASSWORD", value) == reason


@pytest.mark.parametrize(
    ("value", "rule", "why"),
    [
        ("postgres://shop:hunter2@db:5432/shop", "url-credentials", "a URL with a password"),
        ("redis://:hunter2@cache:6379/0", "url-credentials", "a URL with a password"),
        ("amqp://guest:guest@rabbit/", "url-credentials", "a URL with a password"),
        (
            "-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----\n",
            "pem-private-key",
            "a PEM private key",
        ),
        (
            "-----BEGIN OPENSSH PRIVATE KEY-----\nb3Bl\n-----END OPENSSH PRIVATE KEY-----",
            "pem-private-key",
            "a PEM private key",
        ),
        ("AKIAIOSFODNN7EXAMPLE", "token-format", "an AWS access key id"),
        ("ghp_" + "a1B2" * 9, "token-format", "a GitHub token"),
        ("glpat-" + "x1Y2z3" * 4, "token-format", "a GitLab token"),
        ("xoxb-123456789012-abcdefABCDEF", "token-format", "a Slack token"),
        ("sk_test_4eC39HqLyjWDarjtT1zdp7dc", "token-format", "a Stripe secret key"),
        ("AIza" + "SyD-1234567890abcdefghijABCDEFGHIJ_", "token-format", "a Google API key"),
        (
            "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
            "jwt",
            "a JWT",
        ),
        ("7f3a9c2e4b1d8f6a0c5e7b9d2f4a6c8e", "high-entropy", "random-looking"),
        ("Zx8vQ2mN7pL4kR9sT1wY6uB3", "high-entropy", "random-looking"),
    ],
)
def test_value_rules(value: str, rule: str, why: str) -> None:
    match = value_match("SOME_SETTING", value)
    assert match is not None and match.rule == rule and why in match.why
    assert value not in match.why


def test_a_dsn_without_scheme_counts_only_for_dsn_names() -> None:
    assert value_match("MYSQL_DSN", "app:hunter2@tcp(db:3306)/app") is not None
    assert value_match("IMAGE", "postgres:16@sha256:abcdef") is None


@pytest.mark.parametrize(
    "value",
    [
        "postgres",
        "production",
        "en_US.UTF-8",
        "registry.example.com/team/app:1.2.3",
        "/var/lib/postgresql/data",
        "ghcr.io/acme/api:2024.05.01",
        "org.postgresql.Driver",
        "http://api.example.com:8080/v1/items",
        "https://user@example.com/repo.git",
        "-Xmx512m -Xms256m",
        "AbstractSingletonProxyFactoryBean",
        "my_database_name_for_tests_2024",
        "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----",
        "0123456789abcdef0123",
        "aaaaaaaaaaaaaaaaaaaaaaaa1",
        str(uuid.UUID(int=0x1234567890ABCDEF1234567890ABCDEF)),
    ],
)
def test_ordinary_values_are_not_secrets(value: str) -> None:
    assert value_match("SETTING", value) is None


@pytest.mark.parametrize("length", [20, 24, 32, 40, 64, 128])
def test_random_tokens_of_any_length_are_high_entropy(length: int) -> None:
    """At least 99% of random alphanumeric, base64 and (from 32 characters) hex tokens with a
    letter and a digit are found; a few percent of short ones repeat too many characters."""
    rng = random.Random(length)
    alphabets = [string.ascii_letters + string.digits, string.ascii_letters + string.digits + "-_"]
    if length >= 32:
        alphabets.append("0123456789abcdef")
    for alphabet in alphabets:
        tokens = ["".join(rng.choice(alphabet) for _ in range(length)) for _ in range(2000)]
        tokens = [t for t in tokens if any(c.isdigit() for c in t) and any(c.isalpha() for c in t)]
        found = sum(high_entropy(t) for t in tokens)
        assert found >= 0.99 * len(tokens), (alphabet, found, len(tokens))


def test_random_uuids_are_not_proposed() -> None:
    rng = random.Random(7)
    assert not any(high_entropy(str(uuid.UUID(int=rng.getrandbits(128)))) for _ in range(500))


def test_classify_prefers_the_name_and_says_nothing_when_nothing_matches() -> None:
    assert classify("DB_PASSWORD", "postgres") == Match("name", "name contains PASSWORD")
    assert classify("GREETING", "hello world") == ""
    assert classify("DB_PASSWORD", "dso://app/db") == "already a reference"
