"""Lookup order, permissions, reading, and what load_config returns or raises."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kernel.config import Config, check_config, default_candidates, find_config, load_config
from kernel.config import loader as loader_module
from kernel.config.loader import lookup_order
from kernel.errors import ConfigError, ConfigPermissionError, ExitCode

VALID = "version: 1\n"
WITH_LITERAL_TOKEN = "version: 1\nproviders:\n  v:\n    type: vault\n    token: {token}\n"
WITH_ENV_TOKEN = "version: 1\nproviders:\n  v:\n    type: vault\n    token: ${{VAULT_TOKEN}}\n"


def write(path: Path, text: str = VALID, mode: int = 0o600) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)
    return path


@pytest.fixture
def places(tmp_path: Path) -> list[Path]:
    """Stand-ins for /etc/dso/dso.yaml, ~/.dso/config.yaml and ./dso.yaml."""
    return [
        tmp_path / "etc" / "dso.yaml",
        tmp_path / "home" / "config.yaml",
        tmp_path / "cwd" / "dso.yaml",
    ]


# -- lookup -------------------------------------------------------------------------------------


def test_no_file_means_the_defaults(places: list[Path]) -> None:
    loaded = load_config(None, candidates=places)
    assert loaded.path is None
    assert loaded.config == Config.default()
    assert loaded.warnings == ()
    assert find_config(None, places) is None


@pytest.mark.parametrize("present", [[0, 1, 2], [1, 2], [2], [0, 2], [1]])
def test_the_first_existing_candidate_wins(places: list[Path], present: list[int]) -> None:
    for index in present:
        write(places[index])
    assert find_config(None, places) == places[present[0]]
    assert load_config(None, candidates=places).path == places[present[0]]


def test_explicit_path_beats_every_candidate(tmp_path: Path, places: list[Path]) -> None:
    for place in places:
        write(place)
    explicit = write(tmp_path / "custom.yaml")
    assert find_config(explicit, places) == explicit
    order = lookup_order(explicit, places)
    assert [(c.path, c.source, c.exists) for c in order] == [
        (explicit, "flag", True),
        *[(place, "lookup", True) for place in places],
    ]


def test_explicit_path_must_exist(tmp_path: Path, places: list[Path]) -> None:
    write(places[0])
    with pytest.raises(ConfigError, match="configuration file not found") as info:
        find_config(tmp_path / "nope.yaml", places)
    assert info.value.path == str(tmp_path / "nope.yaml")
    assert info.value.exit_code == ExitCode.CONFIG


def test_explicit_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is a directory"):
        find_config(tmp_path, [])


def test_default_candidates_follow_the_spec(
    dso_home: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(loader_module, "SYSTEM_CONFIG", tmp_path / "etc-dso" / "dso.yaml")
    assert default_candidates() == (
        tmp_path / "etc-dso" / "dso.yaml",
        dso_home / "config.yaml",
        Path.cwd() / "dso.yaml",
    )
    assert loader_module.default_candidates.__module__ == "kernel.config.loader"


def test_the_real_system_path_is_etc_dso() -> None:
    assert Path("/etc/dso/dso.yaml") == loader_module.SYSTEM_CONFIG


# -- permissions --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "text", "refused"),
    [
        (0o666, VALID, "world-writable"),
        (0o664, VALID, "group-writable"),
        (0o620, VALID, "group-writable"),
        (0o602, VALID, "world-writable"),
        (0o644, VALID, None),
        (0o600, VALID, None),
        (0o644, WITH_LITERAL_TOKEN, "holds a credential literally and is world-readable"),
        (0o604, WITH_LITERAL_TOKEN, "holds a credential literally and is world-readable"),
        (0o640, WITH_LITERAL_TOKEN, None),
        (0o600, WITH_LITERAL_TOKEN, None),
        (0o644, WITH_ENV_TOKEN, None),
        (0o660, WITH_ENV_TOKEN, "group-writable"),
    ],
)
def test_permissions(tmp_path: Path, mode: int, text: str, refused: str | None) -> None:
    path = write(tmp_path / "dso.yaml", text.format(token="CANARY-literal"), mode)
    env = {"VAULT_TOKEN": "from-env"}
    if refused is None:
        assert load_config(path, candidates=[], env=env).path == path
        return
    with pytest.raises(ConfigPermissionError, match=refused) as info:
        load_config(path, candidates=[], env=env)
    assert f"chmod 600 {path}" in (info.value.hint or "")
    assert info.value.exit_code == ExitCode.CONFIG
    assert "CANARY" not in str(info.value)


def test_a_file_owned_by_another_user_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path / "dso.yaml", VALID, 0o600)
    if os.geteuid() == 0:
        os.chown(path, 4242, -1)  # as root: a file someone else owns
    else:
        monkeypatch.setattr(loader_module.os, "geteuid", lambda: 4242)  # dso runs as 4242
    with pytest.raises(ConfigPermissionError, match=r"owned by uid \d+ while dso runs as uid"):
        load_config(path, candidates=[], env={})


@pytest.mark.parametrize(("owner", "euid"), [(0, 1000), (1000, 1000), (0, 0)])
def test_owners_dso_trusts(owner: int, euid: int) -> None:
    assert loader_module.owner_problem(Path("/x"), owner, euid) is None


@pytest.mark.parametrize(
    "token",
    ["s3cret", "${VAULT_TOKEN:-s3cret}", "Bearer ${VAULT_TOKEN}", "12345"],
)
def test_what_counts_as_a_literal_credential(tmp_path: Path, token: str) -> None:
    path = write(tmp_path / "dso.yaml", WITH_LITERAL_TOKEN.format(token=f"'{token}'"), 0o644)
    with pytest.raises(ConfigPermissionError) as info:
        load_config(path, candidates=[], env={"VAULT_TOKEN": "x"})
    assert (info.value.line, info.value.key) == (5, "providers.v.token")


def test_nested_literal_credentials_count(tmp_path: Path) -> None:
    text = "version: 1\nproviders:\n  v:\n    type: vault\n    auth:\n      secret_id: abc\n"
    path = write(tmp_path / "dso.yaml", text, 0o644)
    with pytest.raises(ConfigPermissionError) as info:
        load_config(path, candidates=[])
    assert info.value.key == "providers.v.auth.secret_id"


def test_permission_problems_are_listed_with_the_rest(tmp_path: Path) -> None:
    path = write(tmp_path / "dso.yaml", "version: 1\nagent:\n  sokcet: /x\n", 0o666)
    report = check_config(path, candidates=[])
    assert [type(e) for e in report.errors] == [ConfigPermissionError, ConfigError]


def test_writable_file_is_refused_before_it_is_parsed(tmp_path: Path) -> None:
    path = write(tmp_path / "dso.yaml", "version: [\n", 0o666)
    with pytest.raises(ConfigPermissionError):
        load_config(path, candidates=[])


# -- reading ------------------------------------------------------------------------------------


def test_unreadable_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path / "dso.yaml")

    def deny(self: Path) -> bytes:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_bytes", deny)
    with pytest.raises(ConfigError, match="cannot read the configuration: Permission denied"):
        load_config(path, candidates=[])


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "dso.yaml"
    path.write_bytes(b"version: 1\nlogging: {level: \xff}\n")
    path.chmod(0o600)
    with pytest.raises(ConfigError, match=r"not UTF-8 text \(invalid byte at offset 28\)"):
        load_config(path, candidates=[])


def test_too_large(tmp_path: Path) -> None:
    path = write(tmp_path / "dso.yaml", "version: 1\n" + "#" * (1024 * 1024) + "\n")
    with pytest.raises(ConfigError, match="a configuration is at most"):
        load_config(path, candidates=[])


def test_malformed_yaml_names_file_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path / "dso.yaml", "version: 1\nagent:\n  cache: {ttl: 1h\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, candidates=[])
    assert str(info.value).startswith(f"{path}:4:1: ")
    report = check_config(path, candidates=[])
    assert [(e.path, e.line) for e in report.errors] == [(str(path), 4)]


def test_loaded_config_carries_warnings(tmp_path: Path) -> None:
    text = "version: 1\nproviders:\n  v:\n    type: aws\n    tpye: x\n"
    path = write(tmp_path / "dso.yaml", text)
    loaded = load_config(path, candidates=[])
    assert loaded.warnings == (
        f"{path}:5: providers.v.tpye: kept as a provider setting; did you mean 'type'?",
    )


def test_a_loaded_config_never_shows_a_credential(tmp_path: Path, canary: str) -> None:
    path = write(tmp_path / "dso.yaml", WITH_LITERAL_TOKEN.format(token=canary))
    loaded = load_config(path, candidates=[])
    assert canary not in repr(loaded)
    assert canary not in str(loaded.config)
    token = loaded.config.providers["v"].credential("token")
    assert token is not None and token.reveal_text() == canary


def test_config_is_frozen() -> None:
    config = Config.default()
    with pytest.raises(AttributeError):
        config.version = 2  # type: ignore[misc]
    with pytest.raises(TypeError):
        config.providers["x"] = config.providers["local"]  # type: ignore[index]
