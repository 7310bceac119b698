"""Settings of the vault and aws providers, the shared settings reader and JSON field rules."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kernel.protocol import ErrorCode
from providers.aws.provider import is_version_id, version_args, version_from_stages
from providers.aws.settings import AwsSettings
from providers.sdk import InvalidRequest, SecretNotFound
from providers.sdk.fields import json_text, parse_json, select_field
from providers.sdk.settings import SettingsReader, read_credential_file
from providers.vault.kv import check_path
from providers.vault.settings import AuthMethod, VaultSettings

ADDR = {"address": "http://127.0.0.1:8200"}


def vault(settings: dict[str, Any], env: dict[str, str] | None = None) -> VaultSettings:
    return VaultSettings.parse(settings, env or {})


# -- vault ------------------------------------------------------------------------------------


def test_vault_defaults_and_token_sources(tmp_path: Path) -> None:
    parsed = vault({**ADDR, "token": "TOKEN-CANARY"})
    assert (parsed.mount, parsed.kv_version, parsed.verify) == ("secret", 2, True)
    assert parsed.auth.method is AuthMethod.TOKEN
    assert "TOKEN-CANARY" not in repr(parsed)
    assert vault(ADDR, {"VAULT_TOKEN": "env-token"}).auth.token == "env-token"
    parsed = vault({"token_file": str(tmp_path / "tok")}, {"VAULT_ADDR": "https://v:8200/"})
    assert parsed.address == "https://v:8200"
    assert parsed.auth.token_file == tmp_path / "tok"


def test_vault_kv_version_accepts_text_and_rejects_3() -> None:
    assert vault({**ADDR, "token": "t", "kv_version": "1"}).kv_version == 1
    with pytest.raises(InvalidRequest, match="'kv_version'"):
        vault({**ADDR, "token": "t", "kv_version": 3})


@pytest.mark.parametrize(
    ("settings", "match"),
    [
        ({"token": "t"}, "'address' of the vault provider is required"),
        ({"address": "ftp://x", "token": "t"}, "http:// or https://"),
        ({**ADDR}, "needs credentials"),
        ({**ADDR, "token": "t", "adress": "x"}, "did you mean 'address'"),
        ({**ADDR, "token": "t", "mount": "../sys"}, "'mount'"),
        ({**ADDR, "auth": {"method": "approle"}}, "'auth.role_id'.*required"),
        ({**ADDR, "auth": {"method": "ldap"}}, "'auth.method'.*one of"),
        ({**ADDR, "auth": {"method": "jwt", "role": "r"}}, "'auth.jwt_file'"),
        ({**ADDR, "token": "t", "auth": {"method": "approle", "role_id": "r"}}, "'token'"),
        ({**ADDR, "token": "t", "tls_skip_verify": "maybe"}, "true or false"),
        ({**ADDR, "token": "t", "client_cert": "/nonexistent.pem"}, "'client_key'"),
        ({**ADDR, "token": "t", "ca_file": "/nonexistent/ca.pem"}, "does not exist"),
    ],
)
def test_vault_bad_settings_name_the_key(settings: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidRequest, match=match) as info:
        vault(settings)
    assert info.value.code is ErrorCode.INVALID_REQUEST


def test_vault_auth_methods(tmp_path: Path) -> None:
    auth = {"method": "approle", "role_id": "r", "secret_id": "SECRET-ID-CANARY"}
    approle = vault({**ADDR, "auth": auth})
    assert (approle.auth.method, approle.auth.mount) == (AuthMethod.APPROLE, "approle")
    assert "SECRET-ID-CANARY" not in repr(approle)
    k8s = vault({**ADDR, "auth": {"method": "kubernetes", "role": "app", "mount": "k8s/"}})
    assert k8s.auth.mount == "k8s"
    assert str(k8s.auth.jwt_file).endswith("serviceaccount/token")


def test_vault_skip_verify_needs_an_explicit_true() -> None:
    assert vault({**ADDR, "token": "t", "tls_skip_verify": True}).verify is False
    assert vault({**ADDR, "token": "t", "tls_skip_verify": "false"}).verify is True


@pytest.mark.parametrize("path", ["/a", "a/", "a//b", "a/../b", ".", "a/./b"])
def test_vault_paths_cannot_escape_the_mount(path: str) -> None:
    with pytest.raises(InvalidRequest):
        check_path(path)


# -- aws --------------------------------------------------------------------------------------


def test_aws_settings() -> None:
    parsed = AwsSettings.parse({"region": "eu-west-1", "max_attempts": "6"}, {})
    assert (parsed.region, parsed.max_attempts, parsed.verify) == ("eu-west-1", 6, None)
    assert AwsSettings.parse({}, {"AWS_DEFAULT_REGION": "us-east-2"}).region == "us-east-2"
    keys = AwsSettings.parse({"access_key_id": "AKIA", "secret_access_key": "SK-CANARY"}, {})
    assert "SK-CANARY" not in repr(keys)


@pytest.mark.parametrize(
    ("settings", "match"),
    [
        ({"access_key_id": "a"}, "'secret_access_key'"),
        ({"session_token": "t"}, "'session_token'"),
        ({"endpoint_url": "localhost:4566"}, "'endpoint_url'"),
        ({"role_arn": "my-role"}, "'role_arn'"),
        ({"external_id": "x"}, "only applies with role_arn"),
        ({"role_arn": "arn:aws:iam::1:role/r", "role_duration": 60}, "'role_duration'"),
        ({"regoin": "x"}, "did you mean 'region'"),
        ({"access_key_id": "a", "secret_access_key": "b", "profile": "p"}, "'profile'"),
    ],
)
def test_aws_bad_settings_name_the_key(settings: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidRequest, match=match):
        AwsSettings.parse(settings, {})


def test_aws_version_pins() -> None:
    uuid = "875c37e2-d26c-4ccf-ac62-827c792f7312"
    assert is_version_id(uuid)
    assert not is_version_id("AWSPREVIOUS")
    assert version_args(None) == {}
    assert version_args(uuid) == {"VersionId": uuid}
    assert version_args("AWSPREVIOUS") == {"VersionStage": "AWSPREVIOUS"}
    stages = {uuid: ["AWSPREVIOUS"], "cbbc1caa-8120-4e37-80f1-be6ef55e3890": ["AWSCURRENT"]}
    assert version_from_stages(stages, None) == "cbbc1caa-8120-4e37-80f1-be6ef55e3890"
    assert version_from_stages(stages, "AWSPREVIOUS") == uuid
    assert version_from_stages(stages, uuid) == uuid
    assert version_from_stages(stages, "AWSPENDING") is None


# -- shared helpers ---------------------------------------------------------------------------


DOC = {
    "password": "p@ss",
    "port": 5432,
    "ratio": 0.5,
    "enabled": True,
    "none": None,
    "db": {"host": "h", "replicas": ["r1", "r2"]},
    "tls.crt": "CERT",
}


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        ("password", b"p@ss"),
        ("port", b"5432"),
        ("ratio", b"0.5"),
        ("enabled", b"true"),
        ("none", b"null"),
        ("db", b'{"host":"h","replicas":["r1","r2"]}'),
        ("db.host", b"h"),
        ("db.replicas", b'["r1","r2"]'),
        ("db.replicas.1", b"r2"),
        ("tls.crt", b"CERT"),
    ],
)
def test_fields_keep_json_types(field: str, expected: bytes) -> None:
    assert select_field(DOC, field, "'s'") == expected


@pytest.mark.parametrize("field", ["missing", "db.port", "db.replicas.5", "password.x"])
def test_missing_fields_are_not_found(field: str) -> None:
    with pytest.raises(SecretNotFound):
        select_field(DOC, field, "'s'")


def test_non_json_has_no_fields_and_the_text_is_not_quoted() -> None:
    with pytest.raises(SecretNotFound) as info:
        parse_json("hunter2 is not json", "'s'", "password")
    assert "hunter2" not in info.value.message
    assert json_text({"a": "é"}) == '{"a":"é"}'.encode()


def test_settings_reader_types(tmp_path: Path) -> None:
    reader = SettingsReader(
        {"n": "12", "b": "yes", "f": "1.5", "s": 7, "m": {"k": 1}}, provider="x"
    )
    assert reader.integer("n", 0) == 12
    assert reader.flag("b") is True
    assert reader.number("f", 0, minimum=0, maximum=2) == 1.5
    assert reader.text("s") == "7"
    section = reader.section("m")
    assert section is not None
    with pytest.raises(InvalidRequest, match=r"'m\.k'"):
        section.text("k2") or section.flag("k")
    token = tmp_path / "token"
    token.write_text("  abc\n")
    assert read_credential_file(token, "token_file") == "abc"
    token.write_text("")
    with pytest.raises(InvalidRequest, match="empty"):
        read_credential_file(token, "token_file")
    with pytest.raises(InvalidRequest, match="does not exist"):
        read_credential_file(tmp_path / "nope", "token_file")
