"""The local provider as a real child process, driven by the kernel's provider host.

Vault writes come from the test process through kernel.vault, exactly as `docker dso secret
set` does them (atomic rename over vault.enc), so change detection is tested end to end. Every
provider process is closed and reaped by the ``start`` fixture.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from kernel.errors import ProviderError
from kernel.protocol import Changed, ErrorCode, SecretRef
from kernel.provider_host import ProviderClient, ProviderCommand
from kernel.secret_value import SecretValue
from kernel.vault import PASSPHRASE_ENV, KdfParams, KeySource, Vault, create_key_file

pytestmark = pytest.mark.integration

COMMAND = ProviderCommand("local", (sys.executable, "-m", "providers.local"), "source")
#: How long a change may take to be notified (the issue's bound).
NOTIFY_WITHIN = 2.0

Start = Callable[..., ProviderClient]


def base_environ(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DSO_")}
    env.update(extra)
    return env


@pytest.fixture
def start() -> Iterator[Start]:
    clients: list[ProviderClient] = []

    def _start(
        settings: Mapping[str, Any] | None,
        *,
        env_allow: tuple[str, ...] = (),
        environ: dict[str, str] | None = None,
        log_level: str | None = None,
    ) -> ProviderClient:
        command = ProviderCommand(COMMAND.name, COMMAND.argv, COMMAND.origin, env_allow=env_allow)
        client = ProviderClient.start(
            command,
            environ=base_environ() if environ is None else environ,
            log_level=log_level,
        )
        clients.append(client)
        if settings is not None:
            client.configure(settings)
        return client

    yield _start
    for client in clients:
        client.close(grace=1.0)
        assert client.exit_status is not None  # reaped


@pytest.fixture
def vault_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "dso-home"
    directory.mkdir()
    return directory


def make_vault(directory: Path, secrets: Mapping[str, bytes]) -> Vault:
    create_key_file(directory / "vault.key")
    vault = Vault.create(directory / "vault.enc", KeySource(directory / "vault.key"))
    if secrets:
        vault.set_many({name: SecretValue(value) for name, value in secrets.items()})
    return vault


def settings_for(directory: Path, **extra: Any) -> dict[str, Any]:
    return {"path": str(directory / "vault.enc"), "key_file": str(directory / "vault.key"), **extra}


def test_get_versions_and_list(start: Start, vault_dir: Path, canary: str) -> None:
    doc = {"user": "admin", "password": canary, "port": 5432, "db": {"host": "h1"}}
    vault = make_vault(
        vault_dir,
        {"app/db": json.dumps(doc).encode(), "app/token": b"tok-1", "other/x": b"x"},
    )
    vault.set("app/token", SecretValue(b"tok-2"))
    client = start(settings_for(vault_dir))
    refs = [
        SecretRef("token", "app/token"),
        SecretRef("pw", "app/db", field="password"),
        SecretRef("port", "app/db", field="port"),
        SecretRef("host", "app/db", field="db.host"),
        SecretRef("pinned", "app/token", version="2"),
        SecretRef("old", "app/token", version="1"),
        SecretRef("nofield", "app/db", field="nope"),
        SecretRef("absent", "app/absent"),
        SecretRef("badname", "../etc/passwd"),
    ]
    result = client.get(refs)
    assert {k: v.value for k, v in result.values.items()} == {
        "token": b"tok-2",
        "pw": canary.encode(),
        "port": b"5432",
        "host": b"h1",
        "pinned": b"tok-2",
    }
    assert result.values["token"].version == "2"
    assert result.values["pw"].version == "1"
    codes = {k: e.code for k, e in result.errors.items()}
    assert codes == {
        "old": ErrorCode.NOT_FOUND,
        "nofield": ErrorCode.NOT_FOUND,
        "absent": ErrorCode.NOT_FOUND,
        "badname": ErrorCode.INVALID_REQUEST,
    }
    assert "keeps only the current version" in result.errors["old"].message
    assert "'nope'" in result.errors["nofield"].message
    assert all(canary not in e.message for e in result.errors.values())

    versions = client.versions(refs)
    assert versions.versions == {
        "token": "2",
        "pw": "1",
        "port": "1",
        "host": "1",
        "pinned": "2",
        "nofield": "1",
    }
    assert set(versions.errors) == {"old", "absent", "badname"}

    assert client.list_names() == ["app/db", "app/token", "other/x"]
    assert client.list_names("app/") == ["app/db", "app/token"]
    assert client.list_names("zzz") == []


def test_default_paths_come_from_dso_home(start: Start, vault_dir: Path) -> None:
    make_vault(vault_dir, {"app/a": b"A"})
    client = start({}, env_allow=("DSO_HOME",), environ=base_environ(DSO_HOME=str(vault_dir)))
    assert client.get([SecretRef("a", "app/a")]).values["a"].value == b"A"


class Notes:
    """Collects ``changed`` notifications from the client's reader thread."""

    def __init__(self) -> None:
        self.queue: queue.SimpleQueue[Changed] = queue.SimpleQueue()

    def next(self, timeout: float) -> Changed | None:
        try:
            return self.queue.get(timeout=timeout)
        except queue.Empty:
            return None


