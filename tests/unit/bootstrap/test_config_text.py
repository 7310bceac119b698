"""The configuration a bootstrap writes: the providers chosen, each with the settings it needs,
valid by the configuration's own validator, and the same file ``docker dso init`` writes."""

from __future__ import annotations

import pytest

from kernel.bootstrap import ProviderChoice, choose_providers, render_config
from kernel.bootstrap.config_text import check_text
from kernel.cli.init import CONFIG_TEMPLATE
from kernel.errors import ConfigError, UsageError


def test_local_mode_with_the_defaults_writes_what_init_writes() -> None:
    assert render_config(choose_providers([], {}), mode="local") == CONFIG_TEMPLATE


def test_every_provider_with_its_settings_is_a_valid_configuration() -> None:
    choices = choose_providers(
        ["local", "vault", "aws", "azure"],
        {
            "--vault-addr": "https://vault.example.com:8200",
            "--aws-region": "eu-west-1",
            "--azure-vault-url": "https://kv1.vault.azure.net",
        },
    )
    text = render_config(choices, mode="agent", default_provider="vault")
    config = check_text(text, "/etc/dso/dso.yaml")
    assert config.default_provider == "vault"
    assert {name: p.type for name, p in config.providers.items()} == {
        "local": "local",
        "vault": "vault",
        "aws": "aws",
        "azure": "azure",
    }
    assert config.providers["vault"].settings["address"] == "https://vault.example.com:8200"
    assert config.providers["vault"].env == ("VAULT_TOKEN",)
    assert config.providers["aws"].settings["region"] == "eu-west-1"
    assert config.providers["azure"].settings["vault_url"] == "https://kv1.vault.azure.net"
    assert "bootstrap agent" in text.splitlines()[0]


def test_a_vault_token_file_replaces_the_environment_variable() -> None:
    choices = choose_providers(
        ["vault"], {"--vault-addr": "http://bao:8200", "--vault-token-file": "/etc/dso/token"}
    )
    config = check_text(render_config(choices, mode="agent"), "dso.yaml")
    assert config.default_provider == "vault"
    assert config.providers["vault"].settings["token_file"] == "/etc/dso/token"
    assert config.providers["vault"].env == ()


@pytest.mark.parametrize(
    "value",
    ["https://x:8200/a b", "true", "8200", "${HOME}", "$$x", "#hash", "a: b", "0x1F", "'q'"],
)
def test_a_value_reads_back_exactly_as_given(value: str) -> None:
    choices = choose_providers(["aws"], {"--aws-region": value})
    config = check_text(render_config(choices, mode="agent"), "dso.yaml")
    assert config.providers["aws"].settings["region"] == value


@pytest.mark.parametrize(
    ("types", "values", "message"),
    [
        (["vault"], {}, "the vault provider needs --vault-addr"),
        (["aws"], {"--aws-region": "  "}, "the aws provider needs --aws-region"),
        (["local"], {"--vault-addr": "http://x"}, "--vault-addr is a setting of the vault"),
        (["azure"], {"--azure-vault-url": "https://a\nb"}, "control characters"),
    ],
)
def test_missing_or_misplaced_settings_are_usage_errors(
    types: list[str], values: dict[str, str], message: str
) -> None:
    with pytest.raises(UsageError, match=message):
        choose_providers(types, values)


def test_the_default_provider_must_be_chosen() -> None:
    with pytest.raises(UsageError, match="--default-provider aws: not one of the chosen"):
        render_config((ProviderChoice("local"),), mode="agent", default_provider="aws")
    # local always exists, listed or not
    text = render_config(
        (ProviderChoice("aws", (("region", "x"),)),), mode="agent", default_provider="local"
    )
    assert check_text(text, "dso.yaml").default_provider == "local"


def test_check_text_names_the_file_and_line_and_counts_the_rest() -> None:
    with pytest.raises(ConfigError) as caught:
        check_text("version: 1\nagnet: {}\nlogging: 3\n", "/etc/dso/dso.yaml")
    assert caught.value.message.startswith("/etc/dso/dso.yaml:2: agnet:")
    assert caught.value.hint is not None and "1 more problem" in caught.value.hint


def test_the_agent_file_spells_out_the_tunables_at_their_defaults() -> None:
    text = render_config(choose_providers([], {}), mode="agent")
    config = check_text(text, "/etc/dso/dso.yaml")
    assert "    max_size: 500Mi" in text and "    polling_interval: 5m" in text
    defaults = check_text("version: 1\n", "/etc/dso/dso.yaml")
    assert config.agent == defaults.agent
    assert config.logging == defaults.logging
