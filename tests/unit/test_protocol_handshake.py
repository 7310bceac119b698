"""Launch contract: environment filtering, version negotiation, handshake and --describe."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kernel.errors import ProtocolError
from kernel.protocol import (
    BASE_ENV_ALLOWLIST,
    LOG_LEVEL_KEY,
    MAGIC_COOKIE_KEY,
    MAGIC_COOKIE_VALUE,
    PROTOCOL_VERSIONS_KEY,
    SUPPORTED_PROTOCOLS,
    Capability,
    Handshake,
    Notification,
    Request,
    decode_message,
    describe_document,
    encode_message,
    format_versions,
    negotiate,
    parse_describe,
    parse_versions,
    provider_environment,
    refusal_message,
)

versions = st.sets(st.integers(min_value=1, max_value=2**16 - 1), max_size=6)


@given(versions, versions)
def test_negotiation_picks_the_highest_common_version(offered: set[int], ours: set[int]) -> None:
    chosen = negotiate(offered, ours)
    common = offered & ours
    assert chosen == (max(common) if common else None)
    assert negotiate(ours, offered) == chosen


@given(versions.filter(bool))
def test_version_lists_round_trip_through_the_environment(offered: set[int]) -> None:
    assert parse_versions(format_versions(offered)) == tuple(sorted(offered))


@pytest.mark.parametrize("value", [None, "", " ", "1,,2", "one", "0", "-1", "1.5", "70000"])
def test_bad_version_lists_are_rejected(value: str | None) -> None:
    with pytest.raises(ProtocolError, match=PROTOCOL_VERSIONS_KEY):
        parse_versions(value)


def test_protocol_1_is_what_this_kernel_speaks() -> None:
    assert SUPPORTED_PROTOCOLS == (1,)
    assert parse_versions(" 1 ") == (1,)
    assert negotiate([1, 2, 3]) == 1
    assert negotiate([2]) is None


env_names = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ_", min_size=1, max_size=12)


@given(st.dictionaries(env_names, st.text(max_size=5), max_size=20), st.sets(env_names, max_size=4))
def test_provider_environment_is_the_allow_list_and_nothing_else(
    parent: dict[str, str], allowed: set[str]
) -> None:
    env = provider_environment(parent, allowed)
    protocol_keys = {MAGIC_COOKIE_KEY, PROTOCOL_VERSIONS_KEY}
    assert env[MAGIC_COOKIE_KEY] == MAGIC_COOKIE_VALUE
    assert env[PROTOCOL_VERSIONS_KEY] == "1"
    for key, value in env.items():
        if key not in protocol_keys:
            assert key in BASE_ENV_ALLOWLIST or key in allowed
            assert parent[key] == value
    for key in parent.keys() & (set(BASE_ENV_ALLOWLIST) | allowed):
        if key not in protocol_keys:
            assert env[key] == parent[key]


def test_provider_environment_carries_ca_bundles_and_the_log_level() -> None:
    parent = {
        "PATH": "/bin",
        "REQUESTS_CA_BUNDLE": "/ca.pem",
        "AWS_CA_BUNDLE": "/ca.pem",
        "SSL_CERT_FILE": "/ca.pem",
        "VAULT_TOKEN": "hvs.secret",
        "AWS_SECRET_ACCESS_KEY": "nope",
    }
    env = provider_environment(parent, ["VAULT_TOKEN"], log_level="debug")
    assert env["VAULT_TOKEN"] == "hvs.secret"
    assert "AWS_SECRET_ACCESS_KEY" not in env
    assert env["REQUESTS_CA_BUNDLE"] == env["AWS_CA_BUNDLE"] == env["SSL_CERT_FILE"] == "/ca.pem"
    assert env[LOG_LEVEL_KEY] == "debug"


def good_params(**overrides: Any) -> dict[str, Any]:
    params = Handshake("vault", "1.2.0", 1, frozenset({Capability.GET})).to_params()
    params.update(overrides)
    return {k: v for k, v in params.items() if v is not None}


def test_handshake_round_trips_through_a_frame() -> None:
    sent = Handshake(
        "vault", "1.2.0", 1, frozenset({Capability.GET, Capability.VERSIONS, Capability.WATCH})
    )
    received = Handshake.from_message(decode_message(encode_message(sent.to_notification())[4:]))
    assert received == sent


def test_unknown_capabilities_are_ignored() -> None:
    message = Notification("handshake", good_params(capabilities=["get", "teleport"]))
    assert Handshake.from_message(message).capabilities == {Capability.GET}


BAD_HANDSHAKES = [
    (Request(1, "handshake", good_params()), "must be a handshake notification, got request"),
    (Notification("hello", good_params()), "must be a handshake notification"),
    (Notification("handshake", good_params(cookie="not-the-cookie")), "magic cookie"),
    (
        Notification("handshake", {k: v for k, v in good_params().items() if k != "cookie"}),
        "magic cookie",
    ),
    (Notification("handshake", good_params(protocol=99)), "chose protocol 99, but this dso"),
    (Notification("handshake", good_params(protocol="1")), "protocol must be an int, got str"),
    (Notification("handshake", good_params(protocol=True)), "protocol must be an int, got bool"),
    (Notification("handshake", good_params(name="Vault Provider")), "not a valid provider name"),
    (Notification("handshake", good_params(name=None)), "handshake.name must be a string"),
    (Notification("handshake", good_params(version="")), "handshake.version must not be empty"),
    (Notification("handshake", good_params(core_version=3)), "core_version must be a string"),
    (Notification("handshake", good_params(capabilities=["list"])), "must include 'get'"),
    (Notification("handshake", good_params(capabilities="get")), "array of strings"),
]


@pytest.mark.parametrize(("message", "error"), BAD_HANDSHAKES, ids=lambda v: repr(v)[:50])
def test_bad_handshakes_are_rejected_with_a_clear_reason(message: Any, error: str) -> None:
    with pytest.raises(ProtocolError) as info:
        Handshake.from_message(message)
    assert error in str(info.value)


def test_a_newer_kernel_can_accept_an_older_protocol_it_offered() -> None:
    message = Notification("handshake", good_params(protocol=1))
    assert Handshake.from_message(message, offered=(1, 2)).protocol == 1


def test_describe_document_round_trips() -> None:
    doc = describe_document("aws", "2.0", [Capability.GET, Capability.VERSIONS, "list"])
    parsed = parse_describe(json.dumps(doc))
    assert parsed == doc
    assert doc["protocol_versions"] == [1]
    assert doc["capabilities"] == ["get", "list", "versions"]


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("not json", "did not print JSON"),
        ("[]", "must be a map"),
        ('{"name": "x y", "version": "1"}', "not a valid provider name"),
        ('{"name": "x", "version": "1", "protocol_versions": []}', "non-empty array of ints"),
        ('{"name": "x", "version": "1", "protocol_versions": [1], "capabilities": 3}', "strings"),
    ],
)
def test_bad_describe_output(text: str, error: str) -> None:
    with pytest.raises(ProtocolError, match=error):
        parse_describe(text)


def test_refusal_message_explains_what_the_program_is() -> None:
    text = refusal_message("dso-provider-vault", "vault")
    assert "dso-provider-vault" in text
    assert "docker dso providers list" in text
    assert "--describe" in text
