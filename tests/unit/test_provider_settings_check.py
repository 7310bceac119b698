"""Reading a provider program's `--check-settings` answer, and placing it in dso.yaml."""

from __future__ import annotations

from pathlib import Path
from types import MappingProxyType

from kernel.config import ProviderConfig
from kernel.provider_host.check import SettingsVerdict, _setting_error, _verdict


def test_answers() -> None:
    assert _verdict("p", 0, b'{"ok": true}\n') == SettingsVerdict("p", checked=True)
    bad = _verdict(
        "p",
        0,
        b'log line\n{"ok": false, "code": "invalid_request", "message": "m\\u001b[2J",'
        b' "setting": "auth.method"}\n',
    )
    assert bad == SettingsVerdict("p", True, False, "m [2J", "auth.method")  # escape cleaned


def test_a_program_without_the_flag_is_not_checked() -> None:
    for status, out in [(1, b"run by dso, not by hand\n"), (2, b""), (0, b"not json"), (0, b"[]")]:
        verdict = _verdict("p", status, out)
        assert not verdict.checked
        assert verdict.message == "the program does not support --check-settings"


def provider() -> ProviderConfig:
    return ProviderConfig(
        name="prod",
        type="vault",
        settings=MappingProxyType({"auth": {"method": "tokn"}}),
        source=Path("/etc/dso/dso.yaml"),
        line=3,
        setting_lines=MappingProxyType({"auth": 5, "auth.method": 6}),
    )


def test_a_named_setting_points_at_its_line() -> None:
    error = _setting_error(provider(), SettingsVerdict("prod", True, False, "bad", "auth.method"))
    assert error.message == "/etc/dso/dso.yaml:6: providers.prod.auth.method: bad"
    assert error.hint == "docs/providers/vault.md lists its settings"


def test_a_missing_setting_points_at_the_provider() -> None:
    error = _setting_error(
        provider(), SettingsVerdict("prod", True, False, "need address", "address")
    )
    assert error.message == "/etc/dso/dso.yaml:3: providers.prod: need address"
