"""``agent.webhook``: defaults, credentials masked, and the rules checked at file:line."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from kernel.config import Config, ConfigReport, check_config, config_yaml
from kernel.config.model import parse_listen, parse_rate
from kernel.errors import ConfigPermissionError
from kernel.secret_value import MASK, SecretValue

TOKEN = "inbound-7c1e9d2a-canary"


def check(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> ConfigReport:
    path = tmp_path / "dso.yaml"
    path.write_text(textwrap.dedent(text))
    path.chmod(0o600)
    return check_config(path, candidates=[], env=env or {})


def problems(report: ConfigReport) -> list[tuple[int | None, str | None, str]]:
    return [(e.line, e.key, e.reason) for e in report.errors]


def test_the_webhook_is_off_by_default_on_loopback() -> None:
    webhook = Config.default().agent.webhook
    assert webhook.enabled is False
    assert webhook.address == ("127.0.0.1", 9871)
    assert webhook.path == "/hooks/secret-changed"
    assert (webhook.token, webhook.hmac_secret) == (None, None)
    assert (webhook.rate_per_second, webhook.burst) == (10.0, 20)


def test_an_enabled_webhook_reads_its_credentials_from_the_environment(tmp_path: Path) -> None:
    report = check(
        tmp_path,
        """\
        version: 1
        agent:
          webhook:
            enabled: true
            listen: "[::1]:9999"
            path: /hooks/dso
            token: ${HOOK_TOKEN}
            hmac_secret: ${HOOK_KEY}
            rate_limit: 60/m
            burst: 5
        """,
        env={"HOOK_TOKEN": TOKEN, "HOOK_KEY": "k" + TOKEN},
    )
    assert report.valid, [str(e) for e in report.errors]
    assert report.config is not None
    webhook = report.config.agent.webhook
    assert webhook.token == SecretValue(TOKEN)
    assert webhook.hmac_secret == SecretValue("k" + TOKEN)
    assert webhook.address == ("::1", 9999)
    assert (webhook.path, webhook.rate_per_second, webhook.burst) == ("/hooks/dso", 1.0, 5)
    shown = config_yaml(report.config)
    assert TOKEN not in shown and TOKEN not in repr(report.config)
    assert f"token: '{MASK}'" in shown and f"hmac_secret: '{MASK}'" in shown


def test_enabled_without_a_token_or_hmac_secret_is_an_error_at_its_line(tmp_path: Path) -> None:
    report = check(
        tmp_path,
        """\
        version: 1
        agent:
          webhook:
            listen: 127.0.0.1:9871
            enabled: true
        """,
    )
    assert [(line, key) for line, key, _ in problems(report)] == [(5, "agent.webhook.enabled")]
    error = report.errors[0]
    assert "needs `token` or `hmac_secret`" in error.reason
    assert str(error).startswith(f"{tmp_path / 'dso.yaml'}:5: agent.webhook.enabled: ")
    assert error.hint is not None and "token:" in error.hint


@pytest.mark.parametrize("auth", ["token: ${T}", "hmac_secret: ${T}"])
def test_one_credential_is_enough(tmp_path: Path, auth: str) -> None:
    text = f"version: 1\nagent:\n  webhook:\n    enabled: true\n    {auth}\n"
    assert check(tmp_path, text, env={"T": TOKEN}).valid


def test_credentials_without_enabled_are_valid_and_stay_off(tmp_path: Path) -> None:
    report = check(tmp_path, "version: 1\nagent:\n  webhook:\n    token: ${T}\n", env={"T": "x"})
    assert report.config is not None and report.config.agent.webhook.enabled is False


@pytest.mark.parametrize(
    ("listen", "reason"),
    [
        ("9871", "expected host:port"),
        ("localhost", "expected host:port"),
        (":9871", "expected host:port"),
        ("127.0.0.1:65536", "port from 0 to 65535"),
        ("127.0.0.1:http", "port from 0 to 65535"),
        ("::1:9871", "write an IPv6 address as [::1]:9871"),
    ],
)
def test_a_listen_address_that_does_not_parse_is_an_error_at_its_line(
    tmp_path: Path, listen: str, reason: str
) -> None:
    report = check(tmp_path, f'version: 1\nagent:\n  webhook:\n    listen: "{listen}"\n')
    [(line, key, message)] = problems(report)
    assert (line, key) == (4, "agent.webhook.listen")
    assert reason in message and repr(listen) in message


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        ("rate_limit", "10/x", "a rate such as 10/s, 60/m or 100/h"),
        ("rate_limit", "0/s", "a rate such as 10/s, 60/m or 100/h"),
        ("rate_limit", "'10'", "a rate such as 10/s, 60/m or 100/h"),
        ("burst", "0", "must be at least 1"),
        ("path", "hooks", "a URL path starting with '/'"),
        ("path", "/hooks?x=1", "a URL path starting with '/'"),
        ("enabled", "yes", "expected a boolean"),
    ],
)
def test_bad_values(tmp_path: Path, key: str, value: str, reason: str) -> None:
    report = check(tmp_path, f"version: 1\nagent:\n  webhook:\n    {key}: {value}\n")
    [(line, dotted, message)] = problems(report)
    assert (line, dotted) == (4, f"agent.webhook.{key}")
    assert reason in message


def test_a_literal_token_makes_a_world_readable_file_refused(tmp_path: Path) -> None:
    path = tmp_path / "dso.yaml"
    path.write_text(f"version: 1\nagent:\n  webhook:\n    token: {TOKEN}\n")
    path.chmod(0o644)
    report = check_config(path, candidates=[], env={})
    assert [type(e) for e in report.errors] == [ConfigPermissionError]
    assert "agent.webhook.token" in str(report.errors[0])
    assert TOKEN not in str(report.errors[0])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:9871", ("127.0.0.1", 9871)),
        ("0.0.0.0:0", ("0.0.0.0", 0)),
        ("localhost:80", ("localhost", 80)),
        ("[::]:9871", ("::", 9871)),
    ],
)
def test_parse_listen(text: str, expected: tuple[str, int]) -> None:
    assert parse_listen(text) == expected


@pytest.mark.parametrize(("text", "rate"), [("10/s", 10.0), ("60/m", 1.0), ("36/h", 0.01)])
def test_parse_rate(text: str, rate: float) -> None:
    assert parse_rate(text) == pytest.approx(rate)
