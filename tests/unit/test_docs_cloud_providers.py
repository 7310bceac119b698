"""docs/providers/vault.md and aws.md cannot drift from the code: every setting, auth method
and mapped AWS error code the providers know is documented."""

from __future__ import annotations

from pathlib import Path

import pytest

from providers.aws.settings import KNOWN_SETTINGS as AWS_SETTINGS
from providers.vault.settings import KNOWN_AUTH_SETTINGS, KNOWN_SETTINGS, AuthMethod

DOCS = Path(__file__).resolve().parents[2] / "docs" / "providers"


def text(name: str) -> str:
    return (DOCS / name).read_text(encoding="utf-8")


@pytest.mark.parametrize("key", KNOWN_SETTINGS)
def test_every_vault_setting_is_documented(key: str) -> None:
    assert f"`{key}`" in text("vault.md")


@pytest.mark.parametrize("key", [k for k in KNOWN_AUTH_SETTINGS if k != "method"])
def test_every_vault_auth_setting_is_documented(key: str) -> None:
    assert f"`auth.{key}`" in text("vault.md")


@pytest.mark.parametrize("method", list(AuthMethod), ids=str)
def test_every_vault_auth_method_is_documented(method: AuthMethod) -> None:
    assert f"| `{method.value}`" in text("vault.md")


@pytest.mark.parametrize("key", AWS_SETTINGS)
def test_every_aws_setting_is_documented(key: str) -> None:
    assert f"`{key}`" in text("aws.md")


@pytest.mark.parametrize("doc", ["vault.md", "aws.md"])
def test_docs_show_a_config_example_and_permissions(doc: str) -> None:
    content = text(doc)
    for heading in (
        "## Configuration",
        "## Addressing",
        "## Change detection",
        "## Required permissions",
    ):
        assert heading in content
