"""``${VAR}`` expansion: defaults, escapes, errors that name the variable but never a value."""

from __future__ import annotations

import pytest

from kernel.config.expand import Where, expand, is_reference_only, references
from kernel.errors import ConfigError

ENV = {"HOST": "vault.internal", "PORT": "8200", "EMPTY": ""}
WHERE = Where("/cfg/dso.yaml", 7, "providers.vault.address")


@pytest.mark.parametrize(
    ("text", "result"),
    [
        ("plain", "plain"),
        ("${HOST}", "vault.internal"),
        ("https://${HOST}:${PORT}", "https://vault.internal:8200"),
        ("${MISSING:-fallback}", "fallback"),
        ("${EMPTY:-fallback}", "fallback"),
        ("${HOST:-fallback}", "vault.internal"),
        ("${MISSING:-}", ""),
        ("${MISSING:-a:-b}", "a:-b"),
        ("${EMPTY}", ""),
        ("$$", "$"),
        ("pa$$word", "pa$word"),
        ("$${HOST}", "${HOST}"),
        ("$$$${HOST}", "$${HOST}"),
        ("", ""),
    ],
)
def test_expand(text: str, result: str) -> None:
    assert expand(text, ENV, WHERE) == result


def test_unset_variable_names_the_variable_and_the_place() -> None:
    with pytest.raises(ConfigError) as info:
        expand("Bearer ${VAULT_TOKEN}", ENV, WHERE)
    error = info.value
    assert str(error).startswith(
        "/cfg/dso.yaml:7: providers.vault.address: environment variable VAULT_TOKEN is not set"
    )
    assert "${VAULT_TOKEN:-" in (error.hint or "")
    assert (error.path, error.line, error.key) == ("/cfg/dso.yaml", 7, "providers.vault.address")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("pa$word", "a lone '$' at character 10"),
        ("$HOME", "a lone '$' at character 8"),
        ("tail$", "a lone '$' at character 12"),
        ("${HOST", "unterminated '${' at character 8"),
        ("${}", "invalid variable reference"),
        ("${1X}", "invalid variable reference"),
        ("${A-b}", "invalid variable reference"),
        ("${A B}", "invalid variable reference"),
    ],
)  # positions count the "s3cr3t-" prefix below
def test_malformed_references_are_errors_that_do_not_echo_the_text(text: str, problem: str) -> None:
    secret = "s3cr3t-" + text
    with pytest.raises(ConfigError, match=r"/cfg/dso\.yaml:7: ") as info:
        expand(secret, ENV, WHERE)
    assert problem in str(info.value)
    assert "s3cr3t" not in str(info.value)


def test_expanded_values_never_appear_in_errors() -> None:
    env = {"TOKEN": "CANARY-value"}
    with pytest.raises(ConfigError) as info:
        expand("${TOKEN}${OTHER}", env, WHERE)
    assert "CANARY" not in str(info.value)


@pytest.mark.parametrize(
    ("text", "only"),
    [
        ("${TOKEN}", True),
        ("${A}${B}", True),
        ("${TOKEN:-literal}", False),
        ("${TOKEN:-}", True),
        ("Bearer ${TOKEN}", False),
        ("s3cret", False),
        ("", False),
        ("$$", False),
        ("${broken", False),
    ],
)
def test_is_reference_only(text: str, only: bool) -> None:
    assert is_reference_only(text) is only


def test_references_lists_names_and_defaults() -> None:
    found = references("${A}-${B:-x}")
    assert [(r.name, r.default) for r in found] == [("A", None), ("B", "x")]
