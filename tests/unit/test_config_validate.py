"""The validator: strict keys with suggestions, types, enums, cross-checks, every error at once."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from kernel.config import Config, ConfigReport, check_config, load_config
from kernel.errors import ConfigError
from kernel.secret_value import SecretValue

INIT_TEXT = """\
# dso configuration (local mode). Every key: docs/configuration.md
version: 1
default_provider: local
providers:
  local:
    type: local
"""


def check(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> ConfigReport:
    path = tmp_path / "dso.yaml"
    path.write_text(textwrap.dedent(text))
    path.chmod(0o600)
    return check_config(path, candidates=[], env=env or {})


def problems(report: ConfigReport) -> list[tuple[int | None, str | None, str]]:
    return [(e.line, e.key, e.reason) for e in report.errors]


def only_error(report: ConfigReport) -> ConfigError:
    assert len(report.errors) == 1, [str(e) for e in report.errors]
    return report.errors[0]


def test_the_init_file_is_valid_and_equals_the_defaults(tmp_path: Path) -> None:
    report = check(tmp_path, INIT_TEXT)
    assert report.valid, [str(e) for e in report.errors]
    assert report.warnings == ()
    assert report.config == Config.default()


def test_version_alone_gives_the_defaults(tmp_path: Path) -> None:
    assert check(tmp_path, "version: 1\n").config == Config.default()


def test_unknown_key_suggests_the_right_one_at_the_right_line(tmp_path: Path) -> None:
    report = check(
        tmp_path,
        """\
        version: 1
        agent:
          watch:
            debounce_window: 5s
            polling_intervall: 5m
        """,
    )
    error = only_error(report)
    assert str(error) == (
        f"{tmp_path / 'dso.yaml'}:5: agent.watch.polling_intervall: unknown key "
        "'polling_intervall' in agent.watch; did you mean 'polling_interval'?"
    )


@pytest.mark.parametrize(
    ("text", "line", "key", "reason"),
    [
        (
            "version: 1\nagnet: {}\n",
            2,
            "agnet",
            "unknown key 'agnet' at the top level; did you mean 'agent'?",
        ),
        (
            "version: 1\nzzz: 1\n",
            2,
            "zzz",
            "unknown key 'zzz' at the top level; allowed keys: "
            "version, default_provider, providers, agent, logging, extensions",
        ),
        (
            "version: 1\nagent:\n  cache:\n    tll: 1h\n",
            4,
            "agent.cache.tll",
            "unknown key 'tll' in agent.cache; did you mean 'ttl'?",
        ),
        (
            "version: 1\nlogging:\n  formt: json\n",
            3,
            "logging.formt",
            "unknown key 'formt' in logging; did you mean 'format'?",
        ),
        (
            "version: 1\nproviders:\n  v:\n    type: vault\n    breaker:\n      cooldwn: 1s\n",
            6,
            "providers.v.breaker.cooldwn",
            "unknown key 'cooldwn' in providers.v.breaker; did you mean 'cooldown'?",
        ),
    ],
)
def test_nested_unknown_keys(tmp_path: Path, text: str, line: int, key: str, reason: str) -> None:
    assert problems(check(tmp_path, text)) == [(line, key, reason)]


@pytest.mark.parametrize(
    ("text", "key", "reason"),
    [
        (
            "agent:\n  rotation:\n    rollback_on_failure: yes please\n",
            "agent.rotation.rollback_on_failure",
            "expected a boolean (true/false), got 'yes please'",
        ),
        (
            "agent:\n  rotation:\n    rollback_on_failure: yes\n",
            "agent.rotation.rollback_on_failure",
            "expected a boolean (true/false), got 'yes'",
        ),
        (
            "agent:\n  rotation:\n    rollback_on_failure: 1\n",
            "agent.rotation.rollback_on_failure",
            "expected a boolean (true/false), got 1",
        ),
        (
            "providers:\n  v:\n    type: vault\n    breaker:\n      failure_threshold: many\n",
            "providers.v.breaker.failure_threshold",
            "expected a whole number, got 'many'",
        ),
        (
            'providers:\n  v:\n    type: vault\n    breaker:\n      failure_threshold: "5"\n',
            "providers.v.breaker.failure_threshold",
            "expected a whole number, got '5'",
        ),
        (
            "providers:\n  v:\n    type: vault\n    breaker:\n      failure_threshold: 2.5\n",
            "providers.v.breaker.failure_threshold",
            "expected a whole number, got 2.5",
        ),
        (
            "providers:\n  v:\n    type: vault\n    breaker:\n      failure_threshold: 0\n",
            "providers.v.breaker.failure_threshold",
            "must be at least 1, got 0",
        ),
        (
            "agent:\n  socket: relative.sock\n",
            "agent.socket",
            "expected an absolute path, got 'relative.sock'",
        ),
        ("agent:\n  socket: [a]\n", "agent.socket", "expected an absolute path, got a list"),
        (
            "agent:\n  cache: 5\n",
            "agent.cache",
            "expected a mapping of keys under agent.cache, got 5",
        ),
        (
            "agent:\n  rotation:\n    parallel: 33\n",
            "agent.rotation.parallel",
            "must be at most 32, got 33",
        ),
        (
            "agent:\n  rotation:\n    parallel: 0\n",
            "agent.rotation.parallel",
            "must be at least 1, got 0",
        ),
        (
            "agent:\n  watch:\n    polling_interval: 100ms\n",
            "agent.watch.polling_interval",
            "must be at least 1s, got '100ms'",
        ),
        (
            "agent:\n  watch:\n    polling_interval: 1.5\n",
            "agent.watch.polling_interval",
            "expected a duration such as 30s, 5m, 1h30m or 100ms, got 1.5",
        ),
        (
            "agent:\n  cache:\n    ttl:\n",
            "agent.cache.ttl",
            "no value; expected a duration such as 30s, 5m, 1h30m or 100ms",
        ),
        (
            "logging:\n  level: verbose\n",
            "logging.level",
            "expected one of debug, info, warning, error; got 'verbose'",
        ),
        ("default_provider: 5\n", "default_provider", "expected text, got 5"),
        (
            "providers: [a]\n",
            "providers",
            "expected a mapping of names under providers, got a list",
        ),
        (
            "providers:\n  v:\n    type: vault\n    env: VAULT_ADDR\n",
            "providers.v.env",
            "expected a list of environment variable names, got 'VAULT_ADDR'",
        ),
        (
            "providers:\n  v:\n    type: vault\n    env: [VAULT_ADDR, 'a b']\n",
            "providers.v.env[1]",
            "'a b' is not an environment variable name (letters, digits and '_', not starting "
            "with a digit)",
        ),
    ],
)
def test_wrong_types(tmp_path: Path, text: str, key: str, reason: str) -> None:
    error = only_error(check(tmp_path, "version: 1\n" + text))
    assert (error.key, error.reason) == (key, reason)
    assert error.line is not None and error.line > 1


def test_bad_duration_and_size_name_the_text(tmp_path: Path) -> None:
    report = check(
        tmp_path,
        """\
        version: 1
        providers:
          v:
            type: vault
            timeout: 5x
        agent:
          cache:
            max_size: 500Mx
        """,
    )
    (timeout, size) = report.errors
    assert (timeout.line, timeout.key) == (5, "providers.v.timeout")
    assert "invalid duration '5x'" in timeout.reason and "e.g. 30s" in timeout.reason
    assert (size.line, size.key) == (8, "agent.cache.max_size")
    assert "invalid size '500Mx'" in size.reason and "e.g. 500Mi" in size.reason


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        ("agent: {}\n", 1, "missing required key 'version'"),
        ("version: 2\n", 1, "this dso supports config version 1; got 2"),
        ("version: 0\n", 1, "this dso supports config version 1; got 0"),
        ("version: one\n", 1, "expected a whole number, got 'one'"),
    ],
)
def test_version(tmp_path: Path, text: str, line: int, reason: str) -> None:
    error = only_error(check(tmp_path, text))
    assert (error.line, error.key, error.reason) == (line, "version", reason)


def test_third_party_provider_type_is_valid_and_names_its_program(tmp_path: Path) -> None:
    report = check(tmp_path, "version: 1\nproviders:\n  gcp:\n    type: gcp-secrets\n")
    assert report.errors == ()
    assert report.config is not None
    assert report.config.providers["gcp"].type == "gcp-secrets"
    (warning,) = report.warnings
    assert warning.endswith(
        ":4: providers.gcp.type: 'gcp-secrets' is not one of dso's providers (local, vault, aws, "
        "azure): dso will run the third-party program dso-provider-gcp-secrets from the plugins "
        "directory"
    )


def test_provider_type_typo_suggests_the_shipped_one(tmp_path: Path) -> None:
    report = check(tmp_path, "version: 1\nproviders:\n  prod:\n    type: vualt\n")
    (warning,) = report.warnings
    assert warning.endswith("; did you mean 'vault'?")


@pytest.mark.parametrize("kind", ["Vault", "gcp secrets", "-x", "dso-provider/../x"])
def test_provider_type_must_be_a_program_name(tmp_path: Path, kind: str) -> None:
    error = only_error(check(tmp_path, f"version: 1\nproviders:\n  p:\n    type: '{kind}'\n"))
    assert (error.line, error.key) == (4, "providers.p.type")
    assert error.reason == (
        "expected a provider program name: lowercase letters, digits, '_' and '-', starting with "
        f"a letter (at most 63); got {kind!r}"
    )


def test_provider_without_type(tmp_path: Path) -> None:
    error = only_error(check(tmp_path, "version: 1\nproviders:\n  v:\n    timeout: 5s\n"))
    assert (error.line, error.key, error.reason) == (
        4,
        "providers.v.type",
        "missing required key 'type'",
    )


def test_empty_provider_entry(tmp_path: Path) -> None:
    error = only_error(check(tmp_path, "version: 1\nproviders:\n  v:\n"))
    assert (error.line, error.key) == (3, "providers.v.type")


@pytest.mark.parametrize("name", ["Vault", "1vault", "va ult", "v" * 64, "_x"])
def test_provider_names(tmp_path: Path, name: str) -> None:
    error = only_error(check(tmp_path, f"version: 1\nproviders:\n  '{name}':\n    type: vault\n"))
    assert error.key == f"providers.{name}"
    assert error.reason.startswith(f"invalid name {name!r}")


def test_default_provider_must_be_defined(tmp_path: Path) -> None:
    error = only_error(
        check(
            tmp_path, "version: 1\ndefault_provider: vaul\nproviders:\n  vault:\n    type: vault\n"
        )
    )
    assert (error.line, error.key) == (2, "default_provider")
    assert error.reason == (
        "default_provider 'vaul' is not defined under providers (defined: local, vault); "
        "did you mean 'vault'?"
    )


def test_local_is_always_defined(tmp_path: Path) -> None:
    report = check(
        tmp_path, "version: 1\ndefault_provider: local\nproviders:\n  v:\n    type: vault\n"
    )
    assert report.config is not None
    assert sorted(report.config.providers) == ["local", "v"]
    assert report.config.provider().type == "local"


def test_local_name_is_reserved(tmp_path: Path) -> None:
    error = only_error(check(tmp_path, "version: 1\nproviders:\n  local:\n    type: vault\n"))
    assert error.key == "providers.local.type"
    assert "reserved" in error.reason


def test_every_error_is_collected_in_file_order(tmp_path: Path) -> None:
    report = check(
        tmp_path,
        """\
        version: 2
        providers:
          v:
            type: No
            timeout: 5x
        agent:
          cache:
            ttl: 1h
            ttl: 2h
          watch:
            polling_intervall: 5m
        logging:
          level: loud
        """,
    )
    assert [(line, key) for line, key, _ in problems(report)] == [
        (1, "version"),
        (4, "providers.v.type"),
        (5, "providers.v.timeout"),
        (9, "agent.cache.ttl"),
        (11, "agent.watch.polling_intervall"),
        (13, "logging.level"),
    ]
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "dso.yaml", candidates=[], env={})
    assert info.value.line == 1
    assert "5 more problems" in (info.value.hint or "")


def test_provider_settings_are_kept_expanded_with_positions(tmp_path: Path) -> None:
    report = check(
        tmp_path,
        """\
        version: 1
        default_provider: vault
        providers:
          vault:
            type: vault
            address: https://${HOST}:8200
            token: ${VAULT_TOKEN}
            auth:
              method: approle
              secret_id: literal-id
            tags: [a, b]
        """,
        env={"HOST": "vault.internal", "VAULT_TOKEN": "tok"},
    )
    assert report.config is not None, [str(e) for e in report.errors]
    vault = report.config.provider()
    assert vault.settings["address"] == "https://vault.internal:8200"
    assert vault.settings["token"] == SecretValue("tok")
    assert vault.credential("token") == SecretValue("tok")
    assert vault.settings["auth"]["method"] == "approle"
    assert isinstance(vault.settings["auth"]["secret_id"], SecretValue)
    assert vault.settings["tags"] == ("a", "b")
    assert vault.line == 4
    assert dict(vault.setting_lines) == {
        "address": 6,
        "token": 7,
        "auth": 8,
        "auth.method": 9,
        "auth.secret_id": 10,
        "tags": 11,
    }
    error = vault.setting_error("auth.method", "unknown auth method")
    assert (
        str(error) == f"{tmp_path / 'dso.yaml'}:9: providers.vault.auth.method: unknown auth method"
    )
    with pytest.raises(TypeError):
        vault.settings["x"] = 1  # type: ignore[index]


def test_env_expansion_in_typed_values(tmp_path: Path) -> None:
    report = check(
        tmp_path,
        """\
        version: ${VERSION:-1}
        providers:
          v:
            type: ${TYPE}
            timeout: ${TIMEOUT:-7s}
            breaker:
              failure_threshold: ${THRESHOLD}
        agent:
          rotation:
            rollback_on_failure: ${ROLLBACK:-false}
        """,
        env={"TYPE": "aws", "THRESHOLD": "9"},
    )
    assert report.config is not None, [str(e) for e in report.errors]
    provider = report.config.providers["v"]
    assert (provider.type, provider.timeout, provider.breaker.failure_threshold) == ("aws", 7, 9)
    assert report.config.agent.rotation.rollback_on_failure is False


def test_unset_variable_is_an_error_at_its_line(tmp_path: Path) -> None:
    report = check(
        tmp_path,
        "version: 1\nproviders:\n  v:\n    type: vault\n    token: ${VAULT_TOKEN}\n"
        "    timeout: ${T}\n",
    )
    assert problems(report) == [
        (
            5,
            "providers.v.token",
            "environment variable VAULT_TOKEN is not set (referenced as ${VAULT_TOKEN})",
        ),
        (6, "providers.v.timeout", "environment variable T is not set (referenced as ${T})"),
    ]


def test_an_expanded_bad_value_says_where_it_came_from(tmp_path: Path) -> None:
    error = only_error(
        check(tmp_path, "version: 1\nlogging:\n  level: ${LEVEL}\n", env={"LEVEL": "loud"})
    )
    assert error.reason == (
        "expected one of debug, info, warning, error; got 'loud' (from '${LEVEL}')"
    )


def test_misspelt_provider_key_becomes_a_setting_with_a_warning(tmp_path: Path) -> None:
    report = check(tmp_path, "version: 1\nproviders:\n  v:\n    type: vault\n    timout: 5s\n")
    assert report.valid
    assert report.warnings == (
        f"{tmp_path / 'dso.yaml'}:5: providers.v.timout: kept as a provider setting; "
        "did you mean 'timeout'?",
    )


def test_null_sections_mean_defaults(tmp_path: Path) -> None:
    report = check(tmp_path, "version: 1\nagent:\nlogging:\nproviders:\n")
    assert report.config == Config.default()


def test_full_values(tmp_path: Path) -> None:
    report = check(
        tmp_path,
        """\
        version: 1
        agent:
          socket: ~/dso.sock
          cache: {ttl: 0s, max_size: 100Mi}
          rotation: {strategy: rolling, timeout: 1m, rollback_on_failure: false}
          watch: {polling_interval: 1h30m, debounce_window: 0}
        logging: {level: debug, format: json, file: /var/log/dso/agent.log}
        """,
    )
    config = report.config
    assert config is not None, [str(e) for e in report.errors]
    assert config.agent.socket == Path("~/dso.sock").expanduser()
    assert (config.agent.cache.ttl, config.agent.cache.max_size) == (0, 100 * 1024**2)
    assert config.agent.rotation.strategy == "rolling"
    assert config.agent.rotation.timeout == 60
    assert config.agent.watch.polling_interval == 5400
    assert config.agent.watch.debounce_window == 0
    assert config.logging.file == Path("/var/log/dso/agent.log")
