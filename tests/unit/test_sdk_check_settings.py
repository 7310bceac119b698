"""`dso-provider-<name> --check-settings`: each bundled provider checks its settings as
`configure` would, names the setting at fault, and never contacts a back end."""

from __future__ import annotations

import io
import json
from typing import Any

import msgpack
import pytest

from providers.aws.provider import AwsProvider
from providers.azure.provider import AzureProvider
from providers.local.provider import LocalProvider
from providers.sdk import Provider
from providers.sdk.check import answer, check_settings_main
from providers.vault.provider import VaultProvider

ENV = {"HOME": "/nonexistent"}


@pytest.mark.parametrize(
    ("provider", "settings", "setting", "words"),
    [
        (VaultProvider, {"address": "http://v:8200", "adress": "x"}, "adress", "did you mean"),
        (VaultProvider, {"address": "http://v:8200", "kv_version": 3}, "kv_version", "kv_version"),
        (
            VaultProvider,
            {"address": "http://v:8200", "auth": {"method": "tokn"}},
            "auth.method",
            "auth.method",
        ),
        (AwsProvider, {"regoin": "eu-west-1"}, "regoin", "did you mean 'region'"),
        (AzureProvider, {"vault_url": "https://k.vault.azure.net", "tennant": "x"}, "tennant", ""),
        (LocalProvider, {"path": "/x/vault.enc", "kdf": "md5"}, "kdf", ""),
    ],
    ids=["vault-unknown", "vault-kv", "vault-auth", "aws-unknown", "azure-unknown", "local"],
)
def test_bad_settings_name_the_setting(
    provider: type[Provider], settings: dict[str, Any], setting: str, words: str
) -> None:
    doc = answer(provider, settings, ENV)
    assert doc["ok"] is False and doc["code"] == "invalid_request"
    assert doc["setting"] == setting
    assert words in doc["message"]


@pytest.mark.parametrize(
    ("provider", "settings"),
    [
        (VaultProvider, {"address": "http://127.0.0.1:1", "token": "s.x", "mount": "kv"}),
        (AwsProvider, {"region": "eu-west-1", "endpoint_url": "http://127.0.0.1:1"}),
        (AzureProvider, {"vault_url": "https://k.vault.azure.net"}),
        (LocalProvider, {"path": "/nonexistent/vault.enc"}),
    ],
    ids=["vault", "aws", "azure", "local"],
)
def test_good_settings_pass_without_a_back_end(
    provider: type[Provider], settings: dict[str, Any]
) -> None:
    assert answer(provider, settings, ENV) == {"ok": True}  # nothing listens on those ports


def test_a_credential_is_never_quoted() -> None:
    doc = answer(VaultProvider, {"address": "http://v", "token": {"CANARY": 1}}, ENV)
    assert doc["ok"] is False and "CANARY" not in json.dumps(doc)


def test_an_unexpected_exception_says_nothing_of_its_text() -> None:
    class Broken(Provider):
        name = "broken"

        @classmethod
        def check_settings(cls, settings: Any, environ: Any) -> None:
            raise RuntimeError("CANARY token s.abc")

    assert answer(Broken, {}, ENV) == {
        "ok": False,
        "code": "internal",
        "message": "internal error in the provider (see its log)",
    }


def test_the_default_accepts_anything() -> None:
    assert answer(Provider, {"anything": [1, 2]}, ENV) == {"ok": True}


def test_main_reads_msgpack_and_refuses_other_input() -> None:
    out = io.StringIO()
    stdin = io.BytesIO(msgpack.packb({"adress": "x"}))
    assert check_settings_main(VaultProvider, ENV, stdin, out) == 0
    assert json.loads(out.getvalue())["setting"] == "adress"
    out = io.StringIO()
    assert check_settings_main(VaultProvider, ENV, io.BytesIO(b"\x93\x01\x02\x03"), out) == 2
    assert json.loads(out.getvalue()) == {
        "ok": False,
        "code": "invalid_request",
        "message": "not a map",
    }
