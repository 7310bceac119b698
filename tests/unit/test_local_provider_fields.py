"""providers.local.fields and settings: field selection, version pins, setting validation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kernel.paths import local_layout
from providers.local.fields import check_version, select_field
from providers.local.settings import LocalSettings
from providers.local.watcher import WatchMode
from providers.sdk import InvalidRequest, SecretNotFound

DOC = json.dumps(
    {
        "user": "admin",
        "password": "s3cr3t-VALUE",
        "port": 5432,
        "tls": True,
        "none": None,
        "db": {"password": "nested", "opts": {"ssl": "on"}},
        "hosts": ["a.example", "b.example"],
        "unicode": "pässwörd",
    }
).encode()


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        ("user", b"admin"),
        ("password", b"s3cr3t-VALUE"),
        ("port", b"5432"),
        ("tls", b"true"),
        ("none", b"null"),
        ("db.password", b"nested"),
        ("db.opts", b'{"ssl":"on"}'),
        ("db", b'{"password":"nested","opts":{"ssl":"on"}}'),
        ("hosts", b'["a.example","b.example"]'),
        ("hosts.1", b"b.example"),
        ("unicode", "pässwörd".encode()),
    ],
)
def test_select_field(field: str, expected: bytes) -> None:
    assert select_field(DOC, "app/db", field) == expected


@pytest.mark.parametrize(
    ("value", "field", "fragment"),
    [
        (DOC, "missing", "has no field 'missing'"),
        (DOC, "db.missing", "field 'db' of 'app/db' has no field 'missing'"),
        (DOC, "user.x", "is a JSON string, so it has no field 'x'"),
        (DOC, "hosts.7", "no index 7"),
        (DOC, "hosts.x", "is a JSON array"),
        (b"plain s3cr3t-VALUE text", "user", "is not a JSON document"),
        (b"\xff\xfe s3cr3t-VALUE", "user", "is not a JSON document"),
        (b'"s3cr3t-VALUE"', "user", "is a JSON string"),
        (b"[1, 2]", "user", "is a JSON array"),
    ],
)
def test_a_missing_field_is_not_found_and_never_shows_the_value(
    value: bytes, field: str, fragment: str
) -> None:
    with pytest.raises(SecretNotFound) as caught:
        select_field(value, "app/db", field)
    message = caught.value.message
    assert fragment in message
    assert field.split(".")[-1] in message
    assert "s3cr3t" not in message
    assert "admin" not in message


def test_version_pin_only_matches_the_current_version() -> None:
    check_version("app/db", 4, None)
    check_version("app/db", 4, "4")
    check_version("app/db", 4, "004")
    for pin in ("3", "5", "latest", "", "٤"):
        with pytest.raises(SecretNotFound) as caught:
            check_version("app/db", 4, pin)
        assert "keeps only the current version" in caught.value.message
        assert "version 4" in caught.value.message


def test_settings_defaults_come_from_the_layout(tmp_path: Path) -> None:
    layout = local_layout(tmp_path)
    parsed = LocalSettings.parse({}, layout)
    assert parsed == LocalSettings(layout.vault, layout.vault_key, WatchMode.AUTO, 1.0)


def test_settings_defaults_honour_dso_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DSO_HOME", str(tmp_path))
    assert LocalSettings.parse({}).path == tmp_path / "vault.enc"


def test_settings_explicit_values(tmp_path: Path) -> None:
    parsed = LocalSettings.parse(
        {
            "path": str(tmp_path / "v.enc"),
            "key_file": str(tmp_path / "k"),
            "watch": "POLL",
            "poll_interval": "0.2",  # ${ENV} expansion in dso.yaml gives text
        }
    )
    assert parsed == LocalSettings(tmp_path / "v.enc", tmp_path / "k", WatchMode.POLL, 0.2)


def test_settings_expand_the_home_directory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", "/home/someone")
    assert LocalSettings.parse({"path": "~/v.enc"}).path == Path("/home/someone/v.enc")


@pytest.mark.parametrize(
    ("settings", "fragment"),
    [
        ({"pth": "/x"}, "did you mean 'path'"),
        ({"colour": "red"}, "unknown setting 'colour'"),
        ({"path": "relative/vault.enc"}, "'path' of the local provider must be an absolute path"),
        ({"key_file": ["x"]}, "'key_file' of the local provider must be a string"),
        ({"watch": "fanotify"}, "must be one of auto, inotify, poll"),
        ({"poll_interval": 0}, "'poll_interval' of the local provider must be a number from"),
        ({"poll_interval": True}, "'poll_interval' of the local provider must be a number"),
        ({"poll_interval": "soon"}, "'poll_interval' of the local provider must be a number"),
    ],
)
def test_bad_settings_are_invalid_requests(settings: dict[str, object], fragment: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        LocalSettings.parse(settings)
    assert fragment in caught.value.message


def test_a_key_containing_a_dot_is_taken_literally() -> None:
    doc = json.dumps({"tls.crt": "PEM", "tls": {"crt": "other"}}).encode()
    assert select_field(doc, "app/tls", "tls.crt") == b"PEM"
