"""docs/providers/azure.md cannot drift from the code: every setting, credential kind,
change-detection mode and mapped error is documented, with the sections every provider doc has."""

from __future__ import annotations

from pathlib import Path

import pytest

from providers.azure.errors import RULES
from providers.azure.settings import KNOWN_SETTINGS, ChangeDetection, CredentialKind

DOC = Path(__file__).resolve().parents[2] / "docs" / "providers" / "azure.md"


@pytest.fixture(scope="module")
def text() -> str:
    return DOC.read_text(encoding="utf-8")


@pytest.mark.parametrize("key", KNOWN_SETTINGS)
def test_every_setting_is_in_the_settings_table(text: str, key: str) -> None:
    assert f"| `{key}` |" in text


@pytest.mark.parametrize("value", [*CredentialKind, *ChangeDetection], ids=str)
def test_every_choice_is_documented(text: str, value: str) -> None:
    assert f"`{value}`" in text


@pytest.mark.parametrize("rule", RULES, ids=lambda r: f"{r.exception.__name__}-{r.status}")
def test_every_mapped_error_is_documented(text: str, rule: object) -> None:
    status = getattr(rule, "status", None)
    name = getattr(rule, "exception").__name__  # noqa: B009
    if isinstance(status, int):
        assert str(status) in text, f"status {status} ({name})"
    elif isinstance(status, range):
        assert "5xx" in text
    elif name not in ("AzureError", "HttpResponseError"):
        assert name in text or name.replace("Error", "") in text, name
    assert f"`{getattr(rule, 'code').value}`" in text  # noqa: B009


def test_sections(text: str) -> None:
    for heading in (
        "## Configuration",
        "## Credentials",
        "## Required permissions",
        "## Addressing",
        "## Change detection",
        "## Errors",
    ):
        assert heading in text
    assert "Key Vault Secrets User" in text
