"""Versioned Swarm secret names and labels (kernel.swarm.secret_versions): no Docker needed."""

from __future__ import annotations

import pytest

from kernel.errors import ConfigError
from kernel.injection.resolver import Resolved
from kernel.reference import parse_reference
from kernel.secret_value import SecretValue
from kernel.swarm.secret_versions import (
    MAX_NAME_LENGTH,
    SwarmSecret,
    fingerprint,
    logical_name,
    secret_labels,
    secret_name,
)

CANARY = "canary-9f1c2b"


def _resolved(version: str, value: str = CANARY) -> Resolved:
    return Resolved(SecretValue(value), version, "local")


def test_the_fingerprint_depends_on_reference_and_version_never_on_the_value() -> None:
    ref = parse_reference("dsofile://app/db_password")
    one = fingerprint(ref, _resolved("1"))
    assert one == fingerprint(ref, _resolved("1", "another value"))
    assert one != fingerprint(ref, _resolved("2"))
    assert one != fingerprint(parse_reference("dsofile://app/other"), _resolved("1"))
    assert len(one) == 10 and int(one, 16) >= 0


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("dsofile://app/db_password", "app_db_password"),
        ("dsofile://vault:kv/app/token", "kv_app_token"),
        ("dsofile://app/creds#user.name", "app_creds.user.name"),
        ("dsofile://app/x@3", "app_x"),
    ],
)
def test_logical_names_are_safe_swarm_names(text: str, name: str) -> None:
    assert logical_name(parse_reference(text)) == name


def test_names_fit_the_engine_limit() -> None:
    assert secret_name("shop", "app_db", "0123456789") == "shop_app_db_0123456789"
    long = secret_name("shop", "x" * 80, "0123456789")
    assert len(long) <= MAX_NAME_LENGTH and long.startswith("shop_xxx")
    assert long != secret_name("shop", "x" * 81, "0123456789")
    with pytest.raises(ConfigError, match="too long"):
        secret_name("s" * 60, "app", "0123456789")


def test_labels_name_reference_and_version_never_the_value() -> None:
    ref = parse_reference("dsofile://app/db_password")
    labels = secret_labels("shop", "app_db_password", ref, _resolved("3"))
    assert labels == {
        "dso.managed": "true",
        "dso.stack": "shop",
        "dso.secret": "app_db_password",
        "dso.reference": "dsofile://app/db_password",
        "dso.version": "local:3",
    }
    assert CANARY not in repr(labels)
    listed = SwarmSecret.from_api(
        {"ID": "abc", "CreatedAt": "2026-01-01T00:00:00Z", "Spec": {"Name": "n", "Labels": labels}}
    )
    assert (listed.stack, listed.secret, listed.version) == ("shop", "app_db_password", "local:3")