@pytest.mark.parametrize("mode", ["inotify", "poll"])
def test_watch_notifies_a_changed_secret_and_not_an_unrelated_one(
    start: Start, vault_dir: Path, mode: str
) -> None:
    make_vault(vault_dir, {"app/watched": b"w1", "app/other": b"o1"})
    client = start(settings_for(vault_dir, watch=mode, poll_interval=0.1))
    notes = Notes()
    client.watch(
        [SecretRef("w", "app/watched"), SecretRef("w2", "app/watched", field="x")], notes.queue.put
    )
    writer = Vault.open(vault_dir / "vault.enc", KeySource(vault_dir / "vault.key"))

    writer.set("app/other", SecretValue(b"o2"))  # an unrelated secret
    assert notes.next(0.6) is None

    writer.set("app/watched", SecretValue(b"o2"))  # same value as other, a new version here
    changed_at = time.monotonic()
    note = notes.next(NOTIFY_WITHIN)
    assert note is not None, f"no changed notification within {NOTIFY_WITHIN} s ({mode})"
    assert time.monotonic() - changed_at < NOTIFY_WITHIN
    assert sorted(note.refs) == ["w", "w2"]

    writer.set("app/watched", SecretValue(b"o2"))  # same value: no new version, no notification
    writer.delete("app/other")
    assert notes.next(0.6) is None

    writer.delete("app/watched")  # deleted counts as changed
    note = notes.next(NOTIFY_WITHIN)
    assert note is not None and "w" in note.refs

    client.watch([], notes.queue.put)  # stop watching
    writer.set("app/watched", SecretValue(b"back"))
    assert notes.next(0.6) is None


def test_a_vault_created_after_configure_is_served_and_notified(
    start: Start, vault_dir: Path
) -> None:
    client = start(settings_for(vault_dir))
    with pytest.raises(ProviderError) as caught:
        client.get([SecretRef("a", "app/a")])
    assert caught.value.code == ErrorCode.UNAVAILABLE
    assert "no vault at" in caught.value.message
    assert "docker dso init" in (caught.value.hint or "")  # the provider's hint, as the hint

    notes = Notes()
    client.watch([SecretRef("a", "app/a")], notes.queue.put)
    make_vault(vault_dir, {"app/a": b"A"})
    note = notes.next(NOTIFY_WITHIN)
    assert note is not None and note.refs == ("a",)
    assert client.get([SecretRef("a", "app/a")]).values["a"].value == b"A"

    (vault_dir / "vault.enc").unlink()  # the whole vault goes away: its secrets changed too
    note = notes.next(NOTIFY_WITHIN)
    assert note is not None and note.refs == ("a",)


def passphrase_vault(directory: Path, passphrase: str) -> None:
    keys = KeySource(directory / "vault.key", SecretValue(passphrase))
    # The cheapest scrypt parameters the format accepts: the test is about the error path.
    vault = Vault.create(directory / "vault.enc", keys, kdf=KdfParams.scrypt(log2_n=10))
    vault.set("app/a", SecretValue(b"A"))


def test_passphrase_comes_from_the_allowed_environment(start: Start, vault_dir: Path) -> None:
    passphrase_vault(vault_dir, "correct horse")
    allow = (PASSPHRASE_ENV,)
    client = start(
        settings_for(vault_dir),
        env_allow=allow,
        environ=base_environ(**{PASSPHRASE_ENV: "correct horse"}),
    )
    assert client.get([SecretRef("a", "app/a")]).values["a"].value == b"A"


@pytest.mark.parametrize(
    ("passphrase", "allowed", "fragment"),
    [
        ("Zq81-not-it", True, "wrong key or passphrase"),
        ("correct horse", False, "only when its `env` list in the configuration names it"),
    ],
)
def test_wrong_or_unallowed_passphrase_is_auth_failed_at_configure(
    start: Start, vault_dir: Path, passphrase: str, allowed: bool, fragment: str
) -> None:
    passphrase_vault(vault_dir, "correct horse")
    client = start(
        None,
        env_allow=(PASSPHRASE_ENV,) if allowed else (),
        environ=base_environ(**{PASSPHRASE_ENV: passphrase}),
    )
    with pytest.raises(ProviderError) as caught:
        client.configure(settings_for(vault_dir))
    assert caught.value.code == ErrorCode.AUTH_FAILED
    assert fragment in caught.value.message
    assert passphrase not in caught.value.message


def test_missing_key_file_is_auth_failed(start: Start, vault_dir: Path) -> None:
    make_vault(vault_dir, {"app/a": b"A"})
    (vault_dir / "vault.key").unlink()
    client = start(None)
    with pytest.raises(ProviderError) as caught:
        client.configure(settings_for(vault_dir))
    assert caught.value.code == ErrorCode.AUTH_FAILED
    assert "vault key file" in caught.value.message


def test_a_bad_setting_is_invalid_request(start: Start, vault_dir: Path) -> None:
    client = start(None)
    with pytest.raises(ProviderError) as caught:
        client.configure({"pth": str(vault_dir / "vault.enc")})
    assert caught.value.code == ErrorCode.INVALID_REQUEST
    assert "did you mean 'path'" in caught.value.message


def test_values_never_reach_the_logs(
    start: Start, vault_dir: Path, canary: str, caplog: pytest.LogCaptureFixture
) -> None:
    make_vault(vault_dir, {"app/db": json.dumps({"password": canary}).encode()})
    caplog.set_level(logging.DEBUG)
    client = start(settings_for(vault_dir), log_level="debug")
    notes = Notes()
    client.watch([SecretRef("d", "app/db")], notes.queue.put)
    client.get([SecretRef("d", "app/db"), SecretRef("f", "app/db", field="missing")])
    client.versions([SecretRef("d", "app/db")])
    Vault.open(vault_dir / "vault.enc", KeySource(vault_dir / "vault.key")).set(
        "app/db", SecretValue(canary + "-2")
    )
    assert notes.next(NOTIFY_WITHIN) is not None
    client.close(grace=1.0)
    # stderr is relayed by its own thread: give it a moment to catch up.
    deadline = time.monotonic() + 5
    while not any(r.getMessage() == "watched secrets changed" for r in caplog.records):
        assert time.monotonic() < deadline, "the provider's log lines were not relayed"
        time.sleep(0.05)
    for record in caplog.records:
        assert canary not in repr(vars(record))
